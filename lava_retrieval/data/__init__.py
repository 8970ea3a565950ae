"""Images in: Fashion-MNIST located, verified and read from its IDX files (:mod:`.fashion_mnist`),
any image file turned into what the network sees (:mod:`.images`), and seeded variants of
images for catalogues of any size (:mod:`.augment`).

May import: ``common``.
"""
