"""Every number and JSON document is parsed strictly, and a hostile write never poisons an
index: the strict parsers under arbitrary Unicode, huge and nested values (Hypothesis); the
service's routes under the same, always a 2xx or a 4xx JSON answer with the security headers
and an index that loads afterwards; the hostile ``PUT`` paths a fuzz found, refused before
anything is written; an index that an earlier bug damaged, named with its repair; waitress's
own error answers."""

from __future__ import annotations

import io
import json
import shutil
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lava_retrieval.apps.web import SearchService, create_app, make_server, security_headers
from lava_retrieval.cli import main
from lava_retrieval.common.strict import MAX_ID, ParseError, decimal, integer, json_depth, loads
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import RetrievalIndexError, manifest_digest
from lava_retrieval.search.sources import read_source

HEADERS = security_headers()
#: The same examples on every run (derandomized: a failure is reproducible, CI is not a dice
#: roll); the service's routes are slower, so fewer of them.
PARSERS = settings(derandomize=True, deadline=None)
FUZZ = settings(
    PARSERS, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
#: Digits to ``str.isdigit()`` that ``int()`` refuses, other scripts' digits ``int()`` takes,
#: and the edges of the id range.
TRICKY = ["²", "¹⁰", "١٢", "1_0", " 1", "+1", "-1", "0x1", "1e3", "", "9223372036854775808"]
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=30), st.integers().map(str))


# --- the parsers ----------------------------------------------------------------------------


@PARSERS
@given(texts)
def test_integer_takes_ascii_digits_in_range_and_refuses_the_rest(text):
    try:
        value = integer(text)
    except ParseError:
        ascii_digits = text.isascii() and text.isdigit()
        assert not ascii_digits or int(text) > MAX_ID
    else:
        assert text.isascii() and text.isdigit() and value == int(text) <= MAX_ID


@PARSERS
@given(st.one_of(texts, st.floats().map(repr)))
def test_decimal_is_finite_or_refused(text):
    try:
        value = decimal(text)
    except ParseError:
        return
    assert text.isascii() and value == float(text) and abs(value) < float("inf")


nested = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=20,
)


@PARSERS
@given(nested)
def test_json_depth_counts_what_json_nests(value):
    def depth(v):
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    assert json_depth(json.dumps(value)) == depth(value)


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 5000])
def test_deep_json_is_refused_before_it_is_parsed(text):
    with pytest.raises(ParseError, match="nested deeper"):
        loads(text, "the body", 1 << 20)


# --- the service ----------------------------------------------------------------------------


def png(fashion, i: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(255 - fashion.test_images[i]).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def writable(small_index, fashion, tmp_path):
    """A writable service over an index of 6 image files (the small golden network)."""
    from lava_retrieval.snn.config import SimConfig

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.png").write_bytes(png(fashion, i))
    network = ImageIndex.load(small_index).network
    directory = tmp_path / "idx"
    ImageIndex(network, SimConfig(8, timing="delay", readout="membrane")).add(
        read_source(folder)
    ).save(directory)
    service = SearchService(ImageIndex.load(directory), checkpoint=False, directory=directory)
    return service, create_app(service, k=3, allow_writes=True).test_client(), directory


def check_answer(response) -> None:
    """A 2xx or a 4xx JSON error, with every security header."""
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value
    if response.status_code >= 400:
        assert isinstance(response.json["error"], str)


@FUZZ
@given(
    field=st.sampled_from(["id", "test_id", "k", "nprobe", "ef", "label", "exact", "view"]),
    value=texts,
)
def test_search_fields_never_answer_5xx(writable, field, value):
    _, client, _ = writable
    check_answer(client.post("/api/search", data={"id": "0", "view": "hits", field: value}))


@FUZZ
@given(item=texts.filter(lambda t: "/" not in t and "?" not in t and "#" not in t))
def test_item_routes_never_answer_5xx(writable, item):
    _, client, directory = writable
    from urllib.parse import quote

    route = f"/api/items/{quote(item)}"
    check_answer(client.get(route))
    check_answer(client.delete(route))
    check_answer(client.put(route, data={"image": (io.BytesIO(b"x"), "x.png")}))
    ImageIndex.load(directory)


@FUZZ
@given(body=nested)
def test_batch_bodies_never_answer_5xx(writable, body):
    _, client, _ = writable
    check_answer(client.post("/api/search/batch", json=body))
    check_answer(client.post("/api/search/batch", json={"ids": [0], "k": 1, "labels": body}))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"ids": [0], "k": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"ids": ["\xb2"], "k": 2}',
        b'{"ids": [9223372036854775808]}',
        b'{"ids": [0], "nprobe": true}',
    ],
)
def test_hostile_batch_bodies_get_a_400(writable, body):
    _, client, _ = writable
    response = client.post("/api/search/batch", data=body, content_type="application/json")
    check_answer(response)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("route", "method"),
    [
        ("/api/items/%C2%B2", "get"),
        ("/api/items/%C2%B2", "delete"),
        ("/api/items/9223372036854775808", "delete"),
        ("/api/items/9223372036854775808", "get"),
    ],
)
def test_item_ids_that_are_no_ids_get_a_400(writable, route, method):
    _, client, _ = writable
    response = getattr(client, method)(route)
    check_answer(response)
    assert response.status_code == 400 and "is not an item id" in response.json["error"]


@pytest.mark.parametrize(
    "path",
    [
        "\x00x",
        "x\ny",
        "fashion-mnist:bogus:abc",
        "fashion-mnist:test:99999999",
        "fashion-mnist:bogus:1",
        "fashion-mnist:test:10000",
    ],
)
def test_a_hostile_put_changes_nothing_and_the_index_restarts(writable, fashion, path):
    service, client, directory = writable
    before = manifest_digest(directory)
    response = client.put(
        "/api/items/50", data={"image": (io.BytesIO(png(fashion, 9)), "q.png"), "path": path}
    )
    check_answer(response)
    assert response.status_code == 400
    assert manifest_digest(directory) == before and len(service.index) == 6
    # The service still writes, and a restart serves the index.
    good = client.put(
        "/api/items/51", data={"image": (io.BytesIO(png(fashion, 9)), "q.png"), "path": "a.png"}
    )
    assert good.status_code == 200 and good.json["path"] == "upload:a.png"
    assert client.delete("/api/items/51").status_code == 200
    SearchService(ImageIndex.load(directory), checkpoint=False, directory=directory)


def test_a_valid_fashion_path_is_stored(writable, fashion):
    _, client, directory = writable
    response = client.put(
        "/api/items/60",
        data={"image": (io.BytesIO(png(fashion, 9)), "q.png"), "path": "fashion-mnist:test:9"},
    )
    assert response.status_code == 200
    assert "fashion-mnist:test:9" in ImageIndex.load(directory).paths


def test_an_index_damaged_by_a_past_write_is_named_with_its_repair(small_index, tmp_path, capsys):
    directory = tmp_path / "damaged"
    shutil.copytree(small_index, directory)
    index = ImageIndex.load(directory)
    index.paths[3] = "fashion-mnist:bogus:abc"  # what an earlier version let a PUT store
    index.save(directory)
    bad = int(index.index.ids_[3])
    with pytest.raises(RetrievalIndexError, match=f"item {bad} has a bad path") as caught:
        SearchService(ImageIndex.load(directory), checkpoint=False, directory=directory)
    assert f"lava-retrieval index remove {directory.resolve()} {bad}" in str(caught.value)
    assert main(["index", "remove", str(directory), str(bad)]) == 0
    capsys.readouterr()
    SearchService(ImageIndex.load(directory), checkpoint=False, directory=directory)


def test_waitress_answers_carry_the_headers(writable):
    """An upload over the limit is answered by waitress itself, before the application."""
    import socket

    service, _, _ = writable
    server = make_server(create_app(service, k=3), port=0, threads=1, max_request_bytes=1000)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.effective_port), timeout=30) as conn:
            conn.sendall(
                b"POST /api/search HTTP/1.0\r\nHost: x\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 200000\r\n\r\n"  # refused from its header: no body sent
            )
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    finally:
        server.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert lines[0].split()[1] == "413"
    assert "larger than the limit" in json.loads(body)["error"]
    for name, value in HEADERS.items():
        assert headers[name.lower()] == value


def test_the_root_as_a_path_prefix_matches_every_file(writable):
    service, _, _ = writable
    assert service.index.matching(path_prefix="/").all()


def test_the_largest_id_leaves_room_for_the_next(writable, fashion):
    """An id of 2^63 - 1 would make the index's next id 2^63, which no index can record."""
    _, client, directory = writable
    image = {"image": (io.BytesIO(png(fashion, 9)), "q.png")}
    response = client.put(f"/api/items/{MAX_ID}", data=image)
    check_answer(response)
    assert response.status_code == 400 and "is not an item id" in response.json["error"]
    ImageIndex.load(directory)


def test_the_last_item_is_not_removed(writable):
    service, client, directory = writable
    ids = [int(i) for i in service.index.ids]
    for i in ids[:-1]:
        assert client.delete(f"/api/items/{i}").status_code == 200
    response = client.delete(f"/api/items/{ids[-1]}")
    check_answer(response)
    assert response.status_code == 409 and "keeps at least one" in response.json["error"]
    assert len(ImageIndex.load(directory)) == 1


def test_an_unclosed_string_is_scanned_in_linear_time():
    """A body of escaped quotes never closed: a scan that started over at every quote would
    take an hour on 1 MiB."""
    import time

    start = time.perf_counter()
    with pytest.raises(ParseError):
        loads(b'"' + b'\\"' * (1 << 19), "the body", 1 << 21)
    assert time.perf_counter() - start < 10


def test_a_file_name_may_hold_a_newline_but_a_name_may_not():
    from lava_retrieval.common.errors import LavaRetrievalError
    from lava_retrieval.search.sources import check_item_path

    assert check_item_path("/photos/a\nb.png") == "/photos/a\nb.png"
    for bad in ("upload:a\nb", "/photos/a\x00b.png", "https://x/\x1b[2J"):
        with pytest.raises(LavaRetrievalError, match="control characters"):
            check_item_path(bad)
