"""What every step of the reproduction shares: the plan (how many images, which T), the
context a step runs in (data, output directory, converted networks), and the cache of step
results keyed by what they depend on (:mod:`.steps`): the plan, the checkpoints and the code
(:func:`source_hash`, so that a change of the code re-runs the steps instead of reporting them
up to date).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lava_retrieval import __version__
from lava_retrieval.common.atomic import write_text
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.conversion.methods import get
from lava_retrieval.evaluation import paper

DEFAULT_STEPS = (1, 2, 4, 8, 16, 32)
"""T of the default method's sweep (the exact-count schedule is exact up to T = 32)."""
SWEEP_STEPS = (4, 8, 16, 32, 64, 128)
COMMAND = "lava-retrieval reproduce"
FIG4_METRICS = (
    ("classification", "classification accuracy"),
    ("top1", "top-1 retrieval"),
    ("top3", "top-3 retrieval"),
    ("mAP", "mAP"),
)


class ReproduceError(LavaRetrievalError):
    """A checkpoint or result the reproduction needs is missing or unusable."""


@dataclass(frozen=True)
class Plan:
    """How much of the data each step uses (the full protocol by default).

    Attributes
    ----------
    name : str
        ``full`` or ``quick``.
    archs : tuple of str
        Table 1's architectures.
    seeds : tuple of int
        Fig 4's 32-64-10 networks.
    table1_steps : tuple of int
        T of Table 1's SNN column (the paper does not state it: 128 and 16).
    sweep_steps : tuple of int
        Fig 4's T.
    default_steps : tuple of int
        T of the default method's sweep.
    corpus, queries : int or None
        Corpus (training) and query (test) images; None: all 60,000 / 10,000.
    fig4_corpus : int or None
        Fig 4's corpus (the first training images; None: ``corpus``); the queries are
        ``queries``.
    calibration : int
        Calibration images of Algorithm 1 (its default, 2,000).
    runtime_steps : tuple of int
        T of the latency measurements (simulator and Lava graph).
    lava_images : int
        Images per Lava latency run (at least 2).
    repeats : int
        Repetitions of each latency measurement (medians are reported).
    large_batch : int
        The large batch of Table 3 on this machine.
    energy_images : int
        Test images whose operations are counted for the energy model.
    fig6_steps : int
        T of the retrieval grid.

    >>> Plan.quick().queries
    500
    """

    name: str = "full"
    archs: tuple[str, ...] = tuple(paper.TABLE1)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    table1_steps: tuple[int, ...] = (128, 16)
    sweep_steps: tuple[int, ...] = SWEEP_STEPS
    default_steps: tuple[int, ...] = DEFAULT_STEPS
    corpus: int | None = None
    queries: int | None = None
    fig4_corpus: int | None = None
    calibration: int = 2000
    runtime_steps: tuple[int, ...] = SWEEP_STEPS
    lava_images: int = 8
    repeats: int = 5
    large_batch: int = 1024
    energy_images: int = 1000
    fig6_steps: int = 16

    @classmethod
    def quick(cls) -> Plan:
        """Fewer images and repeats, every step (see the module docstring)."""
        return cls(
            name="quick",
            corpus=2000,
            queries=500,
            fig4_corpus=2000,
            calibration=500,
            runtime_steps=(4, 16, 128),
            lava_images=3,
            repeats=2,
            large_batch=256,
            energy_images=100,
        )

    def describe(self) -> str:
        """One line for the report."""
        corpus = "60,000" if self.corpus is None else f"{self.corpus:,}"
        queries = "10,000" if self.queries is None else f"{self.queries:,}"
        return (
            f"{self.name}: corpus {corpus} training images, {queries} test queries, "
            f"{self.calibration:,} calibration images, latency medians of {self.repeats} runs"
        )


@dataclass
class Context:
    """What the steps share: data, plan, directories, the networks converted so far."""

    out_dir: Path
    checkpoints: Path
    plan: Plan
    device: str = "cpu"
    progress: bool = True
    force: bool = False
    data_dir: str | None = None
    _data: object = None
    _networks: dict = field(default_factory=dict)

    @property
    def data(self):
        if self._data is None:
            from lava_retrieval.data.fashion_mnist import load_fashion_mnist

            self._data = load_fashion_mnist(self.data_dir)
        return self._data

    def corpus(self):
        images, labels = self.data.split("full_train")
        return images[: self.plan.corpus], labels[: self.plan.corpus]

    def queries(self):
        images, labels = self.data.split("test")
        return images[: self.plan.queries], labels[: self.plan.queries]

    def checkpoint_dir(self, arch: str, seed: int = 0) -> Path:
        name = f"{arch}-seed{seed}" if arch == "32-64-10" else arch
        return self.checkpoints / name

    def network(self, checkpoint, method: str = "paper"):
        """``checkpoint`` converted with ``method``'s settings and this plan's calibration size
        (cached for the run)."""
        from lava_retrieval.conversion.algorithm import convert_checkpoint

        key = (str(checkpoint.path), method)
        if key not in self._networks and get(method).converter != "algorithm1":
            self._networks[key] = get(method).network(self.data, checkpoint)  # no calibration
        if key not in self._networks:
            config = replace(get(method).conversion, calibration_size=self.plan.calibration)
            self._networks[key] = convert_checkpoint(checkpoint, self.data, config)
        return self._networks[key]


def load(path: Path):
    """A checkpoint, with a clear error naming what to do when it is missing."""
    from lava_retrieval.ann.checkpoint import load_checkpoint

    if not (path / "checkpoint.json").is_file():
        raise ReproduceError(
            f"checkpoint {path} is missing: run from the repository root (or pass "
            "--checkpoints), or train it with scripts/train_checkpoints.sh"
        )
    return load_checkpoint(path)


def machine() -> dict:
    """This machine, as the report states it."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


@functools.cache
def source_hash() -> str:
    """sha256 of the Python sources of ``lava_retrieval`` and ``procs`` (path and content of
    every module, in order): the code a step's numbers come from.

    >>> len(source_hash())
    16
    """
    digest = hashlib.sha256()
    for package in ("lava_retrieval", "procs"):
        spec = importlib.util.find_spec(package)
        roots = (spec.submodule_search_locations if spec else None) or ()
        for root in roots:
            for path in sorted(Path(root).rglob("*.py")):
                digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _key(*parts: object) -> str:
    payload = json.dumps([__version__, source_hash(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _sha(checkpoint) -> str:
    return str(checkpoint.meta.get("weights_sha256"))


def _cached(path: Path, key: str, force: bool) -> dict | None:
    """The result stored at ``path`` if it has ``key`` (and ``force`` is off)."""
    if force or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and stored.get("key") == key else None


def _save(path: Path, result: dict) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def _record(key: str, step: str, start: float, **fields) -> dict:
    return {
        "key": key,
        "code": source_hash(),
        "command": f"{COMMAND} --only {step}",
        "machine": machine(),
        "seconds": round(time.perf_counter() - start, 1),
        **fields,
    }
