"""Energy: exact operation counts per image, a Loihi energy model driven by them, and the
machine's own energy counters where it exposes them.

Operation counts (:func:`op_counts`), from the simulator's spike counts, per image:

* ``spikes``: spikes emitted by all layers in the presentation.
* ``synaptic_ops``: for every spike, one operation per outgoing synapse (the structural fan-out
  of the emitting neuron: kernel taps that fall inside the next layer's map, every output of a
  dense layer). Computed exactly as the next layer's synaptic input with every weight set to 1.
* ``neuron_updates``: every neuron of every layer is updated once per chip step; a presentation
  takes ``T`` steps with Lava's timing (``delay``/``no_delay``), ``T + depth`` steps for one
  image with ``pipelined`` timing (its last layer finishes ``depth`` steps after the input) and
  ``T x (layers + 1)`` with ``exact_count`` (the input integrates T steps, then every layer
  fires T steps while its successor integrates them) and ``layers`` with ``graded`` messages
  and ``sigma_delta`` neurons (one step a layer).
* Graded messages (an assumption, not a measurement): with ``graded`` timing a neuron whose
  count is not 0 sends one message per image (likewise a ``sigma_delta`` neuron whose message
  is not 0, counted per image from a cleared graph: streamed, a neuron sends only where its
  message changes from the previous image's), and with an analog input every non-zero pixel
  current is one message per step it is sent (once per image with ``graded`` and
  ``sigma_delta``). A message is
  counted in ``spikes`` and causes one synaptic operation per outgoing synapse, costed like a
  binary spike's: Loihi 2 carries graded spikes (Orchard et al., "Efficient neuromorphic signal
  processing with Loihi 2", IEEE SiPS 2021), and no per-operation energy of them has been
  published, so this is a first-order assumption.

Loihi model (:class:`LoihiEnergyModel`): ``E = P_static x t + E_dynamic`` with

* ``E_dynamic = synaptic_ops x 23.6 pJ + neuron_updates x 81 pJ + spikes x 1.7 pJ``: the
  per-operation energies Davies et al. measured on Loihi ("Loihi: a neuromorphic manycore
  processor with on-chip learning", IEEE Micro 38(1), 2018, Table 2: synaptic spike operation
  23.6 pJ, neuron update 81 pJ active / 52 pJ inactive, spike within a tile 1.7 pJ; every neuron
  here integrates a bias or input each step, so each update is counted as active; spike routing
  between tiles, 3.5 pJ per hop, is left out).
* ``t = overhead + per_step x steps`` and ``P_static``: the only published measurements of this
  network on the chip are Liu et al.'s (Tables 3 and 4: 2.984 ms and 0.946 W static at T = 16,
  11.976 ms and 0.952 W at T = 128), so the time is the straight line through those two runtimes
  and the static power their mean. The model's *dynamic* energy is an independent prediction
  from the counts; the check is the dynamic and total energy against the measured
  ``0.044 W x 2.984 ms`` and 2.996 mJ per example (T = 16) and the same at T = 128.

Machine counters (:class:`EnergyMeter`): Intel RAPL package energy under
``/sys/class/powercap`` where readable, ``nvidia-smi``'s ``total_energy_consumption`` for a
GPU. Where neither is readable the meter says so; no number is made up.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from lava_retrieval.evaluation import paper
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

RAPL_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class LoihiEnergyModel:
    """Per-operation energies (Davies et al. 2018, Table 2) and the chip's static power and
    timing (Liu et al. 2022, Tables 3 and 4); see the module docstring.

    >>> round(LoihiEnergyModel().seconds(16) * 1e3, 3)
    2.984
    """

    synaptic_op_pj: float = 23.6
    neuron_update_pj: float = 81.0
    spike_pj: float = 1.7
    static_w: float = (paper.loihi_row(16)["static_w"] + paper.loihi_row(128)["static_w"]) / 2
    per_step_ms: float = (paper.loihi_row(128)["ms"] - paper.loihi_row(16)["ms"]) / (128 - 16)
    overhead_ms: float = paper.loihi_row(16)["ms"] - 16 * (
        (paper.loihi_row(128)["ms"] - paper.loihi_row(16)["ms"]) / (128 - 16)
    )

    def seconds(self, steps: float) -> float:
        """Runtime of one example that takes ``steps`` chip steps."""
        return (self.overhead_ms + self.per_step_ms * steps) / 1e3

    def estimate(self, counts: dict) -> dict:
        """Energy of one example from its :func:`op_counts` (millijoules and milliseconds)."""
        dynamic_pj = (
            counts["synaptic_ops"] * self.synaptic_op_pj
            + counts["neuron_updates"] * self.neuron_update_pj
            + counts["spikes"] * self.spike_pj
        )
        seconds = self.seconds(counts["steps"])
        static_mj = self.static_w * seconds * 1e3
        dynamic_mj = dynamic_pj * 1e-9
        return {
            "ms": seconds * 1e3,
            "static_mj": static_mj,
            "dynamic_mj": dynamic_mj,
            "total_mj": static_mj + dynamic_mj,
            "dynamic_w": dynamic_mj / (seconds * 1e3),
        }

    def to_dict(self) -> dict:
        """JSON-able parameters."""
        return asdict(self)


def chip_steps(network: SpikingNetwork, time_steps: int, timing: str) -> int:
    """Chip steps one image occupies (see the module docstring).

    >>> chip_steps(net, 16, "pipelined"), chip_steps(net, 16, "exact_count")
    (21, 112)
    >>> chip_steps(net, 16, "graded")
    6
    """
    depth = len(network.layers) - 1
    if timing == "exact_count":
        return time_steps * (len(network.layers) + 1)
    if timing in ("graded", "sigma_delta"):
        return depth + 1
    return time_steps + depth if timing == "pipelined" else time_steps


def op_counts(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig,
    *,
    progress: bool = False,
) -> dict:
    """Mean spikes, synaptic operations and neuron updates per image, exact per image (see the
    module docstring), and per layer, simulated with ``config``'s time steps and timing.

    Returns
    -------
    dict
        ``spikes`` (messages: spikes, or graded messages), ``synaptic_ops``,
        ``neuron_updates``, ``steps`` (per image) and ``layers``: one record per layer with its
        neurons, spikes and the synaptic operations its spikes cause in the next layer.

    >>> round(op_counts(net, images[:10], SimConfig(16, "delay", "membrane"))["synaptic_ops"])
    2926760
    """
    from tqdm.auto import tqdm

    from lava_retrieval.engines.sim import simulate
    from lava_retrieval.snn.neuron import input_current
    from lava_retrieval.snn.synapse import SynapticOp

    time_steps, timing, chunk_size = config.time_steps, config.timing, config.chunk_size
    layers = network.layers
    # The next layer's input with unit weights = the spikes' structural fan-out.
    fan_out = [
        SynapticOp(replace(layers[i + 1], weight=np.ones_like(layers[i + 1].weight), bias=None))
        for i in range(len(layers) - 1)
    ]
    spikes = np.zeros(len(layers))
    synops = np.zeros(len(layers))
    with tqdm(total=len(images), unit="img", disable=not progress, desc="counts") as bar:
        for start in range(0, len(images), chunk_size):
            chunk = images[start : start + chunk_size]
            result = simulate(network, chunk, config)
            for i, counts in enumerate(result.spike_counts):
                sent = np.asarray(counts)  # messages: spikes, or graded messages
                if i == 0 and network.analog_input:  # the non-zero pixel currents, every step
                    current = input_current(chunk, layers[0].param_scale)
                    repeats = 1 if timing in ("graded", "sigma_delta") else time_steps
                    sent = (current > 0).reshape(len(chunk), *layers[0].output_shape) * repeats
                elif timing in ("graded", "sigma_delta"):  # a message: a non-zero count
                    sent = sent > 0
                spikes[i] += float(sent.sum(dtype=np.int64))
                if i < len(fan_out):
                    synops[i] += float(fan_out[i](sent.astype(np.float32)).sum(dtype=np.float64))
            bar.update(len(chunk))
    n = len(images)
    steps = chip_steps(network, time_steps, timing)
    neurons = [layer.num_neurons for layer in layers]
    return {
        "images": n,
        "time_steps": time_steps,
        "timing": timing,
        "steps": steps,
        "spikes": float(spikes.sum() / n),
        "synaptic_ops": float(synops.sum() / n),
        "neuron_updates": float(sum(neurons) * steps),
        "layers": [
            {
                "name": layer.name,
                "neurons": neurons[i],
                "spikes": float(spikes[i] / n),
                "synaptic_ops": float(synops[i] / n),
            }
            for i, layer in enumerate(layers)
        ],
    }


def cost_curve(
    network: SpikingNetwork, images: np.ndarray, timing: str, time_steps: list[int]
) -> dict[int, dict]:
    """Latency in chip steps and the Loihi model's energy per image at each T: ``{T: {"steps":
    chip steps, "mj": total mJ}}`` (operation counts from ``images``).

    >>> cost_curve(net, images[:2], "delay", [16])[16]["steps"]
    16
    """
    model = LoihiEnergyModel()
    curve = {}
    for steps in time_steps:
        counts = op_counts(network, images, SimConfig(steps, timing=timing, readout="membrane"))
        curve[int(steps)] = {"steps": counts["steps"], "mj": model.estimate(counts)["total_mj"]}
    return curve


def _rapl_files(root: Path = RAPL_ROOT) -> list[Path]:
    """Readable package-level RAPL energy counters (``intel-rapl:N``, not their subzones)."""
    files = []
    for zone in sorted(root.glob("intel-rapl:*")):
        counter = zone / "energy_uj"
        if zone.name.count(":") == 1 and counter.is_file():
            try:
                int(counter.read_text())
            except (OSError, ValueError):
                continue
            files.append(counter)
    return files


def _rapl_joules(files: list[Path]) -> float:
    return sum(int(f.read_text()) for f in files) / 1e6


def _gpu_joules() -> float | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=total_energy_consumption", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return sum(float(line) for line in out.split()) / 1e3  # millijoules -> joules
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class EnergyMeter:
    """Energy drawn while a block runs, from the machine's counters.

    ``kind``: ``cpu`` (RAPL package counters) or ``gpu`` (nvidia-smi). After the block,
    ``joules`` is the energy drawn (``None`` where the machine exposes no counter) and
    ``source`` names the counter or says why there is none.

    >>> with EnergyMeter("cpu") as meter:
    ...     total = sum(range(10_000))
    >>> meter.joules is None or meter.joules >= 0
    True
    """

    def __init__(self, kind: str = "cpu", rapl_root: Path = RAPL_ROOT) -> None:
        self.kind = kind
        self.joules: float | None = None
        self._files = _rapl_files(rapl_root) if kind == "cpu" else []
        if kind == "cpu":
            self.source = (
                f"RAPL ({', '.join(f.parent.name for f in self._files)})"
                if self._files
                else f"none: no readable RAPL counter under {rapl_root}"
            )
        else:
            self.source = (
                "nvidia-smi total_energy_consumption"
                if _gpu_joules() is not None
                else "none: nvidia-smi gives no energy counter"
            )
        self._start: float | None = None

    @property
    def available(self) -> bool:
        """Whether the machine exposes a counter of this kind."""
        return not self.source.startswith("none")

    def read(self) -> float | None:
        """The counter now, in joules."""
        if self.kind == "cpu":
            return _rapl_joules(self._files) if self._files else None
        return _gpu_joules()

    def __enter__(self) -> EnergyMeter:
        self._start = self.read()
        return self

    def __exit__(self, *exc) -> None:
        end = self.read()
        if self._start is not None and end is not None:
            delta = end - self._start
            if delta < 0 and self.kind == "cpu":  # the counter wrapped once
                delta += (
                    sum(int((f.parent / "max_energy_range_uj").read_text()) for f in self._files)
                    / 1e6
                )
            self.joules = delta
