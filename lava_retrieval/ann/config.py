"""The hyper-parameters of one training run, as the record a checkpoint stores."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lava_retrieval.ann.model import ACTIVATIONS, ArchSpec, ConvNet
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.data.fashion_mnist import DEFAULT_VALIDATION_FRACTION

SHIPPED_ARCH = "32-64-10"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes
    ----------
    arch : str
        Architecture spec (see :mod:`lava_retrieval.ann.model`). Default ``"32-64-10"``.
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
        :mod:`lava_retrieval.ann.model`).
    levels : int or None
        L of the QCFS activations; required with ``qcfs``, ``None`` with ``relu``.
    input_levels : int or None
        Levels of the input image's quantiser with ``qcfs`` (default ``None``: ``levels``; 255
        keeps the 8-bit image, for a network converted with an analog input).
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
    input_levels: int | None = None
    sdnn: bool = False

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
            "sdnn": self.sdnn in (False, True)
            and (not self.sdnn or (self.activation == "qcfs" and self.input_levels == 255)),
            "input_levels": self.input_levels is None
            or (
                self.activation == "qcfs"
                and isinstance(self.input_levels, int)
                and 1 <= self.input_levels <= 1024
            ),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            if "sdnn" in bad:
                values += " (sdnn trains for the sigma-delta conversion: it needs --activation "
                values += "qcfs --input-levels 255)"
            raise LavaRetrievalError(f"invalid training configuration: {values}")

    def model(self) -> ConvNet:
        """A freshly initialised network of this configuration."""
        return ConvNet(
            self.arch, self.dropout, self.activation, self.levels, self.input_levels, self.sdnn
        )

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
