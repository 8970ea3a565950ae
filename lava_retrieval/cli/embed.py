"""``lava-retrieval embed``: a data split's embeddings, by any backend, to a file."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import (
    add_command,
    count,
    emit,
    log,
    method_options,
    output_option,
)


def run_embed(args: argparse.Namespace) -> None:
    from lava_retrieval.conversion.methods import of_network, resolve
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.embedding.files import embed_to_file
    from lava_retrieval.snn.network import SpikingNetwork

    data = load_fashion_mnist(args.data_dir)
    method, network, unknown = args.method, None, False
    if args.network:
        network = SpikingNetwork.load(args.network)
        if not method and of_network(network) is None:
            # A network of unknown origin runs as Lava runs it unless told otherwise: the
            # delay timing, the membrane readout, T = 16 (the paper's method's settings).
            method, unknown = "paper", True
    resolved = resolve(
        method=method,
        network=network,
        dataset=data,
        time_steps=args.time_steps,
        timing=args.timing,
        readout=args.readout,
        engine=args.engine,
        need_ann=False,
        log=log(args),
    )
    network, config = resolved.network, resolved.config
    images, _ = data.split(args.split)
    images = images[: args.limit]
    payload = embed_to_file(
        network,
        images,
        args.out,
        config,
        backend=args.backend,
        batch_size=args.batch_size,
        progress=not args.json,
        describe={
            "split": args.split,
            "method": None if unknown else resolved.method.name,
            "network": str(args.network) if args.network else None,
        },
    )
    emit(
        args,
        payload,
        lambda p: (
            f"{p['shape'][0]} {p['split']} embeddings of dimension {p['shape'][1]} "
            f"({p['readout']}, T={p['time_steps']}, {p['backend']}) -> {p['embeddings']} "
            f"in {p['seconds']:.1f} s ({p['images_per_second']:.0f} images/s)"
        ),
    )


def register(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.embedding.files import BACKENDS
    from lava_retrieval.snn.config import ENGINES

    p = add_command(sub, "embed", run_embed, "embed a data split with the spiking network")
    p.add_argument(
        "--network",
        help="spiking-network file from `convert` (default: convert the method's shipped ANN)",
    )
    method_options(p)
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="lava",
        help="what runs the network. lava: the Lava process graph, fixed point; lava-float: "
        "floating point; loihi: Lava's own built-in processes on the CPU (method qcfs8-sdnn: "
        "Delta/Conv/SigmaDelta/Dense/Sigma, one image per step; otherwise Conv/Dense/LIFReset, "
        "for a network converted with --reset zero --weight-bits 8, delay or pipelined "
        "timing); loihi-hw: the same on a chip (needs lava-loihi); sim: the fast simulator "
        "(see --engine). All give the same numbers.",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="the simulator's implementation, for --backend sim: events (compiled, "
        "event-driven), torch (dense), auto (events where it can run the network)",
    )
    p.add_argument(
        "--time-steps",
        type=count,
        help="T, steps per image (default: the method's, listed under --method; a --network "
        "of unknown origin runs as method paper)",
    )
    p.add_argument(
        "--split",
        choices=["train", "validation", "test", "full_train"],
        default="test",
        help="the data split to embed",
    )
    p.add_argument("--limit", type=count, help="only the first N images of the split")
    p.add_argument("--batch-size", type=count, default=256, help="images per Lava window")
    output_option(
        p,
        "--out",
        required=True,
        sidecar=".json",
        help="embeddings file (.npy); a .json goes beside it",
    )
