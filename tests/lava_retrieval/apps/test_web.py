"""The web page: the Flask app with its test client, and end to end in headless Chromium
(hostile clients: ``tests/robustness/test_hostile_clients.py``)."""

from __future__ import annotations

import io
import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.apps.web import create_app, make_server

K = 4


@pytest.fixture(scope="module")
def client(web_service):
    return create_app(web_service, k=K, max_upload_bytes=200_000).test_client()


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
    assert [layer["layer"] for layer in body["spikes"]][0] == "input"
    assert body["spikes"][0]["spikes"] > 0
    # The rasters' spikes: every spike of the shown neurons, inside the raster.
    for layer, total in zip(body["activity"], body["spikes"], strict=True):
        assert layer["layer"] == total["layer"] and len(layer["row"]) == len(layer["step"])
        assert layer["steps"] == 8 and all(0 <= t < 8 for t in layer["step"])
        assert all(0 <= r < layer["rows"] <= 400 for r in layer["row"])
        if layer["rows"] < 400:  # every active neuron shown: every spike drawn
            assert len(layer["row"]) == layer["spikes"]
    # Test image 1 is a pullover: most neighbours of its photo are pullovers in both columns.
    truth = int(fashion.test_labels[1])
    assert sum(h["label"] == truth for h in body["snn"]) >= K // 2
    assert sum(h["label"] == truth for h in body["ann"]) >= K // 2
    assert all(h["image"].startswith("data:image/png") for h in body["snn"])


def test_test_image_and_k(client):
    body = client.post("/api/search", data={"test_id": "5", "k": "2"}).json
    assert len(body["snn"]) == 2 and body["k"] == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make setup installs it)")
def test_in_a_real_browser(web_service, fashion, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    server = make_server(create_app(web_service, k=K), port=0)
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
            assert page.locator("#rasters canvas").count() == len(web_service.index.network.layers)
            assert "Ankle boot" in page.locator("#snn").inner_text()
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("LAVA_RETRIEVAL_SCREENSHOT"):  # make docs-screenshot: the site's
                shutil.copyfile(shot, os.environ["LAVA_RETRIEVAL_SCREENSHOT"])
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


def test_metrics_count_requests_and_time_searches(web_service):
    client = create_app(web_service, k=2).test_client()
    assert client.get("/api/metrics").json["requests"] == {}
    client.post("/api/search", data={"test_id": "3"})
    client.post("/api/search", data={"test_id": "x"})  # 400
    client.get("/api/items/1")
    client.get("/nowhere")  # 404
    metrics = client.get("/api/metrics").json
    # (the first /api/metrics counted too)
    assert metrics["requests"] == {
        "/api/metrics": 1,
        "/api/search": 2,
        "/api/items/<id>": 1,
        "other": 1,
    }
    assert metrics["statuses"] == {"2xx": 3, "4xx": 2}
    searched = metrics["latency"]["/api/search"]
    assert searched["count"] == 1 and 0 < searched["median_ms"] <= searched["p99_ms"]
    assert metrics["count"] == 800 and metrics["uptime_seconds"] >= 0
