"""``lava-retrieval index build|add`` and ``search``: indexes of your own images."""

from __future__ import annotations

import argparse
import sys
import time

from lava_retrieval.cli.options import (
    add_command,
    count,
    emit,
    identifier,
    image_options,
    note,
    output_option,
    source_options,
)


def index_type(text: str) -> str:
    """An index type or faiss factory string, checked by name (argparse type)."""
    from lava_retrieval.search.approximate import factory_for
    from lava_retrieval.search.index import RetrievalIndexError

    if text != "exact":
        try:
            factory_for(text, 1, 1)
        except RetrievalIndexError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _preprocessing(args: argparse.Namespace):
    from lava_retrieval.data.images import Preprocessing

    return Preprocessing(invert=False if args.no_invert else "auto")


def _index_payload(index, directory, source, bad, seconds: float) -> dict:
    return {
        "index": str(directory),
        "count": len(index),
        "added": source,
        "skipped": [{"path": p, "reason": r} for p, r in bad],
        "seconds": round(seconds, 3),
        "images_per_second": round(source / seconds, 1) if seconds > 0 else None,
        **index.metadata,
    }


def _index_text(p: dict) -> str:
    sim = p["simulation"]
    lines = [
        f"index {p['index']}: {p['count']:,} images ({p['added']:,} added in "
        f"{p['seconds']:.1f} s), T={sim['time_steps']}, {sim['timing']} timing, "
        f"{sim['readout']} readout, network {p['network']['fingerprint'][:12]}"
    ]
    stages = p.get("stages")
    if stages:
        lines.append(
            f"stages: embedding {stages['embed_seconds']:.1f} s ({stages['workers']}), "
            f"indexing {stages['index_seconds']:.1f} s"
        )
    search = p["search"]
    if search["index_type"] != "exact":
        recall = search.get("recall") or {}
        knobs = ", ".join(f"{k} {v['default']}" for k, v in search.get("knobs", {}).items())
        lines.append(
            f"approximate search: {search['index_type']} ({search.get('factory')}), "
            f"recall@{recall.get('k')} {recall.get('recall_at_k', float('nan')):.4f} against "
            f"the exact search on {recall.get('queries')} of its images"
            + (f" at the default {knobs}" if knobs else "")
        )
    if p["skipped"]:
        lines.append(f"skipped {len(p['skipped'])} files:")
        lines += [f"  {s['reason']}" for s in p["skipped"]]
    return "\n".join(lines)


def run_index_build(args: argparse.Namespace) -> None:
    from lava_retrieval.conversion.methods import resolve
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.search.build import build_index
    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.search.sources import plan_source

    _check_ray(args)

    def plan():
        return plan_source(
            args.source,
            _preprocessing(args),
            data_dir=args.data_dir,
            max_bytes=args.max_bytes,
            max_pixels=args.max_pixels,
            limit=args.limit,
        )

    def new_index():
        chosen = resolve(
            method=args.method,
            network=args.network,
            dataset=None if args.network else load_fashion_mnist(args.data_dir),
            time_steps=args.time_steps,
            timing=args.timing,
            readout=args.readout,
            engine=args.engine,
            need_ann=False,
        )
        return ImageIndex(
            chosen.network, chosen.config, _preprocessing(args), index_type=args.index_type
        )

    # Under the lock throughout, of two builders one fails; the directory is checked once,
    # before the source is read and the network converted.
    report = build_index(
        new_index,
        plan,
        args.out,
        backend=args.backend,
        ray=args.ray,
        chunk=args.chunk,
        progress=not args.json,
        log=note,
    )
    index = report.index
    payload = _index_payload(
        index, args.out, report.count, report.bad, report.embed_seconds + report.index_seconds
    )
    payload["stages"] = {
        "embed_seconds": round(report.embed_seconds, 3),
        "index_seconds": round(report.index_seconds, 3),
        "workers": report.workers,
    }
    emit(args, payload, _index_text)


def _check_ray(args: argparse.Namespace) -> None:
    from lava_retrieval.common.errors import LavaRetrievalError
    from lava_retrieval.search.build import check_ray_address

    if args.ray is not None:
        if args.backend != "sim":
            raise LavaRetrievalError(
                f"--ray embeds with the simulator: drop --backend {args.backend}"
            )
        check_ray_address(args.ray)


def _change_payload(change, directory) -> dict:
    index = change.index
    return {
        "index": str(directory),
        "count": len(index),
        "dry_run": change.dry_run,
        "added": len(change.added),
        "updated": len(change.updated),
        "removed": len(change.removed),
        "unchanged": change.unchanged,
        "skipped_duplicates": change.skipped,
        "duplicates": [{"path": p, "reason": r} for p, r in change.duplicates],
        "skipped": [{"path": p, "reason": r} for p, r in change.unreadable],
        "paths": {
            "added": change.added,
            "updated": change.updated,
            "removed": change.removed,
        },
        "seconds": round(change.seconds, 3),
        "workers": change.workers,
        "tombstones": index.tombstones,
        "search": index.search_info,
    }


def _change_text(p: dict) -> str:
    from lava_retrieval.search.catalogue import LISTED

    counts = f"{p['added']:,} added, {p['updated']:,} updated, {p['removed']:,} removed"
    if p["dry_run"]:
        lines = [f"index {p['index']} (dry run: nothing was changed) would get: {counts}"]
        for kind, verb in (("added", "add"), ("updated", "update"), ("removed", "remove")):
            lines += [f"  {verb} {path}" for path in p["paths"][kind]]
    else:
        lines = [
            f"index {p['index']}: {counts} ({p['unchanged']:,} unchanged) in "
            f"{p['seconds']:.1f} s ({p['workers']}); {p['count']:,} images"
            + (f", {p['tombstones']:,} removed rows until compacted" if p["tombstones"] else "")
        ]
    skipped = p["skipped_duplicates"]
    if skipped:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in skipped.items())
        total = sum(skipped.values())
        lines.append(f"skipped {total:,} duplicates ({kinds}; --allow-duplicates adds them):")
        lines += [f"  {d['path']}: {d['reason']}" for d in p["duplicates"][:20]]
        if total > 20:
            lines.append(f"  ... and {total - 20:,} more (--json lists the first {LISTED:,})")
    if p["skipped"]:
        lines.append(f"skipped {len(p['skipped']):,} files that could not be read:")
        lines += [f"  {s['reason']}" for s in p["skipped"][:20]]
    return "\n".join(lines)


def run_index_add(args: argparse.Namespace) -> None:
    from lava_retrieval.search import catalogue
    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.search.sources import plan_source

    _check_ray(args)

    def plan(index):
        return plan_source(
            args.source,
            index.preprocessing,
            data_dir=args.data_dir,
            max_bytes=args.max_bytes,
            max_pixels=args.max_pixels,
            limit=args.limit,
        )

    change = catalogue.add(
        ImageIndex,
        args.index,
        plan,
        upsert=args.upsert,
        allow_duplicates=args.allow_duplicates,
        backend=args.backend,
        ray=args.ray,
        chunk=args.chunk,
        progress=not args.json,
        log=note,
    )
    emit(args, _change_payload(change, args.index), _change_text)


def run_index_sync(args: argparse.Namespace) -> None:
    from lava_retrieval.search import catalogue
    from lava_retrieval.search.image_index import ImageIndex

    _check_ray(args)
    change = catalogue.sync(
        ImageIndex,
        args.index,
        args.folder,
        dry_run=args.dry_run,
        backend=args.backend,
        ray=args.ray,
        chunk=args.chunk,
        progress=not args.json,
        log=note,
        data_dir=args.data_dir,
        max_bytes=args.max_bytes,
        max_pixels=args.max_pixels,
    )
    emit(args, _change_payload(change, args.index), _change_text)


def run_index_compact(args: argparse.Namespace) -> None:
    from lava_retrieval.search.image_index import ImageIndex

    start = time.perf_counter()
    index, gone = ImageIndex.compact_at(args.index, progress=not args.json, log=note)
    payload = {
        "index": str(args.index),
        "dropped": gone,
        "count": len(index),
        "seconds": round(time.perf_counter() - start, 3),
        "search": index.search_info,
    }
    emit(
        args,
        payload,
        lambda p: (
            f"index {p['index']}: {p['dropped']:,} removed rows dropped, "
            f"{p['count']:,} images, in {p['seconds']:.1f} s"
        ),
    )


def run_index_remove(args: argparse.Namespace) -> None:
    from lava_retrieval.search.image_index import ImageIndex

    start = time.perf_counter()
    index = ImageIndex.remove_from(args.index, args.ids, log=note)
    payload = {
        "index": str(args.index),
        "removed": sorted(set(args.ids)),
        "count": len(index),
        "was": len(index) + len(set(args.ids)),
        "tombstones": index.tombstones,
        "seconds": round(time.perf_counter() - start, 3),
    }
    emit(
        args,
        payload,
        lambda p: f"index {p['index']}: removed {len(p['removed'])} images, {p['count']:,} left",
    )


def run_search(args: argparse.Namespace) -> None:
    import numpy as np

    from lava_retrieval.data.images import Preprocessing
    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.search.sources import read_query

    index = ImageIndex.load(args.index)
    if args.network:
        from lava_retrieval.snn.network import SpikingNetwork

        index.check_network(SpikingNetwork.load(args.network))
    prep = Preprocessing(invert=False) if args.no_invert else index.preprocessing
    from lava_retrieval.common.errors import LavaRetrievalError

    if bool(args.images) == bool(args.id):
        raise LavaRetrievalError("give query images or --id ID (an indexed image), not both")
    # Queries by id are indexed images: their stored embeddings answer (nothing simulated);
    # their images are read back only to be drawn.
    names = args.images or [f"id:{i}" for i in args.id]
    files = args.images or [index.paths[index.position(i)] for i in args.id]
    images = None
    if args.images or args.png:
        images = np.stack(
            [
                read_query(
                    q,
                    prep,
                    data_dir=args.data_dir,
                    max_bytes=args.max_bytes,
                    max_pixels=args.max_pixels,
                )
                for q in files
            ]
        )
    filters = dict(
        nprobe=args.nprobe,
        ef=args.ef,
        exact=args.exact,
        labels=args.label,
        path_prefix=args.path_prefix,
    )
    start = time.perf_counter()
    if args.id:
        results = index.search_by_id(args.id, args.k, **filters)
    elif images is not None:
        results = index.search(images, args.k, args.backend, **filters)
    else:
        raise LavaRetrievalError("give query images or --id ID (an indexed image)")
    seconds = time.perf_counter() - start
    payload = {
        "index": str(args.index),
        "backend": args.backend,
        "k": args.k,
        "search": "exact" if args.exact else index.index_type,
        "seconds": round(seconds, 4),
        "queries": [
            {"query": str(q), "silent": hits.silent, "results": [h.to_dict() for h in hits]}
            for q, hits in zip(names, results, strict=True)
        ],
    }
    from lava_retrieval.apps.web import SILENT_WARNING

    for q, hits in zip(names, results, strict=True):
        if hits.silent:
            print(f"warning: {q}: {SILENT_WARNING}", file=sys.stderr)
    if args.png and images is not None:
        from lava_retrieval.search.figure import draw

        payload["png"] = str(draw(args.png, images, names, results, index))

    def text(p: dict) -> str:
        lines = []
        for q in p["queries"]:
            lines.append(f"{q['query']}:")
            for h in q["results"]:
                label = f" {h['label_name']}" if h["label_name"] else ""
                lines.append(f"  {h['rank']:>3}. {h['score']:.4f}{label:<13} {h['path']}")
        if "png" in p:
            lines.append(f"figure: {p['png']}")
        return "\n".join(lines)

    emit(args, payload, text)


def pipeline_options(p: argparse.ArgumentParser) -> None:
    """Where and in what chunks ``index build|add|sync`` read and embed."""
    from lava_retrieval.search.build import CHUNK

    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="read and embed on a Ray cluster (Ray Data): HOST:PORT of its head, 'auto' (the "
        "cluster this machine is in), or nothing for a Ray instance on this machine "
        "(default: no Ray, one process)",
    )
    p.add_argument(
        "--chunk",
        type=count,
        default=CHUNK,
        help="images read and embedded at once; memory holds one chunk (default: %(default)s)",
    )


def register_index(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS
    from lava_retrieval.snn.config import ENGINES, READOUTS, TIMINGS

    index_parser = sub.add_parser(
        "index",
        help="build, extend, sync or compact an index of images",
        description="build, extend, sync or compact an index of images: embeddings, ids, "
        "paths, labels, pixel hashes, the network and its settings",
    )
    index_sub = index_parser.add_subparsers(dest="index_command", required=True, metavar="ACTION")

    p = add_command(
        index_sub, "build", run_index_build, "embed a source of images into a new index"
    )
    source_options(p)
    output_option(p, "--out", required=True, directory=True, help="index directory to create")
    p.add_argument("--network", help="spiking network (default: convert the method's ANN)")
    p.add_argument(
        "--method", choices=METHODS, help=f"default {DEFAULT_METHOD} (see `evaluate --help`)"
    )
    p.add_argument(
        "--time-steps", type=count, help="T, steps per image (default: the method's; see evaluate)"
    )
    p.add_argument("--readout", choices=READOUTS, help="default: the method's")
    p.add_argument("--timing", choices=TIMINGS, help="default: the method's")
    p.add_argument("--engine", choices=ENGINES, default="auto", help="the simulator's engine")
    p.add_argument(
        "--no-invert",
        action="store_true",
        help="never invert images (default: invert images with a light background)",
    )
    p.add_argument(
        "--index-type",
        type=index_type,
        default="exact",
        metavar="TYPE",
        help="exact (default), hnsw, ivf, ivf-pq or a faiss factory string such as "
        "IVF256,SQ8: an approximate index through faiss, its recall@10 measured on a sample "
        "of its own images and recorded",
    )
    pipeline_options(p)
    _register_changes(index_sub)


def _register_changes(index_sub) -> None:
    """``index add``, ``sync``, ``compact`` and ``remove``."""
    from lava_retrieval.search.image_index import SEARCH_BACKENDS
    from lava_retrieval.search.index_directory import COMPACT_FRACTION

    p = add_command(
        index_sub,
        "add",
        run_index_add,
        "embed more images into an index, with its settings; images already indexed (by "
        "path or by pixels) are skipped and listed",
    )
    p.add_argument("index", help="index directory")
    source_options(p)
    p.add_argument(
        "--upsert",
        action="store_true",
        help="an image whose path is already indexed replaces that entry, keeping its id, "
        "when its pixels changed (default: it is skipped)",
    )
    p.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="add images whose path or pixels are indexed already again, with new ids "
        "(default: skip them, saying which and why)",
    )
    pipeline_options(p)

    p = add_command(
        index_sub,
        "sync",
        run_index_sync,
        "make an index match a folder in one new version: add its new files, update the "
        "changed ones (by their pixels), remove the entries of files that are gone",
    )
    p.add_argument("index", help="index directory")
    p.add_argument("folder", help="folder of images (recursive) that the index mirrors")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be added, updated and removed; change nothing",
    )
    p.add_argument(
        "--backend",
        choices=SEARCH_BACKENDS,
        default="sim",
        help="what embeds the new and changed images (as index add; default: %(default)s)",
    )
    image_options(p)
    pipeline_options(p)

    p = add_command(
        index_sub,
        "compact",
        run_index_compact,
        "drop the rows of removed images and build the approximate part again (a save "
        f"does it by itself past {COMPACT_FRACTION:.0%} removed rows)",
    )
    p.add_argument("index", help="index directory")

    p = add_command(
        index_sub,
        "remove",
        run_index_remove,
        "remove images from an index by id (their rows stay as tombstones, filtered from "
        "every search, until compacted: nothing is rebuilt)",
    )
    p.add_argument("index", help="index directory")
    p.add_argument(
        "ids", nargs="+", type=identifier, metavar="ID", help="ids of the images (from search)"
    )


def register_search(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.search.approximate import DEFAULT_EF, DEFAULT_NPROBE
    from lava_retrieval.search.image_index import SEARCH_BACKENDS

    p = add_command(
        sub, "search", run_search, "the k most similar indexed images of each query image"
    )
    p.add_argument("index", help="index directory from `index build`")
    p.add_argument(
        "images", nargs="*", help="query image files, or fashion-mnist:SPLIT:I for image I"
    )
    p.add_argument(
        "--id",
        type=identifier,
        action="append",
        metavar="ID",
        help="query with the indexed image of this id instead (its stored embedding; repeat "
        "for several)",
    )
    p.add_argument("-k", type=count, default=10, help="results per query (default 10)")
    p.add_argument(
        "--backend",
        choices=SEARCH_BACKENDS,
        default="sim",
        help="sim: simulator and host search; lava: the Lava graph (encoder, layers, probe, "
        "kNN); loihi: Lava's own built-in processes embed (method qcfs8-sdnn: sigma-delta "
        "neurons), the host searches; the same answers",
    )
    p.add_argument(
        "--nprobe",
        type=count,
        help=f"IVF indexes: clusters scanned (default {DEFAULT_NPROBE}; more: slower, "
        "better recall)",
    )
    p.add_argument(
        "--ef",
        type=count,
        help=f"HNSW indexes: candidates kept (default {DEFAULT_EF}, at least k; more: slower, "
        "better recall)",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="search exactly even if the index has an approximate part (for comparison)",
    )
    p.add_argument(
        "--label",
        action="append",
        metavar="LABEL",
        help="only images of this class (name or number; repeat for several)",
    )
    p.add_argument(
        "--path-prefix", metavar="PREFIX", help="only images whose path starts with PREFIX"
    )
    output_option(p, "--png", help="draw queries and results into this PNG")
    p.add_argument(
        "--network", help="refuse to search unless this network is the index's (a check)"
    )
    p.add_argument(
        "--no-invert", action="store_true", help="never invert the queries (default: the index's)"
    )
    image_options(p)
