"""Importing Lava safely from a process that already used multiprocessing.

Lava 0.10 calls ``multiprocessing.set_start_method('fork')`` when its message infrastructure is
first imported; that call raises ``RuntimeError: context has already been set`` when anything
before it (a tqdm progress bar creates a multiprocessing lock, for instance) fixed the start
method. :func:`import_lava` clears the choice through the public API first, so Lava can make it.
"""

from __future__ import annotations

import multiprocessing
import sys

_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"


def import_lava() -> None:
    """Import Lava's runtime so that later ``import lava...`` statements cannot fail.

    >>> import_lava()
    >>> import lava.magma.core.run_configs  # works whatever ran before
    """
    if _MODULE in sys.modules:
        return
    if multiprocessing.get_start_method(allow_none=True) is not None:
        multiprocessing.set_start_method(None, force=True)
    __import__(_MODULE)
