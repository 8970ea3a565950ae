"""Retrieval: the exact cosine index (:mod:`.index`) over memory-mapped row shards
(:mod:`.shards`), approximate indexes through faiss (:mod:`.approximate`), the retrieval
metrics (:mod:`.metrics`), the index of your own images with its network and settings
(:mod:`.image_index`, its searches :mod:`.searching`), its staged build in one process or on a
Ray cluster (:mod:`.build`), a catalogue's changes to it: adds without duplicates, folder sync
(:mod:`.catalogue`), its search sharded over Ray actors (:mod:`.sharded`) and its result figure
(:mod:`.figure`).

May import: ``common``, ``data``, ``snn``, ``backends``, ``engines``, ``lava_graph``, ``embedding``.
"""
