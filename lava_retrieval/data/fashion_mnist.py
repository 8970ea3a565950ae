"""Fashion-MNIST: locate, verify, download and read the four IDX files.

Lookup order (the first that applies wins):

1. an explicit directory (``data_dir=`` / ``--data-dir``); it must hold the four files;
2. the directory named by the environment variable ``LAVA_RETRIEVAL_DATA``; likewise;
3. ``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist`` installs them;
4. the per-user cache ``$XDG_CACHE_HOME/lava-retrieval/fashion-mnist`` (``~/.cache/...``);
5. a download from the data set's official mirror into that cache (``download=True``).

A file may be gzipped (``name.gz``) or raw (``name``); gzip is recognised by its magic bytes.
Integrity is checked on the *decompressed* bytes, because Debian re-compresses the ``.gz`` files
and their compressed checksums differ from upstream's: the IDX magic number, the dimensions, the
item count, the image/label count agreement and a SHA-256 of the decompressed content.

The validation split used for the paper's train/validation/test accuracy columns is fixed: the
last ``validation_fraction`` (default 10 %) of the training set, in file order.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lava_retrieval.common.atomic import atomic_path
from lava_retrieval.common.errors import DataError

ENV_DATA_DIR = "LAVA_RETRIEVAL_DATA"
ENV_MIRROR = "LAVA_RETRIEVAL_MIRROR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEFAULT_VALIDATION_FRACTION = 0.1

_IDX_UINT8 = 0x08
MAX_IDX_BYTES = 256 * 2**20  # decompressed; the largest Fashion-MNIST file is 47 MB


@dataclass(frozen=True)
class IdxFile:
    """What one Fashion-MNIST IDX file must contain once decompressed.

    Attributes
    ----------
    name : str
        File name without ``.gz``.
    magic : int
        Big-endian magic number: 2051 for images, 2049 for labels.
    shape : tuple of int
        Item count first, then the item dimensions.
    sha256 : str
        SHA-256 of the decompressed file.
    """

    name: str
    magic: int
    shape: tuple[int, ...]
    sha256: str


FILES: dict[str, IdxFile] = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte",
        2051,
        (60000, 28, 28),
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte",
        2049,
        (60000,),
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte",
        2051,
        (10000, 28, 28),
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte",
        2049,
        (10000,),
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """Return the decompressed bytes of an IDX file, gzipped or raw.

    >>> read_idx_bytes("missing-file")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    lava_retrieval.common.errors.DataError: missing-file: no such file
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return _gunzip(raw, MAX_IDX_BYTES, path)
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from None


def _gunzip(raw: bytes, limit: int, path: Path) -> bytes:
    """Decompress one gzip member, refusing to expand past ``limit`` bytes (a small file must
    not become gigabytes in memory)."""
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = stream.decompress(raw, limit + 1)
    if len(out) > limit:
        raise DataError(
            f"{path}: decompresses to more than {limit:,} bytes, larger than any IDX file of "
            "Fashion-MNIST"
        )
    if not stream.eof:
        raise EOFError
    return out


def parse_idx(content: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX content (unsigned bytes only) into a uint8 array.

    Parameters
    ----------
    content : bytes
        The whole decompressed file.
    source : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape the header declares.

    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9])).tolist()
    [7, 9]
    """
    if len(content) < 4:
        raise DataError(f"{source}: truncated: {len(content)} bytes, shorter than an IDX header")
    if content[0] != 0 or content[1] != 0:
        magic = int.from_bytes(content[:4], "big")
        raise DataError(f"{source}: wrong magic number {magic:#010x}: not an IDX file")
    dtype_code, ndim = content[2], content[3]
    if dtype_code != _IDX_UINT8:
        raise DataError(f"{source}: IDX element type {dtype_code:#04x} is not unsigned byte (0x08)")
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares zero dimensions")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(
            f"{source}: truncated: the header needs {header} bytes, found {len(content)}"
        )
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)  # Python integers: no overflow
    if len(content) < expected:
        raise DataError(
            f"{source}: truncated: dimensions {dims} need {expected} bytes, found {len(content)}"
        )
    if len(content) > expected:
        raise DataError(
            f"{source}: {len(content) - expected} unexpected trailing bytes after the data"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzipped or raw) into a uint8 array.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx1-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    >>> read_idx(p).tolist()
    [1, 2, 3]
    """
    return parse_idx(read_idx_bytes(path), str(path))


def _read_checked(path: Path, spec: IdxFile) -> tuple[np.ndarray, bytes]:
    """Parse one file and check its magic number and item dimensions."""
    content = read_idx_bytes(path)
    if len(content) >= 4:
        magic = int.from_bytes(content[:4], "big")
        if magic != spec.magic:
            raise DataError(f"{path}: wrong magic number {magic} (expected {spec.magic})")
    array = parse_idx(content, str(path))
    if array.shape[1:] != spec.shape[1:]:
        raise DataError(f"{path}: item dimensions {array.shape[1:]}, expected {spec.shape[1:]}")
    return array, content


def _check_count_and_digest(path: Path, spec: IdxFile, array: np.ndarray, content: bytes) -> None:
    if array.shape[0] != spec.shape[0]:
        raise DataError(f"{path}: {array.shape[0]} items, expected {spec.shape[0]}")
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.sha256:
        raise DataError(
            f"{path}: checksum mismatch: SHA-256 of the decompressed content is {digest}, "
            f"expected {spec.sha256}"
        )


def _file_in(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _present(directory: Path, name: str) -> Path:
    """The file ``name`` (or ``name.gz``) of ``directory``, which :func:`locate` found there."""
    path = _file_in(directory, name)
    if path is None:
        raise DataError(f"{directory}: {name} is missing")
    return path


def _missing(directory: Path) -> list[str]:
    return [spec.name for spec in FILES.values() if _file_in(directory, spec.name) is None]


def cache_dir() -> Path:
    """The per-user cache directory for the data set.

    >>> cache_dir().name
    'fashion-mnist'
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lava-retrieval" / "fashion-mnist"


def candidates(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path, bool]]:
    """The lookup order as ``(origin, directory, required)`` triples.

    ``required`` marks a directory the user named: it must hold the files instead of being
    skipped.

    >>> [origin for origin, _, _ in candidates("/data")][:1]
    ['--data-dir']
    """
    found: list[tuple[str, Path, bool]] = []
    if data_dir is not None:
        found.append(("--data-dir", Path(data_dir), True))
    if os.environ.get(ENV_DATA_DIR):
        found.append((f"${ENV_DATA_DIR}", Path(os.environ[ENV_DATA_DIR]), True))
    found.append(("Debian package dataset-fashion-mnist", DEBIAN_DIR, False))
    found.append(("user cache", cache_dir(), False))
    return found


def locate(data_dir: str | os.PathLike | None = None, download: bool = True) -> tuple[Path, str]:
    """Find the directory holding the four files, downloading them if allowed and needed.

    Returns
    -------
    (directory, origin)
        ``origin`` says which step of the lookup order found it.

    Raises
    ------
    DataError
        A named directory lacks files, or nothing was found and downloading was not allowed or
        failed.
    """
    for origin, directory, required in candidates(data_dir):
        missing = _missing(directory)
        if not missing:
            return directory, origin
        if required:
            raise DataError(
                f"{directory} (from {origin}) lacks {', '.join(missing)} (.gz or raw); "
                "put the four Fashion-MNIST files there or leave it unset for the default lookup"
            )
    target = cache_dir()
    if not download:
        looked = ", ".join(str(d) for _, d, _ in candidates(data_dir))
        raise DataError(
            f"Fashion-MNIST not found (looked in {looked}); install Debian's "
            "dataset-fashion-mnist package or allow the download"
        )
    fetch(target)
    return target, "download"


def fetch(directory: str | os.PathLike, mirror: str | None = None, progress: bool = True) -> Path:
    """Download the four gzipped files into ``directory`` and verify them.

    Each file is written to a temporary name and moved into place only after its decompressed
    content matched the expected SHA-256, so an interrupted download never leaves a bad file.
    The mirror defaults to the official one; ``$LAVA_RETRIEVAL_MIRROR`` overrides it.
    """
    from tqdm.auto import tqdm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = mirror or os.environ.get(ENV_MIRROR) or MIRROR
    if not base.endswith("/"):
        base += "/"
    for spec in FILES.values():
        if _file_in(directory, spec.name) is not None:
            continue
        url = f"{base}{spec.name}.gz"
        final = directory / f"{spec.name}.gz"
        try:
            with atomic_path(final, suffix=".part") as tmp:
                with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(
                        total=total, unit="B", unit_scale=True, desc=spec.name, disable=not progress
                    ) as bar:
                        while chunk := response.read(1 << 16):
                            out.write(chunk)
                            bar.update(len(chunk))
                # Checked before the rename: a bad download never takes the final name.
                _check_count_and_digest(tmp, spec, *_read_checked(tmp, spec))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DataError(
                f"could not download {url}: {reason}; install Debian's dataset-fashion-mnist "
                f"package or copy the four files into {directory}"
            ) from None
        except DataError as exc:
            raise DataError(f"downloaded {url} is bad: {exc}") from None
    return directory


@dataclass(frozen=True)
class FashionMNIST:
    """The four arrays of Fashion-MNIST and where they came from.

    Attributes
    ----------
    train_images, test_images : numpy.ndarray
        uint8, shape (N, 28, 28).
    train_labels, test_labels : numpy.ndarray
        uint8, shape (N,).
    directory : pathlib.Path
        Directory the files were read from.
    origin : str
        Which step of the lookup order found them.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    directory: Path
    origin: str

    def split(
        self, name: str, validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    ) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of ``train``, ``validation``, ``test`` or ``full_train``.

        ``train`` and ``validation`` partition the 60,000 training images: validation is the
        last ``validation_fraction`` of them, in file order. ``full_train`` is all 60,000 (the
        retrieval corpus).
        """
        if not 0.0 < validation_fraction < 1.0:
            raise DataError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
        cut = len(self.train_images) - int(round(len(self.train_images) * validation_fraction))
        if name == "train":
            return self.train_images[:cut], self.train_labels[:cut]
        if name == "validation":
            return self.train_images[cut:], self.train_labels[cut:]
        if name == "test":
            return self.test_images, self.test_labels
        if name == "full_train":
            return self.train_images, self.train_labels
        raise DataError(f"unknown split {name!r}; choose train, validation, test or full_train")

    def summary(self, validation_fraction: float = DEFAULT_VALIDATION_FRACTION) -> dict:
        """Counts and class balance per split, for printing."""
        out: dict = {"directory": str(self.directory), "origin": self.origin, "splits": {}}
        for name in ("train", "validation", "test"):
            images, labels = self.split(name, validation_fraction)
            out["splits"][name] = {
                "images": int(len(images)),
                "shape": list(images.shape[1:]),
                "per_class": np.bincount(labels, minlength=len(CLASS_NAMES)).tolist(),
                "mean_pixel": round(float(images.mean()) / 255.0, 4),
            }
        return out


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None, download: bool = True, checksum: bool = True
) -> FashionMNIST:
    """Locate (see the module docstring), verify and read Fashion-MNIST.

    Checks run in this order, and the first failure is reported naming the file: readable and
    complete (not truncated), magic number, item dimensions, image and label counts agree,
    expected counts, SHA-256 of the decompressed content.

    Parameters
    ----------
    data_dir : path, optional
        Explicit directory holding the four files.
    download : bool
        Download into the user cache when no copy is found.
    checksum : bool
        Check the expected counts and SHA-256 of each file (off: any consistent IDX set loads).

    >>> ds = load_fashion_mnist(download=False)
    >>> ds.train_images.shape, ds.test_labels.shape
    ((60000, 28, 28), (10000,))
    """
    directory, origin = locate(data_dir, download=download)
    paths = {key: _present(directory, spec.name) for key, spec in FILES.items()}
    parsed = {key: _read_checked(paths[key], FILES[key]) for key in FILES}
    for split in ("train", "test"):
        n_images = len(parsed[f"{split}_images"][0])
        n_labels = len(parsed[f"{split}_labels"][0])
        if n_images != n_labels:
            raise DataError(
                f"{paths[f'{split}_images']} holds {n_images} images but "
                f"{paths[f'{split}_labels']} holds {n_labels} labels"
            )
    if checksum:
        for key, (array, content) in parsed.items():
            _check_count_and_digest(paths[key], FILES[key], array, content)
    for key in ("train_labels", "test_labels"):
        if len(parsed[key][0]) and int(parsed[key][0].max()) >= len(CLASS_NAMES):
            raise DataError(f"{paths[key]}: a label is outside 0..{len(CLASS_NAMES) - 1}")
    arrays = {key: array for key, (array, _) in parsed.items()}
    return FashionMNIST(directory=directory, origin=origin, **arrays)
