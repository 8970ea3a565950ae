"""One conformance suite: every engine and model of the project against the executable spec.

The specification is :func:`lava_retrieval.snn.reference.simulate_reference`. Every engine below
runs
every case below, under every timing it supports, and whatever it can observe (each layer's
spike trains, spike counts and final potentials, or the embedding layer's readouts) must equal
the reference's integers exactly:

=============  ==========================================================  =================
engine         what runs                                                   observes
=============  ==========================================================  =================
``torch``      the simulator's dense engine                                every layer
``events``     the simulator's compiled engine: event-driven; two-phase    every layer
               timings per window in closed form (step by step where
               that is not proven exact)
events-steps   the event kernel step by step, also under the two-phase     every layer
               timings
``lava``       the Lava process graph, fixed-point models, images          the readouts
               streaming in windows of 3                                   (taking turns)
``lava-float`` the same, float models (held to the reference without       the readouts
               saturation, which they do not model)                        (taking turns)
``loihi``      each IFLayer on Lava's own Conv/Dense + LIFReset (hard       membrane readout
               reset), images streaming one window each
``netx``       the netx export, loaded by lava-dl                          every layer's spikes
``loihi-sdnn`` a ``sigma_delta`` network on Lava's own Delta/Conv/         the embedding's
               SigmaDelta/Dense/Sigma, streamed one image per step (the    messages
               project's SigmaDelta model, which keeps the shifted bits)
``loihi-sdnn-reset``  the same on Lava 0.10's own models, the graph        the embedding's
               cleared between images                                      messages
``netx-sdnn``  the netx SDNN export, loaded by lava-dl and completed by    the embedding's
               ``load_sdnn``, streamed                                     messages
``sinabs``     the NIR export (``exports.nir.export_nir``), imported by    every layer (not
               sinabs' ``from_nir`` with one spike per step, no membrane   an analog input
               floor, the graph's recorded reset and initial potentials    layer)
=============  ==========================================================  =================

An engine that cannot run a case says why (Lava's timing only, hard reset only, int32 only, ...)
and the pair is skipped with that reason. The pairs that run, and the readouts each compares
(those that differ from a black image's), are pinned in ``conformance_pairs.txt``: a pair that
starts skipping or running fails until the list is written again (``PIN_COMMAND``), so the
change shows in review. Adding an engine or a feature to the project means adding it here: a
new engine is one entry of ``ENGINES``, a new behaviour one entry of ``CASES``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.ann.model import ConvNet
from lava_retrieval.conversion.algorithm import ConversionConfig, calibration_indices, convert
from lava_retrieval.engines import events, window
from lava_retrieval.loihi import lowering
from lava_retrieval.snn.config import GRAPH_TIMINGS, READOUTS, TIMINGS, SimConfig
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import V_MAX
from lava_retrieval.snn.reference import readout_of, simulate_reference

ROOT = Path(__file__).parents[2]
GOLDEN = Path(__file__).parent / "golden" / "small.npz"


# ---------------------------------------------------------------------------------------------
# Cases: a network, images and a number of time steps.


def _input_layer(side: int = 28) -> SpikingLayer:
    return SpikingLayer(
        "input", "input", (1, side, side), (1, side, side), None, None, 255, 255.0, 1.0
    )


def _shipped(fashion) -> SpikingNetwork:
    return SpikingNetwork.load(ROOT / "results" / "snn-32-64-10.npz")


def _lowerable(pool_mode: str, initial_membrane: float = 0.0) -> Callable:
    """The shipped ANN converted for Lava's built-ins: zero reset, 8-bit weights."""

    def build(fashion) -> SpikingNetwork:
        config = ConversionConfig(
            pool_mode=pool_mode,
            reset="zero",
            num_weight_bits=8,
            calibration_size=300,
            initial_membrane=initial_membrane,
        )
        train_images, _ = fashion.split("train")
        calibration = train_images[calibration_indices(len(train_images), config)]
        return convert(load_checkpoint().model, calibration, config)

    return build


def _small(pool_mode: str, reset: str) -> Callable:
    """A converted random 4-8-16-10: 5x5 convolutions, a padded 3x3 one, pooling, dense."""

    def build(fashion) -> SpikingNetwork:
        torch.manual_seed(3)
        images = np.random.default_rng(3).random((40, 28, 28))
        config = ConversionConfig(activation_percentile=99.0, pool_mode=pool_mode, reset=reset)
        return convert(ConvNet("4-8-16-10"), images, config)

    return build


def _geometry(k: int, stride: int, padding: int, groups: int, reset: str) -> Callable:
    """conv 5x5 (4 channels) -> a conv of the given geometry (6 channels) -> dense 10."""

    def build(fashion) -> SpikingNetwork:
        rng = np.random.default_rng(k * 100 + stride * 10 + padding + groups)
        w1 = rng.integers(-40, 60, (4, 1, 5, 5))
        conv1 = SpikingLayer(
            "conv1", "conv", (1, 28, 28), (4, 24, 24), w1, rng.integers(-9, 9, 4), 300, 1.0, 1.0
        )
        side = (24 + 2 * padding - k) // stride + 1
        w2 = rng.integers(-30, 50, (6, 4 // groups, k, k))
        conv2 = SpikingLayer(
            "conv2",
            "conv",
            (4, 24, 24),
            (6, side, side),
            w2,
            rng.integers(-5, 5, 6),
            70,
            1.0,
            1.0,
            stride=stride,
            padding=padding,
            groups=groups,
        )
        w3 = rng.integers(-20, 30, (10, 6 * side * side))
        dense = SpikingLayer(
            "dense1", "dense", (6, side, side), (10,), w3, rng.integers(-3, 3, 10), 90, 1.0, 1.0
        )
        layers = (_input_layer(), conv1, conv2, dense)
        # No pooling layers: "folded" lets netx load it.
        return SpikingNetwork(layers, 2, reset, "folded", "hand")

    return build


def _saturation(weight: int, threshold: int, reset: str) -> Callable:
    """784 inputs that spike every step (a white image) into dense neurons with weights
    +weight and -weight and the given threshold: the potentials run into +-V_MAX."""

    def build(fashion) -> SpikingNetwork:
        w = np.full((2, 784), weight, np.int32)
        w[1] = -weight
        dense = SpikingLayer(
            "dense1", "dense", (1, 28, 28), (2,), w, np.array([3, -3]), threshold, 1.0, 1.0
        )
        out = SpikingLayer(
            "dense2", "dense", (2,), (1,), np.ones((1, 2), np.int32), None, 1, 1.0, 1.0
        )
        return SpikingNetwork((_input_layer(), dense, out), 1, reset, "folded", "hand")

    return build


def _analog(build: Callable) -> Callable:
    """The same network with an analog input (its first layer sees the pixel currents)."""
    return lambda fashion: replace(build(fashion), analog_input=True)


def _qcfs_analog(fashion) -> SpikingNetwork:
    """The shipped QCFS network converted with an analog input (16 pixel levels)."""
    return SpikingNetwork.load(ROOT / "results" / "snn-32-64-10-qcfs16-analog.npz")


def _small_analog(fashion) -> SpikingNetwork:
    """A converted random 4-8-16-10 with an analog input of 255 levels (its first layer's
    weights made coarser to keep its threshold within the exact-count budget)."""
    torch.manual_seed(4)
    images = np.random.default_rng(4).random((40, 28, 28))
    config = ConversionConfig(activation_percentile=99.0, analog_input=True)
    return convert(ConvNet("4-8-16-10"), images, config)


def _golden(fashion) -> SpikingNetwork:
    return SpikingNetwork.load(GOLDEN.with_name("small-net.npz"))


def _starting_at(build: Callable, fraction: float) -> Callable:
    """The same network with every window starting at ``fraction`` of the threshold."""
    return lambda fashion: replace(build(fashion), initial_membrane=fraction)


def _test_images(count: int, start: int = 0) -> Callable:
    return lambda fashion: fashion.test_images[start : start + count]


def _white(count: int) -> Callable:
    return lambda fashion: np.full((count, 28, 28), 255, np.uint8)


def _golden_images(fashion) -> np.ndarray:
    with np.load(GOLDEN) as f:
        return f["images"]


def _sdnn_shipped(fashion) -> SpikingNetwork:
    """The shipped sigma-delta network (method qcfs8-sdnn)."""
    from lava_retrieval.conversion.sdnn import convert_sdnn_checkpoint

    return convert_sdnn_checkpoint(
        load_checkpoint(ROOT / "lava_retrieval/pretrained/32-64-10-qcfs8s")
    )


def _sdnn_geometry(k: int, stride: int, padding: int, groups: int) -> Callable:
    """A hand-built geometry as a sigma-delta network: an analog input, power-of-two
    thresholds, weights within 8 bits, the rounding half as the initial potential."""

    def build(fashion) -> SpikingNetwork:
        network = _geometry(k, stride, padding, groups, "subtract")(fashion)
        layers = [network.layers[0]]
        for layer, threshold in zip(network.layers[1:], (2048, 512, 256), strict=True):
            weight = np.clip(layer.weight, -127, 127)
            layers.append(replace(layer, weight=weight, threshold=threshold))
        return replace(network, layers=tuple(layers), analog_input=True, initial_membrane=0.5)

    return build


def _sdnn_bound(weight: int) -> Callable:
    """A white image into dense neurons of weights +weight and -weight from every pixel: with
    41 the sums come within 3 % of the 24-bit bound (784 x 255 x 41 = 8,197,320), and the
    message of the positive neuron is 8,005."""

    def build(fashion) -> SpikingNetwork:
        w = np.full((2, 784), weight, np.int32)
        w[1] = -weight
        dense = SpikingLayer(
            "dense1", "dense", (1, 28, 28), (2,), w, np.array([300, -300]), 1024, 1.0, 1.0
        )
        out = SpikingLayer(
            "dense2", "dense", (2,), (1,), np.ones((1, 2), np.int32), None, 1, 1.0, 1.0
        )
        return SpikingNetwork(
            (_input_layer(), dense, out), 1, "subtract", "folded", "hand", {}, 0.5, True
        )

    return build


@dataclass(frozen=True)
class Case:
    network: Callable
    images: Callable
    time_steps: int
    sigma_delta: bool = False  # also run under the sigma_delta timing
    # Timings under which no readout of the embedding layer differs from a black image's,
    # and why (an engine that sees only the readouts has nothing to compare there).
    blind: dict = field(default_factory=dict)


def _too_deep(steps: int) -> dict:
    return {
        "delay": f"under the delay timing a spike moves one layer a step: {steps} steps do "
        "not reach the embedding layer"
    }


CASES = {
    # Real images through the shipped network (soft reset, pooling as its own layers).
    "shipped": Case(_shipped, _test_images(8), 16),
    # The shipped ANN as Lava's built-ins can run it, pooling folded or separate.
    "shipped-lowerable-folded": Case(_lowerable("folded"), _test_images(2, 8), 12),
    "shipped-lowerable-separate": Case(_lowerable("separate"), _test_images(2, 10), 12),
    "small-separate-subtract": Case(_small("separate", "subtract"), _test_images(6), 20),
    "small-separate-zero": Case(
        _small("separate", "zero"),
        _test_images(6),
        20,
        blind=dict.fromkeys(
            ("exact_count", "graded"),
            "under the two-phase timings conv2 fires the same count for every image (its "
            "biases dominate what pool1 sends), so nothing of the image goes deeper",
        ),
    ),
    "small-folded-subtract": Case(_small("folded", "subtract"), _test_images(6, 6), 16),
    # One step from half the threshold (from zero, one step reaches no readout).
    "small-one-step": Case(
        _starting_at(_small("separate", "subtract"), 0.5), _test_images(4), 1, blind=_too_deep(1)
    ),
    "small-five-steps": Case(_small("separate", "zero"), _test_images(4), 5, blind=_too_deep(5)),
    # Hand-built geometries: the event engine's tap table and clipped runs.
    **{
        f"{name}-{reset}": Case(_geometry(*geometry, reset), _test_images(3), 10)
        for name, geometry in {
            "strided-padded": (3, 2, 1, 1),
            "grouped": (3, 1, 1, 2),  # 2 input and 3 output channels per group
            "map-larger-than-input": (4, 1, 2, 1),  # runs clipped at both ends
            "stride-above-kernel": (2, 3, 0, 1),  # some inputs reach no output
        }.items()
        for reset in ("subtract", "zero")
    },
    # Saturation in both directions; thresholds above V_MAX (a neuron that can never fire
    # still saturates at +V_MAX) and running sums past 2**24 (float64 in the torch engine).
    "saturation-high-threshold-subtract": Case(_saturation(255, 10**9, "subtract"), _white(1), 20),
    "saturation-high-threshold-zero": Case(_saturation(255, 10**9, "zero"), _white(1), 20),
    "saturation-above-v-max": Case(_saturation(255, V_MAX + 1, "subtract"), _white(1), 12),
    "saturation-firing-subtract": Case(_saturation(255, 1_000_000, "subtract"), _white(1), 120),
    # Within what Lava's built-ins hold: |w| <= 127, threshold <= V_MAX, zero reset.
    "saturation-lowerable": Case(_saturation(127, V_MAX, "zero"), _white(1), 8),
    # The committed golden network (its reference arrays are pinned in test_reference.py).
    "golden-subtract": Case(_golden, _golden_images, 12),
    "golden-zero": Case(lambda f: replace(_golden(f), reset="zero"), _golden_images, 12),
    # Windows that start from half the threshold (and, with a threshold above V_MAX, from
    # beyond the saturation bound).
    "shipped-initial-half": Case(_starting_at(_shipped, 0.5), _test_images(8, 16), 8),
    "shipped-lowerable-initial-half": Case(_lowerable("folded", 0.5), _test_images(2, 8), 6),
    "golden-initial-third": Case(_starting_at(_golden, 1 / 3), _golden_images, 12),
    "saturation-initial-half": Case(
        _starting_at(_saturation(255, 10**9, "subtract"), 0.5),
        _white(1),
        6,
        blind={
            "graded": "the potentials start beyond V_MAX (half of 10**9) and the graded "
            "timing adds the whole window at once: every readout is the bound, as for black"
        },
    ),
    # An analog input: the first synapse layer integrates the pixel currents themselves.
    "qcfs-analog": Case(_qcfs_analog, _test_images(8, 24), 8),
    "small-analog": Case(_small_analog, _test_images(6, 12), 12),
    "golden-analog-zero": Case(
        _analog(lambda f: replace(_golden(f), reset="zero")), _golden_images, 9
    ),
    "saturation-analog": Case(_analog(_saturation(255, 10**9, "subtract")), _white(1), 4),
    # Sigma-delta networks (power-of-two thresholds, 8-bit weights, an analog input): the
    # shipped qcfs8-sdnn on real images, hand-built geometries, sums near the 24-bit bound.
    "sdnn-shipped": Case(_sdnn_shipped, _test_images(8, 40), 1, True),
    "sdnn-strided-padded": Case(_sdnn_geometry(3, 2, 1, 1), _test_images(3, 48), 1, True),
    "sdnn-grouped": Case(_sdnn_geometry(3, 1, 1, 2), _test_images(3, 51), 1, True),
    "sdnn-24-bit": Case(_sdnn_bound(41), _white(1), 1, True),
}


# ---------------------------------------------------------------------------------------------
# Engines: each runs a network and reports what it can observe.


@dataclass
class Observed:
    """What an engine saw: per layer (None where it cannot observe), and embedding readouts."""

    spikes: list | None = None  # (T, N, *shape) per layer
    counts: list | None = None
    membrane: list | None = None
    readouts: dict = field(default_factory=dict)


def _simulator(engine: str, device: str = "cpu") -> Callable:
    def run(network, images, steps, timing, readouts) -> Observed:
        from lava_retrieval.engines.sim import simulate

        result = simulate(
            network,
            images,
            SimConfig(steps, timing=timing, chunk_size=4, engine=engine, readout="membrane"),
            record_spikes=True,
            device=device,
        )
        return Observed(
            result.spikes,
            result.spike_counts,
            result.membrane,
            {r: readout_of(network, result, r) for r in READOUTS},
        )

    return run


def _event_steps(network, images, steps, timing, readouts) -> Observed:
    """The event kernel step by step, also where the two-phase timings have a closed form."""
    from lava_retrieval.snn.reference import SimResult

    membrane, counts, spikes = events.simulate_events(
        events.packed(network), images, steps, timing, True, closed_form=False
    )
    result = SimResult(counts, membrane, spikes)
    return Observed(spikes, counts, membrane, {r: readout_of(network, result, r) for r in READOUTS})


def _graph(backend: str) -> Callable:
    def run(network, images, steps, timing, readouts) -> Observed:
        from lava_retrieval.lava_graph.graph import embed

        # Batches of 3: several windows stream through the graph one after another.
        return Observed(
            readouts={
                r: embed(
                    network,
                    images,
                    SimConfig(steps, timing=timing, readout=r),
                    batch_size=3,
                    backend=backend,
                    progress=False,
                )
                for r in readouts
            }
        )

    return run


def _loihi(network, images, steps, timing, readouts) -> Observed:
    from lava_retrieval.lava_graph.graph import embed

    # All images stream through one graph, one window each.
    config = SimConfig(steps, timing=timing, readout="membrane")
    return Observed(
        readouts={"membrane": embed(network, images, config, backend="loihi", progress=False)}
    )


def _loihi_sdnn(mode: str, tmp_dir: Path | None = None) -> Callable:
    def run(network, images, steps, timing, readouts) -> Observed:
        from lava_retrieval.exports.netx_sdnn import export_sdnn
        from lava_retrieval.lava_graph.sdnn_graph import SdnnGraph

        netx = None if tmp_dir is None else export_sdnn(network, tmp_dir / "sdnn.h5")
        result = SdnnGraph(network, images, mode=mode, netx=netx).run()
        counts = [None] * len(network.layers)
        counts[network.embedding_layer] = result.embeddings.reshape(
            len(images), *network.embedding_shape
        )
        # The output layer's sums: messages x threshold + remainder - v_init of the reference.
        last = len(network.layers) - 1
        membrane = [None] * len(network.layers)
        params = network.neuron(last)
        sums = result.outputs + params.v_init
        counts[last] = np.maximum(sums, 0) // params.threshold
        membrane[last] = sums - counts[last] * params.threshold
        return Observed(
            counts=counts, membrane=membrane, readouts={"spike_count": result.embeddings}
        )

    return run


def _sinabs(tmp_dir: Path) -> Callable:
    """The NIR file, read back and run by sinabs as its README says: every ``IF`` node one
    spike per step (``SingleSpike``), no floor under the membrane, the reset the metadata
    records (subtract, or NIR's own reset to zero) and the initial potentials it records."""

    def run(network, images, steps, timing, readouts) -> Observed:
        import nir
        import sinabs
        from sinabs.activation import MembraneReset, MembraneSubtract, SingleSpike

        from lava_retrieval.exports.nir import export_nir
        from lava_retrieval.snn.neuron import input_current

        path = export_nir(network, tmp_dir / "net.nir", timing, steps)
        graph = nir.read(str(path))
        n = len(images)
        with warnings.catch_warnings():  # (nirtorch announces a newer loader)
            warnings.simplefilter("ignore", DeprecationWarning)
            model = sinabs.from_nir(graph, batch_size=n)
        layers = {layer.name: (i, layer) for i, layer in enumerate(network.layers)}
        outputs: dict[str, torch.Tensor] = {}
        neurons = {}
        for name, module in model.named_modules():
            if isinstance(module, sinabs.layers.IAF):
                _, layer = layers[name]
                module.spike_fn, module.min_v_mem = SingleSpike, None
                module.reset_fn = (
                    MembraneSubtract() if graph.metadata["reset"] == "subtract" else MembraneReset()
                )
                module.init_state_with_shape((n, *layer.output_shape))
                module.v_mem.data.fill_(float(graph.metadata["initial_potential"][name]))
                module.register_forward_hook(
                    lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach())
                )
                neurons[name] = module
        current = input_current(images, graph.metadata["param_scale"]).astype(np.float32)
        current = np.repeat(current.reshape(n, 1, 1, *current.shape[1:]), steps, axis=1)
        with torch.no_grad():
            model(torch.from_numpy(current.reshape(n * steps, *current.shape[2:])))
        spikes, counts, membrane = [], [], []
        for layer in network.layers:
            if layer.name not in neurons:  # an analog input: no input neurons
                spikes.append(None), counts.append(None), membrane.append(None)
                continue
            out = outputs[layer.name].numpy().reshape(n, steps, *layer.output_shape)
            trains = np.moveaxis(out, 1, 0).astype(bool)
            spikes.append(trains)
            counts.append(trains.sum(0))
            membrane.append(neurons[layer.name].v_mem.detach().numpy().astype(np.int64))
        return Observed(spikes, counts, membrane)

    return run


def _float32_exact(network: SpikingNetwork, steps: int) -> bool:
    """Whether float32 holds every potential of ``network`` exactly (below 2**24) over
    ``steps`` steps without saturation: at most threshold + steps x (largest input a step
    can bring) in magnitude."""
    bound = 0
    for i, layer in enumerate(network.layers):
        if layer.kind == "input":
            step = abs(float(layer.param_scale))
        else:
            fan_in = np.abs(layer.weight.astype(np.int64)).reshape(len(layer.weight), -1).sum(1)
            bias = 0 if layer.bias is None else np.abs(layer.bias.astype(np.int64))
            step = int(np.max(fan_in + bias))
        bound = max(bound, network.neuron(i).threshold + steps * step)
    return bound < 1 << 24


def _netx(tmp_dir: Path) -> Callable:
    def run(network, images, steps, timing, readouts) -> Observed:
        from lava_retrieval.exports.netx import export_netx, run_netx

        path = export_netx(network, tmp_dir / "net.h5")
        per_image = [run_netx(path, network, image, steps) for image in images]
        spikes = [
            np.stack([layers[i] for layers in per_image], axis=1).astype(bool)
            for i in range(len(network.layers))
        ]
        return Observed(spikes=spikes, counts=[s.sum(0) for s in spikes])

    return run


@dataclass(frozen=True)
class Engine:
    run: Callable
    timings: tuple[str, ...] = TIMINGS
    max_images: int | None = None
    saturates: bool = True  # False: held to the reference without saturation
    lowers_to: str | None = None  # needs lowering.problems(network, target) to be empty
    needs_int32: bool = False
    needs_cuda: bool = False
    float32: bool = False  # computes in float32: integers exact only below 2**24
    make: Callable | None = None  # the run function, given a temporary directory
    readouts: tuple[str, ...] = READOUTS  # the embedding readouts it can report
    layers: bool = True  # observes every layer (False: only the readouts)
    # A Lava graph run costs a second or two: one readout per case, taking turns (all three
    # on the shipped network).
    taking_turns: bool = False

    def why_not(self, network: SpikingNetwork, timing: str, steps: int) -> str | None:
        """Why the engine cannot run ``network`` under ``timing`` for ``steps`` steps (a GPU
        engine's missing GPU is the machine's, not the network's: see ``NO_GPU``)."""
        if self.lowers_to == "sdnn":
            from lava_retrieval.loihi import sdnn_lowering

            return "; ".join(sdnn_lowering.problems(network)) or None
        if self.lowers_to is not None:
            found = lowering.problems(network, self.lowers_to)
            if self.lowers_to == "loihi":
                found += lowering.stream_problems(network, timing)
            if found:
                return "; ".join(found)
        if self.needs_int32 and not events.supports(network, steps if timing == "graded" else 0):
            return "int32 cannot hold this network's synaptic input"
        if self.float32 and not _float32_exact(network, steps):
            return "float32 cannot hold this network's potentials exactly (2**24 and above)"
        return None

    def compared(self, case: str, timing: str, sees: Callable) -> tuple[str, ...]:
        """The readouts compared in a pair: those that see the image (differ from a black
        image's), one taking turns where the engine takes turns."""
        seeing = [r for r in self.readouts if sees(r)]
        if not self.taking_turns or case == "shipped":
            return tuple(seeing)
        start = list(CASES).index(case) % len(READOUTS)
        turns = READOUTS[start:] + READOUTS[:start]
        return tuple(r for r in turns if r in seeing)[:1]


NO_GPU = "no CUDA GPU on this machine"


GRAPH = {"layers": False, "taking_turns": True}
# The embedding's messages, and the output layer's counts and sums.
SDNN = {"timings": ("sigma_delta",), "lowers_to": "sdnn", "readouts": ("spike_count",)}

ENGINES = {
    "torch": Engine(_simulator("torch")),
    "torch-cuda": Engine(_simulator("torch", "cuda"), needs_cuda=True),
    "events": Engine(_simulator("events"), timings=TIMINGS[:-1], needs_int32=True),
    "events-steps": Engine(_event_steps, timings=window.TIMINGS, max_images=4, needs_int32=True),
    "lava": Engine(_graph("lava"), timings=GRAPH_TIMINGS, **GRAPH),
    "lava-float": Engine(_graph("lava-float"), timings=GRAPH_TIMINGS, saturates=False, **GRAPH),
    "loihi": Engine(
        _loihi,
        timings=lowering.STREAM_TIMINGS,
        max_images=4,
        lowers_to="loihi",
        readouts=("membrane",),
        layers=False,
    ),
    "netx": Engine(
        None, timings=("delay",), max_images=1, lowers_to="netx", make=_netx, readouts=()
    ),
    "loihi-sdnn": Engine(_loihi_sdnn("stream"), **SDNN),
    "loihi-sdnn-reset": Engine(_loihi_sdnn("reset"), max_images=2, **SDNN),
    "netx-sdnn": Engine(
        None, max_images=4, make=lambda tmp_dir: _loihi_sdnn("stream", tmp_dir), **SDNN
    ),
    # NIR states the timings that run one step through the whole graph; sinabs does not
    # saturate (held to the reference without saturation).
    "sinabs": Engine(
        None,
        timings=("no_delay", "pipelined"),
        max_images=4,
        saturates=False,
        float32=True,
        make=_sinabs,
        readouts=(),
    ),
}


# ---------------------------------------------------------------------------------------------


class Cases:
    """Networks and images of the cases, and their reference results (for the case's images
    and for black ones), each computed once."""

    def __init__(self, fashion) -> None:
        self.fashion = fashion
        self._built: dict = {}
        self._expected: dict = {}

    def built(self, name: str) -> tuple[SpikingNetwork, np.ndarray]:
        if name not in self._built:
            case = CASES[name]
            self._built[name] = (case.network(self.fashion), np.asarray(case.images(self.fashion)))
        return self._built[name]

    def expected(self, name: str, timing: str, saturate: bool = True, black: bool = False):
        key = (name, timing, saturate, black)
        if key not in self._expected:
            network, images = self.built(name)
            self._expected[key] = simulate_reference(
                network,
                np.zeros_like(images[:1]) if black else images,  # (black: one is all of them)
                CASES[name].time_steps,
                timing,
                record_spikes=not black,
                saturate=saturate,
            )
        return self._expected[key]

    def plan(self, engine: str, case: str, timing: str) -> tuple[str | None, tuple[str, ...]]:
        """Whether a pair runs (None) or why not, and the readouts it compares."""
        spec = ENGINES[engine]
        network, _ = self.built(case)
        reason = spec.why_not(network, timing, CASES[case].time_steps)
        if reason:
            return reason, ()

        def sees(readout: str) -> bool:
            image = readout_of(network, self.expected(case, timing, spec.saturates), readout)
            black = self.expected(case, timing, spec.saturates, black=True)
            return bool((image != readout_of(network, black, readout)).any())

        readouts = spec.compared(case, timing, sees)
        if not readouts and not spec.layers:
            why = CASES[case].blind.get(timing)
            assert why, (
                f"{engine} {case} {timing}: no readout it reports differs from a black image's; "
                "compare another readout or say why in the case's `blind`"
            )
            return f"no readout sees the image: {why}", ()
        return None, readouts


@pytest.fixture(scope="module")
def cases(fashion) -> Cases:
    return Cases(fashion)


#: The engines that run a Lava process graph, netx or sinabs (seconds a pair): the slow tier.
SLOW_ENGINES = {"lava", "lava-float", "loihi", "netx", "loihi-sdnn", "loihi-sdnn-reset"}
SLOW_ENGINES |= {"netx-sdnn", "sinabs"}

#: The pairs that run, with the readouts each compares (``PIN_COMMAND`` writes it).
PINNED = Path(__file__).with_name("conformance_pairs.txt")
PIN_COMMAND = ".venv/bin/python tests/lava_retrieval/test_conformance.py --pin"

PAIRS = [
    (engine, case, timing)
    for engine, spec in ENGINES.items()
    for case in CASES
    for timing in spec.timings
    # The sigma-delta cases under sigma_delta only, the others under the rest.
    if (timing == "sigma_delta") == CASES[case].sigma_delta
]


def _read_pinned() -> dict[tuple[str, str, str], tuple[str, ...]]:
    pinned = {}
    for line in PINNED.read_text().splitlines():
        if line and not line.startswith("#"):
            engine, case, timing, readouts = line.split()
            pinned[engine, case, timing] = tuple(r for r in readouts.split(",") if r != "-")
    return pinned


def _pinned_lines(cases: Cases) -> list[str]:
    lines = []
    for pair in PAIRS:
        reason, readouts = cases.plan(*pair)
        if reason is None:
            lines.append(" ".join((*pair, ",".join(readouts) or "-")))
    return lines


@pytest.mark.parametrize(
    ("engine", "case", "timing"),
    [
        pytest.param(*pair, marks=[pytest.mark.slow] if pair[0] in SLOW_ENGINES else [])
        for pair in PAIRS
    ],
)
def test_engine_matches_the_reference(engine, case, timing, cases, tmp_path):
    spec = ENGINES[engine]
    network, images = cases.built(case)
    reason, readouts = cases.plan(engine, case, timing)
    pinned = _read_pinned().get((engine, case, timing))
    if (reason is None) != (pinned is not None) or (pinned is not None and pinned != readouts):
        now = f"skips ({reason})" if reason else f"runs, comparing {readouts or 'the layers'}"
        pytest.fail(
            f"{engine} {case} {timing} now {now}; pinned: "
            f"{'runs, comparing ' + str(pinned) if pinned is not None else 'skips'}. "
            f"If that is meant, regenerate the pinned pairs: {PIN_COMMAND}"
        )
    if reason:
        pytest.skip(f"{engine}: {reason}")
    if spec.needs_cuda and not torch.cuda.is_available():
        pytest.skip(f"{engine}: {NO_GPU}")
    images = images[: spec.max_images]
    run = spec.run or spec.make(tmp_path)
    got = run(network, images, CASES[case].time_steps, timing, readouts)
    reference = cases.expected(case, timing, spec.saturates)
    n = len(images)
    compared = 0
    for i in range(len(network.layers)):
        for name, mine, theirs in (
            ("spikes", got.spikes, reference.spikes),
            ("counts", got.counts, reference.spike_counts),
            ("membrane", got.membrane, reference.membrane),
        ):
            if mine is not None and mine[i] is not None:
                theirs = theirs[i][:, :n] if name == "spikes" else theirs[i][:n]
                np.testing.assert_array_equal(mine[i], theirs, err_msg=f"layer {i} {name}")
                compared += 1
    for readout in readouts:
        want = readout_of(network, reference, readout)[:n]
        np.testing.assert_array_equal(got.readouts[readout], want, err_msg=readout)
        compared += 1
    assert compared > 0


def test_the_running_pairs_are_pinned(cases):
    """The (engine, case, timing) pairs that run, and the readouts each compares, are the
    committed list: an engine that starts refusing a case (or running one) shows in review."""
    got = _pinned_lines(cases)
    want = [line for line in PINNED.read_text().splitlines() if not line.startswith("#")]
    assert got == want, (
        f"newly running: {sorted(set(got) - set(want))}; no longer running: "
        f"{sorted(set(want) - set(got))}. If that is meant: {PIN_COMMAND}"
    )


def test_every_engine_runs_some_case_under_every_timing():
    """No engine is pinned to skip every case under one of its timings (the GPU engine's
    pairs are pinned as they run where there is a GPU)."""
    pinned = _read_pinned()
    for engine, spec in ENGINES.items():
        for timing in spec.timings:
            assert any(e == engine and t == timing for e, _, t in pinned), (engine, timing)


@pytest.mark.parametrize("case", CASES)
def test_cases_are_not_trivial(case, cases):
    """Every case makes its deeper layers spike or saturate under some timing: a silent
    network would agree with anything."""
    network, _ = cases.built(case)
    expected = cases.expected
    if CASES[case].sigma_delta:  # the embedding layer sends messages, the output has input
        result = expected(case, "sigma_delta")
        assert int(result.spike_counts[network.embedding_layer].sum()) > 0
        assert int(np.abs(result.membrane[-1]).sum() + result.spike_counts[-1].sum()) > 0
        return
    results = [expected(case, timing) for timing in TIMINGS]
    spiking = max(int(r.spike_counts[-1].sum() + r.spike_counts[-2].sum()) for r in results)
    saturated = max(int((np.abs(m) == V_MAX).sum()) for r in results for m in r.membrane)
    if CASES[case].time_steps == 1:
        assert int(results[1].spike_counts[0].sum()) > 0  # the input layer fires at once
    else:
        assert spiking > 0 or saturated > 0


def test_the_float_models_are_exact_on_the_shipped_network(cases):
    """lava-float is held to the unsaturated reference; on real images with the shipped
    network that is the network's own semantics (no potential reaches V_MAX)."""
    saturated = cases.expected("shipped", "delay")
    unsaturated = cases.expected("shipped", "delay", False)
    for a, b in zip(saturated.membrane, unsaturated.membrane, strict=True):
        np.testing.assert_array_equal(a, b)


def test_saturation_cases_saturate(cases):
    """The saturation cases do reach both bounds (and the high threshold never fires)."""
    high = cases.expected("saturation-high-threshold-subtract", "no_delay")
    assert high.membrane[1][0].tolist() == [V_MAX, -V_MAX]
    assert int(high.spike_counts[1].sum()) == 0
    lowerable = cases.expected("saturation-lowerable", "delay")
    assert lowerable.membrane[1][0, 1] == -V_MAX and lowerable.spike_counts[1][0, 0] > 0


if __name__ == "__main__":
    import sys

    from lava_retrieval.data.fashion_mnist import load_fashion_mnist

    if sys.argv[1:] != ["--pin"]:
        sys.exit(f"usage: {PIN_COMMAND}")
    lines = _pinned_lines(Cases(load_fashion_mnist(download=False)))
    header = f"# engine case timing readouts: the pairs that run. Written by {PIN_COMMAND}"
    PINNED.write_text("\n".join([header, *lines]) + "\n")
    print(f"{len(lines)} pairs run of {len(PAIRS)}: {PINNED}")
