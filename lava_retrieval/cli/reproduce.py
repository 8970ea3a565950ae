"""``lava-retrieval reproduce``: every table and figure of the paper beside its numbers."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import (
    add_command,
    emit,
    log,
    output_option,
)


def steps(text: str) -> tuple[str, ...]:
    """``--only``: comma-separated step names, each one of the steps."""
    from lava_retrieval.reproduce.steps import STEPS

    only = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in only if s not in STEPS]
    if unknown or not only:
        raise argparse.ArgumentTypeError(
            f"unknown step(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(STEPS)}"
        )
    return only


def run_reproduce(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lava_retrieval.common.atomic import check_output
    from lava_retrieval.reproduce.steps import Plan, reproduce

    out = args.out_dir or ("runs/reproduce-quick" if args.quick else "results")
    check_output(Path(out) / "REPRODUCTION.md")
    status = reproduce(
        out,
        Plan.quick() if args.quick else Plan(),
        only=args.only,
        checkpoints=args.checkpoints,
        device=args.device,
        force=args.force,
        progress=not (args.json or args.no_progress),
        data_dir=args.data_dir,
        log=log(args),
    )
    emit(args, status, lambda p: f"report: {p['report']}")


def register(sub) -> None:
    """Add the command to ``sub``."""
    p = add_command(
        sub,
        "reproduce",
        run_reproduce,
        "regenerate every table and figure of the paper beside its numbers "
        "(results/REPRODUCTION.md)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer images and repeats (minutes, for checking; default out: runs/reproduce-quick)",
    )
    p.add_argument(
        "--only", type=steps, metavar="STEPS", help="comma-separated steps, e.g. table1,fig4"
    )
    output_option(
        p,
        "--out-dir",
        directory=True,
        help="where results go (default: results, or runs/reproduce-quick with --quick, under "
        "the working directory)",
    )
    p.add_argument(
        "--checkpoints",
        default="checkpoints",
        help="the trained networks' directory (default: checkpoints, under the working "
        "directory: a checkout's)",
    )
    p.add_argument("--device", default="cpu", help="also time the ANN here, e.g. cuda")
    p.add_argument("--force", action="store_true", help="redo steps that are up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
