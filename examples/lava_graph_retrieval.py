"""Compose the retrieval graph by hand: encoder -> IF layers -> membrane probe -> cosine kNN.

Run from the repository root (after ``make setup``)::

    .venv/bin/python examples/lava_graph_retrieval.py [--corpus 2000] [--queries 5]

It converts the shipped ANN, embeds a corpus of training images with the Lava graph, then wires
a second graph process by process and prints the three nearest corpus images of a few test images.
"""

from __future__ import annotations

import argparse

import numpy as np

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.common.lava_runtime import import_lava
from lava_retrieval.conversion.algorithm import ConversionConfig, calibration_indices, convert
from lava_retrieval.conversion.methods import METHODS
from lava_retrieval.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist
from lava_retrieval.lava_graph.graph import embed
from lava_retrieval.search.index import CosineIndex


def answer(corpus_size: int, num_queries: int, time_steps: int) -> dict:
    """The hand-wired graph's three nearest corpus images of the first test images, with what
    produced them (the network, the corpus and its embeddings)."""
    data = load_fashion_mnist()
    train_images, _ = data.split("train")
    config = ConversionConfig()
    network = convert(
        load_checkpoint().model,
        train_images[calibration_indices(len(train_images), config)],
        config,
    )
    corpus_images, corpus_labels = (
        data.train_images[:corpus_size],
        data.train_labels[:corpus_size],
    )
    corpus = embed(
        network,
        corpus_images,
        METHODS["paper"].sim_config(time_steps),
        batch_size=250,
    )

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from procs.cosine_knn.process import CosineKNN
    from procs.host_sink.process import HostSink
    from procs.if_layer.process import IFLayer
    from procs.image_encoder.process import ImageEncoder
    from procs.membrane_probe.process import MembraneProbe

    queries, query_labels = data.test_images[:num_queries], data.test_labels[:num_queries]
    batch, steps = len(queries), time_steps
    encoder = ImageEncoder(
        images=queries,
        batch_size=batch,
        time_steps=steps,
        param_scale=network.layers[0].param_scale,
    )
    previous = encoder.out
    layers = []
    for depth, spec in enumerate(network.layers):
        layer = IFLayer.from_layer(
            spec, neuron=network.neuron(depth), batch_size=batch, time_steps=steps
        )
        previous.connect(layer.inp)
        previous = layer.out
        layers.append(layer)
    embedding_layer = layers[network.embedding_layer]
    probe = MembraneProbe(state_shape=embedding_layer.v.shape, time_steps=steps)
    probe.v_ref.connect_var(embedding_layer.v)
    probe.count_ref.connect_var(embedding_layer.spike_count)
    index = CosineIndex().add(corpus, labels=corpus_labels)  # the corpus, searchable
    knn = CosineKNN(index=index, k=3, batch_size=batch, time_steps=steps)
    probe.out.connect(knn.query)
    ids_sink = HostSink(shape=knn.ids.shape, time_steps=steps)
    scores_sink = HostSink(shape=knn.scores.shape, time_steps=steps)
    knn.ids.connect(ids_sink.inp)
    knn.scores.connect(scores_sink.inp)

    encoder.run(
        condition=RunSteps(num_steps=steps, blocking=False),
        run_cfg=Loihi2SimCfg(select_tag="fixed_pt"),
    )
    ids, scores = ids_sink.receive().astype(np.int64), scores_sink.receive()
    encoder.wait()
    encoder.stop()
    return {
        "ids": ids,
        "scores": scores,
        "network": network,
        "corpus": corpus,
        "corpus_labels": corpus_labels,
        "queries": queries,
        "query_labels": query_labels,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=2000, help="training images in the corpus")
    parser.add_argument("--queries", type=int, default=5, help="test images to answer")
    parser.add_argument("--time-steps", type=int, default=16, help="T, steps per image")
    args = parser.parse_args()

    result = answer(args.corpus, args.queries, args.time_steps)
    ids, scores = result["ids"], result["scores"]
    corpus_labels, query_labels = result["corpus_labels"], result["query_labels"]
    for q in range(len(ids)):
        print(f"query {q} ({CLASS_NAMES[query_labels[q]]}):")
        for rank, (i, s) in enumerate(zip(ids[q], scores[q], strict=True), 1):
            print(f"  {rank}. corpus image {i:5d}  {CLASS_NAMES[corpus_labels[i]]:<12} cos {s:.3f}")


if __name__ == "__main__":
    main()
