"""Draw the Lava process graph of the sigma-delta method (``qcfs8-sdnn``) as it is built.

    .venv/bin/python scripts/sdnn_graph_figure.py [--out results/sdnn-graph.png]

The boxes are the processes :class:`lava_retrieval.lava_graph.sdnn_graph.SdnnGraph` creates (read
from the built graph, not written by hand): their Lava class, shape (W, H, C) and settings, and
each arrow the ports it connects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lava_retrieval.common.figures import pyplot, save_figure  # noqa: E402
from lava_retrieval.conversion.methods import resolve  # noqa: E402
from lava_retrieval.data.fashion_mnist import load_fashion_mnist  # noqa: E402
from lava_retrieval.lava_graph.sdnn_graph import SdnnGraph  # noqa: E402


def _label(process, extra: str = "") -> str:
    port = next(
        getattr(process, name) for name in ("a_out", "s_out", "out") if hasattr(process, name)
    )
    shape = "x".join(str(n) for n in port.shape)
    return f"{type(process).__name__}\n{shape}" + (f"\n{extra}" if extra else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/sdnn-graph.png")
    args = parser.parse_args()
    data = load_fashion_mnist()
    network = resolve(method="qcfs8-sdnn", dataset=data).network
    graph = SdnnGraph(network, data.test_images[:1])
    layers = network.layers[1:]
    chain = [(graph.encoder, "host images\n(8-bit pixels)", "out"), (graph.delta, "vth 1", "s_out")]
    for layer, synapse, neuron in zip(layers, graph.synapses, graph.neurons, strict=True):
        what = f"{layer.name}: {layer.kind}"
        if layer.groups > 1:
            what += f", groups {layer.groups}"
        chain.append((synapse, f"{what}\n8-bit weights, 16-bit messages", "a_out"))
        if type(neuron).__name__ == "SigmaDelta":
            k = int(neuron.state_exp.init)
            chain.append((neuron, f"ReLU, state_exp {k}\nbias + 2^{k - 1}", "s_out"))
        else:
            chain.append((neuron, "class sums\n(+ bias on the host)", "s_out"))
    plt = pyplot()
    per_row = 7
    rows = -(-len(chain) // per_row)
    fig, ax = plt.subplots(figsize=(16, 1.5 * rows + 1.0))
    ax.set_xlim(-0.5, per_row - 0.5)
    ax.set_ylim(-rows + 0.1, 0.4)
    ax.axis("off")
    where = []
    for i, (process, extra, _) in enumerate(chain):
        x, y = i % per_row, -(i // per_row)
        if (i // per_row) % 2:
            x = per_row - 1 - x  # a snake: each row runs back
        where.append((x, y))
        colour = "#dbe8f5" if type(process).__name__ in ("Conv", "Dense") else "#f5e6d3"
        ax.text(
            x,
            y,
            _label(process, extra),
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": colour, "edgecolor": "0.4"},
        )
    for i in range(len(chain) - 1):
        (x0, y0), (x1, y1) = where[i], where[i + 1]
        port = chain[i][2]
        target = "s_in" if type(chain[i + 1][0]).__name__ in ("Conv", "Dense") else "a_in"
        ax.annotate(
            "",
            xy=(x1 - 0.33 * (x1 - x0), y1 - 0.3 * (y1 - y0)),
            xytext=(x0 + 0.33 * (x1 - x0), y0 + 0.3 * (y1 - y0)),
            arrowprops={"arrowstyle": "->", "color": "0.3"},
        )
        ax.text(
            (x0 + x1) / 2,
            (y0 + y1) / 2 + 0.12,
            f"{port}→{target}",
            ha="center",
            fontsize=6.5,
            color="0.25",
        )
    # the embedding tap: the embedding layer's SigmaDelta -> Sigma -> HostSink
    tap = 2 + 2 * network.embedding_layer - 1
    x, y = where[tap]
    ax.annotate(
        f"s_out→a_in: Sigma {'x'.join(map(str, graph.embedding_sigma.s_out.shape))}"
        " (the embedding) → HostSink",
        xy=(x, y - 0.2),
        xytext=(x, y - 0.55),
        ha="center",
        fontsize=7.5,
        arrowprops={"arrowstyle": "<-", "color": "0.3"},
    )
    ax.set_title(
        "qcfs8-sdnn on Lava's own processes (lava_retrieval.lava_graph.sdnn_graph): one image "
        "per step, its embedding after "
        f"{network.embedding_layer} steps",
        fontsize=10,
    )
    save_figure(fig, args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
