"""Training learns, checkpoints round-trip, resume is exact, and the shipped model's accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lava_retrieval.ann.checkpoint import (
    META_FILE,
    checkpoint_files,
    load_checkpoint,
    shipped_checkpoint_path,
)
from lava_retrieval.ann.config import TrainConfig
from lava_retrieval.ann.inference import accuracy
from lava_retrieval.ann.model import QCFS, QCFS_INITIAL_THRESHOLD
from lava_retrieval.ann.training import train
from lava_retrieval.cli import main
from lava_retrieval.common.errors import CheckpointError, LavaRetrievalError

pytestmark = pytest.mark.slow  # not in the fast tier (make test-fast)

TINY = TrainConfig(arch="8-16-10", epochs=2, train_limit=1500, batch_size=50, seed=3)


class _Stop(Exception):
    pass


def _stop_after_first_epoch(line: str) -> None:
    raise _Stop(line)


def _weights_file(path):
    return path / checkpoint_files(json.loads((path / META_FILE).read_text()))["weights"]


def _weights(path) -> dict[str, np.ndarray]:
    with np.load(_weights_file(path)) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def tiny_run(fashion, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return train(TINY, fashion, out, progress=False, command=["test"])


def test_short_training_learns(tiny_run):
    first, last = tiny_run.history
    assert last["train_loss"] < first["train_loss"]
    # Chance is 10 %; 1,500 images and two epochs get a small CNN far above it.
    assert last["test_accuracy"] > 60.0
    assert set(first) >= {"train_accuracy", "validation_accuracy", "test_accuracy", "seconds"}


def test_checkpoint_round_trip(tiny_run, fashion):
    loaded = load_checkpoint(tiny_run.path)
    assert loaded.config == TINY
    assert loaded.history == tiny_run.history
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), tiny_run.model(x), rtol=0, atol=0)
    images, labels = fashion.split("test")
    assert 100 * accuracy(loaded.model, images, labels) == pytest.approx(
        tiny_run.final["test_accuracy"], abs=1e-3
    )
    meta = json.loads((tiny_run.path / META_FILE).read_text())
    assert meta["command"] == ["test"] and meta["arch"] == "8-16-10"


def test_resume_is_exact(fashion, tiny_run, tmp_path):
    out = tmp_path / "interrupted"
    with pytest.raises(_Stop):
        train(TINY, fashion, out, progress=False, log=_stop_after_first_epoch)
    assert len(load_checkpoint(out).history) == 1
    resumed = train(TINY, fashion, out, resume=True, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    expected = _weights(tiny_run.path)
    for name, value in _weights(out).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_existing_checkpoint_needs_resume(tiny_run, fashion):
    with pytest.raises(CheckpointError, match="already holds a checkpoint; pass --resume"):
        train(TINY, fashion, tiny_run.path, progress=False)


def test_resume_with_other_config_is_refused(tiny_run, fashion):
    other = TrainConfig(**{**TINY.__dict__, "learning_rate": 1e-2})
    with pytest.raises(CheckpointError, match="differs"):
        train(other, fashion, tiny_run.path, resume=True, progress=False)


def test_tampered_weights_are_refused(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.path, copy)
    blob = bytearray(_weights_file(copy).read_bytes())
    blob[-100] ^= 0xFF
    _weights_file(copy).write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        load_checkpoint(copy)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"dropout": 1.5}, {"learning_rate": -1.0}, {"arch": "3-x"}]
)
def test_bad_config(bad):
    with pytest.raises(LavaRetrievalError):
        TrainConfig(**bad)


def test_learning_rate_schedule():
    cfg = TrainConfig(epochs=4, warmup_epochs=1, learning_rate=2.0)
    rates = [cfg.learning_rate_at(s, 10) for s in range(40)]
    assert rates[9] == pytest.approx(2.0)
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))


def test_cli_train_json(fashion, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "train",
        "--arch",
        "4-8-10",
        "--epochs",
        "1",
        "--train-limit",
        "500",
        "--out",
        str(out),
        "--json",
        "--no-progress",
    ]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["arch"] == "4-8-10" and payload["epochs"] == 1
    assert load_checkpoint(out).meta["command"] == ["lava-retrieval", *argv]
    assert main(argv) == 2
    assert "pass --resume" in capsys.readouterr().err


COMMITTED_ANN = json.loads(
    (shipped_checkpoint_path().parents[2] / "results" / "evaluate-ann-32-64-10.json").read_text()
)


def test_the_shipped_checkpoint_gives_its_committed_test_accuracy(fashion):
    ckpt = load_checkpoint()
    assert ckpt.path == shipped_checkpoint_path()
    assert str(ckpt.model.spec) == "32-64-10"
    assert 60_000 < ckpt.model.num_parameters < 64_000
    images, labels = fashion.split("test")
    test_accuracy = 100 * accuracy(ckpt.model, images, labels)
    assert test_accuracy == pytest.approx(COMMITTED_ANN["test_accuracy"], abs=0.01)
    # The number recorded next to the weights is the one the weights give.
    assert ckpt.final["test_accuracy"] == pytest.approx(test_accuracy, abs=1e-3)
    assert ckpt.meta["command"][:2] == ["lava-retrieval", "train"]


def test_cli_evaluate_ann_json_gives_the_committed_accuracies(capsys):
    assert main(["evaluate-ann", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["arch"] == "32-64-10"
    for split in ("train_accuracy", "validation_accuracy", "test_accuracy"):
        assert payload[split] == pytest.approx(COMMITTED_ANN[split], abs=0.01), split


def test_cli_evaluate_ann_bad_checkpoint(tmp_path, capsys):
    assert main(["evaluate-ann", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize(
    "bad",
    [
        {"activation": "qcfs"},
        {"activation": "qcfs", "levels": 0},
        {"levels": 8},
        {"activation": "tanh"},
    ],
)
def test_bad_activation_config(bad):
    with pytest.raises(LavaRetrievalError, match="activation|levels"):
        TrainConfig(**bad)


def test_qcfs_training_learns_its_thresholds(fashion, tmp_path, capsys):
    out = tmp_path / "qcfs"
    argv = [
        "train",
        "--arch",
        "4-8-10",
        "--activation",
        "qcfs",
        "--levels",
        "4",
        "--epochs",
        "3",
        "--train-limit",
        "1500",
        "--batch-size",
        "50",
        "--out",
        str(out),
        "--json",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] > 50.0
    ckpt = load_checkpoint(out)
    assert (ckpt.config.activation, ckpt.config.levels) == ("qcfs", 4)
    thresholds = [float(m.threshold) for m in ckpt.model.modules() if isinstance(m, QCFS)]
    assert len(thresholds) == 5 and thresholds[0] == 1.0
    assert all(t != QCFS_INITIAL_THRESHOLD for t in thresholds[1:])  # they were trained
    # A ReLU checkpoint's configuration (written before QCFS existed) still loads as ReLU.
    assert load_checkpoint().config.activation == "relu"


def test_resume_state_is_never_unpickled(tiny_run, fashion, tmp_path, capsys):
    """A crafted resume.pt that would run code when unpickled is refused, not executed."""
    import pickle
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.path, copy)

    class Exploit:
        def __reduce__(self):
            return (print, ("code ran",))

    import hashlib

    crafted = pickle.dumps({"optimizer": Exploit()})
    meta = json.loads((copy / META_FILE).read_text())
    (copy / checkpoint_files(meta)["resume"]).write_bytes(crafted)
    _set_meta(copy, resume_sha256=hashlib.sha256(crafted).hexdigest())  # a consistent forgery
    longer = TrainConfig(**{**TINY.__dict__})
    with pytest.raises(CheckpointError, match=r"resume-0002.pt: cannot be read"):
        train(longer, fashion, copy, resume=True, progress=False)
    assert "code ran" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "state", [{}, {"optimizer": 1, "torch_rng": 2}, [1, 2], {"optimizer": {"state": {}}}]
)
def test_a_resume_state_of_the_wrong_structure_is_one_error(tiny_run, fashion, tmp_path, state):
    import hashlib
    import io
    import shutil

    import torch

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.path, copy)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    meta = json.loads((copy / META_FILE).read_text())
    (copy / checkpoint_files(meta)["resume"]).write_bytes(buffer.getvalue())
    _set_meta(copy, resume_sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    with pytest.raises(CheckpointError, match=r"resume-0002.pt: not a resume state of this run"):
        train(TrainConfig(**TINY.__dict__), fashion, copy, resume=True, progress=False)


def test_a_kill_between_the_files_of_an_epoch_leaves_the_last_epoch_whole(
    fashion, tiny_run, tmp_path, monkeypatch
):
    """Epoch 2's weights and resume state are written, then the process dies before the
    manifest: the checkpoint is epoch 1's, whole, and resuming gives the uninterrupted run."""
    from lava_retrieval.ann import checkpoint as train_module

    out = tmp_path / "killed"
    original = train_module._atomic_write

    def die_at_the_second_manifest(path, write):
        if path.name == META_FILE and (path.parent / META_FILE).exists():
            raise _Stop("killed")
        original(path, write)

    monkeypatch.setattr(train_module, "_atomic_write", die_at_the_second_manifest)
    with pytest.raises(_Stop):
        train(TINY, fashion, out, progress=False)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("weights")) == [
        "weights-0001.npz",
        "weights-0002.npz",
    ]
    assert len(load_checkpoint(out).history) == 1
    resumed = train(TINY, fashion, out, resume=True, progress=False)
    assert len(resumed.history) == 2
    expected = _weights(tiny_run.path)
    for name, value in _weights(out).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    assert sorted(p.name for p in out.iterdir()) == [
        META_FILE,
        "resume-0002.pt",
        "weights-0002.npz",
    ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / META_FILE).write_text("[1, 2]"), "not a checkpoint manifest"),
        (lambda p: (p / META_FILE).write_text("{"), "not valid JSON"),
        (lambda p: _weights_file(p).write_bytes(b""), "SHA-256 does not match"),
        (lambda p: _weights_file(p).unlink(), "is missing"),
        (lambda p: _set_meta(p, config={"arch": "32-64-x"}), "bad training configuration"),
        (lambda p: _set_meta(p, config={"arch": "8-16-100000000"}), "width above 4,096"),
        (lambda p: _nan_weights(p), "NaN or infinite"),
    ],
)
def test_damaged_checkpoints_are_refused(tiny_run, tmp_path, damage, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.path, copy)
    damage(copy)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(copy)


def _set_meta(path, **changes):
    meta = json.loads((path / META_FILE).read_text())
    meta.update(changes)
    (path / META_FILE).write_text(json.dumps(meta))


def _nan_weights(path):
    import hashlib
    import io

    arrays = _weights(path)
    first = next(iter(arrays))
    arrays[first] = np.full_like(arrays[first], np.nan)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _weights_file(path).write_bytes(buffer.getvalue())
    _set_meta(path, weights_sha256=hashlib.sha256(buffer.getvalue()).hexdigest())


def test_fine_tuning_with_qcfs_starts_from_the_relu_weights(tiny_run, fashion, tmp_path):
    config = TrainConfig(
        arch="8-16-10",
        epochs=1,
        train_limit=200,
        batch_size=50,
        activation="qcfs",
        levels=8,
        init_from=str(tiny_run.path),
        learning_rate=1e-9,
    )
    ckpt = train(config, fashion, tmp_path / "ft", progress=False)
    assert ckpt.config.init_from == str(tiny_run.path)
    relu = dict(tiny_run.model.state_dict())
    tuned = dict(ckpt.model.state_dict())
    # With a vanishing learning rate the synaptic weights are the ReLU network's (shifted by
    # one index for the input's QCFS) and each threshold its input's 99.9th percentile.
    np.testing.assert_allclose(tuned["layers.1.weight"], relu["layers.0.weight"], atol=1e-6)
    thresholds = [float(v) for k, v in tuned.items() if k.endswith("threshold")]
    assert thresholds[0] == 1.0 and all(t > 0.05 for t in thresholds[1:])
    assert QCFS_INITIAL_THRESHOLD not in thresholds  # set from the data, not the default
    with pytest.raises(CheckpointError, match="architecture 8-16-10, not 4-8-10"):
        train(
            TrainConfig(
                arch="4-8-10",
                epochs=1,
                train_limit=50,
                activation="qcfs",
                levels=4,
                init_from=str(tiny_run.path),
            ),
            fashion,
            tmp_path / "other",
            progress=False,
        )
