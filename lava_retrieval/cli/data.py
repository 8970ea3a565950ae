"""``lava-retrieval data``: locate, verify (or download) Fashion-MNIST and summarise it."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import (
    add_command,
    emit,
    finite,
)


def run_data(args: argparse.Namespace) -> None:
    from lava_retrieval.data.fashion_mnist import CLASS_NAMES, fetch, load_fashion_mnist

    if args.download:
        from lava_retrieval.data.fashion_mnist import cache_dir

        fetch(args.data_dir or cache_dir(), progress=not args.json)
    dataset = load_fashion_mnist(args.data_dir, download=not args.no_download)
    payload = {**dataset.summary(args.validation_fraction), "classes": list(CLASS_NAMES)}

    def text(p: dict) -> str:
        lines = [f"Fashion-MNIST in {p['directory']} (found via {p['origin']}), checksums OK"]
        for name, split in p["splits"].items():
            lines.append(
                f"  {name:<10} {split['images']:>6} images {split['shape'][0]}x{split['shape'][1]}"
                f"  mean pixel {split['mean_pixel']:.3f}  per class {split['per_class']}"
            )
        lines.append("  classes: " + ", ".join(f"{i} {c}" for i, c in enumerate(p["classes"])))
        return "\n".join(lines)

    emit(args, payload, text)


def register(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.data.fashion_mnist import DEFAULT_VALIDATION_FRACTION

    p = add_command(
        sub, "data", run_data, "locate, verify (or download) Fashion-MNIST and summarise it"
    )
    p.add_argument("--download", action="store_true", help="download missing files first")
    p.add_argument("--no-download", action="store_true", help="never download")
    p.add_argument(
        "--validation-fraction",
        type=finite,
        default=DEFAULT_VALIDATION_FRACTION,
        metavar="F",
        help="last fraction of the training images held out for validation",
    )
