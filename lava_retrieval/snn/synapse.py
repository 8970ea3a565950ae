"""Batched synaptic input of conv, pool and dense layers in numpy (no torch: used inside Lava
ProcessModels, which run in forked processes).

``SynapticOp(layer)(spikes)`` returns the integer input of every neuron for a batch of spike maps
(or rates, for the floating-point models). Convolutions are one matrix product over sliding
windows (im2col). The product runs in float32 when every possible sum is an integer below 2**24
(exact in float32, and twice as fast as float64), otherwise in float64 (exact below 2**53);
inputs other than spikes (counts, an analog input's currents) are taken into the bound.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lava_retrieval.snn.network import SpikingLayer

_FLOAT32_EXACT = 1 << 24


class SynapticOp:
    """The synapses of one layer, batched: ``(B, *input_shape) -> (B, *output_shape)``.

    Parameters
    ----------
    layer : SpikingLayer
        A conv, pool or dense layer (weights in torch layout, dense over a C, H, W flattening).

    >>> from lava_retrieval.snn.network import SpikingLayer
    >>> w = np.array([[[[1, 2], [3, 4]]]], dtype=np.int32)  # one 2x2 kernel
    >>> layer = SpikingLayer("c", "conv", (1, 2, 3), (1, 1, 2), w, None, 1, 1.0, 1.0)
    >>> SynapticOp(layer)(np.array([[[[1, 0, 1], [0, 1, 1]]]])).tolist()
    [[[[5.0, 9.0]]]]
    """

    def __init__(self, layer: SpikingLayer) -> None:
        if layer.weight is None:
            raise ValueError(f"layer {layer.name} ({layer.kind}) has no synapses")
        self.kind = layer.kind
        self.input_shape = tuple(layer.input_shape)
        self.output_shape = tuple(layer.output_shape)
        self.stride, self.padding, self.groups = layer.stride, layer.padding, layer.groups
        weight = np.asarray(layer.weight, dtype=np.int64)
        self.worst = int(np.abs(weight).reshape(len(weight), -1).sum(1).max())
        self.dtype: type = np.float32 if self.worst < _FLOAT32_EXACT else np.float64
        self.weight = weight
        self._wide: SynapticOp | None = None  # a float64 copy, for too large inputs
        self._build()

    def _build(self) -> None:
        weight = self.weight
        if self.kind == "dense":
            self.matrix: np.ndarray = weight.T.astype(self.dtype)  # (in, out)
        else:
            c_out, c_in_g, k, _ = weight.shape
            self.kernel = k
            # Non-overlapping depthwise pooling: a reshape and a weighted sum, no im2col.
            self.pool_kernel = None
            if self.groups == c_out == self.input_shape[0] and c_in_g == 1:
                if self.stride == k and self.padding == 0:
                    self.pool_kernel = weight[:, 0].astype(self.dtype)  # (C, k, k)
            # (groups, C_in/g * k * k, C_out/g): one matrix product per group.
            per_group = weight.reshape(self.groups, c_out // self.groups, c_in_g * k * k)
            self.matrix = per_group.transpose(0, 2, 1).astype(self.dtype)

    def __call__(self, spikes: np.ndarray) -> np.ndarray:
        """Synaptic input (float array holding exact integers) for a batch of spike maps (or
        of integer counts or currents)."""
        spikes = np.asarray(spikes)
        if spikes.dtype != bool and spikes.size and self.dtype == np.float32:
            largest = float(np.abs(spikes).max())
            if largest > 1 and largest * self.worst >= _FLOAT32_EXACT:
                if self._wide is None:
                    wide = SynapticOp.__new__(SynapticOp)
                    wide.__dict__.update(self.__dict__)
                    wide.dtype = np.float64
                    wide._build()
                    self._wide = wide
                return self._wide(spikes)
        x: np.ndarray = np.asarray(spikes, dtype=self.dtype)
        batch = x.shape[0]
        if self.kind == "dense":
            return (x.reshape(batch, -1) @ self.matrix).reshape(batch, *self.output_shape)
        p, s, k, g = self.padding, self.stride, self.kernel, self.groups
        c_out, h_out, w_out = self.output_shape
        if self.pool_kernel is not None:
            blocks = x[:, :, : h_out * k, : w_out * k].reshape(batch, c_out, h_out, k, w_out, k)
            return np.einsum("bchpwq,cpq->bchw", blocks, self.pool_kernel)
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        # (B, C, Ho', Wo', k, k) windows, strided to the output grid.
        # (B, C, H', W', k, k); numpy's stub wants one axis, numpy takes a tuple.
        windows = sliding_window_view(x, (k, k), axis=(2, 3))  # type: ignore[call-overload]
        windows = windows[:, :, ::s, ::s][:, :, :h_out, :w_out]
        c_in = x.shape[1]
        # -> (g, B * Ho * Wo, C_in/g * k * k)
        cols = windows.reshape(batch, g, c_in // g, h_out, w_out, k * k)
        cols = cols.transpose(1, 0, 3, 4, 2, 5).reshape(g, batch * h_out * w_out, -1)
        out = np.matmul(cols, self.matrix)  # (g, B*Ho*Wo, C_out/g)
        out = out.reshape(g, batch, h_out, w_out, c_out // g).transpose(1, 0, 4, 2, 3)
        return out.reshape(batch, c_out, h_out, w_out)
