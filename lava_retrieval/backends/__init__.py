"""The backends that run a spiking network, in one registry (:mod:`.registry`): their names,
where each is offered (``embed``, ``index``, ``serve``, the resident graph, the demo), what each
needs and why a network cannot run on one. The command line, ``lava-retrieval methods``, the
Lava graph, the resident graph, the index and the web page all read it.

May import: ``common``, ``snn``, ``loihi``.
"""
