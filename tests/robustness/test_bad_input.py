"""Odd input anywhere is one `error:` line (or a listed skip), never a traceback: query names
that only look like numbers, names too long for the file system, pipes and devices among the
images, folders that cannot be read, an empty step list."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lava_retrieval.cli import main
from lava_retrieval.data.images import ImageError, load_folder, load_image

ROOT = Path(__file__).resolve().parents[2]
NETWORK = ROOT / "tests" / "lava_retrieval" / "golden" / "small-net.npz"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("fashion-mnist:test:²", "use fashion-mnist:SPLIT:I"),  # str.isdigit() says yes
        ("fashion-mnist:test:٣", "use fashion-mnist:SPLIT:I"),
        ("fashion-mnist:test:" + "9" * 40, "use fashion-mnist:SPLIT:I"),
        ("fashion-mnist:test:", "use fashion-mnist:SPLIT:I"),
        ("{tmp}/" + "q" * 300 + ".png", "File name too long"),
        ("{tmp}/" + "d" * 300 + "/q.png", "File name too long"),
        ("/dev/null", "not a regular file"),
    ],
)
def test_odd_queries_are_one_error_line(small_index, tmp_path, capsys, query, message):
    assert main(["search", str(small_index), query.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_a_pipe_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "waiting.png"
    os.mkfifo(fifo)  # opening it would block until a writer came
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(fifo)


def test_pipes_devices_and_dangling_links_among_images_are_listed(tmp_path):
    Image.new("L", (28, 28), 200).save(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "device.png").symlink_to("/dev/zero")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    loaded = load_folder(tmp_path)
    assert [Path(p).name for p in loaded.paths] == ["good.png"]
    reasons = {Path(p).name: why for p, why in loaded.bad}
    assert set(reasons) == {"pipe.png", "device.png", "gone.png"}
    assert "not a regular file" in reasons["pipe.png"] and "no such file" in reasons["gone.png"]


def _as_another_user() -> list[str] | None:
    """The prefix that runs a command as a user that is not root: none needed for one; as
    root, ``unshare --user`` (the command runs as ``nobody`` in a user namespace of its own,
    without root's right to read every folder); None where neither works."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "--user", "id", "-u"], capture_output=True, text=True)
    return ["unshare", "--user"] if probe.stdout.strip() not in ("", "0") else None


def test_a_folder_that_cannot_be_read_is_listed(tmp_path):
    prefix = _as_another_user()
    if prefix is None:
        pytest.skip("runs as root and `unshare --user` does not work here")
    Image.new("L", (28, 28), 200).save(tmp_path / "good.png")
    (tmp_path / "closed").mkdir()
    Image.new("L", (28, 28), 200).save(tmp_path / "closed" / "hidden.png")
    (tmp_path / "closed").chmod(0)
    script = (
        "import json, sys; from lava_retrieval.data.images import load_folder; "
        "loaded = load_folder(sys.argv[1]); "
        "print(json.dumps([[str(p) for p in loaded.paths], [list(b) for b in loaded.bad]]))"
    )
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", script, str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    finally:
        (tmp_path / "closed").chmod(0o755)
    assert done.returncode == 0, done.stderr
    paths, bad = json.loads(done.stdout)
    assert [Path(p).name for p in paths] == ["good.png"]
    assert [(Path(p).name, "cannot be read" in why) for p, why in bad] == [("closed", True)]


def test_an_empty_step_list_is_refused(capsys):
    assert main(["reproduce", "--only", ""]) == 2  # refused by the parser: nothing runs
    assert "none given" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly(small_index):
    """`lava-retrieval search ... --json | head -c 10`: no BrokenPipeError traceback; the status
    is that of a command ended by SIGPIPE."""
    queries = [f"fashion-mnist:test:{i}" for i in range(300)]
    command = [sys.executable, "-m", "lava_retrieval.cli", "search", str(small_index), *queries]
    process = subprocess.Popen(
        [*command, "-k", "10", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.read(10) == b'{"index": '
    process.stdout.close()  # as `head` does once it has its bytes
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, err[-2000:]
    assert "Traceback" not in err and "Broken" not in err, err[-2000:]
