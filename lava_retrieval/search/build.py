"""Building an index of a source in stages, in one process or on a Ray cluster.

The stages (what ``index build`` runs):

1. **list** the source (:func:`plan_source`): the files of a folder or list file, or the
   images of a Fashion-MNIST split, in order;
2. **read and prepare** them in chunks of :data:`CHUNK` (:meth:`SourcePlan.read`);
3. **embed** each chunk with the index's network and settings;
4. **write** the embeddings in shards as they come (:meth:`CosineIndex.spill`), so that memory
   holds one shard, not the catalogue;
5. **index**: the approximate index is trained once on a sample of the shards and filled shard
   by shard, its recall measured, and the manifest written last (:meth:`ImageIndex.save`).

Without Ray, stages 2 and 3 run here, one chunk after another. With Ray
(:func:`embedded_with_ray`), Ray Data runs them on a cluster: reading tasks, then a pool of
actors, each of which loads the network once, sets its numba threads to its CPUs and compiles
before its first chunk; the chunks come back to this process in order and stages 4 and 5 run
here, so the index directory needs no shared file system. The pool leaves one CPU of the
cluster to the reading tasks: a pool that takes every CPU starves them, and the build stalls.
Both give the same embeddings, bit for bit (the simulation is integer arithmetic, image by
image).

Sources: a folder of images (recursive), a list file, ``fashion-mnist:SPLIT``, or
``fashion-mnist:augmented:N``: N seeded variants of the 70,000 Fashion-MNIST images (training
then test images; :func:`lava_retrieval.data.augment.augment`, seed :data:`AUGMENT_SEED`), each
labelled with its source image's class: a catalogue of any size from real images.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.locking import exclusive
from lava_retrieval.data.images import (
    SIZE,
    ImageError,
)
from lava_retrieval.search import index_directory
from lava_retrieval.search.sources import (
    SourcePlan,
)

CHUNK = 2048
"""Images read and embedded at once (a Ray Data batch)."""
READ_CPUS = 0.5
"""CPUs a Ray reading task asks for."""
RAY_CONNECT_SECONDS = 5.0
"""How long a Ray address may take to answer before the build gives up on it."""


def ranges(count: int, chunk: int = CHUNK) -> list[tuple[int, int]]:
    """(start, stop) of each chunk of ``count`` items.

    >>> ranges(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    return [(s, min(s + chunk, count)) for s in range(0, count, chunk)]


def embedded_here(index, plan: SourcePlan, *, backend: str = "sim", chunk: int = CHUNK):
    """(images, embeddings) of each chunk of ``plan``, read and embedded in this process."""
    for start, stop in ranges(plan.count, chunk):
        images = plan.read(start, stop)
        embeddings = (
            index.embed(images.images, backend)
            if len(images.images)
            else np.zeros((0, index.dim), np.float32)
        )
        yield images, embeddings


@dataclass
class BuildReport:
    """What :func:`build_index` did: images indexed, files skipped, seconds per stage."""

    count: int
    bad: list[tuple[str, str]]
    embed_seconds: float
    index_seconds: float
    workers: str
    index: Any = None  # the index built (an ImageIndex)


def build_index(
    index,
    plan: SourcePlan | Callable[[], SourcePlan],
    directory: str | os.PathLike,
    *,
    backend: str = "sim",
    ray: str | None = None,
    chunk: int = CHUNK,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> BuildReport:
    """Run the stages (module docstring) into the new index directory ``directory``, holding
    its writer lock throughout; ``ray``: a Ray address (``"local"``: start a Ray instance on
    this machine; ``"auto"``: the cluster this machine belongs to), else one process. A build
    that fails or is interrupted removes what it wrote.

    ``directory`` is checked once: that an index can be written there, before anything is
    written, then that it holds none, under the lock. ``index`` and ``plan`` may each be a
    function that makes it, called after that, so that a refused directory costs no
    conversion and no reading of the source."""
    from tqdm.auto import tqdm

    directory = Path(directory)
    index_directory.check_writable(directory)  # before the lock's file is written beside it
    created = not directory.exists()
    with exclusive(directory, what="building this index", log=log):
        try:
            index_directory.check_free(directory)
            plan = plan() if callable(plan) else plan
            index = index() if callable(index) else index
            start = time.perf_counter()
            bad = list(plan.unreadable)
            if ray is None:
                batches = embedded_here(index, plan, backend=backend, chunk=chunk)
                workers = "this process"
            else:
                if backend != "sim":
                    raise LavaRetrievalError(
                        "a Ray build embeds with the simulator (--backend sim)"
                    )
                batches, workers = embedded_with_ray(index, plan, ray, chunk=chunk, log=log)
            with (
                contextlib.closing(batches),
                tqdm(total=plan.count, unit="img", desc="embedding", disable=not progress) as bar,
            ):
                for images, embeddings in batches:
                    if len(embeddings):
                        index.spill(images, embeddings, directory)
                    bad += images.bad
                    bar.update(len(images.paths) + len(images.bad))
            if not len(index):
                reasons = "; ".join(reason for _, reason in bad[:3])
                raise ImageError(f"{plan.source}: none of its files could be read ({reasons})")
            index.class_names = index.class_names or plan.class_names
            index.sources.append({"count": len(index), "skipped": len(bad)})
            embed_seconds = time.perf_counter() - start
            index.save(directory, progress=progress)  # checked new above, under this lock
        except BaseException:
            if not callable(index):
                index.discard(directory)  # the spilled shards: nothing is left
            if created:
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise
    return BuildReport(
        len(index), bad, embed_seconds, time.perf_counter() - start - embed_seconds, workers, index
    )


def _ray_module():
    # Ray's C++ side logs to stderr; what matters reaches Python as an exception.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    # Its core worker would install a SIGTERM handler of its own in this process (a stack
    # dump, then death by the signal): SIGTERM is ours, an interrupt like Ctrl-C.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise LavaRetrievalError(
            "--ray needs Ray Data: pip install 'ray[data]>=2.60,<2.61' (or the ray extra: "
            "pip install 'lava-retrieval[ray]')"
        ) from None
    return ray


def check_ray_address(address: str) -> None:
    """Refuse, quickly and in one line, an address with no Ray cluster listening."""
    if address in ("local", "auto"):
        return
    match = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:([0-9]{1,5})", address)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise LavaRetrievalError(
            f"--ray {address!r}: give HOST:PORT (the cluster's head, e.g. 10.0.0.5:6379), "
            "ray://HOST:PORT, 'auto' or nothing (a Ray instance on this machine)"
        )
    host, port = match.group(1), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=RAY_CONNECT_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LavaRetrievalError(
            f"cannot reach a Ray cluster at {address}: {reason}; is its head node running "
            "(`ray start --head`) and the port open?"
        ) from None


class RaySession:
    """What a local Ray instance started by this process needs to end cleanly: the processes
    that were this process's descendants before it started (those are left alone), so that
    :meth:`end` can shut Ray down and then end every other descendant. This process becomes
    a child subreaper (Linux), so that Ray's processes orphaned by a stop (its agents, workers
    still starting) are its descendants too, not init's."""

    def __init__(self) -> None:
        import psutil

        if sys.platform.startswith("linux"):
            import ctypes

            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        self.process = psutil.Process()
        self.before = {p.pid for p in self.process.children(recursive=True)}

    def end(self, ray) -> None:
        """Shut Ray down and end (SIGKILL) what of it is left, without being interrupted
        half-way (a signal meanwhile is raised when it is done)."""
        import psutil

        from lava_retrieval.common.lava_runtime import no_interrupts

        with no_interrupts():
            with contextlib.suppress(Exception):
                ray.shutdown()
            for _ in range(20):  # what a kill orphans is reparented here and seen next round
                left = [
                    p for p in self.process.children(recursive=True) if p.pid not in self.before
                ]
                if not left:
                    break
                for p in left:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                psutil.wait_procs(left, timeout=3)


@contextlib.contextmanager
def _our_sigterm(ray):
    """``ray.init`` replaces the SIGTERM handler by one that exits (``sys.exit(15)``, which
    no clean-up path expects): within the block it keeps the one it found, and installs it
    again after (which also replaces a handler installed in C)."""
    ours = signal.getsignal(signal.SIGTERM)
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    replace = getattr(utils, "set_sigterm_handler", None)
    if replace is not None:
        utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    except SystemExit as exc:  # an exit Ray asked for on SIGTERM all the same
        if exc.code == signal.SIGTERM:
            raise KeyboardInterrupt from None
        raise
    finally:
        if replace is not None:
            utils.set_sigterm_handler = replace
        if ours is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, ours)


def _connect(ray, address: str, log) -> RaySession | bool:
    """Connect to (or start) Ray; returns whether this call did (and should disconnect): a
    :class:`RaySession` for a Ray instance it started on this machine, True for a cluster it
    joined, False if Ray was connected already."""
    if ray.is_initialized():
        return False
    check_ray_address(address)
    import logging

    # Ray's own lines on stderr: warnings only (and from Ray Data, which announces that its
    # progress bars are off, only errors).
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    session = RaySession() if address == "local" else True
    try:
        with _our_sigterm(ray):
            if address == "local":
                from lava_retrieval.common.cores import threads_for

                ray.init(
                    address="local",  # (never a cluster RAY_ADDRESS names)
                    num_cpus=threads_for(None),
                    object_store_memory=1 << 30,
                    **options,
                )
            else:
                ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        _end(ray, session)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LavaRetrievalError(f"cannot join the Ray cluster at {address}: {text}") from None
    except BaseException:  # interrupted while Ray started: what it started so far ends
        _end(ray, session)
        raise
    if log:
        log(f"ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
    return session


def _end(ray, started: RaySession | bool) -> None:
    """Disconnect from Ray if :func:`_connect` connected (and end a local instance whole)."""
    if isinstance(started, RaySession):
        started.end(ray)
    elif started:
        from lava_retrieval.common.lava_runtime import no_interrupts

        with no_interrupts():
            ray.shutdown()


def _read_chunk(batch: dict, plan: SourcePlan) -> dict:
    """Ray Data stage 2 (a task): the items of one chunk, read and prepared; a file that
    could not be read is a row with its reason and no image."""
    images = plan.read(int(batch["start"][0]), int(batch["stop"][0]))
    n, bad = len(images.paths), len(images.bad)
    labels = np.full(n, -1) if images.labels is None else images.labels
    return {
        "images": np.concatenate([images.images, np.zeros((bad, SIZE, SIZE), np.uint8)]),
        "hashes": np.concatenate([images.content_hashes(), np.zeros(bad, np.uint64)]),
        "paths": np.array(images.paths + [p for p, _ in images.bad], dtype=object),
        "labels": np.concatenate([labels, np.full(bad, -1)]).astype(np.int64),
        "reasons": np.array([""] * n + [r for _, r in images.bad], dtype=object),
    }


def embedder(network, config, threads: int) -> type:
    """The class of Ray Data stage 3's actors for ``network`` and ``config`` (carried by the
    class itself, not as constructor arguments in Ray's object store, which a restarted
    actor could not get back)."""

    class Embedder(_Embedder):
        def __init__(self) -> None:
            super().__init__(network, config, threads)

    return Embedder


class _Embedder:
    """Ray Data stage 3: an actor that loads the network once, sets its numba threads to its
    CPUs, compiles, then embeds the chunks it is given."""

    def __init__(self, network, config, threads: int) -> None:
        import numba

        from lava_retrieval.embedding.files import embed

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        self.network, self.config, self.embed = network, config, embed
        self.embed(network, np.zeros((1, SIZE, SIZE), np.uint8), config, progress=False)

    def __call__(self, batch: dict) -> dict:
        keep = batch["reasons"] == ""
        dim = int(np.prod(self.network.embedding_shape))
        embeddings = np.zeros((len(keep), dim), np.float32)
        if keep.any():
            embeddings[keep] = self.embed(
                self.network, batch["images"][keep], self.config, progress=False
            )
        out = {k: v for k, v in batch.items() if k != "images"}
        out["embeddings"] = embeddings
        return out


def embedded_with_ray(
    index, plan: SourcePlan, address: str, *, chunk: int = CHUNK, log=None
) -> tuple[Iterator | _RayBatches, str]:
    """(the (images, embeddings) of each chunk of ``plan`` in order, read and embedded by Ray
    Data on the cluster at ``address``; a description of the workers)."""
    ray = _ray_module()
    started = _connect(ray, address, log)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = max(1, cpus - 1)  # one CPU is left to the reading tasks
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        chunks = ranges(plan.count, chunk)
        dataset = (
            ray.data.from_items(
                [{"start": s, "stop": e} for s, e in chunks], override_num_blocks=len(chunks)
            )
            # Reading tasks take half a CPU: not fused into the actors, several beside them.
            .map_batches(_read_chunk, fn_args=(plan,), batch_size=1, num_cpus=READ_CPUS)
            .map_batches(
                embedder(index.network, index.config, 1),
                batch_size=None,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=1,
            )
        )
    except BaseException:
        _end(ray, started)
        raise
    batches = _RayBatches(_collect(dataset), ray, started)
    return batches, f"{actors} Ray actor{'s' if actors > 1 else ''}"


class _RayBatches:
    """The chunks of a Ray build (an iterator); :meth:`close` ends Ray (whether or not the
    iteration started: a generator never started runs no ``finally``)."""

    def __init__(self, batches: Any, ray, started: RaySession | bool) -> None:
        self.batches, self.ray, self.started = batches, ray, started

    def __iter__(self) -> Iterator:
        return self.batches

    def close(self) -> None:
        try:
            self.batches.close()
        finally:
            started, self.started = self.started, False
            _end(self.ray, started)


def _collect(dataset) -> Iterator:
    """The chunks of a Ray dataset as (images, embeddings)."""
    from lava_retrieval.search.sources import Images

    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            keep = batch["reasons"] == ""
            bad = [
                (str(p), str(r))
                for p, r in zip(batch["paths"][~keep], batch["reasons"][~keep], strict=True)
            ]
            labels = batch["labels"][keep].astype(np.int64)
            images = Images(
                np.zeros((0, SIZE, SIZE), np.uint8),
                [str(p) for p in batch["paths"][keep]],
                None if len(labels) and labels.min() < 0 else labels,
                bad,
                hashes=batch["hashes"][keep].astype(np.uint64),
            )
            yield images, batch["embeddings"][keep]
    except Exception as exc:
        if isinstance(exc, LavaRetrievalError):
            raise
        raise LavaRetrievalError(f"the Ray build failed: {type(exc).__name__}: {exc}") from exc
