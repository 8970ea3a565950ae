"""``lava-retrieval demo``: retrieval end to end, queries through the Lava graph."""

from __future__ import annotations

import argparse
import json

from lava_retrieval.cli.options import (
    add_command,
    count,
    json_safe,
    log,
    output_option,
)


def run_demo(args: argparse.Namespace) -> None:
    from lava_retrieval.apps.demo import run

    result = run(
        args.out,
        corpus_size=args.corpus,
        time_steps=args.time_steps,
        data_dir=args.data_dir,
        progress=not args.json,
        log=log(args),
        method=args.method,
        backend=args.backend,
    )
    if args.json:
        print(json.dumps(json_safe(result), allow_nan=False))


def register(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.apps.demo import DEMO_BACKENDS
    from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS

    p = add_command(
        sub, "demo", run_demo, "retrieval demo: convert, embed, query through the Lava graph"
    )
    output_option(p, "--out", default="runs/demo-retrieval.png", help="the Fig. 6-style PNG")
    p.add_argument("--corpus", type=count, default=60000, help="training images in the corpus")
    p.add_argument(
        "--time-steps", type=count, help="T, steps per image (default: the method's; see evaluate)"
    )
    p.add_argument(
        "--backend",
        choices=DEMO_BACKENDS,
        default="lava",
        help="lava: the queries through the Lava graph (its kNN process searches); loihi: "
        "embedded on Lava's own built-in processes (method qcfs8-sdnn: sigma-delta neurons), "
        "the host searches",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help=f"how the shipped ANN becomes spiking embeddings (default {DEFAULT_METHOD}; "
        "paper: Liu et al. 2022 as published)",
    )
