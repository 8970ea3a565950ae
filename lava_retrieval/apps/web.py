"""A web page to search an index with one's own image (``lava-retrieval serve``), built on Flask.

The page takes an uploaded image (any format :mod:`lava_retrieval.data.images` reads) or a test
image of Fashion-MNIST and shows: the 28 x 28 input as the network sees it, the spiking
network's top-k and the ANN's top-k side by side (class and cosine score under each image), and
the spiking activity of the query (a raster of every layer's spikes over the time steps, drawn
by the browser from the spikes the answer carries).

JSON API: ``POST /api/search`` (multipart field ``image``, or form field ``test_id``; optional
``k``; ``label`` (repeatable) and ``path_prefix`` filters; for an approximate index ``nprobe``
or ``ef`` and ``exact=true``) answers ``{"input", "snn", "ann", "activity", ...}`` with images
as PNG data URLs and the activity as spike coordinates (:func:`activity`), or ``{"error":
...}`` with status 400 (not an image, a bad field, a knob that does not apply or is out of
range, a filter that matches nothing) or 413 (upload larger than the
limit). A query can also be an indexed image: form field ``id``. ``POST /api/search/batch``
takes JSON ``{"ids": [...], "k": ...}`` (and the knobs and filters) and answers each id's hits
from the stored embeddings (nothing is simulated; at most :data:`MAX_BATCH` ids);
``GET /api/items/<id>`` gives an item's path, label and image (404 if it is not indexed).
``view=hits`` on ``POST /api/search`` answers the hits alone (``{"k", "hits": [{"rank",
"id", "score", "path", "label", "label_name"}], "warning"}``: no images, no activity, no ANN
column), what a service's client wants; only the query's embedding waits for other requests,
the search itself runs beside theirs. A server started with ``allow_writes`` (``serve
--allow-writes``) also takes ``DELETE /api/items/<id>`` (remove) and ``PUT /api/items/<id>``
(multipart ``image``, optional ``path``, stored as ``upload:PATH`` unless it starts with a
scheme such as ``https:``: add or replace the item of that id), written to the
index directory crash-consistently under its writer lock and served from then on (403 on a
read-only server, 404 for an unknown id, 400 for an id or path that is none (checked before
anything is written: a ``fashion-mnist:`` path must name an image that exists, a name holds no
control character), 409 where the index cannot take it or its directory cannot be written,
also for removing its last image). Every number of a request is read by
:mod:`lava_retrieval.common.strict`.
``GET /api/info`` describes the index; ``GET /healthz`` answers ``ok``; ``GET /api/metrics``
counts requests by route and status class and summarises the latency (median, p99) of the last
searches (:class:`Metrics`).

The ANN column needs the ANN the index's network was converted from: the shipped checkpoint of
its method (:func:`lava_retrieval.conversion.methods.of_network`) or ``checkpoint=``; without one
the column says so.

Served by waitress (:func:`make_server`), a production WSGI server: requests are read whole by
its event loop before a worker thread sees them, so idle or slow clients hold no worker, and a
connection idle for ``channel_timeout`` seconds is closed. Every answer carries a content
security policy (the page's own inline script and style by hash, images as data URLs), no
sniffing, no framing and no referrer; no ``Server`` header names the software. An upload's
pixel count is checked from its header before it is decoded (``max_pixels``). Queries are
embedded one at a time (the simulator is shared); above :data:`CORPUS_IN_MEMORY` indexed
images the images shown are read from their paths when asked for, and the index (memory-
mapped shards, the compressed approximate index) is all the server holds.
"""

from __future__ import annotations

import base64
import io
import os
import time

import numpy as np

from lava_retrieval.backends import registry
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.strict import (
    MAX_ID,
    MAX_ITEM_ID,
    ParseError,
    integer,
    json_integer,
    loads,
)
from lava_retrieval.data.images import ImageError, decode_image
from lava_retrieval.search.approximate import MAX_KNOB
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import RetrievalIndexError
from lava_retrieval.search.sources import (
    AUGMENTED_PREFIX,
    FASHION_PREFIX,
    SCHEME,
    Images,
    check_item_path,
    read_query,
    read_source,
)
from lava_retrieval.snn.config import SimConfig

DEFAULT_MAX_UPLOAD = 8 * 2**20  # 8 MiB
DEFAULT_MAX_PIXELS = 12_000_000  # a 12-megapixel photo; decoding it takes a fraction of a second
DEFAULT_THREADS = 4
SERVE_BACKENDS = registry.names("serve")
MAX_BATCH = 1000  # queries of one /api/search/batch request
MAX_BATCH_BYTES = 1 << 20  # a /api/search/batch body (1,000 ids and the options fit in 30 KB)
MAX_BATCH_DEPTH = 3  # {"ids": [...], "labels": [...]}: nesting beyond is refused unparsed
CORPUS_IN_MEMORY = 100_000
"""Up to this many indexed images are kept in memory as the network saw them (and get the ANN
column); above, each image shown is read from its path when asked for."""
VIEWS = ("page", "hits")
LATENCY_WINDOW = 1000  # searches whose latency /api/metrics summarises
ROUTES = ("/", "/healthz", "/api/info", "/api/metrics", "/api/search", "/api/search/batch")
CHANNEL_TIMEOUT = 30  # seconds an idle connection is kept
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
    for layer, spikes in zip(network.layers, result.spikes, strict=True):
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
        self._served = (index, None, None)  # (index, its images, the ANN's index): one swap
        self.directory = directory
        self.data_dir = data_dir
        self.backend = backend
        self.embed_lock = threading.Lock()  # the simulator and the graph: one query at a time
        self.write_lock = threading.Lock()
        index.check_paths(data_dir)  # an item a past write damaged: named, with its repair
        self._served = (index, self._corpus_images(index), None)
        self.ann = None
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
        if checkpoint:
            self.checkpoint = checkpoint
            self.ann = checkpoint.model.eval()
            self.ann_note = f"ANN: {checkpoint.path.name}"
            from lava_retrieval.search.index import CosineIndex

            # The ANN's index of the same images: its ids are their positions.
            self._served = (index, self.corpus, CosineIndex().add(self._ann_embed(self.corpus)))
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
        """Stop the resident Lava graph, if any."""
        if self.graph is not None:
            self.graph.close()

    def _corpus_images(self, index: ImageIndex | None = None) -> np.ndarray | None:
        """The indexed images as the network saw them (read back from their paths), or None
        above :data:`CORPUS_IN_MEMORY` images (then each is read when shown)."""
        index = self.index if index is None else index
        if len(index) > CORPUS_IN_MEMORY:
            return None
        images = np.zeros((len(index), 28, 28), np.uint8)
        by_split: dict[str, list[tuple[int, int]]] = {}
        for position, path in enumerate(index.paths):
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

        with self.write_lock, exclusive(self.directory, what="writing this index"):
            latest = ImageIndex.load(self.directory)
            latest.check_network(self.index.network)
            change(latest)
            served = self.prepare(latest)  # everything that can fail, before the save
            latest.save(self.directory)
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
        result = {
            "warning": SILENT_WARNING if snn.silent else None,
            "input": png_data_url(image, 6),
            "snn": self._hits(snn, served),
            "ann": None,
            "ann_note": self.ann_note,
            "k": k,
        }
        if self.ann is not None and corpus is not None:
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


class Metrics:
    """Requests by route and status class, and the latency of searches (the last
    :data:`LATENCY_WINDOW`), since the application started; thread-safe."""

    def __init__(self) -> None:
        import collections
        import threading

        self.lock = threading.Lock()
        self.started = time.time()
        self.requests: collections.Counter = collections.Counter()
        self.statuses: collections.Counter = collections.Counter()
        self.latency: dict[str, collections.deque] = collections.defaultdict(
            lambda: collections.deque(maxlen=LATENCY_WINDOW)
        )

    def record(self, path: str, status: int, seconds: float) -> None:
        route = (
            path
            if path in ROUTES
            else "/api/items/<id>"
            if path.startswith("/api/items/")
            else "other"
        )
        with self.lock:
            self.requests[route] += 1
            self.statuses[f"{status // 100}xx"] += 1
            if route.startswith("/api/search") and status == 200:
                self.latency[route].append(seconds)

    def snapshot(self) -> dict:
        with self.lock:
            latency = {
                route: {
                    "count": len(times),
                    "median_ms": round(1000 * float(np.median(times)), 2),
                    "p99_ms": round(1000 * float(np.percentile(times, 99)), 2),
                }
                for route, times in self.latency.items()
                if times
            }
            return {
                "uptime_seconds": round(time.time() - self.started, 1),
                "requests": dict(self.requests),
                "statuses": dict(self.statuses),
                "latency": latency,
            }


def _inline_hash(tag: str) -> str:
    """The CSP source of the page's inline ``<tag>`` element, by its SHA-256."""
    import hashlib
    import re

    body = re.search(rf"<{tag}>(.*?)</{tag}>", PAGE, re.S).group(1)
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


def security_headers() -> dict[str, str]:
    """The headers every answer carries (see the module docstring)."""
    policy = (
        "default-src 'none'; "
        f"script-src {_inline_hash('script')}; style-src {_inline_hash('style')}; "
        "img-src data:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def create_app(
    service: SearchService,
    k: int = 5,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_writes: bool = False,
):
    """The Flask application of :class:`SearchService` (see the module docstring);
    ``allow_writes``: accept ``DELETE`` and ``PUT`` of items."""
    from flask import Flask, g, jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    app = Flask("lava_retrieval.apps.web")
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    headers = security_headers()
    metrics = Metrics()

    @app.before_request
    def started():
        g.started = time.perf_counter()

    @app.after_request
    def secure(response):
        response.headers.update(headers)
        if "started" in g:
            metrics.record(request.path, response.status_code, time.perf_counter() - g.started)
        return response

    @app.get("/api/metrics")
    def metrics_route():
        return jsonify({**metrics.snapshot(), "count": len(service.index)})

    def error(message: str, status: int):
        return jsonify({"error": message}), status

    def field(name: str, low: int, high: int, default: int | None = None) -> int | None:
        """The form field ``name`` as an integer in ``low..high`` (``default`` if absent or
        blank; a :class:`ParseError` if it is something else)."""
        text = request.form.get(name, "").strip()
        return default if not text else integer(text, f"a valid {name}", low, high)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return error(f"the upload is larger than the limit of {max_upload_bytes:,} bytes", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return error(exc.description or exc.name, exc.code or 500)

    @app.get("/")
    def page():
        return PAGE.replace("{{K}}", str(k)), 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/healthz")
    def health():
        return "ok"

    @app.get("/api/info")
    def info():
        config = service.index.config
        return jsonify(
            {
                "count": len(service.index),
                "k": k,
                "simulation": config.settings(),
                "backend": service.backend,
                "network": service.index.metadata["network"],
                "search": service.index.search_info,
                "ann": service.ann_note,
            }
        )

    @app.post("/api/search")
    def search():
        try:
            wanted = field("k", 1, MAX_ID, default=k)
            knobs = {name: field(name, 1, MAX_KNOB) for name in ("nprobe", "ef")}
            knobs = {name: value for name, value in knobs.items() if value is not None}
            number, test_id = field("id", 0, MAX_ID), field("test_id", 0, MAX_ID)
        except ParseError as exc:
            return error(str(exc), 400)
        view = request.form.get("view", "page").strip() or "page"
        if view not in VIEWS:
            return error(f"view must be one of {', '.join(VIEWS)}", 400)
        exact = request.form.get("exact", "").strip().lower()
        if exact not in ("", "0", "1", "true", "false"):
            return error("exact must be true or false", 400)
        knobs["exact"] = exact in ("1", "true")
        labels = [x.strip() for x in request.form.getlist("label") if x.strip()]
        if labels:
            knobs["labels"] = labels
        if request.form.get("path_prefix", "").strip():
            knobs["path_prefix"] = request.form["path_prefix"].strip()
        upload = request.files.get("image")
        try:
            if upload is not None and upload.filename:
                image = _read_upload(upload.read(), service.index.preprocessing.invert, max_pixels)
            elif number is not None:
                if view == "hits":  # its stored embedding answers: nothing is simulated
                    try:
                        return jsonify(service.hits_by_id(number, wanted, **knobs))
                    except RetrievalIndexError as exc:
                        return error(str(exc), 400)
                # An indexed image as the query: as the network saw it when it was indexed.
                image = service.item(number)[1]
            elif test_id is not None:
                image = read_query(
                    f"fashion-mnist:test:{test_id}",
                    service.index.preprocessing,
                    data_dir=service.data_dir,
                )
            else:
                return error("send an image file (field 'image'), a test_id or an id", 400)
        except (ImageError, LavaRetrievalError) as exc:
            return error(str(exc), 400)
        try:
            if view == "hits":
                return jsonify(service.hits(image, wanted, **knobs))
            with service.embed_lock:  # the page's answer simulates the query twice
                return jsonify(service.search(image, wanted, **knobs))
        except RetrievalIndexError as exc:  # knobs that do not apply or are out of range
            return error(str(exc), 400)

    @app.get("/api/items/<item_id>")
    def item(item_id: str):
        try:
            number = integer(item_id, "an item id")
        except ParseError as exc:
            return error(str(exc), 400)
        try:
            hit, image = service.item(number)
        except RetrievalIndexError as exc:
            return error(str(exc), 404)
        hit.pop("rank"), hit.pop("score")
        return jsonify({**hit, "image": png_data_url(image, 2)})

    def writable():
        if not allow_writes:
            return error("this server is read-only (serve --allow-writes accepts changes)", 403)
        return None

    @app.delete("/api/items/<item_id>")
    def remove_item(item_id: str):
        if (refused := writable()) is not None:
            return refused
        try:
            number = integer(item_id, "an item id")
        except ParseError as exc:
            return error(str(exc), 400)
        try:
            index = service.write(lambda latest: latest.remove([number], keep_one=True))
        except RetrievalIndexError as exc:
            return error(str(exc), 404 if "not in the index" in str(exc) else 409)
        except OSError as exc:  # a directory that cannot be written (a full disk is an error
            return error(f"the index cannot be written: {exc.strerror or exc}", 409)  # above)
        return jsonify({"removed": number, "count": len(index)})

    @app.put("/api/items/<item_id>")
    def upsert_item(item_id: str):
        if (refused := writable()) is not None:
            return refused
        upload = request.files.get("image")
        try:
            number = integer(item_id, "an item id", 0, MAX_ITEM_ID)
            if upload is None or not upload.filename:
                raise ParseError("send the item's image file (field 'image')")
            path = request.form.get("path", "").strip() or upload.filename
            if not SCHEME.match(path):  # a name of the client's, not a file of this machine
                path = f"upload:{path}"
            check_item_path(path, service.data_dir)  # before anything is written
        except LavaRetrievalError as exc:
            return error(str(exc), 400)
        try:
            image = _read_upload(upload.read(), service.index.preprocessing.invert, max_pixels)
            if service.index.index.labels_ is not None:
                raise RetrievalIndexError(
                    "this index has labels: its images are added with `index add`"
                )
            source = Images(image[None], [path], None, [])
            with service.embed_lock:
                embedding = service.index.embed(source.images)
            index = service.write(lambda latest: latest._append(source, embedding, [number]))
        except (ImageError, LavaRetrievalError) as exc:
            return error(str(exc), 400 if isinstance(exc, ImageError) else 409)
        except OSError as exc:  # a directory that cannot be written (nothing was changed)
            return error(f"the index cannot be written: {exc.strerror or exc}", 409)
        return jsonify({"id": number, "path": path, "count": len(index)})

    @app.post("/api/search/batch")
    def batch():
        """Queries by indexed id, answered from the stored embeddings: ``{"ids": [...], "k",
        "nprobe", "ef", "exact", "labels", "path_prefix"}`` -> ``{"results": [...]}``."""
        try:
            body = loads(request.get_data(), "the body", MAX_BATCH_BYTES, MAX_BATCH_DEPTH)
            if not isinstance(body, dict):
                raise ParseError("send a JSON object with ids")
            ids, wanted = body.get("ids"), json_integer(body.get("k", k), "k", 1)
            if not isinstance(ids, list) or not ids or len(ids) > MAX_BATCH:
                raise ParseError(f"ids must be a list of 1 to {MAX_BATCH:,} ids")
            ids = [json_integer(i, "every id") for i in ids]
            options = {
                name: json_integer(body[name], name, 1, MAX_KNOB)
                for name in ("nprobe", "ef")
                if body.get(name) is not None
            }
        except ParseError as exc:
            return error(str(exc), 400)
        for name, kind in (("exact", bool), ("path_prefix", str)):
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, kind):  # (JSON 1 is no boolean here)
                return error(f"{name} must be of type {kind.__name__}", 400)
            options[name] = value
        if body.get("labels") is not None:
            if not isinstance(body["labels"], list):
                return error("labels must be a list", 400)
            options["labels"] = body["labels"]
        try:
            results = service.index.search_by_id(ids, wanted, **options)
        except RetrievalIndexError as exc:
            return error(str(exc), 400)
        return jsonify(
            {
                "k": wanted,
                "results": [
                    {"id": i, "hits": [h.to_dict() for h in hits]}
                    for i, hits in zip(ids, results, strict=True)
                ],
            }
        )

    return app


def make_server(
    app,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = DEFAULT_THREADS,
    max_request_bytes: int = DEFAULT_MAX_UPLOAD,
):
    """A waitress server of ``app`` (not started): ``server.run()`` serves until interrupted,
    ``server.close()`` stops; ``server.effective_port`` is the port it listens on. What
    waitress answers itself (413 for a request over the limit, 400 for a malformed one) is
    JSON with the headers of every other answer (:func:`security_headers`)."""
    from waitress.server import create_server

    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        channel_timeout=CHANNEL_TIMEOUT,
        cleanup_interval=min(CHANNEL_TIMEOUT, 10),
        max_request_body_size=max_request_bytes + 2**16,  # the form around the upload
        ident="",  # no Server header naming the software
        clear_untrusted_proxy_headers=True,
    )
    listeners = getattr(server, "map", {}).values() if not hasattr(server, "channel") else ()
    for listener in [server, *listeners]:
        if hasattr(listener, "channel_class"):
            listener.channel_class = _secure_channel()
    return server


def _secure_channel():
    """waitress's channel class whose own error answers are JSON with the security headers."""
    import json

    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    headers = list(security_headers().items())

    class SecureErrorTask(ErrorTask):
        def execute(self):
            err = self.request.error
            limit = self.channel.adj.max_request_body_size
            message = (
                f"the request is larger than the limit of {limit:,} bytes"
                if err.code == 413
                else f"{err.reason}: {err.body}"
            )
            body = json.dumps({"error": message}).encode()
            self.status = f"{err.code} {err.reason}"
            self.response_headers.extend([("Content-Type", "application/json"), *headers])
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class SecureChannel(HTTPChannel):
        error_task_class = SecureErrorTask

    return SecureChannel


def _read_upload(blob: bytes, invert, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
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


def serve(
    index_dir: str | os.PathLike | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    k: int = 5,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threads: int = DEFAULT_THREADS,
    checkpoint=None,
    corpus: int = 10000,
    data_dir: str | None = None,
    backend: str = "sim",
    allow_writes: bool = False,
    log=print,
    method: str | None = None,
) -> None:
    """Load (or build) the index and serve the page until interrupted; ``backend`` embeds the
    queries (``lava``, ``lava-float``, ``loihi``: one resident Lava graph for the life of the
    server); ``method`` is the network of the index built without ``index_dir``."""
    if index_dir is not None and method is not None:
        raise LavaRetrievalError(
            "--method chooses the network of the index built without --index; an --index "
            "serves with its own network"
        )
    if index_dir is None:
        log(
            f"no --index: indexing the first {corpus:,} training images (method "
            f"{method or 'the default'}) ..."
        )
        index = default_index(corpus, data_dir=data_dir, method=method)
    else:
        index = ImageIndex.load(index_dir)
    if backend != "sim":
        log(f"starting the Lava graph ({backend}) ...")
    service = SearchService(index, checkpoint, data_dir, backend, directory=index_dir)
    try:
        app = create_app(
            service, k, max_upload_bytes, max_pixels=max_pixels, allow_writes=allow_writes
        )
        try:
            server = make_server(
                app, host=host, port=port, threads=threads, max_request_bytes=max_upload_bytes
            )
        except OSError as exc:
            raise LavaRetrievalError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
        log(
            f"serving {len(index):,} images on http://{host}:{server.effective_port}/ "
            f"({backend} backend; Ctrl-C stops)"
        )
        try:
            server.run()  # returns only when interrupted: waitress catches the KeyboardInterrupt
        finally:
            server.close()
    finally:
        service.close()
    raise KeyboardInterrupt  # so that the command ends as interrupted (exit 130), not 0


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lava-retrieval: search with a spiking network</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }
 h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 0.6em 0 0.3em; }
 form { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; padding: 0.8em;
        background: #f3f3f3; border-radius: 6px; }
 #error { color: #b00020; margin: 0.6em 0; white-space: pre-wrap; }
 #status { color: #555; }
 .columns { display: flex; gap: 2.5em; flex-wrap: wrap; }
 .grid { display: flex; gap: 0.6em; flex-wrap: wrap; }
 figure { margin: 0; text-align: center; font-size: 0.75em; }
 figure img { display: block; background: #000; image-rendering: pixelated; width: 84px; }
 #input img { width: 168px; image-rendering: pixelated; }
 #warning { color: #8a5a00; }
 #rasters { display: flex; gap: 0.8em; flex-wrap: wrap; }
 #rasters canvas { display: block; border: 1px solid #ccc; background: #fff; }
 .hidden { display: none; }
</style>
</head>
<body>
<h1>Image retrieval with spiking-network embeddings</h1>
<p id="info">loading…</p>
<form id="form">
 <label>Your image: <input type="file" id="file" name="image" accept="image/*"></label>
 <span>or</span>
 <label>test image # <input type="number" id="test_id" name="test_id" min="0" max="9999"
   style="width: 6em"></label>
 <button type="button" id="random">random test image</button>
 <label>k <input type="number" id="k" name="k" value="{{K}}" min="1" max="50"
   style="width: 4em"></label>
 <button type="submit" id="search">Search</button>
 <span id="status"></span>
</form>
<div id="error" role="alert"></div>
<div id="results" class="hidden">
 <div class="columns">
  <div id="input"><h2>As the network sees it (28 × 28)</h2><img alt="network input"></div>
  <div style="flex: 1 1 520px; min-width: 0">
   <h2>Spiking network: top-<span class="k"></span></h2><div id="snn" class="grid"></div>
   <h2>ANN: top-<span class="k"></span></h2><div id="ann" class="grid"></div>
   <p id="warning" role="status"></p>
  </div>
 </div>
 <div id="activity"><h2>Spiking activity of the query</h2>
  <p>Active neurons (by first spike) against the time step, one raster per layer.</p>
  <div id="rasters"></div></div>
</div>
<script>
const $ = (id) => document.getElementById(id);
fetch("api/info").then((r) => r.json()).then((info) => {
  const s = info.simulation;
  $("info").textContent = `${info.count.toLocaleString()} indexed images; T = ${s.time_steps}, `
    + `${s.timing} timing, ${s.readout} readout; ${info.ann}`;
});
$("random").onclick = () => { $("test_id").value = Math.floor(Math.random() * 10000); };
$("file").onchange = () => { if ($("file").files.length) $("test_id").value = ""; };
function tiles(target, hits) {
  target.replaceChildren();
  for (const h of hits) {
    const fig = document.createElement("figure");
    fig.className = "result";
    const img = document.createElement("img");
    img.src = h.image; img.alt = h.path;
    const caption = document.createElement("figcaption");
    const name = h.label_name || h.path.split("/").pop();
    caption.textContent = `${h.rank}. ${h.score.toFixed(3)} ${name}`;
    fig.append(img, caption);
    target.append(fig);
  }
}
function rasters(target, layers) {
  target.replaceChildren();
  for (const layer of layers) {
    const fig = document.createElement("figure");
    fig.className = "raster";
    const canvas = document.createElement("canvas");
    canvas.width = 170; canvas.height = 200;
    canvas.setAttribute("aria-label", `${layer.layer}: ${layer.title}`);
    const g = canvas.getContext("2d");
    const dx = canvas.width / layer.steps, dy = canvas.height / Math.max(layer.rows, 1);
    g.fillStyle = "#000";
    for (let i = 0; i < layer.row.length; i++) {
      g.fillRect(layer.step[i] * dx, layer.row[i] * dy, Math.max(dx - 0.5, 1), Math.max(dy, 1));
    }
    const caption = document.createElement("figcaption");
    caption.textContent = `${layer.layer}: ${layer.title} (${layer.steps} steps)`;
    fig.append(canvas, caption);
    target.append(fig);
  }
}
$("form").onsubmit = async (event) => {
  event.preventDefault();
  $("error").textContent = ""; $("status").textContent = "searching…";
  const body = new FormData();
  if ($("file").files.length) body.append("image", $("file").files[0]);
  else body.append("test_id", $("test_id").value);
  body.append("k", $("k").value);
  try {
    const response = await fetch("api/search", { method: "POST", body });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    $("input").querySelector("img").src = answer.input;
    tiles($("snn"), answer.snn);
    if (answer.ann) tiles($("ann"), answer.ann);
    else $("ann").textContent = answer.ann_note;
    document.querySelectorAll(".k").forEach((e) => { e.textContent = answer.k; });
    rasters($("rasters"), answer.activity);
    $("warning").textContent = answer.warning || "";
    $("results").classList.remove("hidden");
    $("status").textContent = "done";
  } catch (err) {
    $("error").textContent = err.message; $("status").textContent = "";
  }
};
</script>
</body>
</html>
"""
