"""Images in: Fashion-MNIST located, verified and read from its IDX files (:mod:`.fashion_mnist`),
and any image file turned into what the network sees (:mod:`.images`).

May import: ``common``.
"""
