"""A web page to search an index with one's own image (``lava-retrieval serve``), built on Flask.

The page takes an uploaded image (any format :mod:`lava_retrieval.data.images` reads) or a test
image of Fashion-MNIST and shows: the 28 x 28 input as the network sees it, the spiking
network's top-k and the ANN's top-k side by side (class and cosine score under each image), and
the spiking activity of the query (a raster of every layer's spikes over the time steps, drawn
by the browser from the spikes the answer carries).

JSON API: ``POST /api/search`` (multipart field ``image``, or form field ``test_id``; optional
``k``; ``label`` (repeatable) and ``path_prefix`` filters; for an approximate index ``nprobe``
or ``ef`` and ``exact=true``) answers ``{"input", "snn", "ann", "activity", ...}`` with images
as PNG data URLs and the activity as spike coordinates
(:func:`lava_retrieval.apps.service.activity`), or ``{"error":
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
also for removing its last image). A removed item's row stays as a tombstone that no search
returns (:meth:`~lava_retrieval.search.image_index.ImageIndex.remove`). A server searching over
Ray actors (``serve --ray``, :mod:`lava_retrieval.search.sharded`) answers 503 while a group of
shards is restarting, and ``GET /api/info`` gives its actors, rows and recall under ``ray``.
Every number of a request is read by :mod:`lava_retrieval.common.strict`.
``GET /api/info`` describes the index; ``GET /api/openapi.json`` is this API as an OpenAPI 3
document (:mod:`lava_retrieval.apps.openapi`); ``GET /healthz`` answers ``ok``; ``GET /api/metrics``
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
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lava_retrieval.apps import fields, openapi
from lava_retrieval.apps.service import (
    DEFAULT_MAX_PIXELS,
    SILENT_WARNING,
    SearchService,
    default_index,
    png_data_url,
    read_upload,
)
from lava_retrieval.backends import registry
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.locking import LockedError
from lava_retrieval.common.strict import MAX_ITEM_ID, ParseError, integer, json_integer, loads
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import NotInIndexError, RetrievalIndexError
from lava_retrieval.search.sources import SCHEME, Images, check_item_path, read_query

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_UPLOAD",
    "DEFAULT_THREADS",
    "MAX_BATCH",
    "SERVE_BACKENDS",
    "SILENT_WARNING",
    "SearchService",
    "create_app",
    "default_index",
    "make_server",
    "png_data_url",
    "security_headers",
    "serve",
]

DEFAULT_MAX_UPLOAD = 8 * 2**20  # 8 MiB
DEFAULT_THREADS = 4
SERVE_BACKENDS = registry.names("serve")
MAX_BATCH = openapi.MAX_BATCH  # queries of one /api/search/batch request
MAX_BATCH_BYTES = 1 << 20  # a /api/search/batch body (1,000 ids and the options fit in 30 KB)
MAX_BATCH_DEPTH = 3  # {"ids": [...], "labels": [...]}: nesting beyond is refused unparsed
LATENCY_WINDOW = 1000  # searches whose latency /api/metrics summarises
ROUTES = (
    "/",
    "/healthz",
    "/api/info",
    "/api/metrics",
    "/api/openapi.json",
    "/api/search",
    "/api/search/batch",
)
CHANNEL_TIMEOUT = 30  # seconds an idle connection is kept


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


def page_html() -> str:
    """The search page (``page.html`` beside this module; ``{{K}}`` is the default k)."""
    return (Path(__file__).with_name("page.html")).read_text(encoding="utf-8")


def _inline_hash(tag: str) -> str:
    """The CSP source of the page's inline ``<tag>`` element, by its SHA-256 (read from the
    page file, so that an edit of the page cannot outdate the policy)."""
    import hashlib
    import re

    found = re.search(rf"<{tag}>(.*?)</{tag}>", page_html(), re.S)
    if found is None:
        raise LavaRetrievalError(f"the page has no inline <{tag}>")
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


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


class RequestError(LavaRetrievalError):
    """What a route answers with an error status: the status travels with the error."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _status(exc: Exception) -> int:
    """The status of an error: its own (:class:`RequestError`), else 400 (a bad image, field,
    knob or filter: :class:`~lava_retrieval.common.errors.LavaRetrievalError`)."""
    return getattr(exc, "status", 400)  # (503: a shard group restarting)


class Api:
    """The routes of :func:`create_app`: each reads its request (:mod:`.fields`), asks the
    :class:`~lava_retrieval.apps.service.SearchService`, and answers JSON; an error carries its
    status (:class:`RequestError`, or by its type)."""

    def __init__(self, service: SearchService, k: int, max_pixels: int, allow_writes: bool):
        self.service, self.k, self.max_pixels = service, k, max_pixels
        self.allow_writes = allow_writes

    def info(self) -> dict:
        index = self.service.index
        return {
            "count": len(index),
            "k": self.k,
            "simulation": index.config.settings(),
            "backend": self.service.backend,
            "network": index.metadata["network"],
            "search": index.search_info,
            "ann": self.service.ann_note,
            "ray": None if index.searcher is None else index.searcher.describe(),
        }

    def search(self, form, files) -> dict:
        """``POST /api/search``: an uploaded image, an indexed id or a test image."""
        given = fields.read(fields.SEARCH_OPTIONS, form, form=True)
        options = {"k": self.k, "exact": False, **given}
        query = fields.read(fields.QUERY_FIELDS, form, form=True)
        wanted, view = options.pop("k"), query.get("view", "page")
        upload, service = files.get("image"), self.service
        if upload is not None and upload.filename:
            image = read_upload(upload.read(), service.index.preprocessing.invert, self.max_pixels)
        elif "id" in query:
            if view == "hits":  # its stored embedding answers: nothing is simulated
                return service.hits_by_id(query["id"], wanted, **options)
            # An indexed image as the query: as the network saw it when it was indexed.
            image = service.item(query["id"])[1]
        elif "test_id" in query:
            text = f"fashion-mnist:test:{query['test_id']}"
            image = read_query(text, service.index.preprocessing, data_dir=service.data_dir)
        else:
            raise RequestError("send an image file (field 'image'), a test_id or an id", 400)
        if view == "hits":
            return service.hits(image, wanted, **options)
        with service.embed_lock:  # the page's answer simulates the query twice
            return service.search(image, wanted, **options)

    def item(self, item_id: str) -> dict:
        try:
            hit, image = self.service.item(integer(item_id, "an item id"))
        except RetrievalIndexError as exc:
            raise RequestError(str(exc), 404) from None
        hit.pop("rank"), hit.pop("score")
        return {**hit, "image": png_data_url(image, 2)}

    def _writable(self) -> None:
        if not self.allow_writes:
            raise RequestError(
                "this server is read-only (serve --allow-writes accepts changes)", 403
            )

    def remove(self, item_id: str) -> dict:
        """``DELETE /api/items/<id>``."""
        self._writable()
        number = integer(item_id, "an item id")
        index = self._write(lambda latest: latest.remove([number], keep_one=True))
        return {"removed": number, "count": len(index)}

    def upsert(self, item_id: str, form, files) -> dict:
        """``PUT /api/items/<id>``: the image under that id, added or replaced."""
        self._writable()
        upload = files.get("image")
        number = integer(item_id, "an item id", 0, MAX_ITEM_ID)
        if upload is None or not upload.filename:
            raise ParseError("send the item's image file (field 'image')")
        path = form.get("path", "").strip() or upload.filename
        if not SCHEME.match(path):  # a name of the client's, not a file of this machine
            path = f"upload:{path}"
        service = self.service
        check_item_path(path, service.data_dir)  # before anything is written
        image = read_upload(upload.read(), service.index.preprocessing.invert, self.max_pixels)
        if service.index.has_labels:
            raise RequestError("this index has labels: its images are added with `index add`", 409)
        source = Images(image[None], [path], None, [])
        with service.embed_lock:
            embedding = service.index.embed(source.images)
        index = self._write(lambda latest: latest.put(source, embedding, [number]))
        return {"id": number, "path": path, "count": len(index)}

    def _write(self, change) -> ImageIndex:
        """``change`` applied to the index on disk (:meth:`SearchService.write`): an id it
        does not hold is 404; anything else the index cannot take or write, or another writer
        holding it too long, 409."""
        try:
            return self.service.write(change)
        except NotInIndexError as exc:
            raise RequestError(str(exc), 404) from None
        except (RetrievalIndexError, LockedError) as exc:  # (LockedError: another writer)
            raise RequestError(str(exc), 409) from None
        except OSError as exc:  # a directory that cannot be written (nothing was changed)
            raise RequestError(f"the index cannot be written: {exc.strerror or exc}", 409) from None

    def batch(self, data: bytes) -> dict:
        """``POST /api/search/batch``: queries by indexed id, answered from the stored
        embeddings: ``{"ids": [...], "k", "nprobe", "ef", "exact", "labels", "path_prefix"}``
        -> ``{"results": [...]}``."""
        body = loads(data, "the body", MAX_BATCH_BYTES, MAX_BATCH_DEPTH)
        if not isinstance(body, dict):
            raise ParseError("send a JSON object with ids")
        options = {"k": self.k, **fields.read(fields.SEARCH_OPTIONS, body, form=False)}
        ids, wanted = body.get("ids"), options.pop("k")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_BATCH:
            raise ParseError(f"ids must be a list of 1 to {MAX_BATCH:,} ids")
        ids = [json_integer(i, "every id") for i in ids]
        results = self.service.index.search_by_id(ids, wanted, **options)
        return {
            "k": wanted,
            "results": [
                {"id": i, "hits": [h.to_dict() for h in hits]}
                for i, hits in zip(ids, results, strict=True)
            ],
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
    ``allow_writes``: accept ``DELETE`` and ``PUT`` of items. Routes are :class:`Api`'s."""
    from flask import Flask, g, jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    app = Flask("lava_retrieval.apps.web")
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    headers, metrics = security_headers(), Metrics()
    api = Api(service, k, max_pixels, allow_writes)
    page = page_html().replace("{{K}}", str(k))

    @app.before_request
    def started():
        g.started = time.perf_counter()

    @app.after_request
    def secure(response):
        response.headers.update(headers)
        if "started" in g:
            metrics.record(request.path, response.status_code, time.perf_counter() - g.started)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        message = f"the upload is larger than the limit of {max_upload_bytes:,} bytes"
        return jsonify({"error": message}), 413

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

    @app.errorhandler(LavaRetrievalError)
    def refused(exc):  # (ImageError, ParseError, RetrievalIndexError, RequestError, ...)
        return jsonify({"error": str(exc)}), _status(exc)

    routes: dict[tuple[str, str], Callable[..., Any]] = {
        ("GET", "/"): lambda: (page, 200, {"Content-Type": "text/html; charset=utf-8"}),
        ("GET", "/healthz"): lambda: "ok",
        ("GET", "/api/info"): lambda: jsonify(api.info()),
        ("GET", "/api/metrics"): lambda: jsonify(
            {**metrics.snapshot(), "count": len(service.index)}
        ),
        ("GET", "/api/openapi.json"): lambda: jsonify(openapi.document()),
        ("POST", "/api/search"): lambda: jsonify(api.search(request.form, request.files)),
        ("POST", "/api/search/batch"): lambda: jsonify(api.batch(request.get_data())),
        ("GET", "/api/items/<item_id>"): lambda item_id: jsonify(api.item(item_id)),
        ("DELETE", "/api/items/<item_id>"): lambda item_id: jsonify(api.remove(item_id)),
        ("PUT", "/api/items/<item_id>"): lambda item_id: jsonify(
            api.upsert(item_id, request.form, request.files)
        ),
    }
    for (method, rule), view in routes.items():
        app.add_url_rule(rule, f"{method} {rule}", view, methods=[method])
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
    ray: str | None = None,
    ray_actors: int | None = None,
) -> None:
    """Load (or build) the index and serve the page until interrupted; ``backend`` embeds the
    queries (``lava``, ``lava-float``, ``loihi``: one resident Lava graph for the life of the
    server); ``method`` is the network of the index built without ``index_dir``; ``ray``: a
    Ray address, the search sharded over ``ray_actors`` actors there
    (:mod:`lava_retrieval.search.sharded`)."""
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
    elif ray is not None:  # each group of shards builds its own approximate index
        index = ImageIndex.load(index_dir, approximate=False)
    else:
        index = ImageIndex.load(index_dir)
    if ray is not None:
        from lava_retrieval.search.sharded import RaySearcher

        if index_dir is None:
            raise LavaRetrievalError("--ray serves an index directory: give --index DIR")
        log(f"starting the search actors on Ray ({ray}) ...")
        searcher = RaySearcher(index, index_dir, ray, actors=ray_actors, log=log)
        n, shards = len(searcher.actors), sum(len(g) for g in searcher.groups)
        log(
            f"searching over {n} Ray actor{'s' * (n > 1)} ("
            + ", ".join(f"{rows:,}" for rows in searcher.rows)
            + " rows)"
            + (f"; at most one per shard: the index has {shards}" if n < (ray_actors or n) else "")
        )
    if backend != "sim":
        log(f"starting the Lava graph ({backend}) ...")
    try:
        service = SearchService(index, checkpoint, data_dir, backend, directory=index_dir)
    except BaseException:
        if index.searcher is not None:
            index.searcher.close()
        raise
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
