"""The checkpoint format of the ANNs: writing an epoch atomically, loading and verifying.

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
:func:`read_meta` reads a checkpoint's metadata without its weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lava_retrieval.ann.config import SHIPPED_ARCH, TrainConfig
from lava_retrieval.ann.model import ConvNet
from lava_retrieval.common.atomic import atomic_path
from lava_retrieval.common.errors import CheckpointError, LavaRetrievalError
from lava_retrieval.common.strict import ParseError, loads

FORMAT = "lava-retrieval-ann-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.npz"
META_FILE = "checkpoint.json"
RESUME_FILE = "resume.pt"
PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
"""The checkpoints shipped with the package."""


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


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], object]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def save_epoch(out: Path, model: ConvNet, meta: dict, resume_state: dict, epoch: int) -> None:
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
        and all(
            isinstance(files.get(k), str) and re.fullmatch(r"[\w.-]+", files[k])
            for k in ("weights", "resume")
        )
    ):
        raise CheckpointError(f"{META_FILE}: bad file names {files!r}")
    return files


def shipped_checkpoint_path() -> Path:
    """Directory of the pretrained 32-64-10 checkpoint shipped with the package."""
    return PRETRAINED / SHIPPED_ARCH


def read_meta(path: str | os.PathLike, missing_ok: bool = False) -> dict | None:
    """A checkpoint's ``checkpoint.json`` (directory or file), without loading its weights.

    ``None`` where there is none and ``missing_ok``; otherwise a :class:`CheckpointError`.

    >>> read_meta(shipped_checkpoint_path())["config"]["arch"]
    '32-64-10'
    """
    path = Path(path)
    if path.is_file() and path.name == META_FILE:
        path = path.parent
    meta_path = path / META_FILE
    if not meta_path.is_file():
        if missing_ok:
            return None
        raise CheckpointError(f"{path}: not a checkpoint directory (no {META_FILE})")
    try:
        meta = loads(meta_path.read_bytes(), str(meta_path), 1 << 26)
    except ParseError as exc:
        raise CheckpointError(str(exc)) from None
    except OSError as exc:
        raise CheckpointError(f"{meta_path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: not a checkpoint manifest")
    return meta


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
    meta = read_meta(path)
    if meta is None:  # (read_meta raises where there is none)
        raise CheckpointError(f"{meta_path}: missing")
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
