"""The service's HTTP API as an OpenAPI 3 document (``GET /api/openapi.json``, and the site's
HTTP reference).

The request fields come from their one declaration (:mod:`.fields`), so the document cannot
describe a field the service does not read; a test holds its paths and methods to the routes
of :func:`lava_retrieval.apps.web.create_app` and calls every documented route.

>>> doc = document()
>>> doc["openapi"], sorted(doc["paths"])[:3]
('3.0.3', ['/', '/api/info', '/api/items/{item_id}'])
>>> [p["name"] for p in doc["paths"]["/api/items/{item_id}"]["parameters"]]
['item_id']
"""

from __future__ import annotations

from typing import Any

from lava_retrieval.apps import fields

MAX_BATCH = 1000  # queries of one /api/search/batch request (the service's limit)

__all__ = ["OPENAPI_VERSION", "document", "operations"]

OPENAPI_VERSION = "3.0.3"

_ERROR = {"$ref": "#/components/schemas/Error"}
_STATUS = {
    400: "a bad request: not an image, a bad field, a knob that does not apply or is out of "
    "range, a filter that matches nothing",
    403: "this server is read-only (`serve --allow-writes` accepts changes)",
    404: "no indexed item has that id",
    409: "the index cannot take the change or its directory cannot be written (also: another "
    "writer holds it too long, removing its last image)",
    413: "the request is larger than the server's limit (`--max-upload-mb`; an image of more "
    "pixels than `--max-pixels` is a 400)",
    503: "a group of shards is restarting (`serve --ray`); ask again",
}


def _schema(field: fields.Field, *, form: bool) -> dict[str, Any]:
    """The JSON schema of one request field, with the limits :func:`fields.read` enforces."""
    if field.kind is int:
        return {"type": "integer", "minimum": field.low, "maximum": field.high}
    if field.kind is bool:
        return {"type": "boolean"}
    if field.kind is list:
        item: dict[str, Any] = {"type": "string"}
        if not form:  # a class by number or name
            item = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        return {"type": "array", "items": item}
    out: dict[str, Any] = {"type": "string"}
    if field.choices:
        out["enum"] = list(field.choices)
    return out


_DESCRIPTIONS = {
    "k": "how many hits (default: the server's `-k`)",
    "nprobe": "cells an IVF index visits (approximate indexes only)",
    "ef": "candidates an HNSW index keeps (approximate indexes only)",
    "exact": "search every row exactly even where an approximate index exists",
    "labels": "only images of these classes (a class number or name; in a form the field "
    "`label`, repeated)",
    "path_prefix": "only images whose stored path starts with this",
    "id": "an indexed image as the query",
    "test_id": "a Fashion-MNIST test image as the query",
    "view": "`page`: the page's answer (images, ANN column, activity); `hits`: the hits alone",
}


def _properties(declared: tuple[fields.Field, ...], *, form: bool) -> dict[str, Any]:
    out = {}
    for field in declared:
        name = field.form_name or field.name if form else field.name
        out[name] = {**_schema(field, form=form), "description": _DESCRIPTIONS[field.name]}
    return out


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _answers(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    out = {"200": ok}
    for status in errors:
        out[str(status)] = _json(_ERROR, _STATUS[status])
    return out


def _schemas() -> dict[str, Any]:
    hit = {
        "type": "object",
        "required": ["rank", "id", "score", "path", "label", "label_name"],
        "properties": {
            "rank": {"type": "integer", "minimum": 1},
            "id": {"type": "integer"},
            "score": {"type": "number", "description": "cosine similarity"},
            "path": {"type": "string"},
            "label": {"type": "integer", "nullable": True},
            "label_name": {"type": "string", "nullable": True},
        },
    }
    shown = {"allOf": [hit, {"type": "object", "properties": {"image": {"type": "string"}}}]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Hit": hit,
        "Hits": {
            "type": "object",
            "required": ["k", "hits", "warning"],
            "properties": {
                "k": {"type": "integer"},
                "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
                "warning": {"type": "string", "nullable": True},
            },
        },
        "Page": {
            "type": "object",
            "description": "the page's answer: images are PNG data URLs",
            "required": ["k", "input", "snn", "ann", "ann_note", "warning", "activity"],
            "properties": {
                "k": {"type": "integer"},
                "input": {"type": "string", "description": "the query as the network sees it"},
                "snn": {"type": "array", "items": shown},
                "ann": {"type": "array", "items": shown, "nullable": True},
                "ann_note": {"type": "string", "nullable": True},
                "warning": {"type": "string", "nullable": True},
                "activity": {"type": "array", "items": {"type": "object"}},
                "spikes": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def _search_paths() -> dict[str, Any]:
    form = {
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "an image file"},
            **_properties(fields.QUERY_FIELDS, form=True),
            **_properties(fields.SEARCH_OPTIONS, form=True),
        },
    }
    batch = {
        "type": "object",
        "required": ["ids"],
        "properties": {
            "ids": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 1,
                "maxItems": MAX_BATCH,
            },
            **_properties(fields.SEARCH_OPTIONS, form=False),
        },
    }
    answer = {"oneOf": [{"$ref": "#/components/schemas/Page"}, _ref("Hits")]}
    batch_answer = {
        "type": "object",
        "properties": {
            "k": {"type": "integer"},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}, "hits": _array("Hit")},
                },
            },
        },
    }
    return {
        "/api/search": {
            "post": {
                "summary": "search by an uploaded image, an indexed id or a test image",
                "requestBody": _body("multipart/form-data", form),
                "responses": _answers(_json(answer, "the hits"), 400, 413, 503),
            }
        },
        "/api/search/batch": {
            "post": {
                "summary": "many indexed ids at once, from their stored embeddings",
                "requestBody": _body("application/json", batch),
                "responses": _answers(_json(batch_answer, "each id's hits"), 400, 413, 503),
            }
        },
    }


def _body(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A required request body of one media type."""
    return {"required": True, "content": {kind: {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _item_path() -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "path": {"type": "string"},
            "label": {"type": "integer", "nullable": True},
            "label_name": {"type": "string", "nullable": True},
            "image": {"type": "string", "description": "a PNG data URL"},
        },
    }
    upload = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "path": {"type": "string", "description": "stored as `upload:PATH` without a scheme"},
        },
    }
    removed = {
        "type": "object",
        "required": ["removed", "count"],
        "properties": {"removed": {"type": "integer"}, "count": {"type": "integer"}},
    }
    stored = {
        "type": "object",
        "required": ["id", "path", "count"],
        "properties": {
            "id": {"type": "integer"},
            "path": {"type": "string"},
            "count": {"type": "integer"},
        },
    }
    return {
        "parameters": [
            {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}
        ],
        "get": {
            "summary": "an indexed item: its path, label and image",
            "responses": _answers(_json(item, "the item"), 400, 404),
        },
        "delete": {
            "summary": "remove an item (`serve --allow-writes`)",
            "responses": _answers(
                _json(removed, "removed; `count`: images left"), 400, 403, 404, 409
            ),
        },
        "put": {
            "summary": "add or replace the item of this id (`serve --allow-writes`)",
            "requestBody": _body("multipart/form-data", upload),
            "responses": _answers(_json(stored, "stored; `count`: images now"), 400, 403, 409, 413),
        },
    }


def _plain_paths() -> dict[str, Any]:
    text = {"description": "", "content": {}}
    return {
        "/": {
            "get": {
                "summary": "the search page",
                "responses": {"200": {**text, "description": "HTML", "content": {"text/html": {}}}},
            }
        },
        "/healthz": {
            "get": {
                "summary": "liveness",
                "responses": {"200": {**text, "description": "ok", "content": {"text/plain": {}}}},
            }
        },
        "/api/info": {
            "get": {
                "summary": "the index: count, k, simulation, backend, network, search, ann, ray",
                "responses": _answers(_json({"type": "object"}, "the index's description")),
            }
        },
        "/api/metrics": {
            "get": {
                "summary": "requests by route and status class, latency of recent searches",
                "responses": _answers(_json({"type": "object"}, "counts and latencies")),
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "this document",
                "responses": _answers(_json({"type": "object"}, "OpenAPI 3")),
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3 document of the service."""
    from lava_retrieval import __version__

    paths = {**_plain_paths(), **_search_paths(), "/api/items/{item_id}": _item_path()}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "lava-retrieval search service",
            "version": __version__,
            "description": "`lava-retrieval serve`: search an index of images by image or id. "
            'Every error is JSON `{"error": message}` with its status.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": _schemas()},
    }


def operations(doc: dict[str, Any] | None = None) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every operation the document describes, paths in Flask's spelling
    (``<item_id>``)."""
    doc = doc or document()
    out: set[tuple[str, str]] = set()
    for path, item in doc["paths"].items():
        flask = path.replace("{", "<").replace("}", ">")
        out.update((m.upper(), flask) for m in item if m in ("get", "post", "put", "delete"))
    return out
