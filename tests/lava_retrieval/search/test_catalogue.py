"""A catalogue's daily changes: no silent duplicates, folder sync, removals as tombstones that
no search returns (nothing rebuilt), compaction by hand and by itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.cli import main
from lava_retrieval.search import catalogue
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import NotInIndexError, RetrievalIndexError
from lava_retrieval.search.index_directory import COMPACT_FRACTION
from lava_retrieval.search.sources import Images, content_hashes, read_source
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

NETWORK = Path(__file__).resolve().parents[1] / "golden" / "small-net.npz"
CONFIG = SimConfig(8, timing="delay", readout="membrane")


@pytest.fixture(scope="module")
def network() -> SpikingNetwork:
    return SpikingNetwork.load(NETWORK)


def _photos(fashion, folder: Path, numbers) -> Path:
    """Test images ``numbers`` as PNG files (dark on light, as photos are) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        Image.fromarray(255 - fashion.test_images[n]).save(folder / f"p{n}.png")
    return folder


def _held(index: ImageIndex) -> dict[str, int]:
    """Stored path -> id of every image the index holds."""
    return {index.paths[p]: int(index.index.ids_[p]) for p in index.live_positions()}


def _build(network, folder: Path, directory: Path, index_type: str = "exact") -> ImageIndex:
    index = ImageIndex(network, CONFIG, index_type=index_type)
    index.add(read_source(folder, progress=False)).save(directory)
    return ImageIndex.load(directory)


def test_content_hashes_are_of_the_pixels(fashion):
    images = fashion.test_images[:3].copy()
    hashes = content_hashes(images)
    assert len(set(hashes.tolist())) == 3 and (hashes != 0).all()
    images[2, 5, 5] ^= 1  # one pixel
    assert content_hashes(images)[2] != hashes[2]
    assert content_hashes(images[:2]).tolist() == hashes[:2].tolist()


def test_add_skips_images_indexed_by_path_or_pixels(network, fashion, tmp_path, capsys):
    photos = _photos(fashion, tmp_path / "photos", range(6))
    directory = tmp_path / "idx"
    _build(network, photos, directory)
    # Again: every path is indexed; a copy of p0 under another name has p0's pixels; two
    # new files of one image are one image.
    shutil.copy(photos / "p0.png", photos / "copy.png")
    _photos(fashion, tmp_path / "new", [7])
    shutil.copy(tmp_path / "new" / "p7.png", photos / "a7.png")
    shutil.copy(tmp_path / "new" / "p7.png", photos / "b7.png")
    assert main(["index", "add", str(directory), str(photos), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["added"], answer["count"]) == (1, 7)
    reasons = {Path(d["path"]).name: d["reason"] for d in answer["duplicates"]}
    assert reasons["p3.png"] == "already indexed (id 3)"
    assert reasons["copy.png"].startswith("same pixels as indexed id 0 (")
    assert reasons["b7.png"] == f"same pixels as {photos / 'a7.png'}"
    assert (
        len(reasons) == 8
        and answer["skipped_duplicates"]
        == {
            "already indexed": 6,
            "same pixels": 2,
        }
        and answer["skipped_duplicates"]
        == {
            "already indexed": 6,
            "same pixels": 2,
        }
    )
    # The text names what was skipped and how to add it all the same.
    assert main(["index", "add", str(directory), str(photos)]) == 0
    out = capsys.readouterr().out
    assert "0 added" in out
    assert "skipped 9 duplicates (7 already indexed, 2 same pixels; --allow-duplicates" in out
    # Nothing changed: no new version was written.
    manifest = (directory / "index.json").read_text()
    assert main(["index", "add", str(directory), str(photos), "--json"]) == 0
    assert (directory / "index.json").read_text() == manifest
    capsys.readouterr()
    # --allow-duplicates: today's behaviour, every image again under a new id.
    assert main(["index", "add", str(directory), str(photos), "--allow-duplicates", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 7 + 9


def test_upsert_replaces_changed_pixels_only(network, fashion, tmp_path):
    photos = _photos(fashion, tmp_path / "photos", range(4))
    directory = tmp_path / "idx"
    before = _held(_build(network, photos, directory))
    Image.fromarray(255 - fashion.test_images[9]).save(photos / "p2.png")  # changed
    change = catalogue.add(ImageIndex, directory, read_plan(photos), upsert=True)
    assert [Path(p).name for p in change.updated] == ["p2.png"] and change.unchanged == 3
    after = change.index
    assert _held(after) == before  # ids kept
    hits = after.search(fashion.test_images[9:10], 1)
    assert hits[0][0].id == before[str(photos / "p2.png")]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-5)


def read_plan(folder):
    """A plan of ``folder`` made with the index's preprocessing (as the CLI makes it)."""
    from lava_retrieval.search.sources import plan_source

    return lambda index: plan_source(folder, index.preprocessing)


def test_sync_adds_updates_renames_and_removes(network, fashion, tmp_path, capsys):
    photos = _photos(fashion, tmp_path / "photos", range(12))
    other = _photos(fashion, tmp_path / "other", [20, 21])
    directory = tmp_path / "idx"
    _build(network, photos, directory)
    ImageIndex.extend(directory, read_source(other, progress=False))
    first = _held(ImageIndex.load(directory))
    (photos / "p1.png").unlink()  # deleted
    (photos / "p2.png").rename(photos / "renamed.png")  # renamed
    Image.fromarray(255 - fashion.test_images[30]).save(photos / "p3.png")  # changed
    _photos(fashion, photos / "sub", [40, 41])  # added, in a subfolder
    (photos / "notes.txt").write_text("not an image")
    manifest = (directory / "index.json").read_text()

    assert main(["index", "sync", str(directory), str(photos), "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert (dry["added"], dry["updated"], dry["removed"], dry["dry_run"]) == (3, 1, 2, True)
    names = {kind: sorted(Path(p).name for p in dry["paths"][kind]) for kind in dry["paths"]}
    assert names == {
        "added": ["p40.png", "p41.png", "renamed.png"],
        "updated": ["p3.png"],
        "removed": ["p1.png", "p2.png"],
    }
    assert (directory / "index.json").read_text() == manifest  # nothing changed

    assert main(["index", "sync", str(directory), str(photos)]) == 0
    out = capsys.readouterr().out
    assert "3 added, 1 updated, 2 removed (9 unchanged)" in out
    after = ImageIndex.load(directory)
    held = _held(after)
    assert sorted(Path(p).name for p in held if p.startswith(str(photos))) == sorted(
        ["p0.png", "p3.png", *(f"p{n}.png" for n in range(4, 12)), "renamed.png"]
        + ["p40.png", "p41.png"]
    )
    assert held[str(photos / "p3.png")] == first[str(photos / "p3.png")]  # updated in place
    assert {p: i for p, i in held.items() if p.startswith(str(other))} == {
        p: i for p, i in first.items() if p.startswith(str(other))
    }  # another folder's images are left alone
    # p1, p2 and p3's old row: tombstones (3 of 18 rows, below the fraction that compacts)
    assert after.tombstones == 3 and len(after) == 15
    # The index now matches the folder: a second sync changes nothing.
    assert main(["index", "sync", str(directory), str(photos), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["added"], again["updated"], again["removed"], again["unchanged"]) == (0, 0, 0, 13)
    # A folder emptied of images: its entries go, the others stay.
    for path in other.iterdir():
        path.unlink()
    assert main(["index", "sync", str(directory), str(other), "--json"]) == 0
    emptied = json.loads(capsys.readouterr().out)
    assert (emptied["removed"], emptied["count"]) == (2, 13)


@pytest.mark.parametrize("index_type", ["exact", "hnsw"])
def test_removed_images_are_tombstones_that_no_search_returns(
    network, fashion, tmp_path, index_type
):
    directory = tmp_path / "idx"
    index = ImageIndex(network, CONFIG, index_type=index_type)
    index.add(read_source("fashion-mnist:test", limit=200, progress=False)).save(directory)
    faiss_file = json.loads((directory / "index.json").read_text())["files"].get("faiss.index")
    queries = fashion.test_images[:6]
    ImageIndex.remove_from(directory, [0, 1, 2, 50, 51])
    manifest = json.loads((directory / "index.json").read_text())
    assert manifest["files"].get("faiss.index") == faiss_file  # not rebuilt, not rewritten
    assert manifest["count"] == 200 and manifest["metadata"]["count"] == 195
    loaded = ImageIndex.load(directory)
    assert (len(loaded), loaded.rows, loaded.tombstones) == (195, 200, 5)
    for options in ({}, {"exact": True}, {"path_prefix": "fashion-mnist:test"}):
        hits = loaded.search(queries, 195, **options)
        assert all(len(row) == 195 for row in hits) if options else True
        assert not {0, 1, 2, 50, 51} & {h.id for row in hits for h in row}
    assert loaded.search_by_id([3], 1)[0][0].id == 3
    with pytest.raises(NotInIndexError, match="not in the index: id 1"):
        loaded.search_by_id([1], 1)
    with pytest.raises(NotInIndexError, match="not in the index: id 2"):
        ImageIndex.remove_from(directory, [2])
    # Compaction drops the rows; the ids and answers stay.
    want = [[h.id for h in row] for row in loaded.search(queries, 10, exact=True)]
    compacted, gone = ImageIndex.compact_at(directory)
    assert gone == 5 and (compacted.rows, compacted.tombstones) == (195, 0)
    again = ImageIndex.load(directory)
    assert [[h.id for h in row] for row in again.search(queries, 10, exact=True)] == want
    if index_type == "hnsw":
        assert len(again.approximate) == 195


def test_a_save_compacts_past_the_fraction(network, tmp_path):
    directory = tmp_path / "idx"
    index = ImageIndex(network, CONFIG, index_type="hnsw")
    index.add(read_source("fashion-mnist:test", limit=100, progress=False)).save(directory)
    below = int(COMPACT_FRACTION * 100)  # exactly the fraction: kept as tombstones
    ImageIndex.remove_from(directory, list(range(below)))
    assert ImageIndex.load(directory).tombstones == below
    ImageIndex.remove_from(directory, [below])  # past it: compacted by the save
    loaded = ImageIndex.load(directory)
    assert (loaded.rows, loaded.tombstones, len(loaded.approximate)) == (79, 0, 79)
    assert loaded.ids.tolist() == list(range(below + 1, 100))


def test_a_removed_id_given_again_by_put_is_a_new_image(network, fashion, tmp_path):
    directory = tmp_path / "idx"
    _build(network, _photos(fashion, tmp_path / "photos", range(5)), directory)
    ImageIndex.remove_from(directory, [2])
    index = ImageIndex.load(directory)
    source = Images(fashion.test_images[:1], ["upload:new.png"], None, [])
    index.put(source, index.embed(source.images), [2])  # (what PUT /api/items/2 does)
    index.save(directory)
    loaded = ImageIndex.load(directory)
    assert loaded.ids.tolist() == [0, 1, 3, 4, 2] and loaded.rows == 6
    assert loaded.paths[loaded.position(2)] == "upload:new.png"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index", "sync", "{idx}", "{idx}/index.json"], "not a folder"),
        (["index", "sync", "{missing}", "{photos}"], "no such index directory"),
        (["index", "compact", "{missing}"], "no such index directory"),
        (["index", "add", "{idx}", "{photos}", "--ray", "x"], "--ray 'x': give HOST:PORT"),
        (["index", "sync", "{idx}", "{photos}", "--chunk", "0"], "--chunk"),
    ],
)
def test_bad_catalogue_commands_are_one_line(network, fashion, tmp_path, capsys, argv, message):
    photos = _photos(fashion, tmp_path / "photos", range(2))
    directory = tmp_path / "idx"
    _build(network, photos, directory)
    names = {"idx": directory, "missing": tmp_path / "nothing", "photos": photos}
    assert _run([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exited:  # (argparse: --help, a bad option)
        return exited.code


def test_help_shows_the_defaults(capsys):
    for command in ("add", "sync", "compact"):
        assert _run(["index", command, "-h"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert out.startswith("usage:")
        if command != "compact":
            assert "(default: 2048)" in out and "(default: no Ray, one process)" in out
    assert _run(["index", "sync", "-h"]) == 0
    assert "--dry-run" in capsys.readouterr().out


def test_hashes_and_tombstones_on_disk_are_checked(network, fashion, tmp_path):
    directory = tmp_path / "idx"
    _build(network, _photos(fashion, tmp_path / "photos", range(6)), directory)
    ImageIndex.remove_from(directory, [1])  # (1 of 6 rows: below the fraction, kept)
    manifest = json.loads((directory / "index.json").read_text())
    removed = directory / manifest["files"]["removed.npy"]
    np.save(removed, np.zeros(6, bool))  # (np.save writes where it is told: the same name)
    with pytest.raises(RetrievalIndexError, match="differs from what the manifest records"):
        ImageIndex.load(directory)


def test_added_rows_are_searched_exactly_until_folded_in(network, fashion, tmp_path):
    """Rows added since the HNSW index was filled (up to TAIL_FRACTION of the index) are
    searched exactly beside it, its file not written again; past that a save adds them."""
    from lava_retrieval.search.image_index import TAIL_FRACTION

    directory = tmp_path / "idx"
    index = ImageIndex(network, CONFIG, index_type="hnsw")
    index.add(read_source("fashion-mnist:test", limit=500, progress=False)).save(directory)
    faiss_file = json.loads((directory / "index.json").read_text())["files"]["faiss.index"]
    few = int(TAIL_FRACTION * 500)  # 5 new images: the tail
    new = read_source("fashion-mnist:validation", limit=few, progress=False)
    more = ImageIndex.extend(directory, new)
    assert json.loads((directory / "index.json").read_text())["files"]["faiss.index"] == faiss_file
    loaded = ImageIndex.load(directory)
    assert (loaded.rows, len(loaded.approximate)) == (505, 500) and len(more) == 505
    queries = loaded.embed(new.images)
    exact = loaded.search_embeddings(queries, 5, exact=True)
    approximate = loaded.search_embeddings(queries, 5, ef=200)
    assert (
        [row[0].id for row in approximate]
        == [row[0].id for row in exact]
        == [500 + i for i in range(few)]
    )
    labels = loaded.search_embeddings(queries, 5, labels=["Bag"])  # filtered, tail included
    assert all(h.label_name == "Bag" for row in labels for h in row)
    # One more: past the fraction, the save adds the tail to the faiss index.
    ImageIndex.extend(directory, read_source("fashion-mnist:validation", limit=few + 1))  # +1
    folded = ImageIndex.load(directory)
    assert (folded.rows, len(folded.approximate)) == (506, 506)


def test_a_failed_save_leaves_the_old_version_and_can_be_retried(network, tmp_path, monkeypatch):
    """A save that compacts (writing new shards) and then fails: the directory keeps its old
    version, whole, and the same index saved again writes the shards it lost."""
    directory = tmp_path / "idx"
    index = ImageIndex(network, CONFIG)
    index.add(read_source("fashion-mnist:test", limit=100, progress=False)).save(directory)
    index = ImageIndex.load(directory)
    index.remove(list(range(30)))  # past the fraction: the save compacts first

    def full(progress: bool = False) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index, "_sync_approximate", full)
    with pytest.raises(OSError):
        index.save(directory)
    assert len(ImageIndex.load(directory)) == 100  # the old version
    monkeypatch.undo()
    index.save(directory)
    loaded = ImageIndex.load(directory)
    assert len(loaded) == loaded.rows == 70 and loaded.ids.tolist() == list(range(30, 100))
