"""The path to Loihi: the fixed-point lowering every Lava model and export shares
(:mod:`.lowering`; for sigma-delta neurons :mod:`.sdnn_lowering` and the models of
:mod:`.sdnn_models`) and the chip's resource model and core map (:mod:`.resources`). The netx
export is in :mod:`lava_retrieval.exports`.

May import: ``common``, ``snn``.
"""
