"""Lava Processes of the retrieval graph, one folder each (``process.py`` + ``models.py``)."""
