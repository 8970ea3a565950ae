"""Every table and figure of the paper by one command: the steps, their plan and up-to-date
keys (:mod:`.steps`) and the report beside the paper's numbers (:mod:`.report`).

May import: every layer below it (``common`` to ``apps``).
"""
