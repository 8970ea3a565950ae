"""Running an ANN on images: tensors, accuracy, and embeddings in chunks.

Every ANN embedding of the package (Table 2's ANN rows, the demo's and the web page's ANN
column) comes from :func:`embed_and_classify`, so they are computed one way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lava_retrieval.ann.model import ConvNet
from lava_retrieval.data.fashion_mnist import FashionMNIST


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


@torch.no_grad()
def embed_and_classify(
    model: ConvNet, images: np.ndarray, batch_size: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, embeddings) of ``images``, ``batch_size`` images at a time, in eval mode.

    The embedding is the flattened input of the output layer (the layer the spiking network is
    probed at); the logits are that layer applied to it.

    >>> logits, emb = embed_and_classify(ConvNet("4-8-10"), np.zeros((3, 28, 28), np.uint8))
    >>> logits.shape, emb.shape
    ((3, 10), (3, 128))
    """
    was_training = model.training
    model.eval()
    logits, embeddings = [], []
    for start in range(0, len(images), batch_size):
        embeddings.append(model.embed(to_tensor(images[start : start + batch_size])).numpy())
        logits.append(model.layers[-1](torch.from_numpy(embeddings[-1])).numpy())
    model.train(was_training)
    if not embeddings:
        width = int(np.prod(model.spec.embedding_shape))
        return np.zeros((0, model.layers[-1].out_features), np.float32), np.zeros(
            (0, width), np.float32
        )
    return np.concatenate(logits), np.concatenate(embeddings)


def embed(model: ConvNet, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """(N, D) float32 ANN embeddings of ``images`` (see :func:`embed_and_classify`).

    >>> embed(ConvNet("4-8-10"), np.zeros((2, 28, 28), np.uint8)).shape
    (2, 128)
    """
    return embed_and_classify(model, images, batch_size)[1]
