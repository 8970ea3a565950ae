"""The fast simulator: the dispatcher that chunks work and picks an engine (:mod:`.sim`), the
event-driven numba engine (:mod:`.events`) and the dense torch engine (:mod:`.dense`), all bit
for bit the reference.

May import: ``common``, ``snn``.
"""
