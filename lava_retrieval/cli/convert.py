"""``lava-retrieval convert`` and ``calibrate``: Algorithm 1 and its activation percentile."""

from __future__ import annotations

import argparse
import json

from lava_retrieval.cli.options import (
    add_command,
    conversion_options,
    count,
    emit,
    finite,
    log,
    output_option,
)
from lava_retrieval.common.errors import LavaRetrievalError


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


def run_convert(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from lava_retrieval.ann.checkpoint import load_checkpoint
    from lava_retrieval.conversion.export import convert_to_file
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.loihi import resources as loihi

    config = _conversion_config(args)
    if args.activation_percentile is not None:
        config = replace(config, activation_percentile=args.activation_percentile)
    checkpoint = args.checkpoint
    if args.sdnn:
        parser = args.command_parser
        given = [
            option
            for option in _algorithm1_options()
            if getattr(args, option) != parser.get_default(option)
        ]
        if given:
            names = ", ".join("--" + o.replace("_", "-") for o in given)
            raise LavaRetrievalError(f"{names}: Algorithm 1's options do not apply with --sdnn")
    if args.sdnn and checkpoint is None:  # the sigma-delta method's
        from lava_retrieval.conversion.methods import METHODS

        checkpoint = next(m for m in METHODS.values() if m.converter == "sdnn").checkpoint_path
    network, payload = convert_to_file(
        load_checkpoint(checkpoint),
        load_fashion_mnist(args.data_dir),
        config,
        args.out,
        export_netx=args.export_netx,
        export_nir=args.export_nir,
        nir_timing=args.nir_timing or "no_delay",
        loihi_report=args.loihi_report,
        allow_undeployable=args.allow_undeployable,
        sdnn=args.sdnn,
    )
    payload["command"] = args.command_line
    chip = payload["loihi"]

    def text(p: dict) -> str:
        what = (
            f"sigma-delta, state exponents {network.manifest['sdnn']['state_exp']}"
            if args.sdnn
            else f"pooling {config.pool_mode}, reset {config.reset}"
        )
        lines = [
            f"converted {p['checkpoint']} -> {p['network']} ({what}, "
            f"initial membrane {network.initial_membrane:g} x threshold, "
            f"embedding {p['embedding_layer']} "
            f"{'x'.join(map(str, p['embedding_shape']))})",
            _layer_table(p["layers"]),
            f"Loihi: {chip['total_cores']} of {loihi.NUM_CORES} cores, "
            + ("deployable" if chip["deployable"] else f"NOT deployable: {chip['reason']}"),
        ]
        lines += [f"warning: {w}" for w in chip["warnings"]]
        lines += [f"{k}: {p[k]}" for k in ("netx", "nir", "loihi_report") if k in p]
        return "\n".join(lines)

    emit(args, payload, text)


def _algorithm1_options() -> list[str]:
    """The options of Algorithm 1 (``conversion_options`` but the checkpoint,
    ``--activation-percentile``, ``--nir-timing``), which the sigma-delta conversion does not
    use."""
    probe = argparse.ArgumentParser(add_help=False)
    conversion_options(probe)
    dests = [action.dest for action in probe._actions if action.dest != "checkpoint"]
    return [*dests, "activation_percentile", "nir_timing"]


def _conversion_config(args: argparse.Namespace):
    from lava_retrieval.conversion.algorithm import ConversionConfig

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
        analog_input=args.analog_input,
        input_levels=args.input_levels,
    )


def run_calibrate(args: argparse.Namespace) -> None:
    from lava_retrieval.ann.checkpoint import load_checkpoint
    from lava_retrieval.common.atomic import write_text
    from lava_retrieval.conversion.methods import METHODS
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.evaluation.calibration import calibrate

    result = calibrate(
        load_checkpoint(args.checkpoint),
        load_fashion_mnist(args.data_dir),
        _conversion_config(args),
        METHODS["paper"].sim_config(timing=args.timing),
        time_steps=tuple(args.time_steps),
        percentiles=tuple(args.percentiles),
        limit=args.limit,
        progress=not args.json,
        log=log(args),
    )
    result["command"] = args.command_line
    if args.out:
        write_text(args.out, json.dumps(result, indent=2) + "\n")
        result["file"] = str(args.out)
    emit(
        args,
        result,
        lambda r: (
            f"best activation percentile on {r['protocol']['images']} validation images: "
            f"{r['best']:g} ({r['best_validation_accuracy']:.2f} %); convert with "
            f"--activation-percentile {r['best']:g}"
        ),
    )


def register_convert(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.snn.config import TIMINGS

    p = add_command(
        sub, "convert", run_convert, "convert an ANN into a spiking network (Algorithm 1)"
    )
    conversion_options(p)
    output_option(p, "--out", required=True, help="spiking-network file to write (.npz)")
    p.add_argument(
        "--activation-percentile",
        type=finite,
        metavar="P",
        help="the thresholds' percentile alone (default: --percentile); `calibrate` chooses it",
    )
    p.add_argument(
        "--sdnn",
        action="store_true",
        help="convert for Loihi 2's sigma-delta neurons (method qcfs8-sdnn): power-of-two "
        "thresholds, 8-bit weights, graded messages; needs an ANN trained with --activation "
        "qcfs --input-levels 255 (default: the shipped 32-64-10-qcfs8s); the Algorithm 1 "
        "options above do not apply",
    )
    output_option(
        p,
        "--export-netx",
        metavar="H5",
        help="also write a lava-dl netx hdf5 file (with --sdnn: an SDNN file, loaded with "
        "lava_retrieval.exports.netx_sdnn.load_sdnn)",
    )
    output_option(
        p,
        "--export-nir",
        needed_by=("nir_timing",),
        metavar="FILE",
        help="also write the network as a NIR graph (HDF5; needs the nir extra): what NIR "
        "cannot state (soft reset, initial potential, timing) is in its metadata",
    )
    p.add_argument(
        "--nir-timing",
        choices=TIMINGS,
        help="the timing the NIR graph is run with, recorded in it: no_delay or pipelined "
        "(the others cannot be stated in NIR; default: no_delay)",
    )
    output_option(p, "--loihi-report", metavar="PNG", help="draw the Loihi core map")
    p.add_argument(
        "--allow-undeployable",
        action="store_true",
        help="write the network even if it does not fit one Loihi chip",
    )


def register_calibrate(sub) -> None:
    """Add the command to ``sub``."""
    from lava_retrieval.conversion.methods import METHODS
    from lava_retrieval.evaluation.calibration import PERCENTILES
    from lava_retrieval.snn.config import TIMINGS

    paper = METHODS["paper"]  # Algorithm 1's calibration serves the paper's method

    p = add_command(
        sub,
        "calibrate",
        run_calibrate,
        "choose the activation percentile on the validation split (never the test split)",
    )
    conversion_options(p)
    p.add_argument(
        "--time-steps",
        type=count,
        nargs="+",
        default=list(paper.time_steps[:1]),
        help="one or more T; the mean validation accuracy over them decides",
    )
    p.add_argument(
        "--timing",
        choices=TIMINGS,
        default=paper.timing,
        help="the timing the network will run with",
    )
    p.add_argument(
        "--percentiles",
        type=finite,
        nargs="+",
        default=list(PERCENTILES),
        metavar="P",
        help="candidate activation percentiles",
    )
    p.add_argument("--limit", type=count, help="first N validation images only (default: all)")
    output_option(p, "--out", help="also write the result as JSON")
