"""The NIR export: the graph's nodes, integers and metadata, read back by ``nir``; grouped
convolutions written ungrouped; what cannot be exported refused in one message; the CLI.
(That another simulator runs it exactly is the ``sinabs`` entry of the conformance suite.)"""

from __future__ import annotations

import builtins
import json

import nir
import numpy as np
import pytest

from lava_retrieval.cli import main
from lava_retrieval.exports.nir import NIRExportError, export_nir, to_nir, ungrouped


@pytest.fixture(scope="module")
def paper(fashion):
    from lava_retrieval.conversion.methods import get

    return get("paper").network(fashion)


def test_the_graph_of_the_paper_network(paper, tmp_path):
    path = export_nir(paper, tmp_path / "net.nir", time_steps=16)
    graph = nir.read(str(path))
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert kinds == {
        "image": "Input",
        "input": "IF",
        "conv1.synapse": "Conv2d",
        "conv1": "IF",
        "pool1.synapse": "Conv2d",
        "pool1": "IF",
        "conv2.synapse": "Conv2d",
        "conv2": "IF",
        "pool2.synapse": "Conv2d",
        "pool2": "IF",
        "flatten": "Flatten",
        "dense1.synapse": "Affine",
        "dense1": "IF",
        "output": "Output",
    }
    chain = ["image", "input", "conv1.synapse", "conv1", "pool1.synapse", "pool1"]
    chain += ["conv2.synapse", "conv2", "pool2.synapse", "pool2", "flatten", "dense1.synapse"]
    chain += ["dense1", "output"]
    assert [tuple(e) for e in graph.edges] == list(zip(chain, chain[1:], strict=False))
    # The integers, exactly.
    conv1, layer = graph.nodes["conv1.synapse"], paper.layers[1]
    np.testing.assert_array_equal(conv1.weight, layer.weight)
    np.testing.assert_array_equal(conv1.bias, layer.bias)
    assert tuple(conv1.stride) == (layer.stride,) * 2
    assert tuple(conv1.padding) == (layer.padding,) * 2
    assert np.all(graph.nodes["conv1"].v_threshold == layer.threshold)
    np.testing.assert_array_equal(graph.nodes["dense1.synapse"].weight, paper.layers[5].weight)
    # Pooling as an ordinary convolution: each channel its own equal weights, zero across.
    pool = graph.nodes["pool1.synapse"].weight
    assert pool.shape == (32, 32, 2, 2)
    diagonal = pool[np.arange(32), np.arange(32)]
    np.testing.assert_array_equal(diagonal, paper.layers[2].weight[:, 0])
    assert np.count_nonzero(pool) == np.count_nonzero(diagonal)
    meta = graph.metadata
    assert meta["embedding_layer"] == "pool2" and meta["reset"] == "subtract"
    assert meta["timing"] == "no_delay" and meta["time_steps"] == 16
    assert meta["threshold_comparison"] == "v >= v_threshold"
    assert meta["network_fingerprint"] == paper.fingerprint()
    assert meta["param_scale"] == paper.layers[0].param_scale


def test_ungrouped_weights_compute_the_grouped_convolution():
    import torch

    rng = np.random.default_rng(0)
    weight = rng.integers(-5, 6, (6, 2, 3, 3))  # 3 groups of 2 inputs and 2 outputs
    x = torch.tensor(rng.integers(0, 2, (1, 6, 7, 7)), dtype=torch.float64)
    grouped = torch.nn.functional.conv2d(x, torch.tensor(weight, dtype=torch.float64), groups=3)
    full = torch.nn.functional.conv2d(x, torch.tensor(ungrouped(weight, 3), dtype=torch.float64))
    assert torch.equal(grouped, full)


@pytest.mark.parametrize("timing", ["delay", "exact_count", "graded"])
def test_timings_nir_cannot_state_are_refused(paper, timing, tmp_path):
    with pytest.raises(NIRExportError, match=f"cannot export to NIR: the {timing} timing"):
        to_nir(paper, timing)
    with pytest.raises(NIRExportError):
        export_nir(paper, tmp_path / "x.nir", timing)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_export(tmp_path, capsys):
    out, graph = tmp_path / "net.npz", tmp_path / "net.nir"
    argv = ["convert", "--out", str(out), "--calibration-size", "200", "--json"]
    assert main([*argv, "--export-nir", str(graph), "--nir-timing", "pipelined"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["nir"] == str(graph)
    assert nir.read(str(graph)).metadata["timing"] == "pipelined"
    # Refused before any work: a timing NIR cannot state, a path that cannot be written.
    assert main([*argv, "--export-nir", str(tmp_path / "a.nir"), "--nir-timing", "graded"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot export to NIR: the graded timing" in err[0]
    (tmp_path / "file").write_text("x")
    assert main([*argv, "--export-nir", str(tmp_path / "file" / "a.nir")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "net.nir", "net.npz"]


def test_without_the_nir_package(paper, monkeypatch, capsys, tmp_path):
    real = builtins.__import__

    def no_nir(name, *args, **kwargs):
        if name == "nir":
            raise ImportError("No module named 'nir'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nir)
    with pytest.raises(NIRExportError, match=r"pip install 'lava-retrieval\[nir\]'"):
        to_nir(paper)
    argv = ["convert", "--out", str(tmp_path / "n.npz"), "--export-nir", str(tmp_path / "n.nir")]
    assert main(argv) == 2
    assert "pip install 'lava-retrieval[nir]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
