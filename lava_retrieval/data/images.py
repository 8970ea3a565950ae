"""Any image file or array to the network's input, the way Fashion-MNIST was made.

Fashion-MNIST's images are product photos on a light background, trimmed, fitted into 28 x 28
with their aspect ratio, centred, and negated: light garment on a black background, uint8. To
search with one's own pictures they must look the same, so :func:`prepare` does, in order:

1. **Grayscale.** Pillow's modes are reduced to luminance (``L``); palette images are expanded
   first; 16-bit and floating-point images are scaled by their own range; transparent pixels are
   composited onto white (a cut-out object on a transparent background is treated like one on
   white paper).
2. **Light-on-dark.** The background is the median of the image's outermost frame of pixels
   (one pixel wide). With ``invert="auto"`` (default) an image whose background is lighter than
   mid-grey (> 127.5) is inverted, so that the object is light on dark as in the data set;
   ``invert=True`` always inverts, ``invert=False`` never does (for images already
   light-on-dark, such as the data set's own).
3. **Trim.** Rows and columns at the edges whose every pixel is within 4 % of full scale of the
   background are cut away, so that the object, not the margin, fills the frame.
4. **Fit and centre.** The longer side is resized to 28 pixels (Lanczos), the shorter in
   proportion, and the result is pasted in the middle of a 28 x 28 black canvas.

The result is a (28, 28) uint8 array, what :mod:`lava_retrieval.engines.sim`, the Lava graph and the
ANN take. Files are refused with :class:`ImageError` (one message naming the file) when they are
empty, not an image, a directory, larger than ``max_bytes`` or than ``max_pixels`` (both can be
raised), or truncated. :func:`load_folder` reads a folder (recursively) or a list file and
returns the images it could read and the reasons for the others.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError

SIZE = 28
EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_MAX_BYTES = 64 * 2**20  # 64 MiB
DEFAULT_MAX_PIXELS = 40_000_000  # e.g. 8,000 x 5,000
INVERT_MODES = ("auto", True, False)
TRIM_TOLERANCE = 0.04


class ImageError(LavaRetrievalError):
    """An image file or array that cannot become the network's input."""


@dataclass(frozen=True)
class Preprocessing:
    """How images become the network's input; recorded in an index's manifest.

    >>> Preprocessing().to_dict()["invert"]
    'auto'
    """

    invert: str | bool = "auto"
    size: int = SIZE
    rule: str = field(
        default="grayscale; alpha over white; invert if the border median > 127.5 (auto); "
        "trim the background; fit the longer side to 28 (Lanczos); centre on black"
    )

    def __post_init__(self) -> None:
        if self.invert not in INVERT_MODES or self.invert is None:
            raise ImageError(f"invert must be 'auto', True or False, got {self.invert!r}")

    def to_dict(self) -> dict:
        return {"invert": self.invert, "size": self.size, "rule": self.rule}


def _grayscale(image) -> np.ndarray:
    """A Pillow image as float64 luminance in [0, 255]."""
    from PIL import Image

    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba).convert("L")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        lo, hi = float(values.min()), float(values.max())
        if image.mode.startswith("I;16") or (image.mode == "I" and hi > 255):
            top = 65535.0 if hi > 255 else 255.0
            return np.clip(values / top * 255.0, 0, 255)
        if image.mode == "F":
            scale = 255.0 if hi <= 1.0 and lo >= 0.0 else 1.0
            return np.clip(values * scale, 0, 255)
        return np.clip(values, 0, 255)
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.float64)


def _border_median(gray: np.ndarray) -> float:
    frame = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    return float(np.median(frame))


def _from_array(array: np.ndarray) -> np.ndarray:
    """An (H, W), (H, W, 1|3|4) or (1, H, W) array, uint8 or float in [0, 1], as [0, 255]."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        channels = array.shape[-1]
    elif array.ndim == 2:
        channels = 0
    else:
        raise ImageError(
            f"an image array must be (H, W), (H, W, 1|3|4) or (1, H, W), got {array.shape}"
        )
    if array.size == 0:
        raise ImageError("the image array is empty")
    if array.dtype == np.uint8:
        values = array.astype(np.float64)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("the image array contains NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                f"a float image must lie in [0, 1], found values in [{lo:g}, {hi:g}] "
                "(pass uint8 for 0..255)"
            )
        values = array.astype(np.float64) * 255.0
    else:
        raise ImageError(
            f"an image array must be uint8 (0..255) or float in [0, 1], got {array.dtype}"
        )
    if channels == 4:  # alpha over white
        alpha = values[..., 3:] / 255.0
        values = values[..., :3] * alpha + 255.0 * (1.0 - alpha)
        channels = 3
    if channels == 3:
        values = values @ np.array([0.299, 0.587, 0.114])
    elif channels == 1:
        values = values[..., 0]
    return values


def prepare(image, invert: str | bool = "auto") -> np.ndarray:
    """An image (array or Pillow image) as the network's (28, 28) uint8 input.

    Parameters
    ----------
    image : numpy.ndarray or PIL.Image.Image
        Arrays: (H, W), (H, W, 1|3|4) or (1, H, W), uint8 or float in [0, 1].
    invert : {"auto", True, False}
        See the module docstring.

    >>> dark_on_light = np.full((40, 20), 255, np.uint8); dark_on_light[10:30, 5:15] = 0
    >>> x = prepare(dark_on_light)
    >>> x.shape, x.dtype, int(x[14, 14]), int(x[0, 0])
    ((28, 28), dtype('uint8'), 255, 0)
    """
    Preprocessing(invert=invert)
    if isinstance(image, np.ndarray):
        gray = _from_array(image)
    else:
        gray = _grayscale(image)
    background = _border_median(gray)
    if invert is True or (invert == "auto" and background > 127.5):
        gray = 255.0 - gray
        background = 255.0 - background
    gray = _trim(gray, background)
    return _fit(gray)


def _trim(gray: np.ndarray, background: float) -> np.ndarray:
    foreground = np.abs(gray - background) > TRIM_TOLERANCE * 255.0
    rows, cols = np.flatnonzero(foreground.any(1)), np.flatnonzero(foreground.any(0))
    if len(rows) == 0:  # a blank image stays blank
        return gray
    return gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit(gray: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = gray.shape
    scale = SIZE / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = Image.fromarray(gray.astype(np.float32), mode="F").resize(
        (new_w, new_h), Image.Resampling.LANCZOS
    )
    canvas = np.zeros((SIZE, SIZE), np.float64)
    top, left = (SIZE - new_h) // 2, (SIZE - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = np.asarray(resized)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def load_image(
    path: str | os.PathLike,
    invert: str | bool = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read an image file Pillow can decode and :func:`prepare` it.

    Raises
    ------
    ImageError
        Missing, a directory, empty, larger than ``max_bytes`` or ``max_pixels``, not an image,
        or truncated; the message names the file.
    """

    path = Path(path).expanduser()  # (a path as a person writes it: ~ is the home)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as exc:  # unreadable folder, a name too long, a symlink loop
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{path}: is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader; a device never ends
        raise ImageError(f"{path}: not a regular file (a pipe, socket or device)")
    size = info.st_size
    if size == 0:
        raise ImageError(f"{path}: the file is empty")
    if size > max_bytes:
        raise ImageError(
            f"{path}: {size:,} bytes is more than the limit of {max_bytes:,} (raise it with "
            "--max-bytes / max_bytes=)"
        )
    return decode_image(
        path,
        name=str(path),
        invert=invert,
        max_pixels=max_pixels,
        hint=" (raise it with --max-pixels / max_pixels=)",
    )


def decode_image(
    source: str | os.PathLike | BinaryIO,
    *,
    name: str,
    invert: bool | str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    hint: str = "",
) -> np.ndarray:
    """Decode an image file or buffer into the network's input (:func:`prepare`), refusing one
    of more than ``max_pixels`` from its header, before decoding; errors start with ``name``
    (and a size error ends with ``hint``).

    >>> import io
    >>> decode_image(io.BytesIO(b"text"), name="the upload")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ImageError: the upload: not an image Pillow can read
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:  # reads the header only
                w, h = image.size
                if w * h > max_pixels:
                    raise ImageError(
                        f"{name}: {w:,} x {h:,} = {w * h:,} pixels is more than the limit of "
                        f"{max_pixels:,}{hint}"
                    )
                image.load()
                return prepare(image, invert)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: too many pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot be decoded ({exc})") from None


@dataclass
class Loaded:
    """Images read from a folder or list: the good ones and why the others were skipped."""

    images: np.ndarray
    paths: list[str]
    bad: list[tuple[str, str]]


def list_images(source: str | os.PathLike) -> list[Path]:
    """The image files of a folder (recursive, by extension, sorted) or of a list file (one path
    per line, relative to the list's folder; blank lines and ``#`` comments skipped)."""
    return _walk(source)[0]


def _walk(source: str | os.PathLike) -> tuple[list[Path], list[tuple[str, str]]]:
    """:func:`list_images`, and the folders it could not read, with the reason. Every name
    with an image extension that is not a folder counts (a pipe or a link to a device too:
    reading it then says why it is skipped)."""
    source = Path(source)
    try:
        info = source.stat()
    except FileNotFoundError:
        raise ImageError(f"{source}: no such folder or list file") from None
    except OSError as exc:
        raise ImageError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        files, unreadable = [], []

        def failed(exc: OSError) -> None:
            unreadable.append((str(exc.filename), f"cannot be read ({exc.strerror or exc})"))

        for folder, dirs, names in os.walk(source, onerror=failed):
            dirs.sort()
            files += [Path(folder, n) for n in names if Path(n).suffix.lower() in EXTENSIONS]
        return sorted(files), unreadable
    if stat.S_ISREG(info.st_mode):
        try:
            lines = source.read_text().splitlines()
        except UnicodeDecodeError:
            raise ImageError(
                f"{source}: neither a folder nor a list file of image paths (one per line)"
            ) from None
        except OSError as exc:
            raise ImageError(f"{source}: cannot be read ({exc.strerror or exc})") from None
        paths = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line)
                paths.append(path if path.is_absolute() else source.parent / path)
        return paths, []
    raise ImageError(f"{source}: neither a folder nor a list file")


def load_folder(
    source: str | os.PathLike,
    *,
    invert: str | bool = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    limit: int | None = None,
) -> Loaded:
    """Every image of a folder or list file (the first ``limit``), prepared; unreadable files
    are listed, not fatal."""
    from tqdm.auto import tqdm

    paths, unreadable = _walk(source)
    paths = paths[:limit]
    if not paths:
        raise ImageError(f"{source}: no image files ({', '.join(EXTENSIONS)})")
    images, good, bad = [], [], list(unreadable)
    for path in tqdm(paths, unit="img", desc="reading", disable=not progress):
        try:
            images.append(load_image(path, invert, max_bytes, max_pixels))
            good.append(str(path))
        except ImageError as exc:
            bad.append((str(path), str(exc)))
    stacked = np.stack(images) if images else np.zeros((0, SIZE, SIZE), np.uint8)
    return Loaded(stacked, good, bad)
