"""Latency of a search through the web page's HTTP API, on 127.0.0.1.

    .venv/bin/python benchmarks/web_latency.py [--out results/bench-web.json]

What ``lava-retrieval serve`` serves without ``--index`` (the first 10,000 training images,
the default method, the simulator backend, waitress), started in this process on a free port of
127.0.0.1. After a few warm-up searches, ``--requests`` searches by test image number and as
many by uploaded PNG (test images, dark on light and enlarged, as a user's photo would be),
one at a time; each time is from sending the request to having read and parsed the whole JSON
answer (both result columns, the input image, the spike rasters' data). Target: a median of
100 ms or less. Before it reports, it checks the answers by test image number: their hits (ids
and scores) are those of the index searched in this process, one query at a time.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import statistics
import threading
import time

import numpy as np
from checks import command, same
from PIL import Image

from lava_retrieval.apps.web import SearchService, create_app, default_index, make_server
from lava_retrieval.common.atomic import write_text
from lava_retrieval.data.fashion_mnist import load_fashion_mnist

TARGET_MS = 100


def _multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = "lava-retrieval-benchmark"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    body = "".join(parts).encode()
    for name, (filename, blob) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'
        )
        body += head.encode() + blob + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _photo(image: np.ndarray) -> bytes:
    picture = Image.fromarray(255 - image).resize((70, 70))
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _search(port: int, fields: dict, files: dict) -> tuple[float, dict]:
    body, content_type = _multipart(fields, files)
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/api/search", body, {"Content-Type": content_type})
    response = connection.getresponse()
    answer = json.loads(response.read())
    seconds = time.perf_counter() - start
    connection.close()
    if response.status != 200:
        raise SystemExit(f"search failed: {response.status} {answer}")
    return seconds, answer


def _summary(seconds: list[float]) -> dict:
    ms = sorted(1000 * s for s in seconds)
    return {
        "requests": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--out", default="results/bench-web.json")
    args = parser.parse_args()

    start = time.perf_counter()
    index = default_index(args.corpus, progress=False)
    service = SearchService(index)
    startup = time.perf_counter() - start
    server = make_server(create_app(service), port=0)
    threading.Thread(target=server.run, daemon=True).start()
    port = server.effective_port
    tests = load_fashion_mnist().test_images
    try:
        for i in range(3):  # warm-up: compilation, caches
            _search(port, {"test_id": str(i)}, {})
            _search(port, {}, {"image": ("warm.png", _photo(tests[i]))})
        by_id, by_upload, sizes, got, want = [], [], [], [], []
        for i in range(args.requests):
            seconds, answer = _search(port, {"test_id": str(100 + i)}, {})
            by_id.append(seconds)
            got.append([(h["id"], h["score"]) for h in answer["snn"]])
            hits = index.search(tests[100 + i][None], answer["k"])[0]
            want.append([(h.id, round(h.score, 4)) for h in hits])
            sizes.append(len(json.dumps(answer)))
            seconds, _ = _search(port, {}, {"image": (f"q{i}.png", _photo(tests[200 + i]))})
            by_upload.append(seconds)
    finally:
        server.close()
    report = {
        "command": command(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or "unknown"},
        "corpus": len(index),
        "simulation": index.config.settings(),
        "startup_seconds": round(startup, 1),
        "by_test_id": _summary(by_id),
        "by_upload": _summary(by_upload),
        "answer_bytes_median": int(statistics.median(sizes)),
        "target_median_ms": TARGET_MS,
        "verified": [same(f"{len(got)} answers by test image number", got, want)],
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
