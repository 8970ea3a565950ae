"""A spiking-network file that is damaged or describes an impossible network is refused with one
message naming the file, never a traceback from deep inside (or a hang of the Lava backend)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lava_retrieval.cli import main
from lava_retrieval.snn.network import NetworkError, SpikingNetwork

GOLDEN = Path(__file__).parents[1] / "golden" / "small-net.npz"


def _arrays() -> tuple[dict, dict]:
    with np.load(GOLDEN) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(arrays.pop("header").tobytes().decode()), arrays


def _write(path: Path, header: dict, arrays: dict) -> Path:
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, header=blob, **arrays)
    return path


def _layer(header: dict, name: str) -> dict:
    return next(layer for layer in header["layers"] if layer["name"] == name)


def _edit(change):
    def make(tmp_path):
        header, arrays = _arrays()
        change(header, arrays)
        return _write(tmp_path / "bad.npz", header, arrays)

    return make


def _bytes(transform):
    def make(tmp_path):
        path = tmp_path / "bad.npz"
        path.write_bytes(transform(GOLDEN.read_bytes()))
        return path

    return make


def _flip(blob: bytes) -> bytes:
    data = bytearray(blob)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


CASES = {
    "empty": (_bytes(lambda b: b""), "not a spiking-network file"),
    "truncated": (_bytes(lambda b: b[: len(b) // 2]), "not a spiking-network file"),
    "bit-flipped": (_bytes(_flip), "not a spiking-network file|malformed|bad"),
    "stride 0": (_edit(lambda h, a: _layer(h, "conv1").update(stride=0)), "stride 0"),
    "missing weights": (_edit(lambda h, a: a.pop("layer1_weight")), "weights are missing"),
    "weights of the wrong shape": (
        _edit(lambda h, a: a.update(layer3_weight=a["layer3_weight"][:, :50])),
        "do not map",
    ),
    "float weights": (
        _edit(lambda h, a: a.update(layer1_weight=a["layer1_weight"] * 0.5)),
        "not integers",
    ),
    "non-finite scale": (
        _edit(lambda h, a: _layer(h, "input").update(param_scale=float("nan"))),
        "param_scale is not finite",
    ),
    "missing header field": (_edit(lambda h, a: h.pop("reset")), "malformed header"),
    "wrong output shape": (
        _edit(lambda h, a: _layer(h, "pool1").update(output_shape=[3, 7, 7])),
        "should be",
    ),
    "absurd shape": (
        _edit(lambda h, a: _layer(h, "dense1").update(output_shape=[10**12])),
        "neurons is more than",
    ),
    "zero threshold": (_edit(lambda h, a: _layer(h, "conv1").update(threshold=0)), "< 1"),
    "unknown field": (_edit(lambda h, a: _layer(h, "conv1").update(colour="red")), "malformed"),
    "manifest not an object": (_edit(lambda h, a: h.update(manifest=[1])), "manifest is not"),
    "pool mode not a string": (_edit(lambda h, a: h.update(pool_mode=5)), "pool_mode is not"),
}


@pytest.mark.parametrize("case", CASES)
def test_damaged_network_files_are_refused(case, tmp_path, capsys):
    make, message = CASES[case]
    path = make(tmp_path)
    with pytest.raises(NetworkError, match=message) as info:
        SpikingNetwork.load(path)
    assert str(path) in str(info.value)
    out = tmp_path / "e.npy"
    argv = ["embed", "--network", str(path), "--limit", "2", "--backend", "lava", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not out.exists()
