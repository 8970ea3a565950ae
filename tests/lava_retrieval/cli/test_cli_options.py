"""Options are range-checked before any work: one `error:` line, exit status 2."""

from __future__ import annotations

import pytest

from lava_retrieval.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["embed", "--network", "n", "--out", "o", "--time-steps", "0"], "positive integer"),
        (["embed", "--network", "n", "--out", "o", "--batch-size", "-1"], "positive integer"),
        (["embed", "--network", "n", "--out", "o", "--limit", "0"], "positive integer"),
        (["train", "--out", "o", "--learning-rate", "nan"], "finite number"),
        (["train", "--out", "o", "--learning-rate", "1e9"], "learning_rate=1000000000.0"),
        (["train", "--out", "o", "--seed", "-1"], "integer >= 0"),
        (["train", "--out", "o", "--epochs", "0"], "positive integer"),
        (["train", "--out", "o", "--levels", "x", "--activation", "qcfs"], "positive integer"),
        (["evaluate", "--limit-corpus", "0"], "positive integer"),
        (["evaluate", "--time-steps", "4", "-3"], "positive integer"),
        (["calibrate", "--limit", "0"], "positive integer"),
        (["calibrate", "--percentiles", "inf"], "finite number"),
        (["demo", "--corpus", "0"], "positive integer"),
        (["index", "build", "s", "--out", "o", "--time-steps", "0"], "positive integer"),
        (["search", "i", "q", "-k", "0"], "positive integer"),
        (["serve", "--port", "70000"], "port number"),
        (["serve", "--max-upload-mb", "nan"], "finite number"),
        (["convert", "--out", "o", "--calibration-size", "0"], "positive integer"),
    ],
)
def test_bad_options(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subparsers(sub):
                    yield f"{name} {inner}", subsub


def test_every_option_with_a_default_shows_it_in_help():
    from lava_retrieval.cli import build_parser

    commands = dict(_subparsers(build_parser()))
    assert {"data", "train", "convert", "embed", "evaluate", "index build", "search"} <= set(
        commands
    )
    for name, parser in commands.items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            default = action.default
            if (
                action.option_strings
                and default not in (None, "==SUPPRESS==")
                and default is not False
            ):
                helped = parser._get_formatter()._expand_help(action)
                assert "default" in helped, (name, action.option_strings)
                assert " ".join(helped.split()[:3]) in text or helped in text, name
