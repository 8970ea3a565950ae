"""Seeded variants of 28 x 28 images: a catalogue of any size from Fashion-MNIST.

:func:`augment` gives image ``i`` of a larger set as a random crop (a square of 20 to 28
pixels, resized back to 28 x 28), a shift of up to 3 pixels (the edge filled with black) and,
for half of them, a left-right flip of source image ``i % len(images)``; the random numbers of
image ``i`` come from ``(seed, i)`` alone, so any slice of the set can be made anywhere (in
chunks, on other machines) and equals the same slice made at once.
"""

from __future__ import annotations

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError

SIZE = 28
MIN_CROP = 20
MAX_SHIFT = 3


def augment(images: np.ndarray, start: int, stop: int, seed: int = 0) -> np.ndarray:
    """Images ``start`` to ``stop`` (uint8, (stop - start, 28, 28)) of the augmented set of
    ``images`` (uint8 (N, 28, 28)); see the module docstring.

    >>> base = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    >>> bool(np.array_equal(augment(base, 3, 7), augment(base, 0, 8)[3:7]))
    True
    """
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE) or images.dtype != np.uint8:
        raise LavaRetrievalError(
            f"need uint8 (N, {SIZE}, {SIZE}) images, got {images.dtype} {images.shape}"
        )
    if not 0 <= start <= stop or not len(images):
        raise LavaRetrievalError(f"bad range {start}:{stop} of {len(images)} images")
    out = np.empty((stop - start, SIZE, SIZE), np.uint8)
    for row, i in enumerate(range(start, stop)):
        rng = np.random.default_rng((seed, i))
        size = int(rng.integers(MIN_CROP, SIZE + 1))
        top, left = (int(v) for v in rng.integers(0, SIZE - size + 1, 2))
        dy, dx = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, 2))
        flip = bool(rng.integers(0, 2))
        crop = images[i % len(images), top : top + size, left : left + size]
        if size != SIZE:
            picture = Image.fromarray(crop).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
            crop = np.asarray(picture)
        if flip:
            crop = crop[:, ::-1]
        shifted = np.zeros((SIZE, SIZE), np.uint8)
        ys, yd = (
            (slice(0, SIZE - dy), slice(dy, SIZE))
            if dy >= 0
            else (slice(-dy, SIZE), slice(0, SIZE + dy))
        )
        xs, xd = (
            (slice(0, SIZE - dx), slice(dx, SIZE))
            if dx >= 0
            else (slice(-dx, SIZE), slice(0, SIZE + dx))
        )
        shifted[yd, xd] = crop[ys, xs]
        out[row] = shifted
    return out
