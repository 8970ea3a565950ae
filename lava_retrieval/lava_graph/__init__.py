"""The retrieval system as a Lava process graph (the Processes themselves are in ``procs/``):
building and running it (:mod:`.graph`) and embeddings by any backend, simulator or graph
(:mod:`.embedding`).

May import: ``common``, ``snn``, ``loihi``, ``engines`` and ``procs``.
"""
