"""``lava-retrieval convert``: table and JSON, Loihi refusal, netx export, clear errors."""

from __future__ import annotations

import json

from lava_retrieval.cli import main
from lava_retrieval.snn.network import SpikingNetwork

FAST = ["--calibration-size", "200"]


def test_convert_json_and_report(tmp_path, capsys):
    out, png = tmp_path / "net.npz", tmp_path / "chip.png"
    argv = ["convert", "--out", str(out), "--loihi-report", str(png), "--json", *FAST]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in payload["layers"]] == [
        "input",
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "dense1",
    ]
    assert payload["embedding_shape"] == [64, 4, 4]
    assert payload["loihi"]["total_cores"] == 55 and payload["loihi"]["deployable"]
    assert all(r["threshold"] >= 1 for r in payload["layers"])
    network = SpikingNetwork.load(out)
    assert network.manifest["calibration_size"] == 200
    assert network.manifest["source_sha256"]
    assert png.stat().st_size > 1000


def test_convert_prints_a_table(tmp_path, capsys):
    assert main(["convert", "--out", str(tmp_path / "n.npz"), *FAST]) == 0
    text = capsys.readouterr().out
    assert "param_scale" in text and "threshold" in text and "cores" in text
    assert "55 of 128 cores, deployable" in text


def test_undeployable_is_refused_unless_allowed(tmp_path, capsys):
    out = tmp_path / "folded.npz"
    argv = ["convert", "--out", str(out), "--pool-mode", "folded", *FAST]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "134 cores needed" in err and "--allow-undeployable" in err
    assert not out.exists()
    assert main([*argv, "--allow-undeployable"]) == 0
    assert out.exists()


def test_netx_export_from_the_cli(tmp_path, capsys):
    h5 = tmp_path / "net.h5"
    base = ["convert", "--out", str(tmp_path / "n.npz"), "--export-netx", str(h5), *FAST]
    assert main(base) == 2
    err = capsys.readouterr().err
    # Every reason in one line, before any conversion ran.
    assert err.count("\n") == 1 and not (tmp_path / "n.npz").exists()
    for option in ("--pool-mode folded", "--reset zero", "--weight-bits 8"):
        assert option in err
    argv = [*base, "--pool-mode", "folded", "--reset", "zero", "--weight-bits", "8", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["netx"] == str(h5)
    assert h5.exists()


def test_bad_percentile_is_a_clear_error(tmp_path, capsys):
    assert main(["convert", "--out", str(tmp_path / "n.npz"), "--percentile", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid conversion configuration") and "Traceback" not in err
