"""What people run to look: the end-to-end demo and its Fig. 6-style figure (:mod:`.demo`) and the
web page (:mod:`.web`).

May import: every layer below it (``common`` to ``evaluation``).
"""
