"""The OpenAPI document of the service is the service: its operations are the app's routes,
every documented operation answers with a documented status, and the answers have the
documented shape."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lava_retrieval.apps.openapi import document, operations
from lava_retrieval.apps.web import create_app


@pytest.fixture(scope="module")
def app(web_service):
    return create_app(web_service, k=3)


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            out.update((m, rule.rule) for m in rule.methods - {"HEAD", "OPTIONS"})
    return out


def test_the_documented_operations_are_the_routes(app):
    assert operations() == _routes(app)


def test_the_service_serves_the_document(app):
    assert app.test_client().get("/api/openapi.json").json == document()


def _resolve(schema: dict, doc: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def conforms(value, schema: dict, doc: dict) -> bool:
    """A small check of a JSON value against the document's schemas (types, required keys,
    properties, items, ``oneOf``/``allOf``, ``nullable``, ``enum``)."""
    schema = _resolve(schema, doc)
    if value is None:
        return bool(schema.get("nullable"))
    if "oneOf" in schema:
        return sum(conforms(value, s, doc) for s in schema["oneOf"]) >= 1
    if "allOf" in schema:
        return all(conforms(value, s, doc) for s in schema["allOf"])
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if kind and not checks[kind](value):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if kind == "object":
        if not set(schema.get("required", ())) <= set(value):
            return False
        props = schema.get("properties", {})
        return all(conforms(value[k], props[k], doc) for k in value if k in props)
    if kind == "array":
        return all(conforms(v, schema.get("items", {}), doc) for v in value)
    return True


def _photo(fashion) -> tuple[io.BytesIO, str]:
    buffer = io.BytesIO()
    Image.fromarray(255 - fashion.test_images[0]).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer, "boot.png"


def test_every_operation_answers_as_documented(app, fashion):
    """Each documented operation, called with a good and a bad request: the status is one it
    documents, and a JSON answer has the documented shape."""
    doc, client = document(), app.test_client()
    calls = [
        ("GET", "/", {}),
        ("GET", "/healthz", {}),
        ("GET", "/api/info", {}),
        ("GET", "/api/metrics", {}),
        ("GET", "/api/openapi.json", {}),
        ("POST", "/api/search", {"data": {"test_id": "3"}}),
        ("POST", "/api/search", {"data": {"test_id": "3", "view": "hits", "k": "2"}}),
        ("POST", "/api/search", {"data": {"image": _photo(fashion), "view": "hits"}}),
        ("POST", "/api/search", {"data": {"test_id": "3", "k": "0"}}),
        ("POST", "/api/search", {"data": {}}),
        ("POST", "/api/search/batch", {"json": {"ids": [0, 1], "k": 2}}),
        ("POST", "/api/search/batch", {"json": {"ids": []}}),
        ("GET", "/api/items/{item_id}", {"id": "0"}),
        ("GET", "/api/items/{item_id}", {"id": "999999"}),
        ("DELETE", "/api/items/{item_id}", {"id": "0"}),
        ("PUT", "/api/items/{item_id}", {"id": "0", "data": {"image": _photo(fashion)}}),
    ]
    seen = set()
    for method, path, options in calls:
        url = path.replace("{item_id}", options.pop("id", ""))
        answer = client.open(url, method=method, **options)
        documented = doc["paths"][path][method.lower()]["responses"]
        assert str(answer.status_code) in documented, (method, url, answer.status_code)
        content = documented[str(answer.status_code)].get("content", {})
        if "application/json" in content:
            schema = content["application/json"]["schema"]
            assert conforms(answer.json, schema, doc), (method, url, answer.json)
        seen.add((method, path.replace("{", "<").replace("}", ">")))
    assert seen == operations()


def test_the_check_can_fail():
    doc = document()
    hits = {"$ref": "#/components/schemas/Hits"}
    assert conforms({"k": 1, "hits": [], "warning": None}, hits, doc)
    assert not conforms({"k": 1, "hits": [{"rank": 1}], "warning": None}, hits, doc)
    assert not conforms({"k": "1", "hits": [], "warning": None}, hits, doc)


def test_the_writes_answer_as_documented(fashion, tmp_path):
    """PUT and DELETE on a writable server over an index directory (the sigma-delta method:
    the cheapest to convert), and the batch's limit."""
    from lava_retrieval.apps.service import SearchService
    from lava_retrieval.apps.tasks import build_index
    from lava_retrieval.search.image_index import ImageIndex

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(255 - fashion.test_images[i]).save(folder / f"{i}.png")
    build_index(folder, tmp_path / "idx", method="qcfs8-sdnn")
    service = SearchService(ImageIndex.load(tmp_path / "idx"), directory=tmp_path / "idx")
    client, doc = create_app(service, k=2, allow_writes=True).test_client(), document()
    calls = [
        ("PUT", "0", {"data": {"image": _photo(fashion), "path": "shop/boot.png"}}, 200),
        ("DELETE", "1", {}, 200),
        ("DELETE", "1", {}, 404),
        ("PUT", "7", {"data": {}}, 400),
    ]
    for method, item, options, status in calls:
        answer = client.open(f"/api/items/{item}", method=method, **options)
        assert answer.status_code == status, (method, item, answer.json)
        documented = doc["paths"]["/api/items/{item_id}"][method.lower()]["responses"]
        schema = documented[str(status)]["content"]["application/json"]["schema"]
        assert conforms(answer.json, schema, doc), answer.json
    too_many = client.post("/api/search/batch", json={"ids": list(range(1001))})
    assert too_many.status_code == 400
    assert (
        doc["paths"]["/api/search/batch"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]["ids"]["maxItems"]
        == 1000
    )
