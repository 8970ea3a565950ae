"""A catalogue's daily changes at a million images: removals, upserts of changed images and a
large streaming add, without rebuilding the approximate index, and the compaction that rebuilds
it (what every removal cost before tombstones).

    .venv/bin/python benchmarks/catalogue_ops.py [--index runs/ann-1000000]
        [--work runs/catalogue-ops] [--out results/bench-catalogue.json]

The index is the one ``benchmarks/ann_search.py --corpus 1000000`` leaves in its work directory
(a million augmented Fashion-MNIST images, HNSW32,SQ8). The benchmark works on a copy of it
(hard links: nothing of the original is changed) and, in order:

1. measures recall@10 at the default ``ef`` against the exact search, on ``--queries`` new
   images (other seeded variants, embedded once);
2. removes ``--changes`` random ids (``ImageIndex.remove_from``: load, tombstones, save), timed;
3. upserts ``--changes`` other random ids with changed images (other seeded variants under their
   paths: ``catalogue.add(..., upsert=True)``: load, embed, save; the new rows are searched
   exactly beside the HNSW index until they are 1 % of the index), timed;
4. measures recall again (the tombstones filtered) and checks: no removed id is ever answered,
   and each changed image finds its own id first;
5. adds ``--add`` new images with ``lava-retrieval index add DIR fashion-mnist:augmented:N``
   as a user runs it (its own process: time and peak resident memory, ``wait4``'s
   ``ru_maxrss``); the first N - ``--add`` are indexed already (by path: skipped), so are the
   removed ones (their paths are no longer indexed: added again);
6. compacts (``lava-retrieval index compact``: the HNSW index built again without the removed
   rows, what every removal cost before tombstones), timed with its peak memory, and measures
   recall once more.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from checks import command

from lava_retrieval.common.atomic import write_text
from lava_retrieval.data.augment import augment
from lava_retrieval.search import catalogue
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import AUGMENTED_PREFIX, Images
from lava_retrieval.search.sources import catalogue as base_images

ROOT = Path(__file__).resolve().parents[1]


def linked_copy(source: Path, work: Path) -> None:
    """``work``: a copy of the index directory ``source`` made of hard links."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for path in source.iterdir():
        os.link(path, work / path.name)


def recall(index: ImageIndex, queries: np.ndarray, k: int = 10) -> float:
    """Recall@k of the approximate search at the default knobs against the exact search (a
    result counts when its exact score reaches the exact k-th best score, less 1e-6)."""
    exact = index.search_embeddings(queries, k, exact=True)
    approximate = index.search_embeddings(queries, k)
    hits = 0
    for want, got in zip(exact, approximate, strict=True):
        kth = want[-1].score
        hits += sum(h.score >= kth - 1e-6 for h in got)
    return hits / (len(queries) * k)


def cli(*argv: str) -> dict:
    """Run ``lava-retrieval ARGV --json`` as a user does: its answer, seconds and peak resident
    memory (its ``VmHWM``, read every 50 ms until it ends: the peak of its own memory, not of
    this process's that it was forked from)."""
    start = time.perf_counter()
    peak = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "lava_retrieval.cli", *argv, "--json"], stdout=out, stderr=err
        )
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            try:
                found = re.search(r"^VmHWM:\s+([0-9]+) kB", status.read_text(), re.M)
            except OSError:  # (it ended meanwhile)
                found = None
            if found:
                peak = max(peak, int(found.group(1)))
            time.sleep(0.05)
        out.seek(0), err.seek(0)
        if process.returncode:
            raise SystemExit(f"{' '.join(argv[:2])} failed: {err.read().strip()[-2000:]}")
        answer = json.loads(out.read())
    return {
        "answer": answer,
        "seconds": time.perf_counter() - start,
        "peak_rss_mib": round(peak / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "runs" / "ann-1000000")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "catalogue-ops")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench-catalogue.json")
    parser.add_argument("--changes", type=int, default=1000, help="ids removed, and upserted")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--add", type=int, default=200_000, help="new images added (0: none)")
    args = parser.parse_args()

    linked_copy(args.index, args.work)
    rng = np.random.default_rng(0)
    index = ImageIndex.load(args.work)
    count = len(index)
    base, labels = base_images(None)
    queries = index.embed(augment(base, 0, args.queries, seed=2))
    report: dict = {
        "command": command(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or "x86_64"},
        "count": count,
        "factory": index.approximate.factory,
        "changes": args.changes,
        "queries": args.queries,
        "recall_before": recall(index, queries),
        "verified": [],
    }
    picked = rng.choice(index.ids, 2 * args.changes, replace=False)
    removed, changed = picked[: args.changes], picked[args.changes :]
    del index  # (one index in memory at a time)
    gc.collect()

    start = time.perf_counter()
    ImageIndex.remove_from(args.work, removed.tolist())
    report["remove_seconds"] = time.perf_counter() - start

    # The changed images: other variants of their source images, under their own paths.
    index = ImageIndex.load(args.work, approximate=False)
    positions = [index.position(i) for i in changed.tolist()]
    numbers = [int(index.paths[p].removeprefix(AUGMENTED_PREFIX)) for p in positions]
    images = np.stack([augment(base, n, n + 1, seed=3)[0] for n in numbers])
    source = Images(
        images, [index.paths[p] for p in positions], labels[np.array(numbers) % len(base)], []
    )
    del index
    gc.collect()
    start = time.perf_counter()
    change = catalogue.add(ImageIndex, args.work, catalogue.in_memory(source), upsert=True)
    report["upsert_seconds"] = time.perf_counter() - start
    if len(change.updated) != args.changes:
        raise SystemExit(f"{len(change.updated)} of {args.changes} images were updated")

    index = change.index
    report["recall_after"] = recall(index, queries)
    report["tail_rows"] = index.rows - len(index.approximate)  # (searched exactly beside it)
    report["tombstones"] = index.tombstones
    answered = {h.id for row in index.search_embeddings(queries, 100) for h in row}
    if answered & set(removed.tolist()):
        raise SystemExit("a removed id was answered")
    report["verified"].append(f"no removed id among the top 100 of {args.queries} queries")
    own = index.search(images[:50], 1)
    if [row[0].id for row in own] != changed[:50].tolist():
        raise SystemExit("a changed image does not find its own id first")
    report["verified"].append("50 changed images each find their own id first (embedded again)")

    del index, own, change, source  # (this process holds no index while the CLI runs)
    gc.collect()
    if args.add:
        total = count + args.add
        run = cli("index", "add", str(args.work), f"{AUGMENTED_PREFIX}{total}")
        added = run["answer"]
        report["add"] = {
            "source": f"{AUGMENTED_PREFIX}{total}",
            "added": added["added"],
            "skipped": added["skipped_duplicates"],
            "seconds": run["seconds"],
            "peak_rss_mib": run["peak_rss_mib"],
            "count": added["count"],
            "recall": added["search"].get("recall"),
        }
    run = cli("index", "compact", str(args.work))
    report["compact"] = {
        "rows_dropped": run["answer"]["dropped"],
        "count": run["answer"]["count"],
        "seconds": run["seconds"],
        "peak_rss_mib": run["peak_rss_mib"],
    }
    index = ImageIndex.load(args.work)
    report["recall_compacted"] = recall(index, queries)
    report["tail_rows_compacted"] = index.rows - len(index.approximate)
    report["recall_change"] = report["recall_after"] - report["recall_before"]
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
