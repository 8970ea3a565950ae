"""Ctrl-C and SIGTERM stop a command within seconds with `interrupted` and status 130, also in a
Lava run, at any moment of its start-up, run and shutdown; nothing of its session survives
(SIGKILL included) and no shared memory leaks."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from segments import left_behind, segments

# Slow (not in make test-fast). Each command runs in a session of its own, whose processes it
# counts; segments left behind are told apart from those of tests running beside it.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NETWORK = ROOT / "tests" / "lava_retrieval" / "golden" / "small-net.npz"


def _session(sid: int) -> list[str]:
    lines = subprocess.run(
        ["ps", "-eo", "pid,sid,stat"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    return [line for line in lines if int(line.split()[1]) == sid and "Z" not in line.split()[2]]


def _in_session(sid: int) -> int:
    """Live processes of session ``sid``, read from /proc (fast enough to catch a start-up)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        count += fields[0] != "Z" and int(fields[3]) == sid
    return count


def _embed_command(out: Path, backend: str = "lava") -> list[str]:
    return [
        sys.executable,
        "-m",
        "lava_retrieval.cli",
        "embed",
        "--network",
        str(NETWORK),
        "--backend",
        backend,
        "--time-steps",
        "64",
        "--batch-size",
        "16",
        "--split",
        "full_train",
        "--out",
        str(out),
        "--json",
    ]


def _popen(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )


def _start(tmp_path: Path, backend: str) -> subprocess.Popen:
    return _popen(_embed_command(tmp_path / "embeddings.npy", backend))


def _wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(
    ("signum", "whole_group", "backend", "when"),
    [
        (signal.SIGINT, True, "lava", "running"),  # Ctrl-C in a terminal
        (signal.SIGTERM, True, "lava", "running"),
        (signal.SIGTERM, False, "lava", "running"),
        (signal.SIGINT, True, "lava", "start-up"),
        (signal.SIGTERM, False, "sim", "running"),
        (signal.SIGKILL, False, "lava", "running"),
    ],
)
def test_a_signalled_command_leaves_nothing_behind(tmp_path, signum, whole_group, backend, when):
    shm = segments()
    process = _start(tmp_path, backend)
    try:
        if when == "start-up":
            time.sleep(1.0)
        elif backend == "lava":  # the runtime's processes are up
            assert _wait_for(lambda: len(_session(process.pid)) >= 6, 60), "Lava did not start"
            time.sleep(1.0)
        else:
            time.sleep(4.0)
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        (os.killpg if whole_group else os.kill)(process.pid, signum)
        _, err = process.communicate(timeout=20)
        if signum == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:
            assert process.returncode == 130, err.decode()[-2000:]
            assert err.decode().rstrip().endswith("interrupted")
            assert "Traceback" not in err.decode()
        assert _wait_for(lambda: not _session(process.pid), 10), _session(process.pid)
        assert _wait_for(lambda: not left_behind(shm), 10), left_behind(shm)
        assert not any(tmp_path.iterdir())  # no output, no temporary file
    finally:
        for line in _session(process.pid):
            os.kill(int(line.split()[0]), signal.SIGKILL)


#: A command whose Ctrl-C lands inside code run by ``exec`` of a string, as it does when it
#: lands while ``dataclasses`` builds a class's methods during an import. It prints CPython's
#: record of an unhandled interrupt as the program ends.
INTERRUPTED_IN_EXEC = """
import atexit, ctypes, sys
import lava_retrieval.cli as cli
record = ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
atexit.register(lambda: print("record", record.value, file=sys.stderr))
def build_parser():
    exec("raise KeyboardInterrupt")
cli.build_parser = build_parser
sys.exit(cli.main())
"""


def _run_program(tmp_path: Path, source: str, **options) -> subprocess.CompletedProcess:
    """Run ``source`` as ``python -m`` (as the installed command runs), the project importable."""
    (tmp_path / "program.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "program"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        **options,
    )


def test_an_interrupt_inside_exec_still_ends_with_130(tmp_path):
    """CPython ends a program by SIGINT, whatever status it returns, when a KeyboardInterrupt
    once left code run by ``exec`` of a string, even if it was caught later. A Ctrl-C during
    start-up imports landed there often enough to fail the start-up case above now and then."""
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
    except ValueError:
        pytest.skip("this Python keeps no such record")
    process = _run_program(tmp_path, INTERRUPTED_IN_EXEC)
    assert process.returncode == 130, process.stderr[-2000:]
    assert process.stderr.split() == ["interrupted", "record", "0"], process.stderr[-2000:]


#: A command whose Ctrl-C is swallowed by a bare ``except:`` (as some libraries' import code
#: has) before it starts a Lava runtime.
SWALLOWED_THEN_LAVA = """
import os, signal, sys, time
import lava_retrieval.cli as cli
from lava_retrieval.common.lava_runtime import checked_interrupts
def build_parser():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    except:
        pass
    with checked_interrupts():
        print("the runtime would start", file=sys.stderr)
    sys.exit(0)
cli.build_parser = build_parser
sys.exit(cli.main())
"""


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_a_swallowed_interrupt_starts_no_runtime(tmp_path, inherited):
    """A Ctrl-C that a library swallowed still ends the command before a Lava runtime starts;
    one that the command inherited as ignored (a background job) stays ignored."""
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    process = _run_program(
        tmp_path, SWALLOWED_THEN_LAVA, preexec_fn=None if inherited == "default" else ignore
    )
    if inherited == "default":
        assert process.returncode == 130, process.stderr[-2000:]
        assert process.stderr.split() == ["interrupted"], process.stderr[-2000:]
    else:
        assert process.stderr.strip() == "the runtime would start", process.stderr[-2000:]


#: The Lava graph of the small network forks this many processes (shared memory server, one per
#: Lava Process, the runtime service).
LAVA_CHILDREN = 10

#: Moments of a Lava run's life: ("after", seconds from launch, still importing), ("children", n:
#: as soon as n processes are forked), ("running", seconds after all are up), ("stopping",
#: seconds between a first and a second signal, which lands in the shutdown).
MOMENTS = [
    ("after", 0.3),
    *[("children", n) for n in range(1, LAVA_CHILDREN + 1)],
    ("running", 0.3),
    ("stopping", 0.5),
]


@pytest.mark.parametrize(
    ("command", "moment"),
    [("embed", m) for m in MOMENTS] + [("search", ("children", n)) for n in (2, 5, LAVA_CHILDREN)],
    ids=lambda v: v if isinstance(v, str) else f"{v[0]}-{v[1]}",
)
def test_a_signal_at_any_moment_of_a_lava_run(tmp_path, small_index, command, moment):
    """Ctrl-C to the group (or, every other moment, SIGTERM to the command alone) at moments
    swept across the Lava runtime's start-up: forks of its processes, half-built shared memory,
    a process built but not yet started. Each ends within seconds as `interrupted`, 130."""
    if command == "embed":
        argv = _embed_command(tmp_path / "out" / "embeddings.npy")
        (tmp_path / "out").mkdir()
    else:
        argv = [sys.executable, "-m", "lava_retrieval.cli", "search", str(small_index)]
        argv += ["fashion-mnist:test:3", "fashion-mnist:test:4", "--backend", "lava", "--json"]
    kind, value = moment
    signum = (signal.SIGINT, signal.SIGTERM)[MOMENTS.index(moment) % 2 if moment in MOMENTS else 0]
    send = os.killpg if signum == signal.SIGINT else os.kill
    shm = segments()
    process = _popen(argv)
    try:
        deadline = time.monotonic() + 60
        want = 1 + (value if kind == "children" else LAVA_CHILDREN)
        while kind != "after" and _in_session(process.pid) < want:
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "Lava did not start"
            time.sleep(0.003)
        if kind in ("after", "running"):
            time.sleep(value)
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        send(process.pid, signum)
        if kind == "stopping":
            time.sleep(value)
            send(process.pid, signum)
        _, err = process.communicate(timeout=20)
        err = err.decode()
        assert process.returncode == 130, err[-2000:]
        assert err.rstrip().endswith("interrupted") and "Traceback" not in err, err[-2000:]
        assert "leaked" not in err, err[-2000:]
        assert _wait_for(lambda: not _in_session(process.pid), 10), _session(process.pid)
        assert _wait_for(lambda: not left_behind(shm), 10), left_behind(shm)
        assert not any((tmp_path / "out").glob("*")) if command == "embed" else True
    finally:
        for line in _session(process.pid):
            os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.mark.parametrize(
    ("signum", "backend"),
    [(signal.SIGINT, "sim"), (signal.SIGTERM, "sim"), (signal.SIGTERM, "lava")],
)
def test_serve_ends_as_interrupted(tmp_path, signum, backend):
    """The web server (waitress, which swallows the interrupt itself) ends with `interrupted`
    and status 130, not 0, and leaves nothing of its session: with the Lava backend, after a
    search through its resident graph, none of the graph's processes and no shared memory."""
    import http.client
    import json

    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.search.sources import read_source
    from lava_retrieval.snn.config import SimConfig
    from lava_retrieval.snn.network import SpikingNetwork

    shm = segments()
    index = ImageIndex(
        SpikingNetwork.load(ROOT / "results" / "snn-32-64-10.npz"),
        SimConfig(8, timing="delay", readout="membrane"),
    )
    index.add(read_source("fashion-mnist:test", limit=20, progress=False)).save(tmp_path / "idx")
    command = [
        sys.executable,
        "-m",
        "lava_retrieval.cli",
        "serve",
        "--index",
        str(tmp_path / "idx"),
        "--port",
        "0",
        "--backend",
        backend,
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        line = process.stdout.readline()
        if backend == "lava":
            assert b"starting the Lava graph" in line
            line = process.stdout.readline()
        assert b"serving 20 images" in line, line
        if backend == "lava":
            assert len(_session(process.pid)) >= 6  # the graph's processes are up
            port = int(line.split(b"http://127.0.0.1:")[1].split(b"/")[0])
            boundary = "b"
            body = f'--{boundary}\r\nContent-Disposition: form-data; name="test_id"\r\n\r\n3\r\n'
            body += f"--{boundary}--\r\n"
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request(
                "POST",
                "/api/search",
                body.encode(),
                {"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            answer = json.loads(connection.getresponse().read())
            assert len(answer["snn"]) == 5, answer
        os.killpg(process.pid, signum)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130 and err.decode().strip().endswith("interrupted")
    assert "Traceback" not in err.decode()
    assert _wait_for(lambda: not _session(process.pid), 10)
    assert _wait_for(lambda: not left_behind(shm), 10), left_behind(shm)


#: A Ctrl-C inside ``SharedMemory(create=True)``, after the segment exists but before anything
#: recorded it (the resource tracker's registration; with ``ftruncate``: before its size was
#: set): the window in which a Lava start-up's interrupt leaked a segment.
INTERRUPTED_SEGMENT = """
import os, sys
from multiprocessing import resource_tracker, shared_memory
from lava_retrieval.common.lava_runtime import import_lava, release_segments, segments_mark
import_lava()
where = sys.argv[1]
mark = segments_mark()
owner = resource_tracker if where == "register" else os
name = "register" if where == "register" else "ftruncate"
real = getattr(owner, name)
def interrupt(*args, **kwargs):  # once
    setattr(owner, name, real)
    raise KeyboardInterrupt
setattr(owner, name, interrupt)
try:
    shared_memory.SharedMemory(create=True, size=4096)
except KeyboardInterrupt:
    pass
print(len(os.listdir("/dev/shm")), release_segments(mark), flush=True)
"""


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system")
@pytest.mark.parametrize("where", ["register", "ftruncate"])
def test_a_segment_interrupted_while_it_was_made_is_released(where):
    before = segments()
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_SEGMENT, where],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    released = int(done.stdout.split()[1])
    assert released == 1, done.stdout  # it was there, and this process unlinked it
    assert _wait_for(lambda: not left_behind(before), 10), left_behind(before)
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def _named_in_session(sid: int, name: str) -> bool:
    """Whether a live process of session ``sid`` has the command name ``name``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, fields = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = fields.split()
        if fields[0] != "Z" and int(fields[3]) == sid and head.split("(", 1)[1] == name:
            return True
    return False


#: Moments of a Ray build (``index build --ray``, a Ray instance started on this machine):
#: before Ray starts, while it starts (its raylet is up, the rest is coming), while its
#: actors start and embed, and while the driver collects their chunks into the index.
RAY_MOMENTS = [("seconds", 0.3), ("process", "raylet"), ("line", "ray: "), ("line", "img/s]")]


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (the ray extra)"
)
@pytest.mark.parametrize("moment", RAY_MOMENTS, ids=lambda m: f"{m[0]}-{m[1]}")
def test_a_signal_at_any_moment_of_a_ray_build(tmp_path, moment):
    """Ctrl-C to the group, or SIGTERM to the command alone (every other moment): 130 and
    `interrupted`, no index left, and no process of the command's session (Ray's raylet, GCS,
    agents and workers) alive afterwards."""
    import threading

    signum = (signal.SIGINT, signal.SIGTERM)[RAY_MOMENTS.index(moment) % 2]
    send = os.killpg if signum == signal.SIGINT else os.kill
    out = tmp_path / "idx"
    argv = [sys.executable, "-m", "lava_retrieval.cli", "index", "build", "fashion-mnist:test"]
    process = _popen([*argv, "--limit", "3000", "--chunk", "256", "--ray", "--out", str(out)])
    err = bytearray()

    def read() -> None:
        while chunk := process.stderr.read1():
            err.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        kind, value = moment
        deadline = time.monotonic() + 90
        if kind == "seconds":
            time.sleep(value)
        while kind == "process" and not _named_in_session(process.pid, value):
            assert time.monotonic() < deadline and process.poll() is None, err.decode()[-2000:]
            time.sleep(0.01)
        while kind == "line" and value.encode() not in err:
            assert time.monotonic() < deadline and process.poll() is None, err.decode()[-2000:]
            time.sleep(0.01)
        assert process.poll() is None, err.decode()[-2000:]
        send(process.pid, signum)
        process.wait(timeout=60)
        reader.join(timeout=10)
        text = err.decode()
        assert process.returncode == 130, text[-2000:]
        assert text.rstrip().endswith("interrupted") and "Traceback" not in text, text[-2000:]
        assert _wait_for(lambda: not _in_session(process.pid), 10), _session(process.pid)
        assert not out.exists()
    finally:
        for line in _session(process.pid):
            os.kill(int(line.split()[0]), signal.SIGKILL)
