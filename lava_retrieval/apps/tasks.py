"""The common tasks, one call each: what ``lava_retrieval`` offers at its top level beside
:func:`~lava_retrieval.embed`, :func:`~lava_retrieval.convert` and
:func:`~lava_retrieval.resolve`.

- :func:`build_index`: an index of a folder of images (or a list file, or a Fashion-MNIST
  split), in memory or written to an index directory, as ``lava-retrieval index build`` does;
- :func:`open_index`: an index directory, to search
  (:meth:`~lava_retrieval.search.image_index.ImageIndex.search_files` by image file,
  :meth:`~lava_retrieval.search.image_index.ImageIndex.search` by image array,
  :meth:`~lava_retrieval.search.image_index.ImageIndex.search_by_id` by indexed id) or change;
- :func:`embed_images`: embeddings of images by a method;
- :func:`convert_checkpoint`: an ANN checkpoint converted into a spiking network by a method.

Each takes a method by name (:data:`~lava_retrieval.conversion.methods.METHODS`; default
:data:`~lava_retrieval.conversion.methods.DEFAULT_METHOD`) and resolves it as the command line
does (:func:`~lava_retrieval.conversion.methods.resolve`). Errors are
:class:`~lava_retrieval.common.errors.LavaRetrievalError` with a message meant for a person.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.snn.network import SpikingNetwork

__all__ = ["build_index", "convert_checkpoint", "embed_images", "open_index"]

PathLike = str | os.PathLike


def _path(value, what: str) -> str:
    """``value`` as a path with ``~`` expanded (a Fashion-MNIST source as it is)."""
    from lava_retrieval.common.errors import LavaRetrievalError

    if not isinstance(value, str | os.PathLike):
        raise LavaRetrievalError(f"{what} must be a path, not {type(value).__name__}")
    return os.path.expanduser(os.fspath(value))


def _optional_path(value, what: str) -> str | None:
    return None if value is None else _path(value, what)


def _positive(value, what: str) -> int | None:
    from lava_retrieval.common.errors import LavaRetrievalError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise LavaRetrievalError(f"{what} must be a whole number of at least 1, not {value!r}")
    return int(value)


def _resolved(method, network, checkpoint, time_steps, data_dir, need_ann=False):
    """What runs (:func:`~lava_retrieval.conversion.methods.resolve`): a method's network
    converted from its shipped ANN, or a network file run by its own method (the method of the
    ANN it came from; of an unknown ANN: the default method's timing and readout, as ``index
    build`` does)."""
    from lava_retrieval.conversion.methods import resolve
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.snn.network import SpikingNetwork

    if network is not None and not isinstance(network, SpikingNetwork):
        network = _path(network, "network")
    return resolve(
        method=method,
        network=network,
        checkpoint=_optional_path(checkpoint, "checkpoint"),
        dataset=None
        if network is not None
        else load_fashion_mnist(_optional_path(data_dir, "data_dir")),
        time_steps=_positive(time_steps, "time_steps"),
        need_ann=need_ann,
    )


def build_index(
    source: PathLike,
    directory: PathLike | None = None,
    *,
    method: str | None = None,
    network: PathLike | SpikingNetwork | None = None,
    time_steps: int | None = None,
    index_type: str = "exact",
    backend: str = "sim",
    limit: int | None = None,
    data_dir: PathLike | None = None,
    progress: bool = False,
) -> ImageIndex:
    """An index of the images of ``source``.

    Parameters
    ----------
    source : str or path
        A folder of images (searched recursively), a text file listing image paths, or a
        Fashion-MNIST split (``fashion-mnist:train``, ``...:test``, ``...:augmented:N``).
    directory : str or path, optional
        Where to write the index (a new directory, written in shards as it is embedded, as
        ``lava-retrieval index build``); without it the index stays in memory
        (:meth:`~lava_retrieval.search.image_index.ImageIndex.save` writes it later).
    method, network, time_steps
        What embeds the images: a method's network converted from its shipped ANN, or a
        network file (then its own method). Paths may start with ``~``.
    index_type : str
        ``exact``, ``hnsw``, ``ivf``, ``ivf-pq`` or a faiss factory string (needs ``directory``
        unless ``exact``: the approximate part is built when the index is saved).
    backend : str
        ``sim`` (the simulator), ``lava``, ``loihi``...: the same embeddings.
    limit : int, optional
        Only the first images of the source.

    Returns
    -------
    ImageIndex

    >>> import os, tempfile
    >>> where = os.path.join(tempfile.mkdtemp(), "index")
    >>> index = build_index("fashion-mnist:train", where, limit=300)
    >>> len(index), sorted(os.listdir(where))[-2:]
    (300, ['network-...npz', 'paths-...json'])
    """
    from lava_retrieval.common.errors import LavaRetrievalError
    from lava_retrieval.data.images import Preprocessing
    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.search.sources import plan_source, read_source

    source = _path(source, "source")
    folder = _optional_path(directory, "directory")
    data = _optional_path(data_dir, "data_dir")
    limit = _positive(limit, "limit")
    if folder is None and index_type != "exact":
        raise LavaRetrievalError(
            f"an index of type {index_type!r} is built when it is written: give a directory"
        )

    def new_index() -> ImageIndex:
        chosen = _resolved(method, network, None, time_steps, data)
        return ImageIndex(chosen.network, chosen.config, Preprocessing(), index_type=index_type)

    if folder is None:
        index = new_index()
        return index.add(
            read_source(source, data_dir=data, limit=limit), backend=backend, progress=progress
        )
    from lava_retrieval.search.build import build_index as staged

    report = staged(
        new_index,
        lambda: plan_source(source, Preprocessing(), data_dir=data, limit=limit),
        folder,
        backend=backend,
        progress=progress,
    )
    return report.index


def open_index(directory: PathLike) -> ImageIndex:
    """The index written in ``directory`` (by :func:`build_index`, ``lava-retrieval index
    build`` or :meth:`~lava_retrieval.search.image_index.ImageIndex.save`), checked as it is
    read.

    >>> import os, tempfile
    >>> where = os.path.join(tempfile.mkdtemp(), "index")
    >>> _ = build_index("fashion-mnist:train", where, limit=200)
    >>> index = open_index(where)
    >>> [h.label_name for h in index.search_files(["fashion-mnist:test:0"], k=2)[0]]
    ['Ankle boot', 'Ankle boot']
    >>> [h.id for h in index.search_by_id([7], k=1)[0]]  # an indexed image as the query
    [7]
    """
    from lava_retrieval.search.image_index import ImageIndex

    return ImageIndex.load(_path(directory, "directory"))


def embed_images(
    images: np.ndarray,
    method: str | None = None,
    *,
    network: PathLike | SpikingNetwork | None = None,
    time_steps: int | None = None,
    backend: str = "sim",
    data_dir: PathLike | None = None,
    progress: bool = False,
) -> np.ndarray:
    """(N, D) float32 embeddings of ``images`` ((N, 28, 28) uint8, or floats in [0, 1]) by
    ``method`` (or ``network``) at its T, on ``backend``; the embeddings an index of the same
    method holds.

    >>> from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    >>> images = load_fashion_mnist().test_images[:3]
    >>> vectors = embed_images(images, "qcfs8-sdnn")  # one step a layer: the fastest
    >>> vectors.shape, vectors.dtype.name, bool((vectors >= 0).all())
    ((3, 1024), 'float32', True)
    """
    from lava_retrieval.embedding.files import embed

    chosen = _resolved(method, network, None, time_steps, data_dir)
    return embed(chosen.network, images, chosen.config, backend=backend, progress=progress)


def convert_checkpoint(
    checkpoint: PathLike | None = None,
    *,
    method: str | None = None,
    out: PathLike | None = None,
    data_dir: PathLike | None = None,
) -> SpikingNetwork:
    """The spiking network of an ANN checkpoint (a directory written by ``lava-retrieval
    train``; default: the method's shipped ANN), converted with ``method``'s settings (Algorithm
    1, or the sigma-delta conversion of ``qcfs8-sdnn``); ``out``: also written there, a network
    file every command takes (``--network``).

    >>> net = convert_checkpoint(method="qcfs8-sdnn")  # its shipped ANN, for sigma-delta neurons
    >>> [layer.name for layer in net.layers]
    ['input', 'conv1', 'pool1', 'conv2', 'pool2', 'dense1']
    >>> [layer.threshold for layer in net.layers]  # powers of two: Loihi 2's state exponents
    [1, 1024, 256, 256, 256, 128]
    """
    from lava_retrieval.common.atomic import check_outputs

    target = _optional_path(out, "out")
    check_outputs([("out", target, False)])  # before the conversion: a path it cannot write
    chosen = _resolved(method, None, checkpoint, None, data_dir, True)
    if target is not None:
        chosen.network.save(target)
    return chosen.network
