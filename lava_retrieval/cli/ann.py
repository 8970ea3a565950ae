"""``lava-retrieval train`` and ``evaluate-ann``: the ANNs."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import (
    add_command,
    count,
    emit,
    finite,
    log,
    natural,
    output_option,
)


def run_train(args: argparse.Namespace) -> None:
    from lava_retrieval.ann.config import TrainConfig
    from lava_retrieval.ann.training import train
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist

    config = TrainConfig(
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        train_limit=args.train_limit,
        activation=args.activation,
        levels=args.levels if args.activation == "qcfs" else None,
        init_from=args.init_from,
        input_levels=args.input_levels,
        sdnn=args.sdnn,
    )
    dataset = load_fashion_mnist(args.data_dir)
    ckpt = train(
        config,
        dataset,
        args.out,
        resume=args.resume,
        progress=not args.no_progress,
        command=args.command_line,
        log=log(args),
    )
    payload = {
        "checkpoint": str(ckpt.path),
        "arch": config.arch,
        "epochs": len(ckpt.history),
        "num_parameters": ckpt.model.num_parameters,
        **{k: v for k, v in ckpt.final.items() if k.endswith("accuracy")},
    }
    emit(
        args,
        payload,
        lambda p: (
            f"checkpoint {p['checkpoint']}: {p['arch']} ({p['num_parameters']} parameters), "
            f"test accuracy {p['test_accuracy']:.2f} %"
        ),
    )


def run_evaluate_ann(args: argparse.Namespace) -> None:
    from lava_retrieval.ann.checkpoint import load_checkpoint
    from lava_retrieval.ann.inference import evaluate
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist

    ckpt = load_checkpoint(args.checkpoint)
    dataset = load_fashion_mnist(args.data_dir)
    payload = {
        "checkpoint": str(ckpt.path),
        "arch": str(ckpt.model.spec),
        "num_parameters": ckpt.model.num_parameters,
        **evaluate(ckpt.model, dataset, ckpt.config.validation_fraction),
        "command": args.command_line,
    }

    def text(p: dict) -> str:
        return (
            f"{p['arch']} ANN ({p['num_parameters']} parameters) from {p['checkpoint']}\n"
            f"  train accuracy       {p['train_accuracy']:6.2f} %\n"
            f"  validation accuracy  {p['validation_accuracy']:6.2f} %\n"
            f"  test accuracy        {p['test_accuracy']:6.2f} %"
        )

    emit(args, payload, text)


def register_train(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.ann.config import TrainConfig
    from lava_retrieval.ann.model import ACTIVATIONS

    defaults = TrainConfig()
    p = add_command(sub, "train", run_train, "train an ANN of the paper's family on the CPU")
    p.add_argument("--arch", default=defaults.arch, help="spec such as 32-64-10")
    p.add_argument(
        "--epochs", type=count, default=defaults.epochs, help="passes over the training split"
    )
    p.add_argument(
        "--seed",
        type=natural,
        default=defaults.seed,
        help="seeds initialisation, shuffling and dropout",
    )
    output_option(p, "--out", required=True, directory=True, help="checkpoint directory")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--batch-size", type=count, default=defaults.batch_size, help="mini-batch size")
    p.add_argument(
        "--learning-rate",
        type=finite,
        default=defaults.learning_rate,
        help="peak AdamW learning rate",
    )
    p.add_argument(
        "--weight-decay",
        type=finite,
        default=defaults.weight_decay,
        help="AdamW decoupled weight decay",
    )
    p.add_argument(
        "--dropout", type=finite, default=defaults.dropout, help="dropout before the dense layer"
    )
    p.add_argument(
        "--warmup-epochs",
        type=finite,
        default=defaults.warmup_epochs,
        help="linear warm-up, then cosine decay to zero",
    )
    p.add_argument(
        "--validation-fraction",
        type=finite,
        default=defaults.validation_fraction,
        metavar="F",
        help="held out for validation",
    )
    p.add_argument("--train-limit", type=count, help="train on the first N training images only")
    p.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default=defaults.activation,
        help="relu: the paper's ANN; qcfs: quantised clip-floor-shift activations with a "
        "trainable threshold per layer, trained for conversion to few time steps",
    )
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (same architecture), e.g. fine-tune the "
        "shipped ReLU network with --activation qcfs",
    )
    p.add_argument(
        "--levels",
        type=count,
        default=8,
        metavar="L",
        help="quantisation levels of --activation qcfs (default 8)",
    )
    p.add_argument(
        "--input-levels",
        type=count,
        metavar="P",
        help="levels of the input image's quantiser with --activation qcfs (default: L); 255 "
        "keeps the 8-bit image, the ANN of a network converted with --analog-input",
    )
    p.add_argument(
        "--sdnn",
        action="store_true",
        help="train for the sigma-delta conversion (method qcfs8-sdnn): its 8-bit "
        "power-of-two-scaled weights and QCFS without a ceiling in the forward pass (needs "
        "--activation qcfs --input-levels 255)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def register_evaluate_ann(sub) -> None:
    """Add the command to ``sub``."""
    p = add_command(
        sub, "evaluate-ann", run_evaluate_ann, "train/validation/test accuracy of an ANN"
    )
    p.add_argument("--checkpoint", help="checkpoint directory (default: the shipped 32-64-10)")
