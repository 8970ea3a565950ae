"""The fast simulator: the dispatcher that chunks work and picks an engine (:mod:`.sim`), the
event-driven numba engine (:mod:`.events`) with the two-phase timings' closed form per window
(:mod:`.window`), and the dense torch engine (:mod:`.dense`), all bit for bit the reference,
and what the compiled code shares (:mod:`.compiled`). (The Lava graph's compiled per-step
synapses and neurons are the IFLayer model's: ``procs/if_layer/scatter.py``.)

May import: ``common``, ``snn``.
"""
