"""The web service under hostile clients: malformed requests are answered and the server stays
up, an image bomb is refused from its header before decoding, and idle or half-sent connections
cannot block other clients of the production server (a bounded load test), whose answers carry
the security headers and no version banner."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from lava_retrieval.apps.web import create_app, make_server

K = 4


@pytest.fixture(scope="module")
def client(web_service):
    return create_app(web_service, k=K, max_upload_bytes=200_000).test_client()


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"image": (io.BytesIO(b"plain text"), "x.png")}, 400, "not an image"),
        ({"image": (io.BytesIO(b""), "x.png")}, 400, "empty"),
        ({"image": (io.BytesIO(b"\x00" * 300_000), "big.png")}, 413, "larger than the limit"),
        ({"test_id": "abc"}, 400, "'abc' is not a valid test_id"),
        ({"test_id": "10000"}, 400, "has 10,000 images"),
        ({}, 400, "send an image file"),
        ({"test_id": "1", "k": "x"}, 400, "'x' is not a valid k"),
        ({"test_id": "1", "k": "0"}, 400, "'0' is not a valid k (1.."),
    ],
)
def test_bad_requests_are_answered_and_the_server_stays_up(client, data, status, message):
    answer = client.post("/api/search", data=data)
    assert answer.status_code == status
    assert message in answer.json["error"]
    assert client.post("/api/search", data={"test_id": "0"}).status_code == 200


def test_a_huge_image_is_refused_from_its_header(web_service, fashion):
    """A 6,000 x 6,000 PNG compresses to a few hundred KB; its size is read, not decoded."""
    client = create_app(
        web_service, k=K, max_upload_bytes=2**20, max_pixels=4_000_000
    ).test_client()
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG")
    answer = client.post("/api/search", data={"image": (io.BytesIO(buffer.getvalue()), "a.png")})
    assert answer.status_code == 400 and "6,000 x 6,000 = 36,000,000 pixels" in answer.json["error"]


def _http(port: int, request: bytes, timeout: float = 60) -> tuple[int, dict, bytes]:
    """One raw HTTP/1.0 exchange: (status, headers, body)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_idle_and_half_sent_clients_do_not_block_queries(web_service):
    """A bounded load test: 30 idle connections and 3 half-sent uploads stay open while 12
    queries come from 6 threads at once; every query is answered, with the security headers
    and no banner."""
    import json
    import socket
    import time

    server = make_server(create_app(web_service, k=K), port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    port = server.effective_port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
    for conn in idle[:3]:  # an upload that never finishes
        conn.sendall(
            b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
        )
    query = b"test_id=7"
    request = (
        b"POST /api/search HTTP/1.0\r\nHost: x\r\nContent-Type: "
        b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(query), query)
    )
    answers, start = [], time.monotonic()

    def client():
        for _ in range(2):
            answers.append(_http(port, request))

    try:
        clients = [threading.Thread(target=client) for _ in range(6)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=120)
        seconds = time.monotonic() - start
        page = _http(port, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    finally:
        for conn in idle:
            conn.close()
        server.close()
    assert len(answers) == 12 and seconds < 120
    for status, _, body in answers:
        assert status == 200 and len(json.loads(body)["snn"]) == K
    status, headers, _ = page
    assert status == 200 and "server" not in headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert "script-src 'sha256-" in headers["content-security-policy"]
