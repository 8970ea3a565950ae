"""``--backend loihi`` with the sigma-delta method, through every command that embeds: the
simulator's embeddings and answers, or one ``error:`` line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lava_retrieval.apps.web import SearchService
from lava_retrieval.cli import main
from lava_retrieval.conversion.methods import resolve
from lava_retrieval.embedding.files import embed
from lava_retrieval.lava_graph.resident import ResidentGraph
from lava_retrieval.search.image_index import ImageIndex

pytestmark = pytest.mark.slow  # not in the fast tier (make test-fast)


@pytest.fixture(scope="module")
def resolved(fashion):
    return resolve(method="qcfs8-sdnn", dataset=fashion)


def test_methods_lists_the_loihi_backends_for_the_sigma_delta_method(capsys):
    assert main(["methods", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["methods"]}
    sdnn = rows.pop("qcfs8-sdnn")
    assert {"sim", "lava", "lava-float", "loihi"} <= set(sdnn["backends"])
    assert sdnn["exports"] == ["netx"] and "nir" in sdnn["cannot"]
    for name, row in rows.items():  # every other method still says why not
        assert "loihi" not in row["backends"] and row["cannot"]["loihi"], name


def test_embed_with_the_method_on_lava_built_ins(tmp_path, capsys, resolved, fashion):
    out = tmp_path / "e.npy"
    argv = ["embed", "--method", "qcfs8-sdnn", "--limit", "6", "--out", str(out), "--json"]
    assert main([*argv, "--backend", "loihi"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["timing"] == "sigma_delta" and payload["method"] == "qcfs8-sdnn"
    want = embed(resolved.network, fashion.test_images[:6], resolved.config, progress=False)
    np.testing.assert_array_equal(np.load(out), want)
    assert int(want.sum()) > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--readout", "integrated"], "read the embedding as spike_count"),
        (["--backend", "loihi-hw"], "lava-loihi"),
    ],
)
def test_what_the_loihi_path_refuses_in_one_line(tmp_path, capsys, extra, message):
    out = tmp_path / "e.npy"
    argv = ["embed", "--method", "qcfs8-sdnn", "--backend", "loihi", "--limit", "2"]
    assert main([*argv, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1] and not out.exists()


def test_a_network_that_cannot_be_lowered_is_refused_before_any_work(tmp_path, capsys, resolved):
    from dataclasses import replace

    layers = list(resolved.network.layers)
    layers[1] = replace(layers[1], threshold=1000)  # not a power of two
    layers[3] = replace(layers[3], weight=np.clip(layers[3].weight * 3, -300, 300))
    path = replace(resolved.network, layers=tuple(layers)).save(tmp_path / "bad.npz")
    argv = ["embed", "--network", str(path), "--backend", "loihi", "--limit", "2"]
    assert main([*argv, "--out", str(tmp_path / "e.npy")]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error")]
    assert "conv1: threshold not a power of two" in line and "conv2: weights beyond" in line


def test_index_search_serve_and_demo_take_the_loihi_backend(tmp_path, capsys, fashion, resolved):
    directory = tmp_path / "index"
    build = ["index", "build", "fashion-mnist:test", "--limit", "24", "--method", "qcfs8-sdnn"]
    assert main([*build, "--backend", "loihi", "--out", str(directory)]) == 0
    index = ImageIndex.load(directory)
    want = embed(resolved.network, fashion.test_images[:24], resolved.config, progress=False)
    unit = want / np.linalg.norm(want, axis=1, keepdims=True)  # the index keeps unit vectors
    np.testing.assert_allclose(index.index.vectors_, unit, rtol=1e-6, atol=1e-7)
    add = ["index", "add", str(directory), "fashion-mnist:test", "--limit", "3", "--backend"]
    assert main([*add, "loihi"]) == 0
    capsys.readouterr()
    answers = {}
    for backend in ("sim", "loihi"):
        query = ["search", str(directory), "fashion-mnist:test:30", "fashion-mnist:test:31"]
        assert main([*query, "-k", "3", "--backend", backend, "--json"]) == 0
        answers[backend] = json.loads(capsys.readouterr().out)["queries"]
    assert answers["loihi"] == answers["sim"]
    # serve's resident graph on Lava's sigma-delta processes
    index = ImageIndex.load(directory)
    with ResidentGraph(index.network, index.config, backend="loihi") as graph:
        through = index.search(fashion.test_images[40:43], 3, graph=graph)
    simulated = index.search(fashion.test_images[40:43], 3)
    assert [[(h.id, h.score) for h in q] for q in through] == [
        [(h.id, h.score) for h in q] for q in simulated
    ]
    service = SearchService(index, checkpoint=False, backend="loihi", directory=directory)
    try:
        assert service.graph is not None and service.graph.backend == "loihi"
    finally:
        service.close()
    png = tmp_path / "demo.png"
    assert main(["demo", "--method", "qcfs8-sdnn", "--backend", "loihi", "--corpus", "300",
                 "--out", str(png), "--json"]) == 0  # fmt: skip
    demo = json.loads(capsys.readouterr().out)
    assert demo["backend"] == "loihi" and png.stat().st_size > 0


def test_serve_method_is_for_the_index_it_builds(tmp_path, capsys):
    argv = ["serve", "--index", str(tmp_path), "--method", "qcfs8-sdnn", "--backend", "loihi"]
    assert main(argv) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error")]
    assert "--method chooses the network of the index built without --index" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["convert", "--sdnn", "--weight-bits", "4"], "--weight-bits: Algorithm 1's options"),
        (["evaluate", "--method", "qcfs8-sdnn", "--time-steps", "1", "4"], "T is 1, not 1 4"),
        (["embed", "--method", "qcfs8-sdnn", "--time-steps", "4"], "T is 1, not 4"),
        (["train", "--sdnn"], "it needs --activation qcfs --input-levels 255"),
        (["convert", "--sdnn", "--export-nir", "{tmp}/n.nir"], "exports to netx"),
        (["demo", "--backend", "loihi", "--method", "paper"], "convert with --reset zero"),
    ],
)
def test_sigma_delta_refusals_are_one_line(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = ["--out", str(tmp_path / ("o.png" if argv[0] == "demo" else "o.npz"))]
    if argv[0] == "evaluate":
        out = ["--out-dir", str(tmp_path)]
    assert main([*argv, *out]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error")]
    assert len(lines) == 1 and message in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written
