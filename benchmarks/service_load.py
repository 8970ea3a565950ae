"""Latency and throughput of the JSON search service (``lava-retrieval serve``, waitress) over
a large index, with a bounded load test on 127.0.0.1.

    .venv/bin/python benchmarks/service_load.py [--index runs/ann-1000000]
        [--out results/bench-service.json]

The index is the one ``benchmarks/ann_search.py --corpus 1000000`` leaves in its work
directory (a million augmented Fashion-MNIST images, HNSW). The server runs as its own process,
as a user starts it; its start-up time (loading and checking the memory-mapped shards and the
faiss index) and its peak resident memory (``VmHWM``) are recorded. Queries are images that are
not in the index (other seeded variants), uploaded as PNG files to ``POST /api/search`` with
``view=hits`` (k = 10, the default ``ef``): each is decoded, prepared, embedded by the spiking
network and searched. First one client sends ``--latency-queries`` queries one after another
(median and p99 latency); then ``--clients`` clients send ``--requests`` queries in all at the
same time (requests per second, latency under load). Every answer must come back with status
200 and its hits (none lost); the run fails otherwise. Before it reports, it checks the answers
of the first ``--check-queries`` queries: the same ids and scores (to the 6 decimals the service
sends) as the index directory searched in this process after the server has stopped.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from checks import command, same
from PIL import Image

from lava_retrieval.apps.service import read_upload
from lava_retrieval.common.atomic import write_text
from lava_retrieval.data.augment import augment
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.search.image_index import ImageIndex

START_TIMEOUT = 900  # seconds the server may take to load the index


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(png: bytes, fields: dict) -> tuple[bytes, str]:
    """A multipart/form-data body with the file ``image`` and ``fields``."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + png
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def pngs(count: int) -> list[bytes]:
    """``count`` query images not in the index (seed 2 variants), as PNG files."""
    data = load_fashion_mnist()
    images = augment(np.concatenate([data.train_images, data.test_images]), 0, count, seed=2)
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def status(pid: int) -> dict:
    """VmRSS and VmHWM of a process, MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024)
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="runs/ann-1000000")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1600, help="in all, under load")
    parser.add_argument("--threads", type=int, default=8, help="the server's worker threads")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--check-queries", type=int, default=20)
    parser.add_argument("--out", default="results/bench-service.json")
    args = parser.parse_args()

    manifest = json.loads((Path(args.index) / "index.json").read_text())
    port = free_port()
    serve = [sys.executable, "-m", "lava_retrieval", "serve", "--index", args.index]
    serve += ["--port", str(port), "--threads", str(args.threads)]
    started = time.perf_counter()
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server stopped: {server.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - started > START_TIMEOUT:
                raise SystemExit("the server did not start in time")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                time.sleep(1)
        start_seconds = time.perf_counter() - started
        info = json.loads(urllib.request.urlopen(f"{base}/api/info", timeout=30).read())
        queries = pngs(max(args.latency_queries, args.requests))
        failures: list[str] = []
        answers: dict[bytes, list] = {}

        def ask(png: bytes) -> float:
            body, boundary = multipart(png, {"view": "hits", "k": str(args.k)})
            request = urllib.request.Request(f"{base}/api/search", body)
            request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
            begin = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:
                    answer = json.loads(reply.read())
                if len(answer["hits"]) != args.k:
                    failures.append(f"{len(answer['hits'])} hits")
                answers[png] = [(h["id"], h["score"]) for h in answer["hits"]]
            except (OSError, ValueError, KeyError) as exc:
                failures.append(repr(exc))
            return time.perf_counter() - begin

        for png in queries[:20]:  # warm: the first queries compile and fault in pages
            ask(png)
        alone = [ask(png) for png in queries[: args.latency_queries]]
        loaded: list[float] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            mine = [ask(png) for png in queries[c : args.requests : args.clients]]
            with lock:
                loaded.extend(mine)

        begin = time.perf_counter()
        clients = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        seconds = time.perf_counter() - begin
        memory = status(server.pid)
        metrics = json.loads(urllib.request.urlopen(f"{base}/api/metrics", timeout=30).read())
    finally:
        server.terminate()
        server.wait(timeout=60)
    index = ImageIndex.load(args.index)
    got, want = [], []
    for png in queries[: args.check_queries]:
        image = read_upload(png, index.preprocessing.invert)
        hits = index.search(image[None], args.k)[0]
        got.append(answers.get(png))
        want.append([(h.id, round(h.score, 6)) for h in hits])
    verified = [same(f"{len(got)} answers against this process's search", got, want)]
    del index

    def summary(times: list[float]) -> dict:
        ms = np.array(times) * 1000
        return {
            "count": len(ms),
            "median_ms": round(float(np.median(ms)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(statistics.fmean(ms), 2),
        }

    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "index": {
            "count": manifest["count"],
            "dimension": manifest["dimension"],
            "shards": len(manifest.get("shards", [])),
            "search": info["search"],
        },
        "server": {"threads": args.threads, "start_seconds": round(start_seconds, 1), **memory},
        "k": args.k,
        "alone": summary(alone),
        "under_load": {
            "clients": args.clients,
            **summary(loaded),
            "requests_per_second": round(len(loaded) / seconds, 1),
        },
        "lost": len(failures),
        "verified": verified,
        "server_metrics": metrics,
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if failures or len(loaded) != args.requests:
        raise SystemExit(f"{len(failures)} requests failed: {failures[:3]}")


if __name__ == "__main__":
    main()
