"""Table 2 machinery and the demo, on small subsets (the full protocol runs by `evaluate`)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.cli import main
from lava_retrieval.conversion.methods import get
from lava_retrieval.evaluation import table2 as experiments
from lava_retrieval.snn.network import SpikingNetwork


@pytest.fixture(scope="module")
def network(tmp_path_factory, fashion):
    from lava_retrieval.conversion.algorithm import ConversionConfig, calibration_indices, convert

    train_images, _ = fashion.split("train")
    config = ConversionConfig(calibration_size=500)
    net = convert(load_checkpoint().model, train_images[calibration_indices(54000, config)], config)
    return net.save(tmp_path_factory.mktemp("net") / "net.npz")


def test_table2_gives_its_rows_and_writes_them(network, fashion, tmp_path):
    """The rows and files of Table 2 on a subset. (Its numbers, and every committed table's,
    are held to the code by ``test_committed_results.py``.)"""
    result = experiments.table2(
        SpikingNetwork.load(network),
        load_checkpoint().model,
        fashion,
        [get("paper").sim_config(t) for t in (4, 16)],
        limit_corpus=1000,
        limit_queries=200,
        progress=False,
    )
    rows = {r["model"]: r for r in result["rows"]}
    assert list(rows) == ["ANN", "SNN(4)", "SNN(16)"]
    assert result["protocol"]["corpus"] == 1000 and result["protocol"]["queries"] == 200
    for row in rows.values():
        assert row["top1"] <= row["top3"] and 0 < row["mAP"] <= 100
    # More time steps, better spiking classification (the paper's Fig. 4 trend); at T = 4 the
    # five synapse delays leave the output layer without input.
    assert rows["SNN(16)"]["classification"] > rows["SNN(4)"]["classification"] + 20
    paths = experiments.write(result, tmp_path)
    assert json.loads(paths[0].read_text())["rows"][0]["model"] == "ANN"
    with open(paths[1]) as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["ANN", "SNN(4)", "SNN(16)"]
    assert "| SNN(16) |" in paths[2].read_text()


def test_passes_give_the_rows_of_one_t_at_a_time(network, fashion, monkeypatch):
    """Several T per pass (16-bit embeddings), and a pass that meets a value wider than 16 bits
    split into 32-bit passes, give the rows that one simulation per T gives."""
    from lava_retrieval.snn.config import SimConfig

    net = SpikingNetwork.load(network)
    corpus, corpus_labels = (a[:300] for a in fashion.split("full_train"))
    queries, query_labels = (a[:60] for a in fashion.split("test"))
    config = SimConfig(time_steps=16, timing="delay", readout="membrane")
    steps = (4, 8, 16)

    def rows(**kwargs):
        got = experiments.snn_rows(
            net,
            [replace(config, time_steps=t) for t in kwargs.get("steps", steps)],
            corpus,
            corpus_labels,
            queries,
            query_labels,
            progress=False,
        )
        return [{k: v for k, v in r.items() if k != "seconds"} for r in got]

    one_at_a_time = [row for t in steps for row in rows(steps=(t,))]
    width = net.layers[net.embedding_layer].num_neurons
    # Room for three T at 16 bits, one at 32.
    monkeypatch.setattr(experiments, "EMBEDDING_BYTES", 3 * 2 * 360 * width)
    planned = []
    original = experiments._embed_at

    def embed_at(*args):
        planned.append((args[3], args[-1]))
        return original(*args)

    monkeypatch.setattr(experiments, "_embed_at", embed_at)
    assert rows() == one_at_a_time
    assert planned == [((4, 8, 16), True)] * 2  # queries and corpus, one narrow pass

    # A value wider than 16 bits: the pass is split into one pass per T.
    compact = experiments._compact

    def too_wide(embedding, narrow):
        return compact(embedding.astype(np.int64) << 20, narrow)

    monkeypatch.setattr(experiments, "_compact", too_wide)
    planned.clear()
    wide = rows()
    assert planned[0] == ((4, 8, 16), True)
    assert planned[1:] == [((t,), False) for t in steps for _ in range(2)]
    # Embeddings times 2**20, as float32 exactly: the same normalised vectors, the same rows.
    assert wide == one_at_a_time


def test_compact_embeddings():
    small = np.array([[-32768, 32767]], np.int32)
    assert experiments._compact(small, True).dtype == np.int16
    np.testing.assert_array_equal(experiments._compact(small, True), small)
    wide = np.array([[32768]], np.int64)
    assert experiments._compact(wide, False).dtype == np.float32
    with pytest.raises(experiments._TooWide):
        experiments._compact(wide, True)
    with pytest.raises(experiments._TooWide):
        experiments._compact(np.array([[0.5]]), True)


def test_cli_evaluate(network, tmp_path, capsys):
    argv = [
        "evaluate",
        "--method",
        "paper",
        "--network",
        str(network),
        "--limit-corpus",
        "500",
        "--limit-queries",
        "50",
        "--out-dir",
        str(tmp_path),
        "--json",
        "--no-progress",
    ]
    assert main([*argv, "--time-steps", "4"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in payload["rows"]] == ["ANN", "SNN(4)"]
    assert (tmp_path / "table2.md").exists()
    assert main([*argv, "--time-steps", "0"]) == 2
    assert "--time-steps: '0' is not a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch):
    from lava_retrieval.apps.demo import run

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lines = []
    result = run(tmp_path / "fig6.png", corpus_size=600, log=lines.append, progress=False)
    assert len(result["queries"]) == 10
    assert [q["class"] for q in result["queries"]][:2] == ["T-shirt/top", "Trouser"]
    assert all(len(q["snn_top3"]) == 3 for q in result["queries"])
    hits = np.mean([h["class"] == q["class"] for q in result["queries"] for h in q["snn_top3"]])
    assert hits > 0.6
    assert (tmp_path / "fig6.png").read_bytes()[:4] == b"\x89PNG"
    assert any("cos" in line for line in lines)
    # The corpus embeddings are cached: a second run reuses them.
    assert len(list((tmp_path / "cache" / "lava-retrieval" / "embeddings").iterdir())) == 1


def test_time_steps_plot_draws_one_line_per_ann(tmp_path):
    def result(ann_accuracy):
        rows = [{"model": "ANN", "classification": ann_accuracy, "top1": 90, "top3": 95, "mAP": 60}]
        rows += [
            {
                "model": f"SNN({t})",
                "classification": 80 + t / 10,
                "top1": 85,
                "top3": 94,
                "mAP": 55 + t / 100,
            }
            for t in (4, 8, 16)
        ]
        return {"rows": rows}

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    drawn = []
    original = plt.Figure.legend
    plt.Figure.legend = lambda self, handles, labels, **kw: drawn.append(labels)
    try:
        path = experiments.plot_time_steps(
            {"a": result(92.0), "b": result(92.0), "c": result(91.0)}, tmp_path / "t.png"
        )
    finally:
        plt.Figure.legend = original
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert drawn == [["a", "b", "c", "ANN of: a", "ANN of: c"]]
