"""Measuring what the paper measured: Table 2 and the time-step plot (:mod:`.table2`), the
activation-percentile calibration (:mod:`.calibration`), operation counts and the Loihi energy
model (:mod:`.energy`), latency (:mod:`.latency`) and the paper's own numbers (:mod:`.paper`).

May import: every layer below it (``common`` to ``search``).
"""
