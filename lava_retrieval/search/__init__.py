"""Retrieval: the exact cosine index (:mod:`.index`) over memory-mapped row shards
(:mod:`.shards`), approximate indexes through faiss (:mod:`.approximate`), the retrieval
metrics (:mod:`.metrics`), the index of your own images with its network and settings
(:mod:`.image_index`), its staged build in one process or on a Ray cluster (:mod:`.build`) and
its result figure (:mod:`.figure`).

May import: ``common``, ``data``, ``snn``, ``backends``, ``engines``, ``lava_graph``, ``embedding``.
"""
