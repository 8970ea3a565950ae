"""The spiking-network artifact: integer layers, thresholds and their provenance.

A :class:`SpikingNetwork` is what the converter produces and every simulator, the Lava graph and
the netx export consume. Shapes are (C, H, W) like torch; conv and pool weights are in torch
layout (out, in/groups, kH, kW) and dense weights (out, in) over a torch-order (C, H, W)
flattening of the previous layer.

Layer kinds:

``input``
    One neuron per pixel, driven by a bias current of ``round(pixel * W_MAX)``; no weights.
    With an analog input (``SpikingNetwork.analog_input``) it has no neurons: it sends the
    current ``round(pixel * param_scale)`` itself, a graded value every step, to the first
    synapse layer (whose threshold and bias the converter scaled to that unit).
``conv``
    Convolution (``stride``, ``padding``) + bias + integrate-and-fire neurons.
``pool``
    Average pooling as its own layer of neurons: a depthwise convolution (``groups`` = channels)
    with equal integer weights, no bias.
``dense``
    Fully connected + bias + neurons.

With pooling folded (``pool_mode="folded"``) there are no ``pool`` layers: the layer after each
pooling is a strided convolution (or dense layer) whose weights already contain the averaging.

Files: one ``.npz`` holding the integer arrays and a JSON manifest (format version, layers'
scalars, converter config, source checkpoint hash, calibration size). Loading it back gives an
equal network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from lava_retrieval.common.atomic import write_bytes
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.strict import loads
from lava_retrieval.snn.neuron import RESET_MODES, NeuronParams, initial_potential

FORMAT = "lava-retrieval-snn"
FORMAT_VERSION = 1
LAYER_KINDS = ("input", "conv", "pool", "dense")


_JSON = {str: "string", dict: "object", list: "list"}


class NetworkError(LavaRetrievalError):
    """A spiking-network file is missing, malformed or of another version."""


_SCALAR_FIELDS = (
    "name",
    "kind",
    "input_shape",
    "output_shape",
    "threshold",
    "param_scale",
    "slope",
    "stride",
    "padding",
    "groups",
)


@dataclass(frozen=True, eq=False)
class SpikingLayer:
    """One layer of integrate-and-fire neurons and the synapses that feed it.

    Attributes
    ----------
    name : str
        ``input``, ``conv1``, ``pool1``, ..., ``dense1``.
    kind : str
        One of ``input``, ``conv``, ``pool``, ``dense``.
    input_shape, output_shape : tuple of int
        (C, H, W) for maps, (N,) for dense layers.
    weight : numpy.ndarray of int32 or None
        Integer weights (None for the input layer).
    bias : numpy.ndarray of int32 or None
        Integer bias per output channel / neuron (None for input and pool layers).
    threshold : int
        Firing threshold (>= 1).
    param_scale : float
        Factor the ANN parameters were multiplied by before truncation.
    slope : float
        SNN spike rate / ANN activation after this layer (Algorithm 1's running ``slope``).
    stride, padding, groups : int
        Convolution geometry (1, 0, 1 for dense and input layers).
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weight: np.ndarray | None
    bias: np.ndarray | None
    threshold: int
    param_scale: float
    slope: float
    stride: int = 1
    padding: int = 0
    groups: int = 1

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise NetworkError(f"layer {self.name}: unknown kind {self.kind!r}")
        if int(self.threshold) < 1:
            raise NetworkError(f"layer {self.name}: threshold {self.threshold} < 1")
        # Frozen means frozen: private, read-only int32 copies of the arrays.
        for name in ("weight", "bias"):
            value = getattr(self, name)
            if value is not None:
                value = np.array(value, dtype=np.int32)
                value.setflags(write=False)
                object.__setattr__(self, name, value)
        object.__setattr__(self, "threshold", int(self.threshold))

    @property
    def num_neurons(self) -> int:
        """Number of neurons of the layer."""
        return int(np.prod(self.output_shape))

    @property
    def fan_in(self) -> int:
        """Synapses per neuron (inputs that can reach one neuron)."""
        if self.weight is None:
            return 0
        return int(np.prod(self.weight.shape[1:]))

    @property
    def max_input(self) -> int:
        """Largest |synaptic input + bias| one step can bring to a neuron (for the input layer,
        the largest pixel current plus one)."""
        if self.weight is None:
            return int(np.ceil(abs(self.param_scale))) + 1
        weight = np.abs(self.weight.astype(np.int64)).reshape(len(self.weight), -1)
        worst = int(weight.sum(1).max())
        if self.bias is not None:
            worst += int(np.abs(self.bias.astype(np.int64)).max())
        return worst

    def scalars(self) -> dict:
        """The JSON-able fields (everything but the arrays)."""
        out = {k: getattr(self, k) for k in _SCALAR_FIELDS}
        out["input_shape"] = list(self.input_shape)
        out["output_shape"] = list(self.output_shape)
        return out

    @property
    def synapses(self) -> np.ndarray:
        """The weights of a layer with synapses (every layer but the input)."""
        if self.weight is None:
            raise NetworkError(f"layer {self.name!r} has no synapses")
        return self.weight

    def equals(self, other: SpikingLayer) -> bool:
        """Exact equality, arrays included."""
        if self.scalars() != other.scalars():
            return False
        for mine, theirs in ((self.weight, other.weight), (self.bias, other.bias)):
            if (mine is None) != (theirs is None):
                return False
            if (
                mine is not None
                and theirs is not None
                and not (mine.dtype == theirs.dtype and np.array_equal(mine, theirs))
            ):
                return False
        return True


MAX_NEURONS_PER_LAYER = 50_000_000
MAX_SYNAPSES_PER_LAYER = 500_000_000


def _check_layer(layer: SpikingLayer, previous: SpikingLayer | None) -> None:
    """Refuse a layer whose geometry cannot run (what a corrupt or hand-edited file gives)."""
    name = f"layer {layer.name!r}"

    def fail(problem: str) -> NoReturn:
        raise NetworkError(f"{name}: {problem}")

    for what in ("input_shape", "output_shape"):
        shape = getattr(layer, what)
        if not (
            isinstance(shape, tuple)
            and shape
            and all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape)
        ):
            fail(f"{what} {shape!r} is not a tuple of positive integers")
    if layer.num_neurons > MAX_NEURONS_PER_LAYER:
        fail(f"{layer.num_neurons:,} neurons is more than {MAX_NEURONS_PER_LAYER:,}")
    for what in ("param_scale", "slope"):
        if not np.isfinite(float(getattr(layer, what))):
            fail(f"{what} is not finite")
    if not (layer.stride >= 1 and layer.padding >= 0 and layer.groups >= 1):
        fail(
            f"stride {layer.stride}, padding {layer.padding}, groups {layer.groups} "
            "(need >= 1, >= 0, >= 1)"
        )
    if layer.kind == "input":
        if previous is not None:
            fail("an input layer can only come first")
        if layer.weight is not None or layer.bias is not None:
            fail("the input layer has no weights or bias")
        return
    if previous is None:
        fail("the first layer must be the input layer")
    if tuple(layer.input_shape) != tuple(previous.output_shape):
        fail(
            f"input shape {layer.input_shape} is not the previous layer's output "
            f"{previous.output_shape}"
        )
    weight = layer.weight
    if weight is None:
        fail("weights are missing")
    if weight.size > MAX_SYNAPSES_PER_LAYER:
        fail(f"{weight.size:,} weights is more than {MAX_SYNAPSES_PER_LAYER:,}")
    if layer.kind == "dense":
        expected = (layer.output_shape[0], int(np.prod(layer.input_shape)))
        if len(layer.output_shape) != 1 or weight.shape != expected:
            fail(
                f"dense weights {weight.shape} do not map {layer.input_shape} to "
                f"{layer.output_shape}"
            )
    else:
        if len(layer.input_shape) != 3 or len(layer.output_shape) != 3 or weight.ndim != 4:
            fail("a convolution or pooling layer needs (C, H, W) shapes and 4-D weights")
        c_in, h, w = layer.input_shape
        c_out, k = weight.shape[0], weight.shape[-1]
        if c_in % layer.groups or c_out % layer.groups or weight.shape[2] != k:
            fail(f"weights {weight.shape} with groups {layer.groups} do not fit {c_in} channels")
        if weight.shape[1] != c_in // layer.groups:
            fail(f"weights {weight.shape} do not fit {c_in} input channels")
        out = (
            c_out,
            (h + 2 * layer.padding - k) // layer.stride + 1,
            (w + 2 * layer.padding - k) // layer.stride + 1,
        )
        if tuple(layer.output_shape) != out:
            fail(f"output shape {layer.output_shape} should be {out} for its geometry")
    if layer.bias is not None and layer.bias.shape != (weight.shape[0],):
        fail(f"bias shape {layer.bias.shape} does not fit {weight.shape[0]} outputs")


@dataclass(frozen=True, eq=False)
class SpikingNetwork:
    """A converted network.

    Attributes
    ----------
    layers : tuple of SpikingLayer
        Input layer first, output layer last.
    embedding_layer : int
        Index of the layer whose state is the image's embedding: the layer before the output
        layer (for 32-64-10 with separate pooling, the 4 x 4 x 64 ``pool2`` layer).
    reset : str
        ``subtract`` (soft reset, the paper's neuron) or ``zero`` (hard reset, Lava's LIF).
    pool_mode : str
        ``separate`` or ``folded``.
    arch : str
        Architecture spec of the source ANN.
    manifest : dict
        Provenance: converter configuration, source checkpoint hash, calibration size, ...
    initial_membrane : float
        Every neuron's potential at the start of each presentation window, as a fraction of its
        threshold in [0, 1): 0 (default) is the paper's rest, 0.5 the conversion literature's
        choice. Each layer's integer value is
        :func:`~lava_retrieval.snn.neuron.initial_potential` of it.
    analog_input : bool
        ``False`` (default): the input layer is a layer of integrate-and-fire neurons driven by
        the pixel currents. ``True``: the image enters the first synapse layer directly: the
        input layer sends its pixel current every step as a graded value instead of spikes
        (no input neuron fires; their potentials stay at the initial value).
    """

    layers: tuple[SpikingLayer, ...]
    embedding_layer: int
    reset: str
    pool_mode: str
    arch: str
    manifest: dict = field(default_factory=dict)
    initial_membrane: float = 0.0
    analog_input: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.analog_input, bool):
            raise NetworkError(f"analog_input must be true or false, got {self.analog_input!r}")
        if self.reset not in RESET_MODES:
            raise NetworkError(f"reset must be one of {RESET_MODES}, got {self.reset!r}")
        if not self.layers or self.layers[0].kind != "input":
            raise NetworkError("the first layer must be the input layer")
        if not 0 < self.embedding_layer < len(self.layers) - 1:
            raise NetworkError(f"embedding layer {self.embedding_layer} is out of range")
        for i, layer in enumerate(self.layers):
            _check_layer(layer, self.layers[i - 1] if i else None)
        fraction = float(self.initial_membrane)
        if not (np.isfinite(fraction) and 0.0 <= fraction < 1.0):
            raise NetworkError(
                f"initial_membrane must be a fraction of the threshold in [0, 1), got "
                f"{self.initial_membrane!r}"
            )
        object.__setattr__(self, "initial_membrane", fraction)

    def neuron(self, index: int) -> NeuronParams:
        """The neuron parameters of layer ``index``: its threshold, the network's reset and
        the initial potential of its windows.

        >>> net.neuron(1)
        NeuronParams(threshold=190, reset='subtract', v_max=131071, v_init=0)
        """
        threshold = self.layers[index].threshold
        return NeuronParams(
            threshold=threshold,
            reset=self.reset,
            v_init=initial_potential(self.initial_membrane, threshold),
        )

    def fingerprint(self) -> str:
        """SHA-256 of what the network computes, as 64 hex digits.

        It covers every array with its shape and dtype, each layer's kind, shapes, threshold and
        geometry, the input layer's ``param_scale`` (it scales the pixel currents), the reset,
        the initial membrane potential, an analog input and the embedding layer; not the layer
        names, the ``slope`` and ``param_scale`` bookkeeping of the other layers, or the
        manifest. Two
        networks with the same fingerprint give the same spikes and potentials for every input
        and setting; saving and loading keeps it. Caches of embeddings key on it (with the
        simulation settings).

        >>> net.fingerprint()[:12]
        'f09aa950e5ae'
        """
        digest = hashlib.sha256()

        def add(item: object) -> None:
            digest.update(json.dumps(item, sort_keys=True).encode() + b"\0")

        add({"format": FORMAT, "reset": self.reset, "embedding_layer": self.embedding_layer})
        if self.initial_membrane:  # (absent when 0, so older fingerprints stay valid)
            add({"initial_membrane": self.initial_membrane})
        if self.analog_input:  # (likewise absent when False)
            add({"analog_input": True})
        for i, layer in enumerate(self.layers):
            add(
                {
                    "kind": layer.kind,
                    "input_shape": list(layer.input_shape),
                    "output_shape": list(layer.output_shape),
                    "threshold": layer.threshold,
                    "stride": layer.stride,
                    "padding": layer.padding,
                    "groups": layer.groups,
                    "param_scale": float(layer.param_scale) if i == 0 else None,
                }
            )
            for array in (layer.weight, layer.bias):
                if array is None:
                    add(None)
                else:
                    add([list(array.shape), str(array.dtype)])
                    digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    @property
    def embedding_shape(self) -> tuple[int, ...]:
        """Shape of the embedding layer's state."""
        return self.layers[self.embedding_layer].output_shape

    @property
    def embedding_dim(self) -> int:
        """Length of the flattened embedding."""
        return int(np.prod(self.embedding_shape))

    def equals(self, other: SpikingNetwork) -> bool:
        """Exact equality of every layer, array and manifest entry."""
        return (
            len(self.layers) == len(other.layers)
            and all(a.equals(b) for a, b in zip(self.layers, other.layers, strict=True))
            and (self.embedding_layer, self.reset, self.pool_mode, self.arch)
            == (other.embedding_layer, other.reset, other.pool_mode, other.arch)
            and self.initial_membrane == other.initial_membrane
            and self.analog_input == other.analog_input
            and self.manifest == other.manifest
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` (arrays + JSON manifest), atomically."""
        return write_bytes(Path(path), self.to_bytes())

    def to_bytes(self) -> bytes:
        """The content of the ``.npz`` file :meth:`save` writes."""
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "embedding_layer": self.embedding_layer,
            "reset": self.reset,
            "pool_mode": self.pool_mode,
            "arch": self.arch,
            "initial_membrane": self.initial_membrane,
            "analog_input": self.analog_input,
            "manifest": self.manifest,
            "layers": [layer.scalars() for layer in self.layers],
        }
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for i, layer in enumerate(self.layers):
            if layer.weight is not None:
                arrays[f"layer{i}_weight"] = layer.weight
            if layer.bias is not None:
                arrays[f"layer{i}_bias"] = layer.bias
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpikingNetwork:
        """Read a network written by :meth:`save`.

        >>> SpikingNetwork.load("missing.npz")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        lava_retrieval.snn.network.NetworkError: missing.npz: no such file
        """
        path = Path(path)
        if not path.is_file():
            raise NetworkError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            header = loads(arrays.pop("header").tobytes(), f"{path}: its header", 1 << 24)
            if not isinstance(header, dict):
                raise ValueError("its header is not a JSON object")
        except (
            ValueError,
            KeyError,
            OSError,
            EOFError,
            UnicodeDecodeError,
            zipfile.BadZipFile,
            zlib.error,
        ) as exc:
            raise NetworkError(f"{path}: not a spiking-network file ({exc})") from None
        if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise NetworkError(
                f"{path}: format {header.get('format')!r} version {header.get('version')!r}, "
                f"expected {FORMAT!r} version {FORMAT_VERSION}"
            )
        try:
            kinds = {"pool_mode": str, "arch": str, "manifest": dict, "layers": list}
            for key, kind in kinds.items():
                if not isinstance(header[key], kind):
                    raise NetworkError(f"{key} is not a {kind.__name__} (a JSON {_JSON[kind]})")
            layers = []
            for i, scalars in enumerate(header["layers"]):
                for key in ("weight", "bias"):
                    value = arrays.get(f"layer{i}_{key}")
                    if value is not None and value.dtype.kind not in "iu":
                        raise NetworkError(f"layer {i}: {key} is {value.dtype}, not integers")
                layers.append(
                    SpikingLayer(
                        **{
                            **scalars,
                            "input_shape": tuple(scalars["input_shape"]),
                            "output_shape": tuple(scalars["output_shape"]),
                        },
                        weight=arrays.get(f"layer{i}_weight"),
                        bias=arrays.get(f"layer{i}_bias"),
                    )
                )
            return cls(
                layers=tuple(layers),
                embedding_layer=header["embedding_layer"],
                reset=header["reset"],
                pool_mode=header["pool_mode"],
                arch=header["arch"],
                manifest=header["manifest"],
                initial_membrane=header.get("initial_membrane", 0.0),
                analog_input=header.get("analog_input", False),
            )
        except NetworkError as exc:
            raise NetworkError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NetworkError(f"{path}: malformed header ({type(exc).__name__}: {exc})") from None
