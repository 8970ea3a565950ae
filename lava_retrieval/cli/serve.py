"""``lava-retrieval serve``: the web page."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import add_command, count, log, port, positive


def run_serve(args: argparse.Namespace) -> None:
    from lava_retrieval.apps.web import serve
    from lava_retrieval.common.errors import LavaRetrievalError

    if args.ray_actors is not None and args.ray is None:
        raise LavaRetrievalError("--ray-actors needs --ray")
    if args.ray is not None:
        from lava_retrieval.search.build import check_ray_address

        if args.index is None:
            raise LavaRetrievalError("--ray serves an index directory: give --index DIR")
        check_ray_address(args.ray)

    checkpoint = None
    if args.checkpoint:
        from lava_retrieval.ann.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(args.checkpoint)
    serve(
        args.index,
        host=args.host,
        port=args.port,
        k=args.k,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        threads=args.threads,
        checkpoint=checkpoint,
        corpus=args.corpus,
        data_dir=args.data_dir,
        backend=args.backend,
        allow_writes=args.allow_writes,
        log=log(args),
        method=args.method,
        ray=args.ray,
        ray_actors=args.ray_actors,
    )


def register(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.apps.web import DEFAULT_MAX_PIXELS, DEFAULT_THREADS, SERVE_BACKENDS

    p = add_command(sub, "serve", run_serve, "a web page: search an index with your own image")
    p.add_argument(
        "--index", help="index directory (default: index the first --corpus training images)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: local)")
    p.add_argument("--port", type=port, default=8000, help="port to listen on")
    p.add_argument("-k", type=count, default=5, help="results per query (default 5)")
    p.add_argument("--max-upload-mb", type=positive, default=8.0, help="largest upload, MiB")
    p.add_argument(
        "--max-pixels",
        type=count,
        default=DEFAULT_MAX_PIXELS,
        help="largest upload in pixels, checked before decoding",
    )
    p.add_argument("--threads", type=count, default=DEFAULT_THREADS, help="worker threads")
    p.add_argument(
        "--backend",
        choices=SERVE_BACKENDS,
        default="sim",
        help="what embeds the queries: the simulator, or one Lava process graph kept running "
        "for the life of the server (the same answers; loihi: Lava's Conv/Dense/LIFReset, for "
        "an index whose network was converted with --reset zero --weight-bits 8)",
    )
    p.add_argument(
        "--allow-writes",
        action="store_true",
        help="accept DELETE and PUT /api/items/ID (remove, add or replace an item of --index; "
        "default: read-only)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="search sharded over Ray actors: groups of the index's shards, each with its own "
        "approximate index, spread over the cluster's nodes (HOST:PORT of its head, 'auto', or "
        "nothing for a Ray instance on this machine; default: no Ray, one process)",
    )
    p.add_argument(
        "--ray-actors",
        type=count,
        help="search actors with --ray (default: one per node of the cluster)",
    )
    p.add_argument("--checkpoint", help="the ANN for the ANN column (default: the method's)")
    p.add_argument("--corpus", type=count, default=10000, help="images indexed without --index")
    from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS

    p.add_argument(
        "--method",
        choices=METHODS,
        help=f"the method of the index built without --index (default {DEFAULT_METHOD}; "
        "qcfs8-sdnn with --backend loihi: Lava's own sigma-delta processes)",
    )
