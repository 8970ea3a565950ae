"""Where images come from: a folder of images (recursive), a list file of image paths, a
Fashion-MNIST split (``fashion-mnist:train``, ``:test``, ``:validation``, ``:full_train``) or
``fashion-mnist:augmented:N`` (N seeded variants of the 70,000 Fashion-MNIST images, training
then test images, :func:`lava_retrieval.data.augment.augment` with seed :data:`AUGMENT_SEED`,
each labelled with its source image's class: a catalogue of any size from real images).

One reading path for all of them: :func:`plan_source` lists a source (nothing read yet) and
:meth:`SourcePlan.read` reads a range of it; :func:`read_source` is both at once, and
:func:`read_query` reads one query. What an index may store as an image's path is
:func:`check_item_path`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.data.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    SIZE,
    ImageError,
    Preprocessing,
    load_folder,
    load_image,
)

FASHION_PREFIX = "fashion-mnist:"
SPLITS = ("train", "validation", "test", "full_train")
AUGMENT_SEED = 0
AUGMENTED = "augmented"
AUGMENTED_PREFIX = f"{FASHION_PREFIX}{AUGMENTED}:"
"""How the items of ``fashion-mnist:augmented:N`` are named (and queried): this, then I."""
MAX_AUGMENTED = 100_000_000
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")
"""A stored path that starts like this (``fashion-mnist:``, ``upload:``, ``https:``) names no
file here and is kept as it is."""


@dataclass
class Images:
    """Prepared images with their paths, labels (or None) and the files that were skipped;
    ``hashes``: their :func:`content_hashes` where known without the images (a Ray build
    brings back the hashes, not the images)."""

    images: np.ndarray
    paths: list[str]
    labels: np.ndarray | None
    bad: list[tuple[str, str]]
    class_names: list[str] | None = None
    hashes: np.ndarray | None = None

    def content_hashes(self) -> np.ndarray:
        """The :func:`content_hashes` of the images, one per path."""
        if self.hashes is None:
            if len(self.images) != len(self.paths):
                raise LavaRetrievalError("these images came without their pixels or hashes")
            self.hashes = content_hashes(self.images)
        return self.hashes

    def subset(self, keep: np.ndarray) -> Images:
        """The images where ``keep`` (a boolean per path) is true, no skipped files."""
        keep = np.asarray(keep, bool)
        return Images(
            self.images[keep] if len(self.images) else self.images,
            [p for p, kept in zip(self.paths, keep, strict=True) if kept],
            None if self.labels is None else self.labels[keep],
            [],
            self.class_names,
            self.content_hashes()[keep],
        )


def content_hashes(images: np.ndarray) -> np.ndarray:
    """A 64-bit hash (BLAKE2b) of each prepared image's pixels, as the network sees them:
    two files with one hash give one embedding. Never 0 (0: not known, in an index written
    before hashes were kept).

    >>> a = np.zeros((2, 28, 28), np.uint8)
    >>> h = content_hashes(a)
    >>> h.dtype.name, h[0] == h[1], h[0] != 0
    ('uint64', True, True)
    """
    images = np.ascontiguousarray(images, np.uint8)
    out = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=8).digest(), "little")
            for image in images
        ),
        np.uint64,
        len(images),
    )
    out[out == 0] = 1
    return out


def stored_path(path: str) -> str:
    """A path as the index stores it: absolute (so that the index answers from any working
    directory), or ``fashion-mnist:SPLIT:I`` as it is."""
    return path if SCHEME.match(path) else os.path.abspath(path)


def read_source(
    source: str | os.PathLike,
    preprocessing: Preprocessing | None = None,
    *,
    data_dir: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit: int | None = None,
    progress: bool = False,
) -> Images:
    """The images of a folder, a list file or a Fashion-MNIST split (see the module docstring)."""
    preprocessing = preprocessing or Preprocessing()
    text = str(source)
    if text.startswith(FASHION_PREFIX):
        plan = plan_source(text, preprocessing, data_dir=data_dir, limit=limit)
        return plan.read(0, plan.count)
    loaded = load_folder(
        source,
        invert=preprocessing.invert,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        progress=progress,
        limit=limit,
    )
    if not len(loaded.images):
        reasons = "; ".join(reason for _, reason in loaded.bad[:3])
        raise ImageError(f"{source}: none of its {len(loaded.bad)} files could be read ({reasons})")
    return Images(loaded.images, loaded.paths, None, loaded.bad)


@functools.lru_cache(maxsize=2)
def fashion(data_dir: str | None):
    """Fashion-MNIST, read and verified once per process (many queries name its images)."""
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist

    dataset = load_fashion_mnist(data_dir)
    arrays = (dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels)
    for array in arrays:
        array.flags.writeable = False  # shared by every caller: nobody may change it
    return dataset


def read_query(
    query: str | os.PathLike,
    preprocessing: Preprocessing,
    *,
    data_dir: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """One query: an image file, or ``fashion-mnist:SPLIT:I`` (image I of a split)."""
    text = str(query)
    if text.startswith(FASHION_PREFIX):
        split, number = fashion_item(text, data_dir)
        if split == AUGMENTED:
            from lava_retrieval.data.augment import augment

            base, _ = catalogue(None if data_dir is None else str(data_dir))
            return augment(base, number, number + 1, AUGMENT_SEED)[0]
        images, _ = fashion(None if data_dir is None else str(data_dir)).split(split)
        return images[number]
    check_item_path(text)
    return load_image(query, preprocessing.invert, max_bytes, max_pixels)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_PATH_CHARS = 4096


def fashion_item(text: str, data_dir: str | None = None) -> tuple[str, int]:
    """``fashion-mnist:SPLIT:I`` as (split, I), checked: the split exists and has an image I
    (``fashion-mnist:augmented:I``: I below the largest catalogue).

    >>> fashion_item("fashion-mnist:augmented:7")
    ('augmented', 7)
    >>> fashion_item("fashion-mnist:bogus:1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    lava_retrieval.common.errors.LavaRetrievalError: fashion-mnist:bogus:1: use fashion-mnist:...
    """
    split, _, number = text[len(FASHION_PREFIX) :].partition(":")
    if split not in (*SPLITS, AUGMENTED) or not re.fullmatch("[0-9]{1,9}", number):
        raise LavaRetrievalError(
            f"{_shown(text)}: use fashion-mnist:SPLIT:I, e.g. fashion-mnist:test:0 (or "
            "fashion-mnist:augmented:I, variant I of the augmented catalogue)"
        )
    size = (
        MAX_AUGMENTED
        if split == AUGMENTED
        else len(fashion(None if data_dir is None else str(data_dir)).split(split)[0])
    )
    if int(number) >= size:
        raise LavaRetrievalError(f"{text}: the {split} split has {size:,} images")
    return split, int(number)


def check_item_path(path: str, data_dir: str | None = None) -> str:
    """``path`` if an index may store it as an image's path, else a :class:`LavaRetrievalError`:
    no NUL, and a name with a scheme (``upload:``, ``https:``: a client's, no file here) no
    control character at all, at most :data:`MAX_PATH_CHARS` characters, and a
    ``fashion-mnist:`` path names an image that exists (:func:`fashion_item`). (A file's own
    path may hold what its file system allows: a newline is a legal character of a name.)

    >>> check_item_path("upload:\\x00x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    lava_retrieval.common.errors.LavaRetrievalError: 'upload:\\x00x': a path holds no control ...
    """
    if not isinstance(path, str) or not path:
        raise LavaRetrievalError("a path must be a non-empty string")
    if "\x00" in path or (SCHEME.match(path) and _CONTROL.search(path)):
        raise LavaRetrievalError(f"{_shown(path)}: a path holds no control characters")
    if len(path) > MAX_PATH_CHARS:
        raise LavaRetrievalError(f"{_shown(path)}: longer than {MAX_PATH_CHARS} characters")
    if path.startswith(FASHION_PREFIX):
        fashion_item(path, data_dir)
    return path


def _shown(text: str) -> str:
    """A path as a message shows it: quoted where it holds what a terminal would not show,
    cut to 80 characters."""
    shown = repr(text) if _CONTROL.search(text) or not text.isprintable() else text
    return shown if len(shown) <= 80 else shown[:77] + "..."


@dataclass
class SourcePlan:
    """What a source holds, listed (nothing read yet): ``count`` items, read by ranges."""

    source: str
    count: int
    preprocessing: Preprocessing
    files: list[str] | None = None
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    class_names: list[str] | None = None
    data_dir: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS

    def read(self, start: int, stop: int):
        """The prepared images of items ``start:stop`` with their paths and labels, and the
        files among them that could not be read (an :class:`Images`)."""
        if self.files is None:
            split = self.source.removeprefix(FASHION_PREFIX)
            if split.startswith(AUGMENTED + ":"):
                from lava_retrieval.data.augment import augment

                base, labels = catalogue(self.data_dir)
                images = augment(base, start, stop, AUGMENT_SEED)
                labels = labels[np.arange(start, stop) % len(base)]
                paths = [f"{AUGMENTED_PREFIX}{i}" for i in range(start, stop)]
            else:
                images, labels = fashion(self.data_dir).split(split)
                images, labels = images[start:stop], labels[start:stop]
                paths = [f"{self.source}:{i}" for i in range(start, stop)]
            return Images(images, paths, labels.astype(np.int64), [], self.class_names)
        read: list[np.ndarray] = []
        good: list[str] = []
        bad: list[tuple[str, str]] = []
        for path in self.files[start:stop]:
            try:
                read.append(
                    load_image(path, self.preprocessing.invert, self.max_bytes, self.max_pixels)
                )
                good.append(path)
            except ImageError as exc:
                bad.append((path, str(exc)))
        stacked = np.stack(read) if read else np.zeros((0, SIZE, SIZE), np.uint8)
        return Images(stacked, good, None, bad)

    @property
    def has_labels(self) -> bool:
        return self.files is None


@functools.lru_cache(maxsize=1)
def catalogue(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The 70,000 Fashion-MNIST images (training, then test) and their labels."""
    data = fashion(data_dir)
    return (
        np.concatenate([data.train_images, data.test_images]),
        np.concatenate([data.train_labels, data.test_labels]),
    )


def plan_source(
    source: str | os.PathLike,
    preprocessing: Preprocessing | None = None,
    *,
    data_dir: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit: int | None = None,
) -> SourcePlan:
    """List a source (see the module docstring); a bad source fails here, before any work."""
    from lava_retrieval.data.images import EXTENSIONS, _walk

    preprocessing = preprocessing or Preprocessing()
    text = str(source)
    data_dir = None if data_dir is None else str(data_dir)
    if text.startswith(FASHION_PREFIX):
        from lava_retrieval.data.fashion_mnist import CLASS_NAMES

        split = text[len(FASHION_PREFIX) :]
        if split.startswith(AUGMENTED + ":"):
            number = split[len(AUGMENTED) + 1 :]
            if not re.fullmatch("[0-9]{1,9}", number) or not 0 < int(number) <= MAX_AUGMENTED:
                raise LavaRetrievalError(
                    f"{text}: use {AUGMENTED_PREFIX}N with N from 1 to {MAX_AUGMENTED:,}"
                )
            count = int(number)
        elif split in SPLITS:
            count = len(fashion(data_dir).split(split)[0])
        else:
            raise LavaRetrievalError(
                f"{text}: unknown split {split!r}; use "
                + ", ".join(FASHION_PREFIX + s for s in SPLITS)
                + f" or {AUGMENTED_PREFIX}N"
            )
        count = count if limit is None else min(count, limit)
        return SourcePlan(
            text,
            count,
            preprocessing,
            class_names=list(CLASS_NAMES),
            data_dir=data_dir,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
        )
    found, unreadable = _walk(source)
    files = [str(p) for p in found[:limit]]
    if not files:
        raise ImageError(f"{source}: no image files ({', '.join(EXTENSIONS)})")
    return SourcePlan(
        text,
        len(files),
        preprocessing,
        files=files,
        unreadable=list(unreadable),
        data_dir=data_dir,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
    )
