"""One time step of a layer for the Lava graph's fixed-point models, compiled: the synaptic
input of a batch of spike maps, scattered event by event, and the neuron step in place.

The batched models of :mod:`procs.if_layer.models` run one step of one layer per call, for B
images at once. Dense im2col products do the same work whatever fraction of the inputs spiked,
and numpy's neuron step makes several passes over the potentials; here every spike (or nonzero
graded value) adds its outgoing weights to the next layer's input, channels-last so that one
kernel tap adds a contiguous run of output channels, and the neuron step is one pass. Exact
integer arithmetic (int32 sums where they cannot overflow, else int64), numba-compiled (no
torch: the models run in forked processes), so the integers are those of
:class:`~lava_retrieval.snn.synapse.SynapticOp` and :func:`~lava_retrieval.snn.neuron.if_step`
(the conformance suite runs the graph).
"""

from __future__ import annotations

import numpy as np

from lava_retrieval.engines.compiled import jit
from lava_retrieval.snn.network import SpikingLayer
from lava_retrieval.snn.neuron import NeuronParams


@jit
def _scatter_conv(x, table, cin_pg, cout_pg, k, stride, pad, out):
    """out (B, H_out, W_out, C_out) += the conv/pool input of maps ``x`` (B, C, H, W), each
    nonzero value times its weights ``table`` (C_in, K, K, C_out / groups)."""
    hout, wout = out.shape[1], out.shape[2]
    if stride == k and pad == 0 and cout_pg == 1:  # pooling: each input reaches one output
        for b in range(x.shape[0]):
            for c in range(x.shape[1]):
                o = (c // cin_pg) * cout_pg
                for y in range(min(x.shape[2], hout * k)):
                    for xx in range(min(x.shape[3], wout * k)):
                        value = np.int64(x[b, c, y, xx])
                        if value != 0:
                            out[b, y // k, xx // k, o] += value * table[c, y % k, xx % k, 0]
        return
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            base = (c // cin_pg) * cout_pg
            for y in range(x.shape[2]):
                for xx in range(x.shape[3]):
                    value = np.int64(x[b, c, y, xx])
                    if value == 0:
                        continue
                    for ky in range(k):
                        sy = y + pad - ky
                        if sy < 0 or sy % stride != 0 or sy // stride >= hout:
                            continue
                        oy = sy // stride
                        for kx in range(k):
                            sx = xx + pad - kx
                            if sx < 0 or sx % stride != 0 or sx // stride >= wout:
                                continue
                            row = out[b, oy, sx // stride, base : base + cout_pg]
                            weights = table[c, ky, kx]
                            if value == 1:
                                for j in range(cout_pg):
                                    row[j] += weights[j]
                            else:
                                for j in range(cout_pg):
                                    row[j] += value * weights[j]


@jit
def _scatter_dense(x, table, out):
    """out (B, N_out) += the dense input of ``x`` (B, N_in): rows of ``table`` (N_in, N_out)."""
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            value = np.int64(x[b, i])
            if value == 0:
                continue
            weights = table[i]
            for j in range(out.shape[1]):
                out[b, j] += value * weights[j]


@jit
def _if_step(v, a_in, channels_last, bias, threshold, v_max, reset_zero, spikes):
    """:func:`lava_retrieval.snn.neuron.if_step`, compiled (a copy for speed, held to the spec
    by the conformance suite). In place, (B, C, S) views: v = clip(v + a_in + bias[c],
    -v_max, v_max); spikes = v >=
    threshold, then the reset (subtract the threshold, or zero). ``a_in`` is (B, C, S), or
    (B, S, C) with ``channels_last`` (as :class:`EventSynapses` computes it)."""
    for b in range(v.shape[0]):
        for c in range(v.shape[1]):
            bc = bias[c]
            for j in range(v.shape[2]):
                drive = a_in[b, j, c] if channels_last else a_in[b, c, j]
                x = np.int64(v[b, c, j]) + np.int64(drive) + bc
                x = min(max(x, -v_max), v_max)
                if x >= threshold:
                    spikes[b, c, j] = 1
                    x = 0 if reset_zero else x - threshold
                else:
                    spikes[b, c, j] = 0
                v[b, c, j] = x


class EventSynapses:
    """``spikes (B, *input_shape) -> synaptic input (B, *output_shape)``, by scattering each
    nonzero input's weights (spike maps, counts or currents); int32 where no sum can pass
    2**31, else int64."""

    def __init__(self, layer: SpikingLayer) -> None:
        self.kind = layer.kind
        self.output_shape = tuple(layer.output_shape)
        weight = np.asarray(layer.weight, np.int64)
        self.worst = int(np.abs(weight).reshape(len(weight), -1).sum(1).max())
        if layer.kind == "dense":
            self._tables(weight.reshape(len(weight), -1).T)
            return
        cout, cin_pg, k = weight.shape[0], weight.shape[1], weight.shape[-1]
        groups = layer.groups
        cout_pg = cout // groups
        cin = cin_pg * groups
        # table[c, ky, kx, j] = w[g * cout_pg + j, c % cin_pg, ky, kx], g = c // cin_pg
        grouped = weight.reshape(groups, cout_pg, cin_pg, k, k).transpose(0, 2, 3, 4, 1)
        self._tables(grouped.reshape(cin, k, k, cout_pg))
        self.geometry = (cin_pg, cout_pg, k, layer.stride, layer.padding)

    def _tables(self, table: np.ndarray) -> None:
        """The weight table in both sum types (the kernel adds like to like)."""
        self.tables = {t: np.ascontiguousarray(table, t) for t in (np.int32, np.int64)}

    def __call__(self, spikes: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(spikes)
        batch = len(x)
        # int32 sums where no sum can reach 2**31 (spike maps, small counts), else int64.
        largest = int(np.abs(x).max(initial=0))
        dtype = np.int32 if largest * self.worst < 2**31 - 1 else np.int64
        if self.kind == "dense":
            out = np.zeros((batch, self.output_shape[0]), dtype)
            _scatter_dense(x.reshape(batch, -1), self.tables[dtype], out)
            return out
        c, h, w = self.output_shape
        out = np.zeros((batch, h, w, c), dtype)
        _scatter_conv(x, self.tables[dtype], *self.geometry, out)
        return out.transpose(0, 3, 1, 2)


def if_step_in_place(
    v: np.ndarray, a_in: np.ndarray, bias: np.ndarray, params: NeuronParams
) -> np.ndarray:
    """:func:`~lava_retrieval.snn.neuron.if_step` on ``v`` (B, C, ...) in place, ``a_in`` of
    its shape, ``bias`` one per channel; returns the spikes (int32, ``v``'s shape)."""
    if not v.flags.c_contiguous:  # a view of it would be a copy: work on one, write back
        work = np.ascontiguousarray(v)
        spikes = if_step_in_place(work, a_in, bias, params)
        v[...] = work
        return spikes
    batch, channels = v.shape[0], v.shape[1]
    spikes = np.empty(v.shape, np.int32)
    a_in = np.asarray(a_in)
    # EventSynapses' (B, C, H, W) is a view of a channels-last array: read that one.
    channels_last = a_in.ndim == 4 and a_in.transpose(0, 2, 3, 1).flags.c_contiguous
    if channels_last:
        drive = a_in.transpose(0, 2, 3, 1).reshape(batch, -1, channels)
    else:
        drive = np.ascontiguousarray(a_in).reshape(batch, channels, -1)
    _if_step(
        v.reshape(batch, channels, -1),
        drive,
        channels_last,
        np.ascontiguousarray(bias, np.int64).reshape(-1),
        params.threshold,
        params.v_max,
        params.reset == "zero",
        spikes.reshape(batch, channels, -1),
    )
    return spikes
