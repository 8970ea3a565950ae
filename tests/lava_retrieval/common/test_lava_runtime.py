"""Signals around forks: a Ctrl-C that arrives while a fork is under way is held (Python would
swallow it inside the fork handlers) and raised once it can be, never lost."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lava_retrieval.common import lava_runtime
from lava_retrieval.common.lava_runtime import checked_interrupts, import_lava


def _ctrl_c_during_a_fork() -> None:
    lava_runtime._hold_signals()  # what os.fork runs first
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler has run: recorded, not raised
    assert lava_runtime._held_signals == [signal.SIGINT]
    lava_runtime._release_signals()  # what os.fork runs last, in the parent


def test_a_signal_held_during_a_fork_is_raised_after_it():
    import_lava()
    with pytest.raises(KeyboardInterrupt):
        _ctrl_c_during_a_fork()
        for _ in range(1_000_000):  # the next bytecodes raise it
            pass
    assert lava_runtime._held_signals == []


def test_within_a_checked_block_it_is_raised_when_the_block_ends():
    import_lava()
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with checked_interrupts():
            _ctrl_c_during_a_fork()
            reached_the_end = True  # not raised inside: the block raises it as it ends
    assert reached_the_end and lava_runtime._held_signals == []


def test_a_finalizer_interrupted_in_its_construction_is_not_reported():
    """multiprocessing's Finalize interrupted after it took its weak reference but before it
    registered itself fails when its object dies ("Exception ignored in: <Finalize object,
    dead>"): that report alone is dropped, any other passes on."""
    import sys
    import weakref
    from multiprocessing.util import Finalize

    from lava_retrieval.common.lava_runtime import _quiet_interrupted_finalizer

    class Thing:
        pass

    def half_made_finalizer_dies() -> None:
        thing = Thing()
        half = Finalize.__new__(Finalize)  # as a Ctrl-C inside __init__ leaves it
        half._weakref = weakref.ref(thing, half)
        del thing  # the weak reference calls it: no _key

    seen = []
    previous = sys.unraisablehook
    try:
        sys.unraisablehook = seen.append  # without the filter: reported
        half_made_finalizer_dies()
        assert [type(r.exc_value) for r in seen] == [AttributeError]
        seen.clear()
        sys.unraisablehook = _quiet_interrupted_finalizer(seen.append)
        half_made_finalizer_dies()
        assert seen == []
        other = type("Report", (), {"exc_value": ValueError("x"), "object": None})()
        sys.unraisablehook(other)
        assert seen == [other]
    finally:
        sys.unraisablehook = previous
