"""Event-driven integer simulation: the compiled engine behind
:func:`lava_retrieval.engines.sim.simulate`.

The spikes of a converted network are sparse (a few percent of the neurons of a hidden layer
fire in a step), so instead of multiplying whole 0/1 spike maps by the weights, every spike adds
its outgoing weights to the synaptic input of the next layer, as Loihi does. The kernel is
compiled by numba, works on one image at a time in exact int32 arithmetic, and the images of a
chunk are shared among threads (the kernel releases the GIL).

Layout: inside the kernel a (C, H, W) layer is stored channels-last, neuron ``(y * W + x) * C + c``,
so that one spike adds a contiguous run of output channels. Conv and pool layers are scattered
through weights rearranged to ``(C_in, K, K, C_out / groups)``: a stride-1 convolution without
groups adds one run of K positions x C_out channels per kernel row (columns stored reversed);
any other (strided, grouped, pooling) looks its (output position, tap) pairs up in a table
built once per network. Dense layers scatter rows of their transposed weights, ordered like
the previous layer's neurons. Results are turned back into torch's (C, H, W) order by
:func:`simulate_events`.

Per layer and image, the kernel runs all T steps before moving on to the next layer (the
network is feed-forward), keeping each step's spikes as a list of neuron indices. The neuron
step is that of :func:`lava_retrieval.snn.neuron.if_step` with the layer's
:class:`~lava_retrieval.snn.neuron.NeuronParams`: add synaptic input and bias, saturate at
``+-v_max``, spike at ``v >= threshold``, subtract the threshold or reset to zero (with the
``exact_count`` timing: T steps that only integrate, then T that only fire). The engine is
held to :func:`lava_retrieval.snn.reference.simulate_reference` by the conformance suite.
"""

from __future__ import annotations

import weakref

import numpy as np

from lava_retrieval.common.cores import threads_for
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.engines import compiled, window
from lava_retrieval.engines.compiled import jit as _jit
from lava_retrieval.engines.compiled import pool as _pool
from lava_retrieval.engines.compiled import trailing_zeros as _trailing_zeros
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import input_current
from lava_retrieval.snn.synapse import SynapticOp

AVAILABLE = compiled.AVAILABLE
_INT32_LIMIT = (1 << 31) - 1

# Columns of the per-layer table handed to the kernel.
_KIND, _WIN, _COUT, _HOUT, _WOUT, _K, _PAD = range(7)
_CIN_PG, _COUT_PG, _W_OFF, _THRESHOLD, _N_OFF, _T_OFF, _V_INIT = range(7, 14)
_COLUMNS = 14
# Layer kinds in the kernel. _RUN: a stride-1 convolution without groups, whose weights are
# stored with the kernel columns reversed so that one spike adds one contiguous run per kernel
# row (K output positions x C_out channels); _TAPS: any other convolution or pooling, one add
# of C_out / groups channels per kernel tap.
_INPUT, _TAPS, _RUN, _DENSE = range(4)


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    return int(np.prod(shape)), 1, 1


def supports(network: SpikingNetwork, graded_levels: int = 0) -> bool:
    """Whether the compiled engine can run ``network`` exactly (int32 never overflows), also
    with graded messages of ``graded_levels`` levels (a step's input up to that many times
    larger) where given."""
    if not AVAILABLE:
        return False
    prepared = packed(network)
    return prepared.fits_int32 and graded_levels * prepared.largest_input < _INT32_LIMIT


def _taps(layer: SpikingLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each input position q = y * W_in + x of a conv/pool layer, the output positions
    oy * W_out + ox it reaches and the kernel taps ky * K + kx that take it there, as
    compressed rows (ptr of length H_in * W_in + 1, outputs, taps)."""
    _, hin, win = _chw(layer.input_shape)
    _, hout, wout = _chw(layer.output_shape)
    k, s, pad = layer.synapses.shape[-1], layer.stride, layer.padding
    y, x = (a.reshape(-1, 1) for a in np.indices((hin, win)))
    ky, kx = (a.reshape(1, -1) for a in np.indices((k, k)))
    oy, ox = y + pad - ky, x + pad - kx  # stride * output position
    valid = (oy % s == 0) & (ox % s == 0) & (oy >= 0) & (ox >= 0)
    valid &= (oy // s < hout) & (ox // s < wout)
    ptr = np.concatenate([[0], np.cumsum(valid.sum(1))])
    outputs = ((oy // s) * wout + ox // s)[valid]
    taps = np.broadcast_to(ky * k + kx, valid.shape)[valid]
    return ptr, outputs, taps


class Packed:
    """A network as the flat arrays the kernel reads (built once per network and reused)."""

    def __init__(self, network: SpikingNetwork) -> None:
        table, weights, biases = [], [], []
        tap_ptr, tap_out, tap_k = [0], [], []
        w_off = n_off = 0
        self.shapes, self.output_shapes = [], []
        params = [network.neuron(i) for i in range(len(network.layers))]
        for layer, neuron in zip(network.layers, params, strict=True):
            cin, hin, win = _chw(layer.input_shape)
            cout, hout, wout = _chw(layer.output_shape)
            row = np.zeros(_COLUMNS, np.int64)
            row[[_WIN, _COUT, _HOUT, _WOUT]] = win, cout, hout, wout
            row[_THRESHOLD], row[_N_OFF] = neuron.threshold, n_off
            row[_V_INIT] = neuron.v_init
            row[_PAD], row[_K] = layer.padding, 1
            row[_CIN_PG], row[_COUT_PG] = 1, 1
            if layer.kind == "input":
                row[_KIND] = _INPUT
            elif layer.kind == "dense":
                row[_KIND] = _DENSE
                w = np.asarray(layer.weight, np.int32).reshape(cout, cin, hin, win)
                # Row i of the scatter table: the outputs of input neuron i (channels-last).
                weights.append(w.transpose(2, 3, 1, 0).reshape(-1))
            else:
                w = np.asarray(layer.weight, np.int32)
                groups = layer.groups
                cout_pg, cin_pg, k = cout // groups, w.shape[1], w.shape[-1]
                row[_K], row[_CIN_PG], row[_COUT_PG] = k, cin_pg, cout_pg
                # (C_in, K, K, C_out/groups): table[c, ky, kx, j] = w[g*cout_pg + j, c % cin_pg]
                grouped = w.reshape(groups, cout_pg, cin_pg, k, k).transpose(0, 2, 3, 4, 1)
                grouped = grouped.reshape(cin, k, k, cout_pg)
                row[_KIND] = _RUN if layer.stride == 1 and groups == 1 else _TAPS
                if row[_KIND] == _RUN:
                    grouped = grouped[:, :, ::-1]
                else:
                    ptr, out, tap = _taps(layer)
                    row[_T_OFF] = len(tap_ptr) - 1
                    tap_ptr.extend(ptr[1:] + tap_ptr[-1])
                    tap_out.append(out)
                    tap_k.append(tap)
                weights.append(np.ascontiguousarray(grouped).reshape(-1))
            if layer.weight is not None:
                row[_W_OFF] = w_off
                w_off += weights[-1].size
            # Bias of every neuron, channels-last; zero for layers without bias.
            bias = np.zeros((hout, wout, cout), np.int32)
            if layer.bias is not None:
                bias[:] = np.asarray(layer.bias, np.int32).reshape(-1)
            biases.append(bias.reshape(-1))
            table.append(row)
            self.shapes.append((cout, hout, wout))
            self.output_shapes.append(tuple(layer.output_shape))
            n_off += cout * hout * wout
        self.table = np.stack(table)
        self.weights = np.concatenate(weights) if weights else np.zeros(1, np.int32)
        self.biases = np.concatenate(biases)
        # Every input position's (output position, kernel tap) pairs of the _TAPS layers, as
        # compressed rows: position q of a layer with row offset t_off has the pairs
        # tap_ptr[t_off + q] to tap_ptr[t_off + q + 1].
        self.tap_ptr = np.array(tap_ptr, np.int32)
        self.tap_out = np.concatenate(tap_out or [np.zeros(0, np.int32)]).astype(np.int32)
        self.tap_k = np.concatenate(tap_k or [np.zeros(0, np.int32)]).astype(np.int32)
        # (y, x, c) of every neuron, channels-last, so the kernel decodes a spike without
        # integer division.
        self.where = np.concatenate(
            [np.indices((h, w, c)).reshape(3, -1).T for c, h, w in self.shapes]
        ).astype(np.int32)
        self.sizes = [c * h * w for c, h, w in self.shapes]
        self.num_neurons, self.max_neurons = sum(self.sizes), max(self.sizes)
        self.param_scale = network.layers[0].param_scale
        self.analog = network.analog_input
        self.first_synapses = _RoundedSynapses(network.layers[1]) if self.analog else None
        self.windows = window.Windows(network)
        # One reset and one saturation bound per network: the kernel takes them as scalars.
        self.reset_zero = params[0].reset == "zero"
        self.v_max = params[0].v_max
        assert all((p.reset, p.v_max) == (params[0].reset, self.v_max) for p in params)
        # The largest input of one step (an analog input's first synapse layer: its weights
        # times the largest pixel current), plus the potential it meets (graded messages:
        # times T).
        pixel = int(np.ceil(abs(network.layers[0].param_scale)))
        steps = [
            layer.max_input * (pixel if self.analog and i == 1 else 1)
            for i, layer in enumerate(network.layers)
        ]
        self.largest_input = max(
            step
            + (0 if layer.bias is None else int(np.abs(layer.bias).max(initial=0)))
            + self.v_max
            + abs(p.v_init)
            for step, layer, p in zip(steps, network.layers, params, strict=True)
        )
        # Thresholds above int32 cannot be compared in the kernel's int32 arithmetic.
        self.fits_int32 = all(
            step + self.v_max + abs(p.v_init) < _INT32_LIMIT and p.threshold < _INT32_LIMIT
            for step, p in zip(steps, params, strict=True)
        )

    def torch_order(self, states: np.ndarray, layer: int, offset: int) -> np.ndarray:
        """Layer ``layer``'s states, stored channels-last at ``states[..., offset:]``, as
        (..., *output_shape)."""
        c, h, w = self.shapes[layer]
        lead = states.shape[:-1]
        part = states[..., offset : offset + c * h * w]
        chw = part.reshape(*lead, h, w, c).transpose(*range(len(lead)), -1, -3, -2)
        return chw.reshape(*lead, *self.output_shapes[layer])


class _RoundedSynapses:
    """A layer's synaptic input of integer maps as exact int64 (for an analog input)."""

    def __init__(self, layer: SpikingLayer) -> None:
        self.op = SynapticOp(layer)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.rint(self.op(x)).astype(np.int64)


_PACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def packed(network: SpikingNetwork) -> Packed:
    """The kernel's arrays for ``network``, built once per network object."""
    if network not in _PACKED:
        _PACKED[network] = Packed(network)
    return _PACKED[network]


@_jit
def _add(dst, src):
    """dst += src[: len(dst)] (a view each, so that the loop vectorizes)."""
    for j in range(len(dst)):
        dst[j] += src[j]


@_jit
def _scatter(row, acc, weights, where, tap_ptr, tap_out, tap_k, in_off, idx, first, last):
    """Add the outgoing weights of the previous layer's events ``idx[first:last]`` to ``acc``,
    the synaptic input of the layer described by table ``row``."""
    kind, win = row[_KIND], row[_WIN]
    cout, hout, wout = row[_COUT], row[_HOUT], row[_WOUT]
    k, pad = row[_K], row[_PAD]
    cin_pg, cout_pg = row[_CIN_PG], row[_COUT_PG]
    w_off, t_off = row[_W_OFF], row[_T_OFF]
    n_out = cout * hout * wout
    for e in range(first, last):
        i = idx[e]
        if kind == _DENSE:
            _add(acc[:n_out], weights[w_off + i * n_out :])
            continue
        y, x, c = where[in_off + i, 0], where[in_off + i, 1], where[in_off + i, 2]
        if kind == _RUN:
            # Outputs (oy, x + pad - k + 1 + m) for m in [lo, hi) get the
            # kernel row's reversed columns m: one contiguous run.
            ox0 = x + pad - k + 1
            lo, hi = max(0, -ox0), min(k, wout - ox0)
            if lo >= hi:
                continue
            for ky in range(k):
                oy = y + pad - ky
                if oy < 0 or oy >= hout:
                    continue
                out = (oy * wout + ox0 + lo) * cout
                base = w_off + ((c * k + ky) * k + lo) * cout
                _add(acc[out : out + (hi - lo) * cout], weights[base:])
            continue
        group = (c if cin_pg == 1 else c // cin_pg) * cout_pg
        q = t_off + y * win + x
        for tap in range(tap_ptr[q], tap_ptr[q + 1]):
            out = tap_out[tap] * cout + group
            base = w_off + (c * k * k + tap_k[tap]) * cout_pg
            if cout_pg == 1:
                acc[out] += weights[base]
            else:
                _add(acc[out : out + cout_pg], weights[base:])


@_jit
def _integrate(v, acc, bias, v_max, flags, threshold):
    """v = clip(v + acc, -v_max, v_max); acc = bias (the next step's input starts there);
    flags = v >= threshold: the first half of :func:`lava_retrieval.snn.neuron.if_step`,
    compiled (a copy for speed, held to the spec by the conformance suite)."""
    lo, hi = np.int32(-v_max), np.int32(v_max)
    for n in range(len(v)):
        x = min(max(np.int32(v[n] + acc[n]), lo), hi)
        acc[n] = bias[n]
        v[n] = x
        flags[n] = x >= threshold


@_jit
def _accumulate(v, acc, bias, v_max):
    """v = clip(v + acc, -v_max, v_max); acc = bias: an integrating step without firing."""
    lo, hi = np.int32(-v_max), np.int32(v_max)
    for n in range(len(v)):
        v[n] = min(max(np.int32(v[n] + acc[n]), lo), hi)
        acc[n] = bias[n]


# The one function over 100 lines: numba compiles it as one loop nest over layers, steps and
# events (a call per layer or step from inside it would cost the speed it exists for). Its
# firing mirrors lava_retrieval.snn.neuron.if_step; the conformance suite holds it to the spec.
@_jit
def _kernel(
    table,
    weights,
    biases,
    where,
    tap_ptr,
    tap_out,
    tap_k,
    currents,
    analog,
    time_steps,
    delay,
    two_phase,
    graded,
    reset_zero,
    v_max,
    out_off,
    snaps,
    v_out,
    count_out,
    record,
    spikes_out,
    max_neurons,
):
    """Simulate images ``currents`` (N, n_input) int32.

    Writes the potentials and spike counts of layer l after step ``snaps[s]`` (ascending, the
    last T) to ``v_out`` / ``count_out`` (N, len(snaps), kept neurons) at ``[:, s,
    out_off[l]:]`` (not at all where ``out_off[l]`` is -1): a run of T steps is the prefix of a
    longer one, except under ``two_phase``, which has one snapshot, the last. If ``record``,
    every spike goes to ``spikes_out`` (N, T, all neurons).

    ``two_phase`` (the ``exact_count`` timing): every layer integrates its T steps without
    firing, then fires T steps with no input, which are the steps its successor integrates.
    ``graded`` (with ``two_phase``): a layer integrates all of its predecessor's spikes and T x
    its bias in one step instead (the count as one graded message: every spike of the window
    adds its weights once). ``analog``: the input layer
    has no neurons, and ``currents`` (N, n_layer1) is the first synapse layer's input of every
    step, computed once per image (its weights times the pixel currents, channels-last).
    """
    n_layers = table.shape[0]
    acc = np.zeros(max_neurons, np.int32)
    v = np.zeros(max_neurons, np.int32)
    count = np.zeros(max_neurons, np.int32)
    flags = np.zeros((max_neurons // 8 + 1) * 8, np.uint8)  # v >= threshold, scanned by words
    words = flags.view(np.uint64)
    # Spikes of the previous and the current layer: indices, step t's from ptr[t] to ptr[t+1].
    # (empty, not zeros: only the entries written are read, and untouched pages cost nothing)
    prev_idx = np.empty(time_steps * max_neurons, np.int32)
    prev_ptr = np.zeros(time_steps + 1, np.int64)
    cur_idx = np.empty(time_steps * max_neurons, np.int32)
    cur_ptr = np.zeros(time_steps + 1, np.int64)
    for image in range(currents.shape[0]):
        for layer in range(n_layers):
            kind = table[layer, _KIND]
            n_out = table[layer, _COUT] * table[layer, _HOUT] * table[layer, _WOUT]
            threshold, n_off = np.int32(table[layer, _THRESHOLD]), table[layer, _N_OFF]
            in_off = table[layer - 1, _N_OFF] if layer > 0 else 0
            bias = biases[n_off : n_off + n_out]
            v[:n_out] = table[layer, _V_INIT]
            acc[:n_out] = bias
            count[:n_out] = 0
            cur_ptr[0] = 0
            if graded:
                for n in range(n_out):
                    acc[n] = bias[n] * time_steps
            off = out_off[layer]
            snap = 0
            if kind == _INPUT and analog:  # no neurons: silent, potentials at v_init
                cur_ptr[:] = 0
                if off >= 0:
                    for s in range(len(snaps)):
                        v_out[image, s, off : off + n_out] = v[:n_out]
                        count_out[image, s, off : off + n_out] = 0
                prev_idx, cur_idx = cur_idx, prev_idx
                prev_ptr, cur_ptr = cur_ptr, prev_ptr
                continue
            for t in range(1 if graded else time_steps):
                # Synaptic input of this step.
                if kind == _INPUT:
                    for n in range(n_out):
                        acc[n] = currents[image, n] * (time_steps if graded else 1)
                elif analog and layer == 1:  # the constant current of an analog input
                    if t - delay >= 0:
                        scale = time_steps if graded else 1
                        for n in range(n_out):
                            acc[n] += currents[image, n] * scale
                elif t - delay >= 0:
                    s = t - delay
                    first, last = prev_ptr[s], prev_ptr[s + 1]
                    if graded:  # the whole window's spikes at once
                        first, last = prev_ptr[0], prev_ptr[time_steps]
                    _scatter(
                        table[layer],
                        acc,
                        weights,
                        where,
                        tap_ptr,
                        tap_out,
                        tap_k,
                        in_off,
                        prev_idx,
                        first,
                        last,
                    )
                if two_phase:  # integrate only; the firing follows the window
                    _accumulate(v[:n_out], acc[:n_out], bias, v_max)
                    continue
                # Neurons: integrate, saturate, fire, reset.
                _integrate(v[:n_out], acc[:n_out], bias, v_max, flags[:n_out], threshold)
                spikes_so_far = cur_ptr[t]
                for b in range((n_out + 7) // 8):
                    w = words[b]
                    while w != 0:  # each set flag byte: its lowest set bit is bit 0
                        n = b * 8 + (_trailing_zeros(w) >> 3)
                        w &= w - np.uint64(1)
                        if n >= n_out:  # the last word's bytes beyond the layer
                            break
                        cur_idx[spikes_so_far] = n
                        spikes_so_far += 1
                        count[n] += 1
                        if reset_zero:
                            v[n] = 0
                        else:
                            v[n] -= threshold
                        if record:
                            spikes_out[image, t, n_off + n] = 1
                cur_ptr[t + 1] = spikes_so_far
                if off >= 0 and snap < len(snaps) and t + 1 == snaps[snap]:
                    v_out[image, snap, off : off + n_out] = v[:n_out]
                    count_out[image, snap, off : off + n_out] = count[:n_out]
                    snap += 1
            if two_phase:  # fire for T steps with no input
                spikes_so_far = 0
                for t in range(time_steps):
                    for n in range(n_out):
                        if v[n] < threshold:
                            continue
                        cur_idx[spikes_so_far] = n
                        spikes_so_far += 1
                        count[n] += 1
                        if reset_zero:
                            v[n] = 0
                        else:
                            v[n] -= threshold
                        if record:
                            spikes_out[image, t, n_off + n] = 1
                    cur_ptr[t + 1] = spikes_so_far
            if two_phase and off >= 0:
                v_out[image, 0, off : off + n_out] = v[:n_out]
                count_out[image, 0, off : off + n_out] = count[:n_out]
            prev_idx, cur_idx = cur_idx, prev_idx
            prev_ptr, cur_ptr = cur_ptr, prev_ptr


def simulate_events(
    packed: Packed,
    images: np.ndarray,
    time_steps: int,
    timing: str,
    record: bool,
    layers: tuple[int, ...] | None = None,
    threads: int | None = None,
    closed_form: bool = True,
) -> tuple[list[np.ndarray | None], list[np.ndarray | None], list[np.ndarray] | None]:
    """Final potentials, spike counts (and spike trains) of the layers asked for, (C, H, W) order.

    Returns (membrane, counts, spikes): lists over layers of (N, *shape) int32 arrays (None for
    a layer not in ``layers``; default all), and of every layer's (T, N, *shape) bool spike
    trains when ``record``. The two-phase timings are computed per window in closed form
    (:mod:`lava_retrieval.engines.window`), step by step for the images where that is not
    proven exact, and for all with ``closed_form=False``.
    """
    if not AVAILABLE:
        raise LavaRetrievalError("the compiled engine needs numba (pip install numba)")
    if closed_form and timing in window.TIMINGS and packed.windows.applicable:
        return _simulate_windows(packed, images, time_steps, timing, record, layers, threads)
    (membrane, counts), spikes = _run_kernel(
        packed, images, (time_steps,), timing, record, layers, threads
    )
    return membrane[0], counts[0], spikes


def simulate_events_at(
    packed: Packed,
    images: np.ndarray,
    steps: tuple[int, ...],
    timing: str,
    layers: tuple[int, ...] | None = None,
    threads: int | None = None,
) -> list[tuple[list[np.ndarray | None], list[np.ndarray | None]]]:
    """(membrane, counts) as :func:`simulate_events` gives them, for each T of ``steps``
    (ascending), from one run of ``max(steps)`` steps where the timing makes a run of T steps
    the prefix of a longer one (all but the two-phase timings), else one run per T."""
    if timing in window.TIMINGS:
        return [
            simulate_events(packed, images, t, timing, False, layers, threads)[:2] for t in steps
        ]
    (membrane, counts), _ = _run_kernel(packed, images, steps, timing, False, layers, threads)
    return list(zip(membrane, counts, strict=True))


def _run_kernel(packed, images, snaps, timing, record, layers, threads):
    """Run the kernel for ``snaps[-1]`` steps: ((membrane, counts) per snapshot, spikes)."""
    n, time_steps = len(images), int(snaps[-1])
    currents = input_current(images, packed.param_scale)
    if packed.analog:  # the first synapse layer's constant input, channels-last
        first = packed.first_synapses(currents.reshape(n, *packed.output_shapes[0]))
        currents = first.reshape(n, *packed.shapes[1]).transpose(0, 2, 3, 1)
    currents = np.ascontiguousarray(currents.reshape(n, -1), np.int32)
    keep = range(len(packed.sizes)) if layers is None else sorted(set(layers))
    # Layers after the last one kept need not run (all of them run when spikes are recorded).
    table = packed.table if record else packed.table[: max(keep, default=-1) + 1]
    out_off = np.full(len(packed.sizes), -1, np.int64)
    kept = 0
    for i in keep:
        out_off[i], kept = kept, kept + packed.sizes[i]
    snaps = np.asarray(snaps, np.int64)
    v_out = np.empty((n, len(snaps), kept), np.int32)
    count_out = np.empty((n, len(snaps), kept), np.int32)
    spikes_out = np.zeros((n, time_steps, packed.num_neurons) if record else (1, 1, 1), np.uint8)
    delay = 1 if timing == "delay" else 0
    two_phase = timing in ("exact_count", "graded")
    graded = timing == "graded"
    workers = min(threads_for(threads), n)
    bounds = [n * part // workers for part in range(workers + 1)]

    def run(part: int) -> None:
        lo, hi = bounds[part], bounds[part + 1]
        _kernel(
            table,
            packed.weights,
            packed.biases,
            packed.where,
            packed.tap_ptr,
            packed.tap_out,
            packed.tap_k,
            currents[lo:hi],
            packed.analog,
            time_steps,
            delay,
            two_phase,
            graded,
            packed.reset_zero,
            packed.v_max,
            out_off,
            snaps,
            v_out[lo:hi],
            count_out[lo:hi],
            record,
            spikes_out[lo:hi] if record else spikes_out,
            packed.max_neurons,
        )

    if workers == 1:
        run(0)
    else:
        list(_pool(workers).map(run, range(workers)))

    def layers_at(states, snap):
        return [
            packed.torch_order(states[:, snap], i, o) if o >= 0 else None
            for i, o in enumerate(out_off)
        ]

    per_snap = [(layers_at(v_out, s), layers_at(count_out, s)) for s in range(len(snaps))]
    spikes = None
    if record:
        starts = np.cumsum([0] + packed.sizes)
        spikes = [
            packed.torch_order(spikes_out, i, starts[i]).astype(bool).swapaxes(0, 1)
            for i in range(len(packed.sizes))
        ]
    return tuple(zip(*per_snap, strict=True)), spikes


def _simulate_windows(packed, images, time_steps, timing, record, layers, threads):
    """:func:`simulate_events` of a two-phase timing in closed form: the images whose windows
    are not proven exact go through the kernel step by step."""
    every = tuple(range(len(packed.sizes)))
    wanted = every if record or layers is None else tuple(layers)
    membrane, counts, unproven = window.simulate_windows(
        packed.windows, images, time_steps, timing, wanted
    )
    if unproven.any():
        exact = simulate_events(
            packed, images[unproven], time_steps, timing, False, wanted, threads, False
        )
        for mine, theirs in zip((membrane, counts), exact[:2], strict=True):
            for layer, rows in zip(mine, theirs, strict=True):
                if layer is not None:
                    layer[unproven] = rows
    spikes = None
    if record:  # the firing phase spikes in the window's first ``count`` steps
        steps = np.arange(time_steps).reshape(-1, 1, 1)
        spikes = [(c.reshape(1, len(c), -1) > steps).reshape(time_steps, *c.shape) for c in counts]
    if layers is not None:
        membrane = [m if i in layers else None for i, m in enumerate(membrane)]
        counts = [c if i in layers else None for i, c in enumerate(counts)]
    return membrane, counts, spikes
