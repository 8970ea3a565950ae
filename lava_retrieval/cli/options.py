"""What every command shares: the parser that reports one line, option types that range-check,
the shared option groups, and JSON or text output."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` shows every option's default (unless its text already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and action.option_strings
            and default is not None
            and default is not False
            and default != argparse.SUPPRESS
        ):
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
        return text


class Parser(argparse.ArgumentParser):
    """Bad options give one line, ``error: COMMAND: problem``, and exit status 2."""

    def add_argument(self, *args, **kwargs):
        # An option without a text still gets a help line, for its default.
        default = kwargs.get("default")
        if "help" not in kwargs and default is not None and default is not False:
            kwargs["help"] = "default: %(default)s"
        return super().add_argument(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def add_command(
    sub: argparse._SubParsersAction, name: str, handler: Callable, help_text: str
) -> argparse.ArgumentParser:
    """A command ``name`` run by ``handler(args)``, with ``--json`` and ``--data-dir``."""
    p = sub.add_parser(
        name, help=help_text, description=help_text, formatter_class=DefaultsFormatter
    )
    p.set_defaults(handler=handler, command_parser=p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--data-dir",
        help="directory holding the four Fashion-MNIST IDX files (default: look them up)",
    )
    return p


def output_option(
    p: argparse.ArgumentParser,
    *flags: str,
    directory: bool = False,
    sidecar: str | None = None,
    needed_by: tuple[str, ...] = (),
    **kwargs,
) -> argparse.Action:
    """An option naming a file (``directory``: a directory) that the command writes. Before
    the command runs, :func:`check_outputs` checks every such option of it (and the file
    ``sidecar``, a suffix, that is written beside it); ``needed_by``: options (their
    destinations) that have no effect without this one, refused when given alone."""
    default = kwargs.get("default")
    if isinstance(default, str) and not os.path.isabs(default):
        kwargs["help"] = (
            f"{kwargs.get('help', '')} (default: {default}, under the working directory)"
        )
    action = p.add_argument(*flags, **kwargs)
    outputs = p.get_default("outputs") or ()
    p.set_defaults(outputs=(*outputs, (action.option_strings[0], action.dest, directory, sidecar)))
    if needed_by:
        needs = p.get_default("needs") or ()
        p.set_defaults(needs=(*needs, *((dest, action.dest) for dest in needed_by)))
    return action


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output path that cannot be written as a file (see
    :func:`lava_retrieval.common.atomic.check_outputs`) and an option given without the one
    it needs (a usage error of the command's parser)."""
    from pathlib import Path

    from lava_retrieval.common.atomic import check_outputs as check

    parser = args.command_parser
    options = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    for dest, needed in getattr(args, "needs", ()):
        if getattr(args, dest, None) is not None and getattr(args, needed, None) is None:
            parser.error(f"{options[dest]} has no effect without {options[needed]}")
    named = []
    for option, dest, directory, sidecar in getattr(args, "outputs", ()):
        path = getattr(args, dest, None)
        named.append((option, path, directory))
        if sidecar and path and Path(path).name:  # ("/" has none: refused as a directory)
            named.append((f"{option}'s {sidecar} file", Path(path).with_suffix(sidecar), False))
    check(named)


def _number(parse, text: str, *args):
    """``parse(text, *args)`` (a :mod:`~lava_retrieval.common.strict` parser) for argparse."""
    from lava_retrieval.common.strict import ParseError

    try:
        return parse(text, *args)
    except ParseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def count(text: str) -> int:
    from lava_retrieval.common.strict import integer

    return _number(integer, text, "a positive integer", 1)


def natural(text: str) -> int:
    from lava_retrieval.common.strict import integer

    return _number(integer, text, "an integer >= 0", 0)


def identifier(text: str) -> int:
    """An image id of an index (argparse type)."""
    from lava_retrieval.common.strict import MAX_ITEM_ID, integer

    return _number(integer, text, "an image id", 0, MAX_ITEM_ID)


def port(text: str) -> int:
    from lava_retrieval.common.strict import integer

    return _number(integer, text, "a port number", 0, 65535)


def finite(text: str) -> float:
    from lava_retrieval.common.strict import decimal

    return _number(decimal, text, "a finite number")


def positive(text: str) -> float:
    from lava_retrieval.common.strict import decimal

    value = _number(decimal, text, "a positive finite number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive finite number")
    return value


def json_safe(value):
    """``value`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def emit(args: argparse.Namespace, payload: dict, text: Callable[[dict], str]) -> None:
    if args.json:
        print(json.dumps(json_safe(payload), allow_nan=False))
    else:
        print(text(payload))


def note(line: str) -> None:
    """A note on stderr (what a command chose for the user)."""
    print(line, file=sys.stderr, flush=True)


def log(args: argparse.Namespace) -> Callable[[str], None]:
    return lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True)


def conversion_options(p: argparse.ArgumentParser) -> None:
    """The conversion settings of ``convert`` and ``calibrate`` (:class:`ConversionConfig`)."""
    from lava_retrieval.conversion.algorithm import POOL_MODES, ConversionConfig
    from lava_retrieval.snn.neuron import RESET_MODES

    conv = ConversionConfig()
    p.add_argument("--checkpoint", help="ANN checkpoint directory (default: the shipped 32-64-10)")
    p.add_argument(
        "--percentile",
        type=finite,
        default=conv.param_percentile,
        help="parameter and activation percentile (100: the preprint's max-based variant)",
    )
    p.add_argument(
        "--pool-mode",
        choices=POOL_MODES,
        default=conv.pool_mode,
        help="separate: a layer of neurons per pooling (the paper's); folded: into the next layer",
    )
    p.add_argument(
        "--reset",
        choices=RESET_MODES,
        default=conv.reset,
        help="subtract: soft reset, the paper's neuron; zero: hard reset, Lava's built-in LIF",
    )
    p.add_argument(
        "--initial-membrane",
        type=finite,
        default=conv.initial_membrane,
        metavar="F",
        help="every neuron's potential at the start of each window, as a fraction of its "
        "threshold (0: the paper's rest; 0.5: the conversion literature's choice; default: "
        "0.5 for an ANN trained with --activation qcfs, else 0)",
    )
    p.add_argument(
        "--analog-input",
        action="store_true",
        help="the image enters the first synapse layer as a graded pixel current instead of "
        "through a layer of input neurons",
    )
    p.add_argument(
        "--input-levels",
        type=count,
        metavar="P",
        help="levels of the analog pixel current, 1..255 (default: those of the ANN's input "
        "quantiser, else the largest weight)",
    )
    p.add_argument(
        "--weight-bits",
        type=count,
        default=conv.num_weight_bits,
        help="bits of the integer weights (8 for Loihi's synapses)",
    )
    p.add_argument(
        "--bias-bits", type=count, default=conv.num_bias_bits, help="bits of the integer biases"
    )
    p.add_argument(
        "--calibration-size",
        type=count,
        default=conv.calibration_size,
        help="training images whose activations set the scales",
    )
    p.add_argument(
        "--calibration-seed",
        type=natural,
        default=conv.calibration_seed,
        help="which training images calibrate",
    )


def method_options(p: argparse.ArgumentParser) -> None:
    """``--method`` and the flags that override its parts (see :func:`methods.resolve`)."""
    from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS
    from lava_retrieval.snn.config import READOUTS, TIMINGS

    p.add_argument(
        "--method",
        choices=METHODS,
        help="; ".join(
            f"{name}: T = {'/'.join(map(str, m.time_steps))}, {m.timing}, {m.readout}"
            for name, m in METHODS.items()
        )
        + " (lava-retrieval methods describes each and where it runs). Default: the method "
        f"whose ANN --network was converted from, else {DEFAULT_METHOD}. The flags below "
        "override its parts.",
    )
    p.add_argument("--readout", choices=READOUTS, help="default: the method's")
    p.add_argument(
        "--timing",
        choices=TIMINGS,
        help="delay (the paper's), pipelined or no_delay (the same numbers as pipelined), "
        "exact_count (each layer integrates T steps, then fires T: its count is that of its "
        "whole input), graded (each layer sends that count as one graded message: T levels, "
        "one step a layer), sigma_delta (Loihi 2's sigma-delta neurons: one graded message "
        "per layer and image, T not used); default: the method's",
    )


def image_options(p: argparse.ArgumentParser) -> None:
    """The limits on image files read."""
    from lava_retrieval.data.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

    p.add_argument(
        "--max-bytes", type=count, default=DEFAULT_MAX_BYTES, help="largest image file read"
    )
    p.add_argument(
        "--max-pixels", type=count, default=DEFAULT_MAX_PIXELS, help="largest image read"
    )


def source_options(p: argparse.ArgumentParser) -> None:
    """The images ``index build`` and ``index add`` embed."""
    p.add_argument(
        "source",
        help="a folder of images (recursive), a list file of image paths, a Fashion-MNIST "
        "split: fashion-mnist:train|validation|test|full_train, or fashion-mnist:augmented:N "
        "(N seeded crops, shifts and flips of its 70,000 images)",
    )
    p.add_argument("--limit", type=count, help="only the first N images of the source")
    from lava_retrieval.search.image_index import SEARCH_BACKENDS

    p.add_argument(
        "--backend",
        choices=SEARCH_BACKENDS,
        default="sim",
        help="sim: the fast simulator; lava: the Lava process graph; loihi: Lava's own "
        "built-in processes (method qcfs8-sdnn: sigma-delta neurons); the same embeddings",
    )
    image_options(p)
