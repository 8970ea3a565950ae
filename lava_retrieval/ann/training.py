"""Training of the ANNs (CPU, deterministic for a fixed seed), one checkpoint per epoch.

The learning rate is a pure function of the step (linear warm-up, then cosine decay to zero) and
each epoch's shuffle is seeded from ``(seed, epoch)``: together with the restored RNG state, a
resumed run gives the same weights as an uninterrupted one on the same machine. The checkpoint
format is :mod:`lava_retrieval.ann.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lava_retrieval.ann.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    Checkpoint,
    checkpoint_files,
    load_checkpoint,
    save_epoch,
)
from lava_retrieval.ann.config import TrainConfig
from lava_retrieval.ann.inference import evaluate, to_tensor
from lava_retrieval.ann.model import ConvNet
from lava_retrieval.common.atomic import check_output
from lava_retrieval.common.errors import CheckpointError
from lava_retrieval.common.locking import exclusive
from lava_retrieval.data.fashion_mnist import FashionMNIST


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )


@torch.no_grad()
def _initialise_from(model: ConvNet, source: Checkpoint, dataset, config: TrainConfig) -> None:
    """Copy ``source``'s weights into ``model`` (same architecture, any activation); each
    learned QCFS threshold starts at the source's (a QCFS source of the same levels), else at
    the 99.9th percentile of its input on training images."""
    from lava_retrieval.ann.model import QCFS

    if str(source.model.spec) != str(model.spec):
        raise CheckpointError(
            f"--init-from {source.path}: architecture {source.model.spec}, not {model.spec}"
        )
    synaptic = [m for m in model.layers if isinstance(m, (nn.Conv2d, nn.Linear))]
    source_synaptic = [m for m in source.model.layers if isinstance(m, (nn.Conv2d, nn.Linear))]
    for mine, theirs in zip(synaptic, source_synaptic, strict=True):
        mine.weight.copy_(theirs.weight)
        if mine.bias is not None and theirs.bias is not None:
            mine.bias.copy_(theirs.bias)
    ours = [m for m in model.layers if isinstance(m, QCFS)]
    source_qcfs = [m for m in source.model.layers if isinstance(m, QCFS)]
    same = len(ours) == len(source_qcfs)
    if same and all(a.levels == b.levels for a, b in zip(ours, source_qcfs, strict=True)):
        for own, their in zip(ours, source_qcfs, strict=True):
            own.threshold.copy_(their.threshold)
        return
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
    *,
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

    >>> import tempfile
    >>> config = TrainConfig("4-8-10", epochs=1, train_limit=256)
    >>> ckpt = train(config, load_fashion_mnist(), tempfile.mkdtemp(), progress=False)
    >>> len(ckpt.history), str(ckpt.model.spec)
    (1, '4-8-10')
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: exists and is not a directory")
    check_output(out / META_FILE)  # before the first epoch
    # One run at a time writes a checkpoint directory: a second fails at once.
    with exclusive(out, wait=0, what="training into this checkpoint directory"):
        return _train(config, dataset, out, resume, progress, command, log)


def _resumed(out: Path, config, command: list):
    """The model, history, optimizer and command of the run in ``out``, to continue it (its
    resume state checked against the checkpoint's hash, read without running code)."""
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
    try:  # a file of the right kind with the wrong content is one error too
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(
            f"{resume_path}: not a resume state of this run ({type(exc).__name__}: {exc})"
        ) from None
    command = previous.meta.get("command", command)
    return model, history, optimizer, command


def _train(config, dataset, out: Path, resume, progress, command, log) -> Checkpoint:
    from tqdm.auto import tqdm

    torch.use_deterministic_algorithms(True)
    history: list[dict] = []
    command = list(command if command is not None else sys.argv)
    if (out / META_FILE).exists():
        if not resume:
            raise CheckpointError(
                f"{out} already holds a checkpoint; pass --resume to continue it or choose "
                "another --out"
            )
        model, history, optimizer, command = _resumed(out, config, command)
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
        save_epoch(
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
