"""The network in other tools' formats, in one place: NIR (:mod:`.nir`, read by sinabs and
the NIR ecosystem) and Lava-dl's netx HDF5 (:mod:`.netx`, Algorithm 1's networks on
Conv/Dense/LIF; :mod:`.netx_sdnn`, the sigma-delta networks). The project's own network file
is :meth:`lava_retrieval.snn.network.SpikingNetwork.save`.

May import: ``common``, ``snn``, ``loihi``.
"""
