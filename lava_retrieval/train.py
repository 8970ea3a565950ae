"""Training, evaluation and checkpoints of the ANNs (CPU, deterministic for a fixed seed).

A checkpoint is a directory:

``weights-E.npz`` (``weights.npz`` in the shipped checkpoints)
    The ``state_dict`` after epoch E as float32 arrays (no pickle).
``resume-E.pt``
    Optimiser and random-number-generator state after epoch E (tensors and plain containers,
    loaded with ``weights_only=True``: nothing in it can run code), so that ``train --resume``
    continues exactly where an interrupted run stopped.
``checkpoint.json``
    Format version, architecture spec, the full :class:`TrainConfig`, the command line that
    produced it, the names and SHA-256 of the weights and resume files it belongs to, and the
    per-epoch history (loss, train / validation / test accuracy, seconds).

Every file is written to a temporary name and renamed into place, and ``checkpoint.json`` is
written last: it names the epoch's files, so a kill at any moment leaves the previous epoch's
checkpoint whole (the files of an unfinished epoch are ignored and removed by the next save).

The learning rate is a pure function of the step (linear warm-up, then
cosine decay to zero) and each epoch's shuffle is seeded from ``(seed, epoch)``: together with the
restored RNG state, a resumed run gives the same weights as an uninterrupted one on the same
machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lava_retrieval.ann import ACTIVATIONS, ArchSpec, ConvNet
from lava_retrieval.atomic import atomic_path, check_output
from lava_retrieval.data import DEFAULT_VALIDATION_FRACTION, FashionMNIST
from lava_retrieval.errors import CheckpointError, LavaRetrievalError

FORMAT = "lava-retrieval-ann-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.npz"
META_FILE = "checkpoint.json"
RESUME_FILE = "resume.pt"
SHIPPED_ARCH = "32-64-10"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes
    ----------
    arch : str
        Architecture spec (see :mod:`lava_retrieval.ann`). Default ``"32-64-10"``.
    epochs : int
        Number of passes over the training split. Default 40.
    batch_size : int
        Mini-batch size. Default 128.
    learning_rate : float
        Peak AdamW learning rate, reached after ``warmup_epochs``. Default 3e-3.
    weight_decay : float
        AdamW decoupled weight decay. Default 1e-4.
    dropout : float
        Dropout before the dense layer. Default 0.3.
    warmup_epochs : float
        Linear warm-up length, then cosine decay to zero. Default 1.
    seed : int
        Seeds initialisation, shuffling and dropout. Default 0.
    validation_fraction : float
        Last fraction of the training set held out for validation. Default 0.1.
    train_limit : int or None
        Train on only the first ``train_limit`` training images (tests, quick looks).
    activation : str
        ``relu`` (default, the paper's) or ``qcfs`` (quantised for conversion, see
        :mod:`lava_retrieval.ann`).
    levels : int or None
        L of the QCFS activations; required with ``qcfs``, ``None`` with ``relu``.
    init_from : str or None
        Start from this checkpoint's weights (same architecture; e.g. a ReLU network to be
        fine-tuned with QCFS activations, whose thresholds then start at the 99.9th percentile
        of their inputs on 2,000 training images) instead of a random initialisation.

    >>> TrainConfig(epochs=2).epochs
    2
    """

    arch: str = SHIPPED_ARCH
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.3
    warmup_epochs: float = 1.0
    seed: int = 0
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    train_limit: int | None = None
    activation: str = "relu"
    levels: int | None = None
    init_from: str | None = None

    def __post_init__(self) -> None:
        ArchSpec.parse(self.arch)
        if self.activation not in ACTIVATIONS:
            raise LavaRetrievalError(
                f"invalid training configuration: activation={self.activation!r} "
                f"(one of {', '.join(ACTIVATIONS)})"
            )
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 10,
            "weight_decay": math.isfinite(self.weight_decay) and 0 <= self.weight_decay <= 10,
            "seed": isinstance(self.seed, int) and 0 <= self.seed < 2**63,
            "dropout": 0 <= self.dropout < 1,
            "warmup_epochs": math.isfinite(self.warmup_epochs)
            and 0 <= self.warmup_epochs <= self.epochs,
            "validation_fraction": 0 < self.validation_fraction < 1,
            "train_limit": self.train_limit is None or self.train_limit >= 1,
            "levels": (
                self.levels is None
                if self.activation == "relu"
                else isinstance(self.levels, int) and 1 <= self.levels <= 1024
            ),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise LavaRetrievalError(f"invalid training configuration: {values}")

    def model(self) -> ConvNet:
        """A freshly initialised network of this configuration."""
        return ConvNet(self.arch, self.dropout, self.activation, self.levels)

    def learning_rate_at(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based).

        >>> cfg = TrainConfig(epochs=2, warmup_epochs=1, learning_rate=1.0)
        >>> [round(cfg.learning_rate_at(s, 2), 3) for s in range(4)]
        [0.5, 1.0, 0.5, 0.0]
        """
        warmup = self.warmup_epochs * steps_per_epoch
        total = self.epochs * steps_per_epoch
        if step < warmup:
            return self.learning_rate * (step + 1) / warmup
        progress = (step + 1 - warmup) / max(total - warmup, 1)
        return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model in eval mode and its metadata.

    Attributes
    ----------
    model : ConvNet
    config : TrainConfig
    history : list of dict
        One record per finished epoch.
    meta : dict
        The whole ``checkpoint.json``.
    path : pathlib.Path
        The checkpoint directory.
    """

    model: ConvNet
    config: TrainConfig
    history: list[dict]
    meta: dict
    path: Path

    @property
    def final(self) -> dict:
        """The last epoch's record."""
        return self.history[-1] if self.history else {}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) images to float32 (N, 1, 28, 28) in [0, 1].

    >>> to_tensor(np.full((1, 28, 28), 255, np.uint8)).max().item()
    1.0
    """
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0).unsqueeze(1)


@torch.no_grad()
def accuracy(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000
) -> float:
    """Classification accuracy (fraction) of ``model`` in eval mode.

    >>> net = ConvNet("4-8-10")
    >>> 0.0 <= accuracy(net, np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8)) <= 1.0
    True
    """
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(to_tensor(images[start : start + batch_size]))
        target = torch.from_numpy(labels[start : start + batch_size].astype(np.int64))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    return correct / max(len(images), 1)


def evaluate(model: nn.Module, dataset: FashionMNIST, validation_fraction: float) -> dict:
    """Train / validation / test accuracy in percent."""
    out = {}
    for split in ("train", "validation", "test"):
        images, labels = dataset.split(split, validation_fraction)
        out[f"{split}_accuracy"] = round(100.0 * accuracy(model, images, labels), 4)
    return out


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def _save(out: Path, model: ConvNet, meta: dict, resume_state: dict, epoch: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    weights = buffer.getvalue()
    buffer = io.BytesIO()
    torch.save(resume_state, buffer)
    resume = buffer.getvalue()
    files = {"weights": f"weights-{epoch:04d}.npz", "resume": f"resume-{epoch:04d}.pt"}
    meta = {
        **meta,
        "files": files,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "resume_sha256": hashlib.sha256(resume).hexdigest(),
    }
    _atomic_write(out / files["weights"], lambda f: f.write(weights))
    _atomic_write(out / files["resume"], lambda f: f.write(resume))
    # The manifest goes last: it names the files it belongs to (the commit point).
    text = json.dumps(meta, indent=2) + "\n"
    _atomic_write(out / META_FILE, lambda f: f.write(text.encode()))
    for path in out.iterdir():  # earlier epochs' files and unfinished ones
        if path.name not in files.values() and re.fullmatch(
            r"\.?(weights|resume)(-\d{4})?\.(npz|pt)(\.[0-9a-f]{8}\.tmp\.(npz|pt))?", path.name
        ):
            path.unlink(missing_ok=True)


def checkpoint_files(meta: dict) -> dict[str, str]:
    """The weights and resume file names a ``checkpoint.json`` names (older ones: fixed names)."""
    files = meta.get("files") or {"weights": WEIGHTS_FILE, "resume": RESUME_FILE}
    if not (
        isinstance(files, dict)
        and all(isinstance(files.get(k), str) and re.fullmatch(r"[\w.-]+", files[k])
                for k in ("weights", "resume"))
    ):  # fmt: skip
        raise CheckpointError(f"{META_FILE}: bad file names {files!r}")
    return files


def shipped_checkpoint_path() -> Path:
    """Directory of the pretrained 32-64-10 checkpoint shipped with the package."""
    return Path(__file__).resolve().parent / "pretrained" / SHIPPED_ARCH


def load_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint:
    """Load a checkpoint directory (or its ``checkpoint.json``); default: the shipped model.

    >>> ckpt = load_checkpoint()
    >>> str(ckpt.model.spec), ckpt.model.training
    ('32-64-10', False)
    """
    path = Path(path) if path is not None else shipped_checkpoint_path()
    if path.is_file() and path.name == META_FILE:
        path = path.parent
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: not a checkpoint directory (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise CheckpointError(f"{meta_path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: not a checkpoint manifest")
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    try:
        config = TrainConfig(**meta["config"])
    except (KeyError, TypeError, LavaRetrievalError) as exc:
        raise CheckpointError(f"{meta_path}: bad training configuration ({exc})") from None
    weights_path = path / checkpoint_files(meta)["weights"]
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {weights_path.name} is missing") from None
    except OSError as exc:
        raise CheckpointError(f"{weights_path}: cannot be read ({exc.strerror or exc})") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights_path}: SHA-256 does not match {META_FILE}")
    model = config.model()
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            state = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{weights_path}: unreadable ({exc})") from None
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CheckpointError(f"{weights_path}: weights contain NaN or infinite values")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: does not fit {config.arch}: {exc}") from None
    model.eval()
    return Checkpoint(model, config, meta.get("history", []), meta, path)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )


@torch.no_grad()
def _initialise_from(model: ConvNet, source: Checkpoint, dataset, config: TrainConfig) -> None:
    """Copy ``source``'s weights into ``model`` (same architecture, any activation); each
    learned QCFS threshold starts at the 99.9th percentile of its input on training images."""
    from lava_retrieval.ann import QCFS

    if str(source.model.spec) != str(model.spec):
        raise CheckpointError(
            f"--init-from {source.path}: architecture {source.model.spec}, not {model.spec}"
        )
    synaptic = [m for m in model.layers if isinstance(m, (nn.Conv2d, nn.Linear))]
    source_synaptic = [m for m in source.model.layers if isinstance(m, (nn.Conv2d, nn.Linear))]
    for mine, theirs in zip(synaptic, source_synaptic, strict=True):
        mine.weight.copy_(theirs.weight)
        mine.bias.copy_(theirs.bias)
    images, _ = dataset.split("train", config.validation_fraction)
    x = to_tensor(images[:2000])
    model.eval()
    for layer in model.layers:
        if isinstance(layer, QCFS) and layer.threshold.requires_grad:
            flat = x.flatten()
            sample = flat[:: max(1, flat.numel() // 1_000_000)]  # quantile's size limit
            layer.threshold.fill_(max(float(torch.quantile(sample, 0.999)), 1e-3))
        x = layer(x)
    model.train()


def train(
    config: TrainConfig,
    dataset: FashionMNIST,
    out: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Checkpoint:
    """Train ``config.arch`` on the training split and write a checkpoint after every epoch.

    Parameters
    ----------
    config : TrainConfig
    dataset : FashionMNIST
    out : path
        Checkpoint directory. It must not hold a checkpoint unless ``resume`` is true.
    resume : bool
        Continue the checkpoint in ``out`` from its last finished epoch; its configuration
        must equal ``config``.
    progress : bool
        Show a progress bar per epoch (on stderr).
    command : list of str, optional
        Command line recorded in ``checkpoint.json`` (default: ``sys.argv``).
    log : callable, optional
        Receives one line per finished epoch.

    Returns
    -------
    Checkpoint

    >>> ckpt = train(TrainConfig("4-8-10", epochs=1, train_limit=256), load_fashion_mnist(),
    ...              "/tmp/run")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: exists and is not a directory")
    check_output(out / META_FILE)  # before the first epoch
    torch.use_deterministic_algorithms(True)
    history: list[dict] = []
    command = list(command if command is not None else sys.argv)
    if (out / META_FILE).exists():
        if not resume:
            raise CheckpointError(
                f"{out} already holds a checkpoint; pass --resume to continue it or choose "
                "another --out"
            )
        previous = load_checkpoint(out)
        if previous.config != config:
            raise CheckpointError(
                f"{out} was trained with {previous.config}, which differs from {config}"
            )
        resume_path = out / checkpoint_files(previous.meta)["resume"]
        if not resume_path.is_file():
            raise CheckpointError(f"{out}: {resume_path.name} is missing, cannot resume")
        blob = resume_path.read_bytes()
        expected = previous.meta.get("resume_sha256")
        if expected and hashlib.sha256(blob).hexdigest() != expected:
            raise CheckpointError(f"{resume_path}: SHA-256 does not match {META_FILE}")
        try:  # tensors and plain containers only: a crafted file cannot run code
            state = torch.load(io.BytesIO(blob), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one error
            raise CheckpointError(f"{resume_path}: cannot be read ({exc})") from None
        model, history = previous.model, previous.history
        optimizer = _optimizer(model, config)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        command = previous.meta.get("command", command)
    else:
        torch.manual_seed(config.seed)
        model = config.model()
        if config.init_from is not None:
            _initialise_from(model, load_checkpoint(config.init_from), dataset, config)
        optimizer = _optimizer(model, config)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "arch": config.arch,
        "config": dataclasses.asdict(config),
        "num_parameters": model.num_parameters,
        "command": command,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "data_directory": str(dataset.directory),
    }

    images, labels = dataset.split("train", config.validation_fraction)
    if config.train_limit is not None:
        images, labels = images[: config.train_limit], labels[: config.train_limit]
    x_all = to_tensor(images)
    y_all = torch.from_numpy(labels.astype(np.int64))
    steps_per_epoch = math.ceil(len(x_all) / config.batch_size)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(len(history), config.epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(
            len(x_all), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        )
        total_loss = 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not progress,
            leave=False,
            file=sys.stderr,
        )
        for step in bar:
            lr = config.learning_rate_at(epoch * steps_per_epoch + step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += float(loss) * len(idx)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{lr:.2e}")
        bar.close()
        record = {
            "epoch": epoch + 1,
            "train_loss": round(total_loss / len(x_all), 6),
            **evaluate(model, dataset, config.validation_fraction),
            "seconds": round(time.perf_counter() - start, 2),
        }
        history.append(record)
        _save(
            out,
            model,
            {**meta, "history": history},
            {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
            epoch + 1,
        )
        if log is not None:
            log(
                f"epoch {record['epoch']}/{config.epochs}: loss {record['train_loss']:.4f}, "
                f"train {record['train_accuracy']:.2f} %, validation "
                f"{record['validation_accuracy']:.2f} %, test {record['test_accuracy']:.2f} % "
                f"({record['seconds']:.0f} s)"
            )
    return load_checkpoint(out)
