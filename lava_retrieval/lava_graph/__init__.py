"""The retrieval system as a Lava process graph (the Processes themselves are in ``procs/``):
building and running it (:mod:`.graph`), keeping it running between queries
(:mod:`.resident`), and Lava's own sigma-delta processes (:mod:`.sdnn_graph`).

May import: ``common``, ``snn``, ``loihi``, ``backends``, ``exports``, ``engines`` and ``procs``.
"""
