"""IDX parsing, integrity checks, the lookup order and the download of Fashion-MNIST."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from idxfiles import idx_bytes, write_idx, write_small_set

from lava_retrieval.cli import main
from lava_retrieval.data import fashion_mnist as data
from lava_retrieval.data.fashion_mnist import FILES, DataError, load_fashion_mnist, locate, read_idx


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No environment variable, an empty Debian directory and an empty cache."""
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(data.ENV_MIRROR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (2, 4, 3)])
def test_read_idx_round_trip(tmp_path, compress, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / "f-ubyte", array, compress=compress)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    path = tmp_path / "labels-without-gz-suffix"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


def test_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"x\.gz: truncated"):
        read_idx(path)


def test_truncated_raw_data(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"truncated: dimensions \(4, 28, 28\) need 3152 bytes"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="the header needs 16 bytes, found 6"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="1 unexpected trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "wrong magic number 0x01020801"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05", "element type 0x0d is not unsigned byte"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00", "shorter than an IDX header"),
    ],
)
def test_malformed_headers(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_header_dimensions_cannot_overflow(tmp_path):
    """Three dimensions of 2**32 - 1 multiply past 64 bits: the check is in exact integers."""
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 8, 3]) + (2**32 - 1).to_bytes(4, "big") * 3 + b"\x00" * 8)
    with pytest.raises(DataError, match="need 79228162458924105385300197391 bytes, found 24"):
        read_idx(path)


def test_decompression_is_capped(tmp_path, monkeypatch):
    """A small gzip file that would expand past the cap is refused before it fills memory."""
    monkeypatch.setattr(data, "MAX_IDX_BYTES", 1000)
    path = tmp_path / "bomb"
    path.write_bytes(gzip.compress(b"\x00" * 100_000))
    assert path.stat().st_size < 1000
    with pytest.raises(DataError, match="decompresses to more than 1,000 bytes"):
        read_idx(path)


def test_missing_file_is_named():
    with pytest.raises(DataError, match="nope: no such file"):
        read_idx("nope")


def test_wrong_magic_for_the_role(isolated):
    directory = isolated / "d"
    write_small_set(directory)
    # A label file where an image file belongs: a valid IDX file with the wrong magic number.
    write_idx(directory / "t10k-images-idx3-ubyte", np.zeros(6, np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: wrong magic number 2049"):
        load_fashion_mnist(directory, checksum=False)


def test_wrong_item_dimensions(isolated):
    directory = isolated / "d"
    write_small_set(directory)
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((12, 27, 28), np.uint8))
    with pytest.raises(DataError, match=r"item dimensions \(27, 28\), expected \(28, 28\)"):
        load_fashion_mnist(directory, checksum=False)


def test_mismatched_image_and_label_counts(isolated):
    directory = isolated / "d"
    write_small_set(directory)
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match="holds 12 images but .*train-labels.* holds 11 labels"):
        load_fashion_mnist(directory, checksum=False)


def test_small_consistent_set_loads_without_checksum(isolated):
    directory = isolated / "d"
    arrays = write_small_set(directory)
    ds = load_fashion_mnist(directory, checksum=False)
    np.testing.assert_array_equal(ds.train_images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert ds.origin == "--data-dir"


def test_small_set_fails_the_expected_count(isolated):
    directory = isolated / "d"
    write_small_set(directory)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: 12 items, expected 60000"):
        load_fashion_mnist(directory)


def _copy_real(fashion, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for spec in FILES.values():
        for name in (f"{spec.name}.gz", spec.name):
            if (fashion.directory / name).is_file():
                shutil.copy(fashion.directory / name, target / name)
    return target


def test_checksum_mismatch_is_named(fashion, isolated):
    directory = _copy_real(fashion, isolated / "copy")
    labels = fashion.train_labels.copy()
    labels[123] = (labels[123] + 1) % 10
    for stale in directory.glob("train-labels-idx1-ubyte*"):
        stale.unlink()
    write_idx(directory / "train-labels-idx1-ubyte", labels, compress=False)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: checksum mismatch"):
        load_fashion_mnist(directory)


def test_real_data_shapes_and_split(fashion):
    assert fashion.train_images.shape == (60000, 28, 28)
    assert fashion.test_images.shape == (10000, 28, 28)
    assert fashion.train_images.dtype == np.uint8 and fashion.train_labels.dtype == np.uint8
    train_x, train_y = fashion.split("train")
    val_x, val_y = fashion.split("validation")
    assert len(train_x) == 54000 and len(val_x) == 6000
    np.testing.assert_array_equal(val_x, fashion.train_images[54000:])
    np.testing.assert_array_equal(np.concatenate([train_y, val_y]), fashion.train_labels)
    assert np.bincount(fashion.test_labels).tolist() == [1000] * 10
    with pytest.raises(DataError, match="unknown split"):
        fashion.split("dev")


def test_lookup_order(isolated, monkeypatch):
    explicit, env, debian, cache = (isolated / n for n in ("explicit", "env", "debian", "cache"))
    for directory in (explicit, env, debian, data.cache_dir()):
        write_small_set(directory)
    monkeypatch.setenv(data.ENV_DATA_DIR, str(env))
    assert locate(explicit, download=False) == (explicit, "--data-dir")
    assert locate(None, download=False) == (env, f"${data.ENV_DATA_DIR}")
    monkeypatch.delenv(data.ENV_DATA_DIR)
    assert locate(None, download=False) == (debian, "Debian package dataset-fashion-mnist")
    shutil.rmtree(debian)
    assert locate(None, download=False) == (data.cache_dir(), "user cache")
    assert cache in data.cache_dir().parents


def test_named_directory_must_be_complete(isolated, monkeypatch):
    write_small_set(isolated / "debian")
    partial = isolated / "partial"
    write_small_set(partial)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        locate(partial)
    monkeypatch.setenv(data.ENV_DATA_DIR, str(partial))
    with pytest.raises(DataError, match=r"from \$LAVA_RETRIEVAL_DATA\) lacks"):
        locate()


def test_incomplete_default_directories_are_skipped(isolated):
    debian = isolated / "debian"
    write_small_set(debian)
    (debian / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="Fashion-MNIST not found"):
        locate(download=False)
    write_small_set(data.cache_dir())
    assert locate(download=False)[1] == "user cache"


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server; returns (serving directory, base URL)."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _serve_real_gz(fashion, root: Path) -> None:
    arrays = {
        "train_images": fashion.train_images,
        "train_labels": fashion.train_labels,
        "test_images": fashion.test_images,
        "test_labels": fashion.test_labels,
    }
    for key, spec in FILES.items():
        (root / f"{spec.name}.gz").write_bytes(gzip.compress(idx_bytes(arrays[key]), 1))


def test_download_into_cache(fashion, isolated, mirror, monkeypatch):
    root, url = mirror
    _serve_real_gz(fashion, root)
    monkeypatch.setenv(data.ENV_MIRROR, url)
    ds = load_fashion_mnist()
    assert ds.origin == "download" and ds.directory == data.cache_dir()
    np.testing.assert_array_equal(ds.test_images, fashion.test_images)
    # The next lookup finds the cache and downloads nothing.
    shutil.rmtree(root)
    root.mkdir()
    assert load_fashion_mnist().origin == "user cache"


def test_bad_download_leaves_nothing(fashion, isolated, mirror, monkeypatch):
    root, url = mirror
    _serve_real_gz(fashion, root)
    labels = fashion.test_labels.copy()
    labels[0] = (labels[0] + 1) % 10
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    monkeypatch.setenv(data.ENV_MIRROR, url)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is bad: .*checksum mismatch"):
        load_fashion_mnist()
    names = sorted(p.name for p in data.cache_dir().iterdir())
    assert "t10k-labels-idx1-ubyte.gz" not in names
    assert not [n for n in names if n.endswith(".part")]


def test_unreachable_mirror(isolated, monkeypatch, mirror):
    _, url = mirror
    monkeypatch.setenv(data.ENV_MIRROR, url + "missing/")
    with pytest.raises(DataError, match="could not download .*train-images-idx3-ubyte.gz"):
        load_fashion_mnist()


@pytest.mark.parametrize("damage", ["truncate", "magic"])
def test_cli_reports_bad_files_with_status_2(isolated, capsys, damage):
    directory = isolated / "d"
    write_small_set(directory)
    path = directory / "train-images-idx3-ubyte.gz"
    content = gzip.decompress(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(gzip.compress(content)[:-30])
    else:
        path.write_bytes(gzip.compress(b"\x00\x00\x08\x07" + content[4:]))
    assert main(["data", "--data-dir", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train-images-idx3-ubyte.gz" in err
    assert "Traceback" not in err


def test_cli_data_json(fashion, capsys):
    import json

    assert main(["data", "--json", "--no-download"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["splits"]["validation"]["images"] == 6000
    assert payload["splits"]["test"]["per_class"] == [1000] * 10
    assert payload["classes"][9] == "Ankle boot"
