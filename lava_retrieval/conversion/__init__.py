"""ANN to spiking network: Algorithm 1 and the QCFS thresholds (:mod:`.algorithm`), the named
methods and the one resolver of ``--method``/``--network``/``--checkpoint`` (:mod:`.methods`),
and writing a conversion's files (:mod:`.export`).

May import: ``common``, ``data``, ``ann``, ``snn``, ``loihi``, ``exports``.
"""
