"""The web page: the Flask app with its test client, the production server under idle and
concurrent clients, and end to end in headless Chromium."""

from __future__ import annotations

import io
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.apps.web import SearchService, create_app, make_server
from lava_retrieval.conversion.methods import get
from lava_retrieval.search.image_index import ImageIndex, read_source
from lava_retrieval.snn.config import SimConfig

K = 4


@pytest.fixture(scope="module")
def service(fashion):
    network = get("paper").network(fashion)
    config = SimConfig(time_steps=8, timing="pipelined", readout="integrated")
    index = ImageIndex(network, config).add(read_source("fashion-mnist:train", limit=800))
    return SearchService(index)


@pytest.fixture(scope="module")
def client(service):
    return create_app(service, k=K, max_upload_bytes=200_000).test_client()


def _photo(fashion, i: int = 0, fmt: str = "PNG") -> bytes:
    """Test image i as a user would have it: dark on light, larger."""
    picture = Image.fromarray(255 - fashion.test_images[i]).resize((70, 70))
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format=fmt)
    return buffer.getvalue()


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and b'<input type="file"' in page.data
    info = client.get("/api/info").json
    assert info["count"] == 800 and info["simulation"]["time_steps"] == 8
    assert client.get("/healthz").data == b"ok"


def test_upload_gives_both_columns_and_the_activity(client, fashion):
    answer = client.post(
        "/api/search", data={"image": (io.BytesIO(_photo(fashion, 1, "JPEG")), "q.jpg")}
    )
    assert answer.status_code == 200
    body = answer.json
    assert len(body["snn"]) == K and len(body["ann"]) == K
    assert body["input"].startswith("data:image/png;base64,")
    assert body["activity"].startswith("data:image/png;base64,")
    assert [layer["layer"] for layer in body["spikes"]][0] == "input"
    assert body["spikes"][0]["spikes"] > 0
    # Test image 1 is a pullover: most neighbours of its photo are pullovers in both columns.
    truth = int(fashion.test_labels[1])
    assert sum(h["label"] == truth for h in body["snn"]) >= K // 2
    assert sum(h["label"] == truth for h in body["ann"]) >= K // 2
    assert all(h["image"].startswith("data:image/png") for h in body["snn"])


def test_test_image_and_k(client):
    body = client.post("/api/search", data={"test_id": "5", "k": "2"}).json
    assert len(body["snn"]) == 2 and body["k"] == 2


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"image": (io.BytesIO(b"plain text"), "x.png")}, 400, "not an image"),
        ({"image": (io.BytesIO(b""), "x.png")}, 400, "empty"),
        ({"image": (io.BytesIO(b"\x00" * 300_000), "big.png")}, 413, "larger than the limit"),
        ({"test_id": "abc"}, 400, "must be a number"),
        ({"test_id": "10000"}, 400, "has 10000 images"),
        ({}, 400, "send an image file"),
        ({"test_id": "1", "k": "x"}, 400, "k must be an integer"),
        ({"test_id": "1", "k": "0"}, 400, "at least 1"),
    ],
)
def test_bad_requests_are_answered_and_the_server_stays_up(client, data, status, message):
    answer = client.post("/api/search", data=data)
    assert answer.status_code == status
    assert message in answer.json["error"]
    assert client.post("/api/search", data={"test_id": "0"}).status_code == 200


def test_a_huge_image_is_refused_from_its_header(service, fashion):
    """A 6,000 x 6,000 PNG compresses to a few hundred KB; its size is read, not decoded."""
    client = create_app(service, k=K, max_upload_bytes=2**20, max_pixels=4_000_000).test_client()
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


def test_idle_and_half_sent_clients_do_not_block_queries(service):
    """A bounded load test: 30 idle connections and 3 half-sent uploads stay open while 12
    queries come from 6 threads at once; every query is answered, with the security headers
    and no banner."""
    import json
    import socket
    import time

    server = make_server(create_app(service, k=K), port=0, threads=2)
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


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make setup installs it)")
def test_in_a_real_browser(service, fashion, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    server = make_server(create_app(service, k=K), port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    photo = tmp_path / "boot.png"
    photo.write_bytes(_photo(fashion, 0))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"http://127.0.0.1:{server.effective_port}/")
            # Waits by locator: the page's security policy forbids evaluating strings.
            expect(page.locator("#info")).to_contain_text("800")
            page.set_input_files("#file", str(photo))
            page.click("#search")
            page.wait_for_selector("#ann figure.result", timeout=60_000)
            assert page.locator("#snn figure.result").count() == K
            assert page.locator("#ann figure.result").count() == K
            assert page.locator("#activity img").get_attribute("src").startswith("data:image")
            assert "Ankle boot" in page.locator("#snn").inner_text()
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
            # A file that is not an image: the page shows the server's message.
            bad = tmp_path / "notes.png"
            bad.write_text("not an image")
            page.set_input_files("#file", str(bad))
            page.click("#search")
            expect(page.locator("#error")).to_contain_text("not an image", timeout=60_000)
            assert "not an image" in page.locator("#error").inner_text()
            browser.close()
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 10_000
        assert np.asarray(Image.open(shot)).shape[1] == 1200
    finally:
        server.close()
