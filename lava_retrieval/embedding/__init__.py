"""Image embeddings from a spiking network by any backend: the one place that chooses between
the simulator (:mod:`lava_retrieval.engines`) and the Lava process graph
(:mod:`lava_retrieval.lava_graph`), and the embedding files (:mod:`.files`).

May import: ``common``, ``snn``, ``loihi``, ``backends``, ``engines`` and ``lava_graph``.
"""
