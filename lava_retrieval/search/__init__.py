"""Retrieval: the exact cosine index (:mod:`.index`), approximate indexes through faiss
(:mod:`.approximate`), the retrieval metrics (:mod:`.metrics`), the index of your own images with
its network and settings (:mod:`.image_index`) and its result figure (:mod:`.figure`).

May import: ``common``, ``data``, ``snn``, ``engines``, ``lava_graph``.
"""
