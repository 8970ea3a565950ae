"""Write the tutorial notebooks of ``examples/`` from the cells below (their one source).

    .venv/bin/python scripts/make_notebooks.py [--check]

Each notebook runs end to end: ``tests/examples/test_notebooks.py`` executes every one with
``LAVA_RETRIEVAL_SMALL=1`` (fewer images) so that none can rot; its last cells check what it
showed. ``--check`` fails if a committed notebook differs from what this script writes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

SETUP = """\
import os

import matplotlib.pyplot as plt
import numpy as np

# Small data when the test suite runs this notebook (LAVA_RETRIEVAL_SMALL=1); more otherwise.
SMALL = os.environ.get("LAVA_RETRIEVAL_SMALL") == "1"
"""

PROCESS_GRAPH = [
    "# The retrieval process graph, by hand\n\n"
    "This notebook wires the Lava processes of `procs/` one by one: an image encoder, one "
    "integrate-and-fire layer per layer of the converted network, a membrane probe on the "
    "embedding layer and a cosine k-nearest-neighbour process over a corpus. It runs the graph "
    "on Lava's CPU simulation, then watches the spikes and membrane potentials of one query, "
    "and checks the graph against the project's simulator (the same integers).",
    SETUP,
    "## The network\n\nThe shipped ReLU ANN (32-64-10), converted by Algorithm 1 (the paper's "
    "method): integer weights, one threshold per layer, soft reset.",
    """\
from lava_retrieval.conversion.methods import get
from lava_retrieval.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist

data = load_fashion_mnist()
network = get("paper").network(data)
T = 16
sim = get("paper").sim_config(T)  # the paper's timing (delay) and readout (membrane)
for layer in network.layers:
    print(f"{layer.name:8} {layer.kind:6} {'x'.join(map(str, layer.output_shape)):>9}  "
          f"threshold {layer.threshold}")
""",
    "## A corpus, embedded by the graph\n\n`lava_graph.graph.embed` builds the same graph "
    "with a host sink instead of the kNN and streams the corpus through it.",
    """\
from lava_retrieval.lava_graph.graph import embed as graph_embed

corpus_size = 100 if SMALL else 1000
corpus_images, corpus_labels = data.train_images[:corpus_size], data.train_labels[:corpus_size]
corpus = graph_embed(network, corpus_images, sim, batch_size=50, progress=False)
corpus.shape
""",
    "## The graph, process by process",
    """\
from lava_retrieval.common.lava_runtime import import_lava

import_lava()  # Lava's imports, made safe: what follows needs it first
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402

from lava_retrieval.search.index import CosineIndex  # noqa: E402
from procs.cosine_knn.process import CosineKNN  # noqa: E402
from procs.host_sink.process import HostSink  # noqa: E402
from procs.if_layer.process import IFLayer  # noqa: E402
from procs.image_encoder.process import ImageEncoder  # noqa: E402
from procs.membrane_probe.process import MembraneProbe  # noqa: E402

queries, query_labels = data.test_images[:3], data.test_labels[:3]
batch = len(queries)
encoder = ImageEncoder(images=queries, batch_size=batch, time_steps=T,
                       param_scale=network.layers[0].param_scale)
previous, layers = encoder.out, []
for depth, spec in enumerate(network.layers):
    layer = IFLayer.from_layer(spec, neuron=network.neuron(depth), batch_size=batch, time_steps=T)
    previous.connect(layer.inp)
    previous = layer.out
    layers.append(layer)
embedding_layer = layers[network.embedding_layer]
probe = MembraneProbe(state_shape=embedding_layer.v.shape, time_steps=T)
probe.v_ref.connect_var(embedding_layer.v)
probe.count_ref.connect_var(embedding_layer.spike_count)
knn = CosineKNN(
    index=CosineIndex().add(corpus, labels=corpus_labels), k=3, batch_size=batch, time_steps=T
)
probe.out.connect(knn.query)
ids_sink = HostSink(shape=knn.ids.shape, time_steps=T)
scores_sink = HostSink(shape=knn.scores.shape, time_steps=T)
knn.ids.connect(ids_sink.inp)
knn.scores.connect(scores_sink.inp)
# Non-blocking: the host sinks hand over the answer while the graph runs.
encoder.run(condition=RunSteps(num_steps=T, blocking=False),
            run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
ids, scores = ids_sink.receive().astype(np.int64), scores_sink.receive()
encoder.wait()
encoder.stop()
for q in range(batch):
    names = [CLASS_NAMES[corpus_labels[i]] for i in ids[q]]
    print(f"query {q} ({CLASS_NAMES[query_labels[q]]}): {names}, scores {np.round(scores[q], 3)}")
""",
    "## Spikes and potentials of one query\n\nThe executable specification "
    "(`snn.reference.simulate_reference`) records every layer's spikes; run for t = 1 ... T "
    "steps, its membrane readout gives the potentials step by step.",
    """\
from lava_retrieval.snn.reference import readout_of, simulate_reference

trace = simulate_reference(network, queries[:1], T, "delay", record_spikes=True)
fig, axes = plt.subplots(1, len(network.layers), figsize=(16, 3))
for ax, layer, spikes in zip(axes, network.layers, trace.spikes, strict=True):
    steps, neurons = np.nonzero(spikes[:, 0].reshape(T, -1))
    ax.plot(steps, neurons, "|", markersize=2)
    ax.set_title(f"{layer.name}: {spikes.sum()} spikes")
    ax.set_xlabel("time step")
axes[0].set_ylabel("neuron")
plt.show()

potentials = np.stack([
    readout_of(network, simulate_reference(network, queries[:1], t, "delay"), "membrane")[0]
    for t in range(1, T + 1)
])
plt.figure(figsize=(6, 3))
plt.plot(range(1, T + 1), potentials[:, :8])
plt.axhline(network.layers[network.embedding_layer].threshold, color="k", ls=":")
plt.xlabel("time step")
plt.ylabel("membrane potential")
plt.title("embedding layer, 8 neurons")
plt.show()
""",
    "## The graph answers what the simulator and the exact index answer",
    """\
from lava_retrieval.engines.sim import embed as sim_embed
from lava_retrieval.search.index import CosineIndex

want_scores, want_ids = CosineIndex().add(
    sim_embed(network, corpus_images, sim, progress=False)
).search(sim_embed(network, queries, sim, progress=False), 3)
assert np.array_equal(ids, want_ids), (ids, want_ids)
assert np.allclose(scores, want_scores, rtol=1e-5)
assert np.array_equal(potentials[-1], readout_of(network, trace, "membrane")[0])
print("the hand-wired graph agrees with the simulator")
""",
]

CONVERT = [
    "# Convert your own ANN, fit it to a Loihi chip, estimate its energy\n\n"
    "Train a small ANN of the family, convert it to integrate-and-fire neurons with "
    "Algorithm 1, check that it fits one Loihi chip (cores per layer), estimate the energy "
    "of one image from its measured spikes and synaptic operations, and run it on Lava's own "
    "Loihi processes.",
    SETUP,
    "## Train a small ANN\n\nAny `torch` network of the family works (convolutions, average "
    "pooling, ReLU, a dense layer); here 16-32-10, a few minutes on a CPU (seconds with "
    "`SMALL`).",
    """\
import torch

from lava_retrieval.ann.inference import accuracy
from lava_retrieval.ann.model import ConvNet
from lava_retrieval.data.fashion_mnist import load_fashion_mnist

torch.manual_seed(0)
data = load_fashion_mnist()
count, epochs = (6000, 2) if SMALL else (60000, 3)
images = torch.tensor(data.train_images[:count], dtype=torch.float32)[:, None] / 255
labels = torch.tensor(data.train_labels[:count], dtype=torch.long)
ann = ConvNet("16-32-10")
optimizer = torch.optim.Adam(ann.parameters(), lr=2e-3)
for _ in range(epochs):
    for batch in torch.randperm(count).split(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(ann(images[batch]), labels[batch]).backward()
        optimizer.step()
ann.eval()
ann_accuracy = accuracy(ann, data.test_images[:1000], data.test_labels[:1000])
print(f"ANN test accuracy (1,000 images): {ann_accuracy:.3f}")
""",
    "## Convert it\n\nAlgorithm 1: weights scaled and truncated to integers, one threshold "
    "per layer from the activations of calibration images.",
    """\
from lava_retrieval.conversion.algorithm import ConversionConfig, calibration_indices, convert

config = ConversionConfig(calibration_size=500 if SMALL else 2000)
calibration = data.train_images[calibration_indices(len(data.train_images), config)]
network = convert(ann, calibration, config)
for layer in network.layers:
    print(f"{layer.name:8} threshold {layer.threshold:6}  param_scale {layer.param_scale:8.2f}")
""",
    "## Does it fit one Loihi chip?",
    """\
from lava_retrieval.loihi import resources

report = resources.check(network)
print(f"{report.total_cores} of {resources.NUM_CORES} cores:",
      "deployable" if report.deployable else report.reason)
plt.figure(figsize=(6, 3))
plt.bar([layer.name for layer in network.layers], [r.cores for r in report.layers])
plt.ylabel("Loihi cores")
plt.title("cores per layer")
plt.show()
""",
    "## How well does the spiking network classify, and at what energy?",
    """\
from lava_retrieval.conversion.methods import get
from lava_retrieval.engines.sim import simulate
from lava_retrieval.evaluation.energy import LoihiEnergyModel, op_counts

T, test = 32, 300 if SMALL else 2000
sim = get("paper").sim_config(T)  # the paper's timing (delay) and readout (membrane)
result = simulate(network, data.test_images[:test], sim)
snn_accuracy = float(np.mean(result.spike_counts[-1].argmax(1) == data.test_labels[:test]))
counts = op_counts(network, data.test_images[:50], sim)
energy = LoihiEnergyModel().estimate(counts)
print(f"SNN accuracy at T = {T}: {snn_accuracy:.3f} (ANN {ann_accuracy:.3f})")
print(f"per image: {counts['spikes']:,.0f} spikes, {counts['synaptic_ops']:,.0f} synaptic ops,"
      f" {energy['total_mj']:.3f} mJ in {energy['ms']:.2f} ms on Loihi (modelled)")
""",
    "## Run it on Lava's Loihi processes\n\n"
    "`--backend loihi` runs each layer as Lava's own `Conv`/`Dense` + `LIFReset`, the "
    "processes Intel's lava-loihi maps onto neurocores, simulated here on the CPU. They reset "
    "to zero and hold 8-bit weights, so the network is converted once more for them; then a "
    "few images stream through one graph, one window each.",
    """\
from lava_retrieval.engines.sim import readout_of
from lava_retrieval.lava_graph.graph import embed as lava_embed
from lava_retrieval.loihi import lowering

print("as converted above:", "; ".join(lowering.problems(network, "loihi")))
loihi_config = ConversionConfig(
    calibration_size=config.calibration_size, reset="zero", num_weight_bits=8
)
loihi_network = convert(ann, calibration, loihi_config)
print("converted for them:", "; ".join(lowering.problems(loihi_network, "loihi")) or "lowers")
few = data.test_images[: 4 if SMALL else 16]
on_loihi = lava_embed(loihi_network, few, sim, backend="loihi", progress=False)
simulated = readout_of(loihi_network, simulate(loihi_network, few, sim), "membrane")
print(f"{len(few)} images through Conv/Dense/LIFReset, equal to the simulator:",
      np.array_equal(on_loihi, simulated))
""",
    "## Checks",
    """\
assert report.deployable, report.reason
assert lowering.problems(loihi_network, "loihi") == [] and np.array_equal(on_loihi, simulated)
assert ann_accuracy > 0.6 and snn_accuracy > ann_accuracy - 0.15, (ann_accuracy, snn_accuracy)
assert energy["total_mj"] > 0 and counts["synaptic_ops"] > counts["spikes"] > 0
print("converted, deployable, and close to its ANN")
""",
]

SEARCH = [
    "# Index and search your own images\n\n"
    "Build an index of a folder of images with the default spiking method, search it with an "
    "image file, look at the answer, and try an approximate index. Point `FOLDER` at your own "
    "pictures (any format Pillow reads); here it is filled with Fashion-MNIST test images saved "
    "as PNG files, dark on light, the way photos of clothes look.",
    SETUP,
    """\
import tempfile
from pathlib import Path

from PIL import Image

from lava_retrieval.data.fashion_mnist import load_fashion_mnist

data = load_fashion_mnist()
FOLDER = Path(tempfile.mkdtemp()) / "my-pictures"
FOLDER.mkdir()
count = 60 if SMALL else 500
for i in range(count):
    Image.fromarray(255 - data.test_images[i]).resize((84, 84)).save(FOLDER / f"{i:04d}.png")
print(f"{count} pictures in {FOLDER}")
""",
    "## Build the index\n\nThe default method's network (converted from its shipped ANN), "
    "the images prepared as Fashion-MNIST was made (inverted when light, trimmed, fitted to "
    "28 x 28).",
    """\
from lava_retrieval.conversion.methods import resolve
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import read_source

chosen = resolve(dataset=data)
index = ImageIndex(chosen.network, chosen.config)
index.add(read_source(FOLDER))
index.save(FOLDER.parent / "index")
print(index.metadata["simulation"], len(index), "images")
""",
    "## Search with an image file",
    """\
query = FOLDER / "0007.png"
hits = index.search_files([query], k=5)[0]
for hit in hits:
    print(hit.rank, hit.id, round(hit.score, 3), Path(hit.path).name)

fig, axes = plt.subplots(1, 6, figsize=(12, 2.4))
axes[0].imshow(Image.open(query), cmap="gray")
axes[0].set_title("query")
for ax, hit in zip(axes[1:], hits, strict=True):
    ax.imshow(Image.open(hit.path), cmap="gray")
    ax.set_title(f"{hit.score:.3f}")
for ax in axes:
    ax.axis("off")
plt.show()
""",
    "## An approximate index\n\nFor large collections: HNSW through faiss, with its recall "
    "against the exact search measured on the index's own images.",
    """\
loaded = ImageIndex.load(FOLDER.parent / "index")
approximate = ImageIndex(loaded.network, loaded.config, index_type="hnsw")
approximate._append(read_source(FOLDER), np.asarray(loaded.index.vectors_))
approximate.save(FOLDER.parent / "index-hnsw")
print(approximate.search_info["factory"], approximate.search_info["recall"])
near = approximate.search_files([query], k=5)[0]
""",
    "## Checks",
    """\
assert Path(hits[0].path).name == "0007.png" and hits[0].score > 0.999
assert [h.id for h in near] == [h.id for h in hits]
print("the query finds itself first, exactly and approximately")
""",
]

NOTEBOOKS = {
    "01_process_graph.ipynb": PROCESS_GRAPH,
    "02_convert_your_ann.ipynb": CONVERT,
    "03_search_your_images.ipynb": SEARCH,
}


def formatted(code: str) -> str:
    """A code cell as ``ruff format`` writes it (as ``make lint`` checks the notebooks)."""
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff if ruff.exists() else "ruff"), "format", "--stdin-filename", "cell.py", "-"],
        input=code,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.rstrip("\n")


def build(cells: list[str]) -> nbformat.NotebookNode:
    notebook = new_notebook(
        cells=[
            new_markdown_cell(text) if text.startswith("#") else new_code_cell(formatted(text))
            for text in cells
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    for n, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{n}"  # stable ids: the files do not change from run to run
    return notebook


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = ROOT / "examples" / name
        text = nbformat.writes(build(cells)) + "\n"
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run python scripts/make_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
