"""The spiking network as data and as a definition: the network artifact (:mod:`.network`), the
neuron step function and its parameters (:mod:`.neuron`), the synaptic operators
(:mod:`.synapse`), the executable specification every engine is held to (:mod:`.reference`) and
the simulation settings with the names of timings, readouts and engines (:mod:`.config`).

May import: ``common``.
"""
