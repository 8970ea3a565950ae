"""What the web service serves: the index, the corpus images and the ANN, loaded once
(:class:`SearchService`), and the answers the routes give (hits, the page's two columns, the
query's spiking activity).
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import numpy as np

from lava_retrieval.backends import registry
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.data.images import ImageError, decode_image
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import RetrievalIndexError
from lava_retrieval.search.sources import (
    AUGMENTED_PREFIX,
    FASHION_PREFIX,
    SCHEME,
    read_query,
    read_source,
)
from lava_retrieval.snn.config import SimConfig

DEFAULT_MAX_PIXELS = 12_000_000  # a 12-megapixel photo; decoding it takes a fraction of a second
CORPUS_IN_MEMORY = 100_000
"""Up to this many indexed images are kept in memory as the network saw them (and get the ANN
column); above, each image shown is read from its path when asked for."""
SILENT_WARNING = (
    "the query's embedding is all zeros (its embedding layer received no input in the time "
    "steps): every score is 0 and the ranking says nothing; index with more time steps or the "
    "pipelined timing"
)


def png_data_url(image: np.ndarray, scale: int = 3) -> str:
    """A uint8 (H, W) image as a PNG data URL, enlarged ``scale`` times (nearest neighbour)."""
    from PIL import Image

    big = np.kron(np.asarray(image, np.uint8), np.ones((scale, scale), np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


RASTER_NEURONS = 400  # active neurons shown per layer


def activity(network, image: np.ndarray, time_steps: int, timing: str) -> list[dict]:
    """Every layer's spikes for one image, for the page to draw as rasters: per layer its name,
    a title, its spikes and neurons, the time steps, and the (row, step) of every spike of its
    first :data:`RASTER_NEURONS` active neurons, ordered by their first spike (row 0 first)."""
    from lava_retrieval.engines.sim import simulate

    result = simulate(
        network,
        image[None],
        SimConfig(time_steps, timing=timing, readout="membrane"),
        record_spikes=True,
    )
    layers = []
    for layer, spikes in zip(network.layers, result.spikes or [], strict=True):
        trains = spikes[:, 0].reshape(spikes.shape[0], -1)  # (T, neurons)
        active = np.flatnonzero(trains.any(0))
        first = trains[:, active].argmax(0)
        shown = active[np.argsort(first, kind="stable")][:RASTER_NEURONS]
        row, step = np.nonzero(trains[:, shown].T)
        count = int(trains.sum())
        analog = layer.kind == "input" and network.analog_input
        layers.append(
            {
                "layer": layer.name,
                "title": "analog: a current every step" if analog else f"{count:,} spikes",
                "spikes": count,
                "neurons": int(trains.shape[1]),
                "steps": int(trains.shape[0]),
                "rows": len(shown),
                "row": row.tolist(),
                "step": step.tolist(),
            }
        )
    return layers


class SearchService:
    """The index, the corpus images and the ANN, loaded once; what the routes call."""

    def __init__(
        self,
        index: ImageIndex,
        checkpoint=None,
        data_dir: str | None = None,
        backend: str = "sim",
        directory: str | os.PathLike | None = None,
    ) -> None:
        import threading

        registry.get(backend, "serve")
        # (index, its images, the ANN's index): swapped as one
        self._served: tuple[ImageIndex, np.ndarray | None, CosineIndex | None] = (index, None, None)
        self.directory = directory
        self.data_dir = data_dir
        self.backend = backend
        self.embed_lock = threading.Lock()  # the simulator and the graph: one query at a time
        self.write_lock = threading.Lock()
        index.check_paths(data_dir)  # an item a past write damaged: named, with its repair
        self._served = (index, self._corpus_images(index), None)
        self.ann: Any = None
        self.ann_note = "no ANN is known for this index's network (serve --checkpoint DIR)"
        if self.corpus is None:
            self.ann_note = (
                f"the ANN column is shown for indexes of up to {CORPUS_IN_MEMORY:,} images"
            )
            checkpoint = False
        if checkpoint is None:
            from lava_retrieval.conversion.methods import resolve

            known = resolve(network=index.network, need_ann=False)
            checkpoint = known.checkpoint() if known.checkpoint_path else None
        corpus = self.corpus
        if checkpoint and corpus is not None:
            self.checkpoint = checkpoint
            self.ann = checkpoint.model.eval()
            self.ann_note = f"ANN: {checkpoint.path.name}"
            from lava_retrieval.search.index import CosineIndex

            # The ANN's index of the same images: its ids are their positions.
            self._served = (index, corpus, CosineIndex().add(self._ann_embed(corpus)))
        # The Lava backends: one graph, compiled and started now, for every query.
        self.graph = index.resident_graph(backend) if backend != "sim" else None

    @property
    def index(self) -> ImageIndex:
        """The index served now (a request that reads more than one of :attr:`index`,
        :attr:`corpus`, :attr:`ann_index` takes them together from :attr:`served`)."""
        return self._served[0]

    @property
    def corpus(self) -> np.ndarray | None:
        return self._served[1]

    @property
    def ann_index(self):
        return self._served[2]

    @property
    def served(self) -> tuple:
        """(index, corpus, ann_index) as one version: a write swaps all three at once."""
        return self._served

    def close(self) -> None:
        """Stop the resident Lava graph and the Ray actors, if any."""
        if self.graph is not None:
            self.graph.close()
        if self.index.searcher is not None:
            self.index.searcher.close()

    def _corpus_images(self, index: ImageIndex | None = None) -> np.ndarray | None:
        """The indexed images as the network saw them (read back from their paths), or None
        above :data:`CORPUS_IN_MEMORY` images (then each is read when shown)."""
        index = self.index if index is None else index
        if index.rows > CORPUS_IN_MEMORY:
            return None
        images = np.zeros((index.rows, 28, 28), np.uint8)  # (a removed image's row: blank)
        by_split: dict[str, list[tuple[int, int]]] = {}
        for position in index.live_positions().tolist():
            path = index.paths[position]
            if path.startswith(FASHION_PREFIX) and not path.startswith(AUGMENTED_PREFIX):
                split, number = path[len(FASHION_PREFIX) :].rsplit(":", 1)
                by_split.setdefault(split, []).append((position, int(number)))
            else:
                images[position] = self._read_back(path, index)
        if by_split:
            from lava_retrieval.data.fashion_mnist import load_fashion_mnist

            data = load_fashion_mnist(self.data_dir)
            for split, pairs in by_split.items():
                split_images, _ = data.split(split)
                positions, numbers = zip(*pairs, strict=True)
                images[list(positions)] = split_images[list(numbers)]
        return images

    def image_at(self, position: int, served: tuple | None = None) -> np.ndarray:
        """The indexed image at ``position`` (of ``served``, default the version served now)
        as the network saw it (blank if its file is gone)."""
        index, corpus, _ = served or self._served
        if corpus is not None:
            return corpus[position]
        return self._read_back(index.paths[position], index)

    def item(self, item: int) -> tuple[dict, np.ndarray]:
        """The record and image of the indexed item of id ``item``, of one version."""
        served = self._served
        position = served[0].position(item)
        return served[0].hit(0, position, 0.0).to_dict(), self.image_at(position, served)

    def _read_back(self, path: str, index: ImageIndex) -> np.ndarray:
        """The image of an indexed path as the network saw it; blank for a moved or deleted
        file and for a name that is no file here (``upload:``, ``https:``)."""
        if SCHEME.match(path) and not path.startswith(FASHION_PREFIX):
            return np.zeros((28, 28), np.uint8)
        try:
            return read_query(path, index.preprocessing, data_dir=self.data_dir)
        except LavaRetrievalError:
            return np.zeros((28, 28), np.uint8)

    def hits(self, image: np.ndarray, k: int, **knobs) -> dict:
        """The service's answer for one prepared image: the hits (ids, scores, paths,
        labels), no images. Only the embedding is one query at a time; the searches of
        several requests run at once."""
        index = self.index  # (one index for the whole request, even if a write swaps it)
        k = max(1, min(int(k), len(index)))
        with self.embed_lock:
            embedding = self.graph.embed(image[None]) if self.graph else index.embed(image[None])
        return self._hits_answer(k, index.search_embeddings(embedding, k, **knobs)[0])

    def hits_by_id(self, item: int, k: int, **knobs) -> dict:
        """:meth:`hits` of the indexed image of id ``item`` (its stored embedding)."""
        index = self.index
        k = max(1, min(int(k), len(index)))
        return self._hits_answer(k, index.search_by_id([item], k, **knobs)[0])

    @staticmethod
    def _hits_answer(k: int, hits) -> dict:
        return {
            "k": k,
            "hits": [{**h.to_dict(), "score": round(h.score, 6)} for h in hits],
            "warning": SILENT_WARNING if hits.silent else None,
        }

    def write(self, change) -> ImageIndex:
        """Apply ``change`` (a function of an :class:`ImageIndex`) to the newest version of the
        served index directory and save it, then serve that version (one write at a time;
        searches go on meanwhile on the version before)."""
        if self.directory is None:
            raise RetrievalIndexError(
                "this server indexes in memory (no --index): there is nothing to write to"
            )
        from lava_retrieval.common.locking import exclusive
        from lava_retrieval.search.index_directory import forget_approximate

        searcher = self.index.searcher  # sharded: the groups of shards have their own
        with self.write_lock, exclusive(self.directory, what="writing this index"):
            latest = ImageIndex.load(self.directory, approximate=searcher is None)
            latest.check_network(self.index.network)
            change(latest)
            served = self.prepare(latest)  # everything that can fail, before the save
            latest.save(self.directory)
            if searcher is not None:  # the actors owning the changed rows are told
                forget_approximate(latest)
                latest.searcher = searcher
                searcher.refresh(latest)
            self.swap(served)
        return latest

    def prepare(self, index: ImageIndex) -> tuple:
        """What :meth:`swap` serves for ``index``: the index, its images and the ANN column's
        index (made before the index is saved: what fails here changes nothing)."""
        corpus = self._corpus_images(index)
        ann_index = self.ann_index
        if self.ann is not None and corpus is not None:
            from lava_retrieval.search.index import CosineIndex

            ann_index = CosineIndex().add(self._ann_embed(corpus))
        return index, corpus, ann_index

    def swap(self, served: tuple) -> None:
        """Serve what :meth:`prepare` made from now on."""
        self._served = served

    def _ann_embed(self, images: np.ndarray) -> np.ndarray:
        from lava_retrieval.ann.inference import embed

        if self.ann is None:
            raise LavaRetrievalError("no ANN is known for this index's network")
        return embed(self.ann, images, batch_size=2000)

    def _hits(self, hits, served: tuple) -> list[dict]:
        return [
            {
                **h.to_dict(),
                "score": round(h.score, 4),
                "image": png_data_url(self.image_at(served[0].position(h.id), served), 2),
            }
            for h in hits
        ]

    def search(self, image: np.ndarray, k: int, **knobs) -> dict:
        """The page's answer for one prepared image; ``knobs``: ``nprobe``, ``ef``, ``exact``,
        ``labels``, ``path_prefix`` of :meth:`ImageIndex.search` (the ANN column is filtered
        alike)."""
        served = self._served  # one version for the whole answer, even if a write swaps it
        index, corpus, ann_index = served
        k = max(1, min(int(k), len(index)))
        snn = index.search(image[None], k, graph=self.graph, **knobs)[0]
        result: dict[str, Any] = {
            "warning": SILENT_WARNING if snn.silent else None,
            "input": png_data_url(image, 6),
            "snn": self._hits(snn, served),
            "ann": None,
            "ann_note": self.ann_note,
            "k": k,
        }
        if self.ann is not None and corpus is not None and ann_index is not None:
            allowed = index.matching(knobs.get("labels"), knobs.get("path_prefix"))
            scores, ids = ann_index.search(self._ann_embed(image[None]), k, allowed)
            pairs = enumerate(zip(ids[0], scores[0], strict=True), 1)
            result["ann"] = self._hits(
                [index.hit(r, i, s) for r, (i, s) in pairs if i >= 0], served
            )
        config = index.config
        result["activity"] = activity(index.network, image, config.time_steps, config.timing)
        result["spikes"] = [
            {k: layer[k] for k in ("layer", "spikes", "neurons")} for layer in result["activity"]
        ]
        return result


def read_upload(blob: bytes, invert, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    if not blob:
        raise ImageError("the uploaded file is empty")
    return decode_image(io.BytesIO(blob), name="the upload", invert=invert, max_pixels=max_pixels)


def default_index(
    corpus: int = 10000,
    time_steps: int | None = None,
    data_dir: str | None = None,
    progress=True,
    method: str | None = None,
) -> ImageIndex:
    """An in-memory index of the first ``corpus`` training images with ``method`` (default: the
    default method)."""
    from lava_retrieval.conversion.methods import resolve
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist

    chosen = resolve(method=method, dataset=load_fashion_mnist(data_dir), time_steps=time_steps)
    index = ImageIndex(chosen.network, chosen.config)
    return index.add(
        read_source("fashion-mnist:train", data_dir=data_dir, limit=corpus), progress=progress
    )
