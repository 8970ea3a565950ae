"""Image files and arrays become the network's input the way Fashion-MNIST was made."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.ann.inference import accuracy
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.data.images import ImageError, load_folder, load_image, prepare


@pytest.fixture(scope="module")
def garment(fashion):
    """A test image (an ankle boot), light-on-dark as the data set stores it."""
    return fashion.test_images[0]


def _dark_on_light(image: np.ndarray, scale: int = 3) -> Image.Image:
    size = (28 * scale, 28 * scale)
    return Image.fromarray(255 - image).resize(size, Image.Resampling.BICUBIC)


@pytest.mark.parametrize(
    ("name", "convert", "tolerance"),
    [
        ("a.png", "L", 3),
        ("b.png", "RGB", 3),
        ("c.png", "P", 12),  # palette quantisation
        ("d.bmp", "RGB", 3),
        ("e.tif", "L", 3),
        ("f.gif", "L", 12),
        ("g.jpg", "RGB", 25),  # lossy
        ("h.webp", "RGB", 25),  # lossy
    ],
)
def test_formats_give_the_same_input(garment, tmp_path, name, convert, tolerance):
    reference = prepare(np.asarray(_dark_on_light(garment)))
    _dark_on_light(garment).convert(convert).save(tmp_path / name)
    image = load_image(tmp_path / name)
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - reference).mean() < tolerance / 3
    assert np.percentile(np.abs(image.astype(int) - reference), 99) <= tolerance * 4


def test_alpha_and_sixteen_bit(garment, tmp_path):
    reference = prepare(np.asarray(_dark_on_light(garment)))
    # A dark object cut out on a transparent background: transparent pixels count as white.
    rgba = np.zeros((84, 84, 4), np.uint8)
    dark = np.asarray(_dark_on_light(garment))
    rgba[..., :3] = dark[..., None]
    rgba[..., 3] = np.where(dark < 250, 255, 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert np.abs(load_image(tmp_path / "alpha.png").astype(int) - reference).mean() < 2
    wide = (np.asarray(_dark_on_light(garment)).astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide, "I;16").save(tmp_path / "deep.png")
    assert np.abs(load_image(tmp_path / "deep.png").astype(int) - reference).mean() < 2


def test_inversion_rule(garment):
    light_on_dark = prepare(garment)  # the data set's own: dark border, kept as it is
    assert np.abs(light_on_dark.astype(int) - prepare(garment, invert=False)).max() == 0
    dark_on_light = prepare(255 - garment)  # a light border: inverted back
    np.testing.assert_array_equal(dark_on_light, light_on_dark)
    boot = light_on_dark > 100
    bright = light_on_dark[boot].mean()
    assert prepare(255 - garment, invert=False)[boot].mean() < bright - 40  # kept dark
    assert prepare(garment, invert=True)[boot].mean() < bright - 40


def test_aspect_is_kept_and_centred():
    wide = np.zeros((10, 40), np.uint8)
    wide[2:8, 5:35] = 200  # a 6 x 30 bar on black
    image = prepare(wide)
    rows = np.flatnonzero(image.max(1) > 100)
    cols = np.flatnonzero(image.max(0) > 100)
    assert cols[0] <= 1 and cols[-1] >= 26  # the long side fills the frame
    assert 4 <= len(rows) <= 7  # 6 x 28 / 30, not stretched
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1  # centred


def test_own_pictures_classify_like_the_data_set(fashion, tmp_path):
    """Dark-on-light, three times larger, JPEG: what a user would photograph and save."""
    images, labels = fashion.test_images[:300], fashion.test_labels[:300]
    prepared = []
    for i, image in enumerate(images):
        _dark_on_light(image).convert("RGB").save(tmp_path / f"{i}.jpg", quality=90)
        prepared.append(load_image(tmp_path / f"{i}.jpg"))
    model = load_checkpoint().model
    original = accuracy(model, images, labels)
    assert accuracy(model, np.stack(prepared), labels) >= original - 0.03


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 4, 5)), r"must be \(H, W\)"),
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.full((5, 5), 2.0), r"must lie in \[0, 1\]"),
        (np.full((5, 5), np.nan), "NaN"),
        (np.zeros((5, 5), np.int32), "uint8 .* or float"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(ImageError, match=message):
        prepare(array)


def test_float_arrays_equal_uint8(garment):
    np.testing.assert_array_equal(prepare(garment / 255.0), prepare(garment))


def test_bad_files(tmp_path, garment):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    _dark_on_light(garment).save(tmp_path / "whole.png")
    blob = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "folder.png").mkdir()
    cases = {
        "empty.png": "the file is empty",
        "text.png": "not an image",
        "cut.png": "cannot be decoded",
        "folder.png": "is a directory",
        "missing.png": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(ImageError, match=message) as info:
            load_image(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(ImageError, match="more than the limit of 100 .*max-bytes"):
        load_image(tmp_path / "whole.png", max_bytes=100)
    with pytest.raises(ImageError, match="7,056 pixels is more than the limit of 1,000"):
        load_image(tmp_path / "whole.png", max_pixels=1000)


def test_folder_keeps_the_good_and_lists_the_bad(tmp_path, garment):
    (tmp_path / "sub").mkdir()
    _dark_on_light(garment).save(tmp_path / "a.png")
    _dark_on_light(garment).save(tmp_path / "sub" / "b.jpg")
    (tmp_path / "sub" / "broken.png").write_text("nope")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    loaded = load_folder(tmp_path)
    assert loaded.images.shape == (2, 28, 28)
    assert [p.split("/")[-1] for p in loaded.paths] == ["a.png", "b.jpg"]
    assert len(loaded.bad) == 1 and loaded.bad[0][0].endswith("broken.png")
    listing = tmp_path / "list.txt"
    listing.write_text("# queries\na.png\n\nsub/b.jpg\n")
    assert len(load_folder(listing).paths) == 2
    with pytest.raises(ImageError, match="no image files"):
        load_folder(_empty(tmp_path))


def _empty(tmp_path):
    path = tmp_path / "nothing"
    path.mkdir()
    return path


def test_augmented_catalogue_is_seeded_per_image(fashion):
    from lava_retrieval.data.augment import augment

    base = fashion.test_images[:50]
    whole = augment(base, 0, 120, seed=4)
    assert whole.shape == (120, 28, 28) and whole.dtype == np.uint8
    # Any slice, made apart, equals the same slice of the whole; another seed differs.
    np.testing.assert_array_equal(augment(base, 37, 101, seed=4), whole[37:101])
    assert not np.array_equal(augment(base, 0, 120, seed=5), whole)
    # A variant is nearer its own source image than most other images are.
    distance = np.abs(whole[:50, None].astype(int) - base[None].astype(int)).mean(axis=(2, 3))
    own = np.diag(distance)
    assert np.mean(own < np.median(distance, axis=1)) >= 0.8
    assert not any(np.array_equal(w, b) for w, b in zip(whole[:50], base, strict=True))
    with pytest.raises(LavaRetrievalError, match="uint8"):
        augment(base.astype(np.float32), 0, 2)
