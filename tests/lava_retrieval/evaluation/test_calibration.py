"""Choosing the activation percentile on the validation split."""

from __future__ import annotations

import json

import pytest

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.cli import main
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.conversion.algorithm import ConversionConfig
from lava_retrieval.evaluation.calibration import calibrate, chosen_config
from lava_retrieval.snn.config import SimConfig


def test_calibration_uses_the_validation_split_and_picks_the_best(fashion):
    result = calibrate(
        load_checkpoint(),
        fashion,
        ConversionConfig(calibration_size=200, initial_membrane=0.5),
        SimConfig(timing="pipelined", time_steps=16, readout="membrane"),
        time_steps=(4, 6),
        percentiles=(99.0, 100.0),
        limit=120,
        progress=False,
    )
    assert result["protocol"]["split"] == "validation" and result["protocol"]["images"] == 120
    accuracies = {r["percentile"]: r["validation_accuracy"] for r in result["rows"]}
    assert set(accuracies) == {99.0, 100.0}
    assert result["best_validation_accuracy"] == max(accuracies.values()) > 50
    assert accuracies[result["best"]] == result["best_validation_accuracy"]
    for row in result["rows"]:  # the mean over the time steps asked for
        per_t = row["by_time_steps"]
        assert set(per_t) == {"4", "6"}
        assert row["validation_accuracy"] == pytest.approx(sum(per_t.values()) / 2, abs=1e-4)
    assert chosen_config(result, ConversionConfig()).activation_percentile == result["best"]
    with pytest.raises(LavaRetrievalError, match="at least one percentile"):
        calibrate(load_checkpoint(), fashion, percentiles=())


def test_calibrate_command(tmp_path, capsys):
    out = tmp_path / "calibration.json"
    argv = [
        "calibrate",
        "--limit",
        "60",
        "--time-steps",
        "4",
        "--calibration-size",
        "100",
        "--percentiles",
        "99.9",
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["best"] == 99.9 and json.loads(out.read_text())["best"] == 99.9
    assert main([*argv[:-1], "--initial-membrane", "1.5"]) == 2
    assert "initial_membrane=1.5" in capsys.readouterr().err
