"""Importing Lava safely from a process that already used multiprocessing.

Lava 0.10 calls ``multiprocessing.set_start_method('fork')`` when its message infrastructure is
first imported; that call raises ``RuntimeError: context has already been set`` when anything
before it (a tqdm progress bar creates a multiprocessing lock, for instance) fixed the start
method. :func:`import_lava` clears the choice through the public API first, so Lava can make it.

It also records the name of every shared-memory segment the process creates (Lava's channels),
before the segment exists: a signal that lands between ``shm_open`` and the bookkeeping of
``multiprocessing`` (its resource tracker, the shared-memory manager's list) would otherwise
leave a segment in ``/dev/shm`` that nobody unlinks. :func:`release_segments` unlinks what a
stopped runtime left.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
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
    _record_created_segments()
    os.register_at_fork(
        before=_hold_signals, after_in_parent=_release_signals, after_in_child=_in_child
    )
    sys.unraisablehook = _quiet_interrupted_finalizer(sys.unraisablehook)


#: Every shared-memory segment this process asked to create, in order (None: released).
_segments: list[str | None] = []


def _record_created_segments() -> None:
    """Route ``multiprocessing.shared_memory``'s ``shm_open`` through a wrapper that records a
    name it is asked to create before the call (a signal right after the call returns must
    not skip the record); attaching to an existing segment is not recorded."""
    import types
    from multiprocessing import shared_memory

    real = getattr(shared_memory, "_posixshmem", None)
    if real is None or isinstance(real, types.SimpleNamespace):  # not POSIX, or done
        return

    def shm_open(name, flags, mode=0o777):
        if not flags & os.O_EXCL:
            return real.shm_open(name, flags, mode=mode)
        _segments.append(name)
        try:
            return real.shm_open(name, flags, mode=mode)
        except FileExistsError:  # another process's name: SharedMemory tries another
            _segments[_segments.index(name)] = None
            raise

    # (a private module of the standard library, replaced)
    shared_memory._posixshmem = types.SimpleNamespace(  # type: ignore[attr-defined]
        shm_open=shm_open, shm_unlink=real.shm_unlink
    )


def segments_mark() -> int:
    """Where the segments of a runtime about to start begin in the record (for
    :func:`release_segments`)."""
    return len(_segments)


def release_segments(mark: int = 0, end: int | None = None) -> int:
    """Unlink every segment this process created from ``mark`` to ``end`` (default: until now)
    that still exists; returns how many. Call it only when the runtime that used them has
    stopped (after its shared-memory manager's shutdown, or its kill): a segment of a runtime
    still running would lose its name. A runtime that outlives others (a resident graph)
    passes the ``end`` its start-up reached, so that it releases its own segments only."""
    from multiprocessing import shared_memory

    released = 0
    for i in range(mark, len(_segments) if end is None else end):
        name, _segments[i] = _segments[i], None
        if name is None:
            continue
        try:  # opened by name, it is known to the resource tracker, and unlinked through it
            segment = shared_memory.SharedMemory(name.lstrip("/"))
        except FileNotFoundError:
            continue  # unlinked by its manager, as a normal stop does
        except ValueError:  # empty: the signal came before its size was set
            with contextlib.suppress(FileNotFoundError):
                shared_memory._posixshmem.shm_unlink(name)  # type: ignore[attr-defined]
            released += 1
            continue
        segment.close()
        segment.unlink()
        released += 1
    return released


def _quiet_interrupted_finalizer(previous):
    """An unraisable-exception hook that drops one report and passes the others on: a Ctrl-C
    that lands inside ``multiprocessing.util.Finalize.__init__`` (Lava's stop makes them)
    leaves an object that was never registered, whose finaliser later fails with an
    AttributeError on ``_key`` ("Exception ignored in: <Finalize object, dead>"). Nothing was
    registered, so nothing is left undone."""

    def hook(report):
        if (
            isinstance(report.exc_value, AttributeError)
            and "_key" in str(report.exc_value)
            and type(report.object).__name__ == "Finalize"
        ):
            return
        previous(report)

    return hook


#: Ctrl-C and SIGTERM that arrived while a fork was under way (see :func:`_hold_signals`).
_held_signals: list[int] = []
_handlers_during_fork: dict = {}
_checking = 0  # how many checked_interrupts() blocks are open (they raise what was held)


def _hold_signals() -> None:
    """Before every fork: Ctrl-C and SIGTERM only get recorded until the fork is done. A
    KeyboardInterrupt raised inside the handlers that run around ``os.fork`` is swallowed, and
    raised inside ``logging``'s it leaves logging's module lock held, so that the next log call
    hangs for good. Our hooks are registered last, so they run before the others' *before* and
    after the others' *after*. :func:`checked_interrupts` raises what was recorded."""
    if not _main_thread():
        return
    for s in (signal.SIGINT, signal.SIGTERM):
        _handlers_during_fork[s] = signal.signal(s, _record)


def _record(signum, frame) -> None:
    _held_signals.append(signum)


def _release_signals() -> None:
    """After a fork, in the parent: the handlers again; a signal held meanwhile is sent again
    unless a :func:`checked_interrupts` block will raise it (a fork outside Lava's start-up)."""
    while _handlers_during_fork:
        s, handler = _handlers_during_fork.popitem()
        if handler is not None:
            signal.signal(s, handler)
    if _held_signals and not _checking:
        pending = list(dict.fromkeys(_held_signals))
        _held_signals.clear()  # first: the signal sent below raises at once
        for s in pending:
            os.kill(os.getpid(), s)


def _in_child() -> None:
    """In every process Lava forks: ignore Ctrl-C and SIGTERM sent to the whole process group
    (the main process stops the runtime, which ends its processes in order) and die with the
    main process, whatever kills it (SIGKILL included), so that no process of a run is ever
    orphaned; the shared memory is then released by multiprocessing's resource tracker."""
    _handlers_during_fork.clear()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL))
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: nothing to set
        pass


#: Ctrl-C and SIGTERM received within :func:`terminate_as_interrupt` (see
#: :func:`checked_interrupts`).
_received: list[int] = []


def _raise_interrupt(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does, so
    that one clean-up path (stop the runtime, remove temporary files) serves both. Both are
    remembered: one that something swallowed on the way (a bare ``except:`` in a library's
    import code) is raised again before a Lava runtime starts (:func:`checked_interrupts`).
    A Ctrl-C that the process inherited as ignored (a background job) stays ignored."""
    if not _main_thread():
        yield
        return
    signals = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signals.append(signal.SIGINT)
    _received.clear()
    previous = {s: signal.signal(s, _raise_interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _received.clear()


@contextlib.contextmanager
def no_interrupts():
    """Defer Ctrl-C and SIGTERM while the block runs (stopping the Lava runtime must not be
    interrupted half-way); a signal that arrived meanwhile is raised when the block ends."""
    if not _main_thread():
        yield
        return
    pending = []
    handlers = {
        s: signal.signal(s, lambda n, f: pending.append(n)) for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    if pending:
        raise KeyboardInterrupt


@contextlib.contextmanager
def checked_interrupts():
    """Ctrl-C and SIGTERM within the block raise KeyboardInterrupt as usual and are remembered:
    one held during a fork (:func:`_hold_signals`) or swallowed where Python cannot raise (a
    ``__del__``, a fork handler: reported as "Exception ignored" and carried on) is raised again
    when the block ends, and its report is not printed. Lava's start-up forks a process per Lava
    Process, so a signal sent during it lands in such a place often enough to matter.

    >>> with checked_interrupts():
    ...     pass
    """
    global _checking
    if not _main_thread():
        yield
        return
    if _received:  # raised before and swallowed on the way: no runtime starts for it
        _received.clear()
        raise KeyboardInterrupt
    seen = []
    _held_signals.clear()

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    def unraisable(report):
        if not isinstance(report.exc_value, KeyboardInterrupt):
            previous_hook(report)

    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _checking += 1
    try:
        yield
    finally:
        _checking -= 1
        for s, previous in handlers.items():
            signal.signal(s, previous)
        sys.unraisablehook = previous_hook
    held = bool(_held_signals)
    _held_signals.clear()
    if seen or held:
        raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


#: Seconds a runtime may take to stop before its processes are killed.
STOP_SECONDS = 10.0


def stop_runtime(process, before: set | None = None, segments: tuple | None = None) -> None:
    """Stop the runtime of ``process`` if it started, also after an interrupted start-up: Lava's
    ``stop`` joins every process it forked, and one forked before the runtime started is never
    told to end, so those are killed first; a stop that takes longer than ``STOP_SECONDS`` kills
    what is left, and so is any process the run forked (those alive before it, ``before``, are
    left alone) that is still there after the stop. The run's shared-memory segments that are
    still there after the stop are unlinked: ``segments`` is (start, end) of their record
    (:func:`~lava_retrieval.common.lava_runtime.segments_mark`; end None: until now)."""
    import threading

    runtime = getattr(process, "runtime", None)
    if runtime is None:
        return
    infrastructure = getattr(runtime, "_messaging_infrastructure", None)
    actors = list(getattr(infrastructure, "actors", ()))
    if not getattr(runtime, "_is_started", False):
        _kill(actors)
    watchdog = threading.Timer(STOP_SECONDS, _kill, args=(actors,))
    watchdog.daemon = True
    watchdog.start()
    try:
        process.stop()
    except Exception:  # noqa: BLE001 - already stopped or half started: nothing more to end
        pass
    finally:
        watchdog.cancel()
    # A shared-memory server that ``stop`` did not reach (an interrupted start-up) is asked to
    # shut down: it unlinks every segment it made (killed instead, one it was making when the
    # interrupt came would never be unlinked). One that does not answer in time, or that was
    # interrupted while starting and cannot be asked, is killed: it ignores signals, and left
    # alive, the interpreter would wait for it at exit.
    memory = getattr(infrastructure, "_smm", None)
    manager = getattr(memory, "_manager", None)
    if memory is not None and manager is not None:
        server = getattr(manager, "_process", None)
        watchdog = threading.Timer(STOP_SECONDS, _kill, args=([server],))
        watchdog.daemon = True
        watchdog.start()
        try:
            memory.shutdown()
        except Exception:  # noqa: BLE001 - never started, or already gone: killed below
            pass
        finally:
            watchdog.cancel()
        _kill([server])
    # A process forked by the run but not yet listed as one of its actors when the interrupt
    # came (between its start and Lava's bookkeeping) is known to multiprocessing only.
    if before is not None:
        _kill([child for child in multiprocessing.active_children() if child not in before])
    if segments is not None:
        release_segments(*segments)


def _kill(actors) -> None:
    for actor in actors:
        try:
            if actor is not None and actor.is_alive():
                actor.kill()
        except (ValueError, OSError, AssertionError):  # closed or not ours: nothing to kill
            pass
