"""What people run: the common tasks in one call each (:mod:`.tasks`, the package's top-level
``build_index``, ``open_index``, ``embed_images``, ``convert_checkpoint``), the end-to-end demo
and its Fig. 6-style figure (:mod:`.demo`) and the web page and JSON service (:mod:`.web`, its
OpenAPI document :mod:`.openapi`).

May import: every layer below it (``common`` to ``evaluation``).
"""
