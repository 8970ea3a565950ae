"""``lava-retrieval evaluate``: the paper's Table 2 (ANN and SNN(T) retrieval metrics)."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import (
    add_command,
    count,
    emit,
    method_options,
    note,
    output_option,
)
from lava_retrieval.common.errors import LavaRetrievalError


def run_evaluate(args: argparse.Namespace) -> None:
    from dataclasses import replace
    from pathlib import Path

    from lava_retrieval.common.atomic import check_output
    from lava_retrieval.conversion.methods import resolve
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.evaluation import table2 as experiments

    for suffix in (".json", ".csv", ".md"):  # before the long work
        check_output(Path(args.out_dir) / f"{args.stem}{suffix}")
    dataset = load_fashion_mnist(args.data_dir)
    chosen = resolve(
        method=args.method,
        network=args.network,
        checkpoint=args.checkpoint,
        dataset=dataset,
        timing=args.timing,
        readout=args.readout,
        engine=args.engine,
        log=note,
    )
    if chosen.config.timing == "sigma_delta" and set(args.time_steps or [1]) != {1}:
        raise LavaRetrievalError(
            "the sigma_delta timing sends one message per layer and image: T is 1, not "
            + " ".join(map(str, args.time_steps))
        )
    result = experiments.table2(
        chosen.network,
        chosen.checkpoint().model,
        dataset,
        [replace(chosen.config, time_steps=t) for t in args.time_steps or chosen.method.time_steps],
        limit_corpus=args.limit_corpus,
        limit_queries=args.limit_queries,
        progress=not args.no_progress,
    )
    result["protocol"]["method"] = chosen.method.name
    result["command"] = args.command_line
    paths = experiments.write(result, args.out_dir, args.stem)
    result["files"] = [str(p) for p in paths]
    emit(args, result, lambda r: experiments.markdown(r) + "\nwritten: " + ", ".join(r["files"]))


def register(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.snn.config import ENGINES

    p = add_command(
        sub, "evaluate", run_evaluate, "the paper's Table 2: ANN and SNN(T) retrieval metrics"
    )
    method_options(p)
    p.add_argument("--network", help="spiking network (default: convert the method's ANN)")
    p.add_argument("--checkpoint", help="ANN checkpoint (default: the method's shipped one)")
    p.add_argument(
        "--time-steps",
        type=count,
        nargs="+",
        help="an SNN(T) row for each T (default: the method's, listed under --method)",
    )
    p.add_argument("--engine", choices=ENGINES, default="auto", help="the simulator's engine")
    p.add_argument("--limit-corpus", type=count, help="first N training images only (quick looks)")
    p.add_argument("--limit-queries", type=count, help="first N test images only")
    output_option(
        p,
        "--out-dir",
        directory=True,
        default="runs/evaluate",
        help="where STEM.{json,csv,md} go (the committed results/ only when named)",
    )
    p.add_argument("--stem", default="table2", help="file name stem of the results")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
