"""The ``lava-retrieval`` command line: :func:`main` parses and dispatches; each command lives
in its own module with its options (``data``, ``ann``: train and evaluate-ann, ``convert``:
convert and calibrate, ``embed``, ``evaluate``, ``demo``, ``index``: index and search,
``serve``, ``reproduce``), and the work is a library function it calls.

Every command that reports numbers takes ``--json`` and then prints exactly one JSON object on
stdout (progress bars and logs go to stderr). Bad input gives ``error: ...`` on stderr and exit
status 2, never a traceback. The parser does every range check (:mod:`.options`).

May import: every other subpackage (the top layer).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from lava_retrieval.cli.options import Parser
from lava_retrieval.common.atomic import FULL
from lava_retrieval.common.errors import LavaRetrievalError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lava-retrieval`` command.

    >>> build_parser().parse_args(["data", "--json"]).json
    True
    """
    from lava_retrieval.cli import (
        ann,
        convert,
        data,
        demo,
        embed,
        evaluate,
        index,
        methods,
        reproduce,
        serve,
    )

    parser = Parser(
        prog="lava-retrieval",
        description="Content-based image retrieval with spiking-network embeddings on Lava.",
        epilog="Relative paths, the defaults' included, are taken from the working directory; "
        "no command writes into the installed package. `lava-retrieval COMMAND --help` for "
        "each command's options and defaults.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (
        data.register,
        ann.register_train,
        convert.register_convert,
        embed.register,
        evaluate.register,
        convert.register_calibrate,
        methods.register,
        demo.register,
        index.register_index,
        index.register_search,
        serve.register,
        reproduce.register,
        ann.register_evaluate_ann,
    ):
        register(sub)
    return parser


def _forget_unhandled_interrupt() -> None:
    """Make a handled Ctrl-C end the program with the status it returns.

    CPython remembers a KeyboardInterrupt that left code run by ``exec``/``eval`` of a string
    (``dataclasses`` builds every dataclass's methods that way, so an import can be interrupted
    there) and, at exit, ends the interpreter by SIGINT instead of with the status it was
    given, even after the interrupt was caught. Any later ``exec`` of a string clears that
    record."""
    exec("None")  # noqa: S102 - a constant string, run for its side effect on the record


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    >>> main(["evaluate-ann", "--checkpoint", "/nonexistent"])
    2
    """
    from lava_retrieval.cli.options import check_outputs
    from lava_retrieval.common.lava_runtime import terminate_as_interrupt

    as_program = argv is None
    try:
        with terminate_as_interrupt():  # from the start: a signal during imports is handled too
            parser = build_parser()
            argv = list(sys.argv[1:] if argv is None else argv)
            try:
                args = parser.parse_args(argv)
                check_outputs(args)  # every output path, before any work
            except SystemExit as exc:  # --help, or a bad option (already reported)
                return int(exc.code or 0)
            args.command_line = ["lava-retrieval", *argv]
            args.handler(args)
    except LavaRetrievalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`... --json | head`): end quietly, as
        # tools killed by SIGPIPE do; what is still buffered goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:  # a full disk outside the atomic writers (a directory, a lock file)
        if exc.errno not in FULL:
            raise
        print(f"error: {exc.filename or 'writing'}: {os.strerror(exc.errno)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if as_program:  # ending anyway: a second Ctrl-C must not turn 130 into death by signal
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, signal.SIG_IGN)
            _forget_unhandled_interrupt()
        print("interrupted", file=sys.stderr)
        return 130
    return 0
