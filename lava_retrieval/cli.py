"""The ``lava-retrieval`` command line.

Every command that reports numbers takes ``--json`` and then prints exactly one JSON object on
stdout (progress bars and logs go to stderr). Bad input gives ``error: ...`` on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence

from lava_retrieval.errors import LavaRetrievalError


class _Parser(argparse.ArgumentParser):
    """Bad options give one line, ``error: COMMAND: problem``, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _number(text: str, kind, check, wanted: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
    if not check(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
    return value


def _count(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def _natural(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def _port(text: str) -> int:
    return _number(text, int, lambda v: 0 <= v <= 65535, "a port number (0..65535)")


def _finite(text: str) -> float:
    return _number(text, float, math.isfinite, "a finite number")


def _json_safe(value):
    """``value`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _emit(args: argparse.Namespace, payload: dict, text: Callable[[dict], str]) -> None:
    if args.json:
        print(json.dumps(_json_safe(payload), allow_nan=False))
    else:
        print(text(payload))


def _log(args: argparse.Namespace) -> Callable[[str], None]:
    return lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True)


def _cmd_data(args: argparse.Namespace) -> None:
    from lava_retrieval.data import CLASS_NAMES, fetch, load_fashion_mnist

    if args.download:
        from lava_retrieval.data import cache_dir

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

    _emit(args, payload, text)


def _cmd_train(args: argparse.Namespace) -> None:
    from lava_retrieval.data import load_fashion_mnist
    from lava_retrieval.train import TrainConfig, train

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
    )
    dataset = load_fashion_mnist(args.data_dir)
    ckpt = train(
        config,
        dataset,
        args.out,
        resume=args.resume,
        progress=not args.no_progress,
        command=args.command_line,
        log=_log(args),
    )
    payload = {
        "checkpoint": str(ckpt.path),
        "arch": config.arch,
        "epochs": len(ckpt.history),
        "num_parameters": ckpt.model.num_parameters,
        **{k: v for k, v in ckpt.final.items() if k.endswith("accuracy")},
    }
    _emit(
        args,
        payload,
        lambda p: (
            f"checkpoint {p['checkpoint']}: {p['arch']} ({p['num_parameters']} parameters), "
            f"test accuracy {p['test_accuracy']:.2f} %"
        ),
    )


def _cmd_evaluate_ann(args: argparse.Namespace) -> None:
    from lava_retrieval.data import load_fashion_mnist
    from lava_retrieval.train import evaluate, load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    dataset = load_fashion_mnist(args.data_dir)
    payload = {
        "checkpoint": str(ckpt.path),
        "arch": str(ckpt.model.spec),
        "num_parameters": ckpt.model.num_parameters,
        **evaluate(ckpt.model, dataset, ckpt.config.validation_fraction),
    }

    def text(p: dict) -> str:
        return (
            f"{p['arch']} ANN ({p['num_parameters']} parameters) from {p['checkpoint']}\n"
            f"  train accuracy       {p['train_accuracy']:6.2f} %\n"
            f"  validation accuracy  {p['validation_accuracy']:6.2f} %\n"
            f"  test accuracy        {p['test_accuracy']:6.2f} %"
        )

    _emit(args, payload, text)


def _layer_table(rows: list[dict]) -> str:
    header = (
        f"{'layer':<8}{'kind':<7}{'output':>12}{'param_scale':>13}{'threshold':>11}"
        f"{'slope':>10}{'fan-in':>8}{'cores':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['name']:<8}{r['kind']:<7}{'x'.join(map(str, r['output_shape'])):>12}"
            f"{r['param_scale']:>13.3f}{r['threshold']:>11}{r['slope']:>10.4f}"
            f"{r['fan_in']:>8}{r['cores']:>7}"
        )
    return "\n".join(lines)


def _cmd_convert(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from lava_retrieval import loihi
    from lava_retrieval.conversion import convert_to_file
    from lava_retrieval.data import load_fashion_mnist
    from lava_retrieval.train import load_checkpoint

    config = _conversion_config(args)
    if args.activation_percentile is not None:
        config = replace(config, activation_percentile=args.activation_percentile)
    network, payload = convert_to_file(
        load_checkpoint(args.checkpoint),
        load_fashion_mnist(args.data_dir),
        config,
        args.out,
        export_netx=args.export_netx,
        loihi_report=args.loihi_report,
        allow_undeployable=args.allow_undeployable,
    )
    chip = payload["loihi"]

    def text(p: dict) -> str:
        lines = [
            f"converted {p['checkpoint']} -> {p['network']} (pooling {config.pool_mode}, "
            f"reset {config.reset}, initial membrane {network.initial_membrane:g} x threshold, "
            f"embedding {p['embedding_layer']} "
            f"{'x'.join(map(str, p['embedding_shape']))})",
            _layer_table(p["layers"]),
            f"Loihi: {chip['total_cores']} of {loihi.NUM_CORES} cores, "
            + ("deployable" if chip["deployable"] else f"NOT deployable: {chip['reason']}"),
        ]
        lines += [f"warning: {w}" for w in chip["warnings"]]
        lines += [f"{k}: {p[k]}" for k in ("netx", "loihi_report") if k in p]
        return "\n".join(lines)

    _emit(args, payload, text)


def _method_settings(args: argparse.Namespace, dataset):
    """The --method's network, ANN, timing and readout, each overridden by its own flag.

    Without --method, a --network converted from a shipped checkpoint brings that checkpoint's
    method; otherwise the default method. The ANN row must be the network's own ANN.
    """
    from lava_retrieval.methods import DEFAULT_METHOD, get, of_network
    from lava_retrieval.network import SpikingNetwork
    from lava_retrieval.train import load_checkpoint

    network = SpikingNetwork.load(args.network) if args.network else None
    inferred = of_network(network) if network is not None and not args.method else None
    method = inferred or get(args.method or DEFAULT_METHOD)
    checkpoint = load_checkpoint(args.checkpoint) if args.checkpoint else method.checkpoint()
    source = network.manifest.get("source_sha256") if network is not None else None
    if network is not None and not source and not (args.method or args.checkpoint):
        print(
            f"note: {args.network} does not record its ANN; the ANN row and the defaults are "
            f"method {method.name!r}'s (--method or --checkpoint to choose)",
            file=sys.stderr,
        )
    if source and source != checkpoint.meta.get("weights_sha256"):
        raise LavaRetrievalError(
            f"{args.network} was converted from another ANN than {checkpoint.path}; pass that "
            "ANN's --checkpoint (the ANN row must be the network's own ANN)"
        )
    if network is None:
        print(
            f"converting {checkpoint.path.name} for method {method.name!r} (--network to use "
            "another)",
            file=sys.stderr,
        )
        network = method.network(dataset, checkpoint)
    return method, network, checkpoint, args.timing or method.timing, args.readout or method.readout


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lava_retrieval import experiments
    from lava_retrieval.atomic import check_output
    from lava_retrieval.data import load_fashion_mnist

    for suffix in (".json", ".csv", ".md"):  # before the long work
        check_output(Path(args.out_dir) / f"{args.stem}{suffix}")
    dataset = load_fashion_mnist(args.data_dir)
    method, network, checkpoint, timing, readout = _method_settings(args, dataset)
    result = experiments.table2(
        network,
        checkpoint.model,
        dataset,
        tuple(args.time_steps),
        readout,
        timing,
        args.limit_corpus,
        args.limit_queries,
        progress=not args.no_progress,
        engine=args.engine,
    )
    result["protocol"]["method"] = method.name
    result["command"] = args.command_line
    paths = experiments.write(result, args.out_dir, args.stem)
    result["files"] = [str(p) for p in paths]
    _emit(args, result, lambda r: experiments.markdown(r) + "\nwritten: " + ", ".join(r["files"]))


def _conversion_config(args: argparse.Namespace):
    from lava_retrieval.conversion import ConversionConfig

    return ConversionConfig(
        num_weight_bits=args.weight_bits,
        num_bias_bits=args.bias_bits,
        param_percentile=args.percentile,
        activation_percentile=args.percentile,
        calibration_size=args.calibration_size,
        calibration_seed=args.calibration_seed,
        pool_mode=args.pool_mode,
        reset=args.reset,
        initial_membrane=args.initial_membrane,
    )


def _cmd_calibrate(args: argparse.Namespace) -> None:
    from lava_retrieval.atomic import check_output, write_text
    from lava_retrieval.calibration import calibrate
    from lava_retrieval.data import load_fashion_mnist
    from lava_retrieval.sim import SimConfig
    from lava_retrieval.train import load_checkpoint

    if args.out:
        check_output(args.out)  # before the long work
    result = calibrate(
        load_checkpoint(args.checkpoint),
        load_fashion_mnist(args.data_dir),
        _conversion_config(args),
        SimConfig(timing=args.timing),
        tuple(args.time_steps),
        tuple(args.percentiles),
        args.limit,
        progress=not args.json,
        log=_log(args),
    )
    result["command"] = args.command_line
    if args.out:
        write_text(args.out, json.dumps(result, indent=2) + "\n")
        result["file"] = str(args.out)
    _emit(
        args,
        result,
        lambda r: (
            f"best activation percentile on {r['protocol']['images']} validation images: "
            f"{r['best']:g} ({r['best_validation_accuracy']:.2f} %); convert with "
            f"--activation-percentile {r['best']:g}"
        ),
    )


def _cmd_demo(args: argparse.Namespace) -> None:
    from lava_retrieval.demo import run

    result = run(
        args.out,
        args.corpus,
        args.time_steps,
        data_dir=args.data_dir,
        progress=not args.json,
        log=_log(args),
        method=args.method,
    )
    if args.json:
        print(json.dumps(_json_safe(result), allow_nan=False))


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from pathlib import Path

    from lava_retrieval.atomic import check_output
    from lava_retrieval.reproduce import STEPS, Plan, ReproduceError, reproduce

    only = None
    if args.only:
        only = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = [s for s in only if s not in STEPS]
        if unknown or not only:
            raise ReproduceError(
                f"--only: unknown step(s) {', '.join(unknown) or '(none given)'}; choose from "
                f"{', '.join(STEPS)}"
            )
    out = args.out_dir or ("runs/reproduce-quick" if args.quick else "results")
    check_output(Path(out) / "REPRODUCTION.md")
    status = reproduce(
        out, Plan.quick() if args.quick else Plan(), only, args.checkpoints, args.device,
        args.force, progress=not (args.json or args.no_progress), data_dir=args.data_dir,
        log=_log(args),
    )  # fmt: skip
    _emit(args, status, lambda p: f"report: {p['report']}")


def _cmd_embed(args: argparse.Namespace) -> None:
    from lava_retrieval.atomic import check_output
    from lava_retrieval.data import load_fashion_mnist
    from lava_retrieval.embedding import embed_to_file
    from lava_retrieval.network import SpikingNetwork
    from lava_retrieval.sim import SimConfig

    config = SimConfig(
        time_steps=args.time_steps, timing=args.timing, readout=args.readout, engine=args.engine
    )
    check_output(args.out)  # before the long work
    network = SpikingNetwork.load(args.network)
    images, _ = load_fashion_mnist(args.data_dir).split(args.split)
    if args.limit is not None:
        if args.limit < 1:
            raise LavaRetrievalError(f"--limit must be >= 1, got {args.limit}")
        images = images[: args.limit]
    payload = embed_to_file(
        network,
        images,
        args.out,
        config,
        backend=args.backend,
        batch_size=args.batch_size,
        progress=not args.json,
        describe={"split": args.split, "network": str(args.network)},
    )
    _emit(
        args,
        payload,
        lambda p: (
            f"{p['shape'][0]} {p['split']} embeddings of dimension {p['shape'][1]} "
            f"({p['readout']}, T={p['time_steps']}, {p['backend']}) -> {p['embeddings']} "
            f"in {p['seconds']:.1f} s ({p['images_per_second']:.0f} images/s)"
        ),
    )


def _preprocessing(args: argparse.Namespace):
    from lava_retrieval.images import Preprocessing

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
    if p["skipped"]:
        lines.append(f"skipped {len(p['skipped'])} files:")
        lines += [f"  {s['reason']}" for s in p["skipped"]]
    return "\n".join(lines)


def _cmd_index_build(args: argparse.Namespace) -> None:

    from lava_retrieval.data import load_fashion_mnist
    from lava_retrieval.image_index import ImageIndex, read_source
    from lava_retrieval.methods import DEFAULT_METHOD, get, of_network
    from lava_retrieval.network import SpikingNetwork
    from lava_retrieval.sim import SimConfig

    ImageIndex.check_new(args.out)  # before the long work
    if args.time_steps < 1:
        raise LavaRetrievalError(f"--time-steps must be >= 1, got {args.time_steps}")
    if args.limit is not None and args.limit < 1:
        raise LavaRetrievalError(f"--limit must be >= 1, got {args.limit}")
    source = read_source(
        args.source, _preprocessing(args), args.data_dir, args.max_bytes, args.max_pixels,
        args.limit, progress=not args.json,
    )  # fmt: skip
    if args.network:
        network = SpikingNetwork.load(args.network)
        method = get(args.method) if args.method else of_network(network) or get(DEFAULT_METHOD)
    else:
        method = get(args.method or DEFAULT_METHOD)
        network = method.network(load_fashion_mnist(args.data_dir))
    config = SimConfig(
        time_steps=args.time_steps,
        timing=args.timing or method.timing,
        readout=args.readout or method.readout,
        engine=args.engine,
    )
    _add_and_save(args, ImageIndex(network, config, _preprocessing(args)), source, args.out)


def _add_and_save(args: argparse.Namespace, index, source, directory) -> None:
    """Embed ``source`` into ``index``, write it to ``directory`` and report (index build/add)."""
    import time

    start = time.perf_counter()
    index.add(source, args.backend, progress=not args.json)
    seconds = time.perf_counter() - start
    index.save(directory)
    payload = _index_payload(index, directory, len(source.paths), source.bad, seconds)
    _emit(args, payload, _index_text)


def _cmd_index_add(args: argparse.Namespace) -> None:
    from lava_retrieval.image_index import ImageIndex, read_source

    index = ImageIndex.load(args.index)
    source = read_source(
        args.source, index.preprocessing, args.data_dir, args.max_bytes, args.max_pixels,
        args.limit, progress=not args.json,
    )  # fmt: skip
    _add_and_save(args, index, source, args.index)


def _cmd_search(args: argparse.Namespace) -> None:
    import time

    import numpy as np

    from lava_retrieval.image_index import ImageIndex, read_query
    from lava_retrieval.images import Preprocessing

    index = ImageIndex.load(args.index)
    if args.network:
        from lava_retrieval.network import SpikingNetwork

        index.check_network(SpikingNetwork.load(args.network))
    prep = Preprocessing(invert=False) if args.no_invert else index.preprocessing
    if args.png:
        from lava_retrieval.atomic import check_output

        check_output(args.png)
    images = np.stack(
        [read_query(q, prep, args.data_dir, args.max_bytes, args.max_pixels) for q in args.images]
    )
    start = time.perf_counter()
    results = index.search(images, args.k, args.backend)
    seconds = time.perf_counter() - start
    payload = {
        "index": str(args.index),
        "backend": args.backend,
        "k": args.k,
        "seconds": round(seconds, 4),
        "queries": [
            {"query": str(q), "silent": hits.silent, "results": [h.to_dict() for h in hits]}
            for q, hits in zip(args.images, results, strict=True)
        ],
    }
    from lava_retrieval.web import SILENT_WARNING

    for q, hits in zip(args.images, results, strict=True):
        if hits.silent:
            print(f"warning: {q}: {SILENT_WARNING}", file=sys.stderr)
    if args.png:
        from lava_retrieval.search_figure import draw

        payload["png"] = str(draw(args.png, images, args.images, results, index))

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

    _emit(args, payload, text)


def _cmd_serve(args: argparse.Namespace) -> None:
    from lava_retrieval.web import serve

    if not 0 <= args.port <= 65535:
        raise LavaRetrievalError(f"--port must be in 0..65535, got {args.port}")
    if args.k < 1 or args.corpus < 1 or args.max_upload_mb <= 0:
        raise LavaRetrievalError("-k, --corpus and --max-upload-mb must be positive")
    checkpoint = None
    if args.checkpoint:
        from lava_retrieval.train import load_checkpoint

        checkpoint = load_checkpoint(args.checkpoint)
    serve(
        args.index,
        args.host,
        args.port,
        args.k,
        int(args.max_upload_mb * 2**20),
        checkpoint,
        args.corpus,
        args.data_dir,
        log=_log(args),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lava-retrieval`` command.

    >>> build_parser().parse_args(["data", "--json"]).json
    True
    """
    from lava_retrieval.ann import ACTIVATIONS
    from lava_retrieval.calibration import PERCENTILES
    from lava_retrieval.conversion import POOL_MODES, ConversionConfig
    from lava_retrieval.data import DEFAULT_VALIDATION_FRACTION
    from lava_retrieval.embedding import BACKENDS
    from lava_retrieval.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
    from lava_retrieval.methods import DEFAULT_METHOD, METHODS
    from lava_retrieval.neuron import RESET_MODES
    from lava_retrieval.sim import ENGINES, READOUTS, TIMINGS
    from lava_retrieval.train import TrainConfig

    defaults = TrainConfig()
    parser = _Parser(
        prog="lava-retrieval",
        description="Content-based image retrieval with spiking-network embeddings on Lava.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.add_argument(
            "--data-dir",
            help="directory holding the four Fashion-MNIST IDX files (default: look them up)",
        )
        return p

    p = add("data", _cmd_data, "locate, verify (or download) Fashion-MNIST and summarise it")
    p.add_argument("--download", action="store_true", help="download missing files first")
    p.add_argument("--no-download", action="store_true", help="never download")
    p.add_argument(
        "--validation-fraction", type=_finite, default=DEFAULT_VALIDATION_FRACTION, metavar="F"
    )

    p = add("train", _cmd_train, "train an ANN of the paper's family on the CPU")
    p.add_argument("--arch", default=defaults.arch, help="spec such as 32-64-10")
    p.add_argument("--epochs", type=_count, default=defaults.epochs)
    p.add_argument("--seed", type=_natural, default=defaults.seed)
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--batch-size", type=_count, default=defaults.batch_size)
    p.add_argument("--learning-rate", type=_finite, default=defaults.learning_rate)
    p.add_argument("--weight-decay", type=_finite, default=defaults.weight_decay)
    p.add_argument("--dropout", type=_finite, default=defaults.dropout)
    p.add_argument("--warmup-epochs", type=_finite, default=defaults.warmup_epochs)
    p.add_argument(
        "--validation-fraction", type=_finite, default=defaults.validation_fraction, metavar="F"
    )
    p.add_argument("--train-limit", type=_count, help="train on the first N training images only")
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
        type=_count,
        default=8,
        metavar="L",
        help="quantisation levels of --activation qcfs (default 8)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    conv = ConversionConfig()

    def conversion_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--checkpoint", help="ANN checkpoint directory (default: the shipped 32-64-10)"
        )
        p.add_argument(
            "--percentile",
            type=_finite,
            default=conv.param_percentile,
            help="parameter and activation percentile (100: the preprint's max-based variant)",
        )
        p.add_argument("--pool-mode", choices=POOL_MODES, default=conv.pool_mode)
        p.add_argument(
            "--reset",
            choices=RESET_MODES,
            default=conv.reset,
            help="subtract: soft reset, the paper's neuron; zero: hard reset, Lava's built-in LIF",
        )
        p.add_argument(
            "--initial-membrane",
            type=_finite,
            default=conv.initial_membrane,
            metavar="F",
            help="every neuron's potential at the start of each window, as a fraction of its "
            "threshold (0: the paper's rest; 0.5: the conversion literature's choice; default: "
            "0.5 for an ANN trained with --activation qcfs, else 0)",
        )
        p.add_argument("--weight-bits", type=_count, default=conv.num_weight_bits)
        p.add_argument("--bias-bits", type=_count, default=conv.num_bias_bits)
        p.add_argument("--calibration-size", type=_count, default=conv.calibration_size)
        p.add_argument("--calibration-seed", type=_natural, default=conv.calibration_seed)

    p = add("convert", _cmd_convert, "convert an ANN into a spiking network (Algorithm 1)")
    conversion_options(p)
    p.add_argument("--out", required=True, help="spiking-network file to write (.npz)")
    p.add_argument(
        "--activation-percentile",
        type=_finite,
        metavar="P",
        help="the thresholds' percentile alone (default: --percentile); `calibrate` chooses it",
    )
    p.add_argument("--export-netx", metavar="H5", help="also write a lava-dl netx hdf5 file")
    p.add_argument("--loihi-report", metavar="PNG", help="draw the Loihi core map")
    p.add_argument("--allow-undeployable", action="store_true")

    p = add("embed", _cmd_embed, "embed a data split with the spiking network")
    p.add_argument("--network", required=True, help="spiking-network file from `convert`")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="lava",
        help="what runs the network. lava: the Lava process graph, fixed point; lava-float: "
        "floating point; loihi: Lava's Conv/Dense/LIF on the CPU (needs a network converted "
        "with --reset zero --weight-bits 8, one image per run); loihi-hw: the same on a chip "
        "(needs lava-loihi); sim: the fast simulator (see --engine). All give the same numbers.",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="the simulator's implementation, for --backend sim: events (compiled, "
        "event-driven), torch (dense), auto (events where it can run the network)",
    )
    p.add_argument(
        "--timing",
        choices=TIMINGS,
        default="delay",
        help="delay: one window for all layers (the paper's); pipelined: each layer's window "
        "starts its depth in steps later (same numbers as no_delay); no_delay: sim only",
    )
    p.add_argument("--time-steps", type=_count, default=16)
    p.add_argument("--split", choices=["train", "validation", "test", "full_train"], default="test")
    p.add_argument("--limit", type=_count, help="only the first N images of the split")
    p.add_argument("--readout", choices=READOUTS, default="membrane")
    p.add_argument("--batch-size", type=_count, default=256, help="images per Lava window")
    p.add_argument("--out", required=True, help="embeddings file (.npy); a .json goes beside it")

    def method_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--method",
            choices=METHODS,
            help=f"qcfs: the QCFS-trained ANN, learned thresholds, initial membrane 0.5, "
            "pipelined timing, integrated readout; paper: Liu et al. 2022 as published (ReLU "
            "ANN, Algorithm 1, Lava timing, membrane readout). Default: the method whose ANN "
            f"--network was converted from, else {DEFAULT_METHOD}. The flags below override "
            "its parts.",
        )
        p.add_argument("--readout", choices=READOUTS, help="default: the method's")
        p.add_argument(
            "--timing",
            choices=TIMINGS,
            help="delay (the paper's), pipelined or no_delay (the same numbers as pipelined); "
            "default: the method's",
        )

    p = add("evaluate", _cmd_evaluate, "the paper's Table 2: ANN and SNN(T) retrieval metrics")
    method_options(p)
    p.add_argument("--network", help="spiking network (default: convert the method's ANN)")
    p.add_argument("--checkpoint", help="ANN checkpoint (default: the method's shipped one)")
    p.add_argument("--time-steps", type=_count, nargs="+", default=[16, 128])
    p.add_argument("--engine", choices=ENGINES, default="auto", help="the simulator's engine")
    p.add_argument("--limit-corpus", type=_count, help="first N training images only (quick looks)")
    p.add_argument("--limit-queries", type=_count, help="first N test images only")
    p.add_argument(
        "--out-dir",
        default="runs/evaluate",
        help="where STEM.{json,csv,md} go (default runs/evaluate; the committed results/ only "
        "when named)",
    )
    p.add_argument("--stem", default="table2", help="file name stem of the results")
    p.add_argument("--no-progress", action="store_true")

    p = add(
        "calibrate",
        _cmd_calibrate,
        "choose the activation percentile on the validation split (never the test split)",
    )
    conversion_options(p)
    p.add_argument(
        "--time-steps",
        type=_count,
        nargs="+",
        default=[16],
        help="one or more T; the mean validation accuracy over them decides",
    )
    p.add_argument("--timing", choices=TIMINGS, default="delay")
    p.add_argument(
        "--percentiles",
        type=_finite,
        nargs="+",
        default=list(PERCENTILES),
        metavar="P",
        help="candidate activation percentiles",
    )
    p.add_argument("--limit", type=_count, help="first N validation images only (default: all)")
    p.add_argument("--out", help="also write the result as JSON")

    p = add("demo", _cmd_demo, "retrieval demo: convert, embed, query through the Lava graph")
    p.add_argument("--out", default="runs/demo-retrieval.png", help="the Fig. 6-style PNG")
    p.add_argument("--corpus", type=_count, default=60000, help="training images in the corpus")
    p.add_argument("--time-steps", type=_count, default=16)
    p.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help=f"how the shipped ANN becomes spiking embeddings (default {DEFAULT_METHOD}; "
        "paper: Liu et al. 2022 as published)",
    )

    def image_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--max-bytes", type=_count, default=DEFAULT_MAX_BYTES, help="largest image file read"
        )
        p.add_argument(
            "--max-pixels", type=_count, default=DEFAULT_MAX_PIXELS, help="largest image read"
        )

    def source_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "source",
            help="a folder of images (recursive), a list file of image paths, or a Fashion-MNIST "
            "split: fashion-mnist:train|validation|test|full_train",
        )
        p.add_argument("--limit", type=_count, help="only the first N images of the source")
        p.add_argument(
            "--backend",
            choices=("sim", "lava"),
            default="sim",
            help="sim: the fast simulator; lava: the Lava process graph (same embeddings)",
        )
        image_options(p)

    index_parser = sub.add_parser(
        "index", help="build or extend an index of images", description="build or extend an "
        "index of images: embeddings, ids, paths, labels, the network and its settings",
    )  # fmt: skip
    index_sub = index_parser.add_subparsers(dest="index_command", required=True, metavar="ACTION")

    def add_index(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        p = index_sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.add_argument("--data-dir", help="directory of the Fashion-MNIST IDX files")
        return p

    p = add_index("build", _cmd_index_build, "embed a source of images into a new index")
    source_options(p)
    p.add_argument("--out", required=True, help="index directory to create")
    p.add_argument("--network", help="spiking network (default: convert the method's ANN)")
    p.add_argument(
        "--method", choices=METHODS, help=f"default {DEFAULT_METHOD} (see `evaluate --help`)"
    )
    p.add_argument("--time-steps", type=_count, default=16)
    p.add_argument("--readout", choices=READOUTS, help="default: the method's")
    p.add_argument("--timing", choices=TIMINGS, help="default: the method's")
    p.add_argument("--engine", choices=ENGINES, default="auto", help="the simulator's engine")
    p.add_argument(
        "--no-invert",
        action="store_true",
        help="never invert images (default: invert images with a light background)",
    )

    p = add_index("add", _cmd_index_add, "embed more images into an index, with its settings")
    p.add_argument("index", help="index directory")
    source_options(p)

    p = add("search", _cmd_search, "the k most similar indexed images of each query image")
    p.add_argument("index", help="index directory from `index build`")
    p.add_argument(
        "images", nargs="+", help="query image files, or fashion-mnist:SPLIT:I for image I"
    )
    p.add_argument("-k", type=_count, default=10, help="results per query (default 10)")
    p.add_argument(
        "--backend",
        choices=("sim", "lava"),
        default="sim",
        help="sim: simulator and host search; lava: the Lava graph (encoder, layers, probe, "
        "kNN); the same answers",
    )
    p.add_argument("--png", help="draw queries and results into this PNG")
    p.add_argument(
        "--network", help="refuse to search unless this network is the index's (a check)"
    )
    p.add_argument(
        "--no-invert", action="store_true", help="never invert the queries (default: the index's)"
    )
    image_options(p)

    p = add("serve", _cmd_serve, "a web page: search an index with your own image")
    p.add_argument(
        "--index", help="index directory (default: index the first --corpus training images)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: local)")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("-k", type=_count, default=5, help="results per query (default 5)")
    p.add_argument("--max-upload-mb", type=_finite, default=8.0, help="largest upload (8 MiB)")
    p.add_argument("--checkpoint", help="the ANN for the ANN column (default: the method's)")
    p.add_argument("--corpus", type=_count, default=10000, help="images indexed without --index")

    p = add(
        "reproduce", _cmd_reproduce,
        "regenerate every table and figure of the paper beside its numbers "
        "(results/REPRODUCTION.md)",
    )  # fmt: skip
    p.add_argument(
        "--quick", action="store_true",
        help="fewer images and repeats (minutes, for checking; default out: runs/reproduce-quick)",
    )  # fmt: skip
    p.add_argument("--only", metavar="STEPS", help="comma-separated steps, e.g. table1,fig4")
    p.add_argument("--out-dir", help="where results go (default: results)")
    p.add_argument("--checkpoints", default="checkpoints", help="the trained networks' directory")
    p.add_argument("--device", default="cpu", help="also time the ANN here, e.g. cuda")
    p.add_argument("--force", action="store_true", help="redo steps that are up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("evaluate-ann", _cmd_evaluate_ann, "train/validation/test accuracy of an ANN")
    p.add_argument("--checkpoint", help="checkpoint directory (default: the shipped 32-64-10)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    >>> main(["evaluate-ann", "--checkpoint", "/nonexistent"])  # doctest: +SKIP
    2
    """
    from lava_retrieval.lava_runtime import terminate_as_interrupt

    try:
        with terminate_as_interrupt():  # from the start: a signal during imports is handled too
            parser = build_parser()
            argv = list(sys.argv[1:] if argv is None else argv)
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help, or a bad option (already reported)
                return int(exc.code or 0)
            args.command_line = ["lava-retrieval", *argv]
            args.handler(args)
    except LavaRetrievalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
