"""The resident Lava graph: started once, fed query after query, the simulator's integers bit
for bit under every timing the graph runs, and nothing left when it is closed."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from segments import left_behind, segments

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.conversion.algorithm import ConversionConfig, convert
from lava_retrieval.engines.sim import readout_of, simulate
from lava_retrieval.lava_graph.graph import GraphError
from lava_retrieval.lava_graph.resident import ResidentGraph
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

# Slow (not in make test-fast). Segments left behind are told apart from those of tests running
# beside it.
pytestmark = pytest.mark.slow

RESULTS = Path(__file__).parents[3] / "results"
PAPER = RESULTS / "snn-32-64-10.npz"
DEFAULT = RESULTS / "snn-32-64-10-qcfs8-analog.npz"


@pytest.mark.parametrize(
    ("path", "config", "batch_size"),
    [
        (PAPER, SimConfig(10, "delay", readout="membrane"), 1),
        (PAPER, SimConfig(5, "pipelined", "integrated"), 2),
        (DEFAULT, SimConfig(4, "exact_count", "integrated"), 1),
        (DEFAULT, SimConfig(4, "graded", "spike_count"), 1),
    ],
    ids=["delay", "pipelined-batch-2", "exact-count-analog", "graded-analog"],
)
def test_query_after_query_gives_the_simulators_integers(fashion, path, config, batch_size):
    network = SpikingNetwork.load(path)
    images = fashion.test_images[:5]
    want = readout_of(network, simulate(network, images, config), config.readout)
    children, shm = set(multiprocessing.active_children()), segments()
    with ResidentGraph(network, config, batch_size=batch_size) as graph:
        one_by_one = np.concatenate([graph.embed(image) for image in images[:3]])
        together = graph.embed(images)  # several windows in one call, the last one part-full
        again = graph.embed(images[4:5])
    np.testing.assert_array_equal(one_by_one, want[:3])
    np.testing.assert_array_equal(together, want)
    np.testing.assert_array_equal(again, want[4:5])
    assert np.abs(want).sum() > 0
    # Closed: every process it forked has ended, its shared memory is gone.
    assert set(multiprocessing.active_children()) <= children
    assert not left_behind(shm), left_behind(shm)
    with pytest.raises(GraphError, match="closed"):
        graph.embed(images[:1])
    graph.close()  # twice: nothing more to do


@pytest.mark.parametrize("timing", ["delay", "pipelined"])
def test_a_resident_loihi_graph_streams_query_after_query(fashion, timing):
    """Lava's Conv/Dense/LIFReset kept running: each call's windows continue the last's."""
    config = ConversionConfig(reset="zero", num_weight_bits=8, calibration_size=32)
    network = convert(load_checkpoint().model, fashion.train_images[:32], config)
    images, settings = fashion.test_images[:4], SimConfig(12, timing, readout="membrane")
    want = readout_of(network, simulate(network, images, settings), "membrane")
    with ResidentGraph(network, settings, batch_size=8, backend="loihi") as graph:
        assert graph.batch_size == 1
        first = graph.embed(images[:1])
        rest = graph.embed(images[1:])
    np.testing.assert_array_equal(np.concatenate([first, rest]), want)
    assert np.abs(want).sum() > 0


def test_the_index_searches_through_a_resident_graph(fashion):
    network = SpikingNetwork.load(PAPER)
    index = ImageIndex(network, SimConfig(6, "pipelined", "integrated"))
    index.add(read_source("fashion-mnist:test", limit=60))
    queries = fashion.test_images[100:103]
    with index.resident_graph() as graph:
        through_graph = index.search(queries, 4, graph=graph)
        other = ImageIndex(network, SimConfig(7, timing="delay", readout="membrane")).add(
            read_source("fashion-mnist:test", limit=5)
        )
        with pytest.raises(Exception, match="another network or other settings"):
            other.search(queries, 2, graph=graph)
    simulated = index.search(queries, 4)
    assert [[h.id for h in hits] for hits in through_graph] == [
        [h.id for h in hits] for hits in simulated
    ]
    assert [[h.score for h in hits] for hits in through_graph] == [
        [h.score for h in hits] for hits in simulated
    ]


def test_what_a_resident_graph_refuses(fashion):
    network = SpikingNetwork.load(PAPER)
    with pytest.raises(GraphError, match="resident graph runs on the backends"):
        ResidentGraph(network, SimConfig(4, timing="delay", readout="membrane"), backend="loihi-hw")
    with pytest.raises(GraphError, match="the Loihi backend: .*convert with --reset zero"):
        ResidentGraph(network, SimConfig(4, timing="delay", readout="membrane"), backend="loihi")
    with ResidentGraph(network, SimConfig(4, timing="delay", readout="membrane")) as graph:
        with pytest.raises(GraphError, match=r"images must be \(N, 28, 28\)"):
            graph.embed(np.zeros((2, 14, 14), np.uint8))
        # A bad call leaves the graph running.
        assert graph.embed(fashion.test_images[:1]).shape == (1, 1024)


def test_serving_from_the_loihi_path_names_what_the_index_lacks(tmp_path, capsys):
    from lava_retrieval.cli import main

    index = str(tmp_path / "index")
    assert main(["index", "build", "fashion-mnist:test", "--limit", "8", "--out", index]) == 0
    capsys.readouterr()
    assert main(["serve", "--index", index, "--backend", "loihi", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the Loihi backend: ")
    assert "--reset zero" in err[0] and "not exact_count" in err[0]
