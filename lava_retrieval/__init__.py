"""lava-retrieval: content-based image retrieval with spiking-network embeddings on Lava.

The pipeline of Liu et al. (PLoS ONE 2022), one subpackage a stage: train a small CNN
(:mod:`~lava_retrieval.ann`), convert it with Algorithm 1 (:mod:`~lava_retrieval.conversion`,
:func:`lava_retrieval.convert`) into a spiking network (:mod:`~lava_retrieval.snn`), run it by
any backend (the simulator's :mod:`~lava_retrieval.engines` or the Lava process graph,
:mod:`~lava_retrieval.lava_graph`; :func:`lava_retrieval.embed`; its semantics are
:func:`lava_retrieval.simulate_reference`), take the state of the layer before the output as
image embeddings, and answer queries with cosine k-nearest-neighbour search
(:mod:`~lava_retrieval.search`, :class:`lava_retrieval.CosineIndex`). Below them:
:mod:`~lava_retrieval.data` and :mod:`~lava_retrieval.common`; above them
:mod:`~lava_retrieval.evaluation`, :mod:`~lava_retrieval.apps`,
:mod:`~lava_retrieval.reproduce` and :mod:`~lava_retrieval.cli`.

The common tasks are one call each (:mod:`lava_retrieval.apps.tasks`): :func:`build_index`
(an index of a folder of images, or of a Fashion-MNIST split), :func:`open_index` (an index
directory, to search by image file, array or indexed id), :func:`embed_images` (embeddings by a
method) and :func:`convert_checkpoint` (an ANN checkpoint into a spiking network). Heavy modules
(torch, Lava) are imported on first use of the names below.

>>> import lava_retrieval
>>> lava_retrieval.ConversionConfig().w_max
255
>>> sorted(lava_retrieval.METHODS)[:2]
['paper', 'qcfs']
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "convert": "lava_retrieval.conversion.algorithm",
    "ConversionConfig": "lava_retrieval.conversion.algorithm",
    "SpikingNetwork": "lava_retrieval.snn.network",
    "CosineIndex": "lava_retrieval.search.index",
    "load_fashion_mnist": "lava_retrieval.data.fashion_mnist",
    "load_checkpoint": "lava_retrieval.ann.checkpoint",
    "TrainConfig": "lava_retrieval.ann.config",
    "ConvNet": "lava_retrieval.ann.model",
    "export_netx": "lava_retrieval.exports.netx",
    "simulate_reference": "lava_retrieval.snn.reference",
    "NeuronParams": "lava_retrieval.snn.neuron",
    "embed": "lava_retrieval.embedding.files",
    "SimConfig": "lava_retrieval.snn.config",
    "resolve": "lava_retrieval.conversion.methods",
    "ImageIndex": "lava_retrieval.search.image_index",
    "build_index": "lava_retrieval.apps.tasks",
    "open_index": "lava_retrieval.apps.tasks",
    "embed_images": "lava_retrieval.apps.tasks",
    "convert_checkpoint": "lava_retrieval.apps.tasks",
    "METHODS": "lava_retrieval.conversion.methods",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lava_retrieval' has no attribute {name!r}")
