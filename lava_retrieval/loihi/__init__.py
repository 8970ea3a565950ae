"""The path to Loihi: the fixed-point lowering every Lava model and export shares
(:mod:`.lowering`), the chip's resource model and core map (:mod:`.resources`) and the lava-dl
netx export and its runner (:mod:`.netx`).

May import: ``common``, ``snn``.
"""
