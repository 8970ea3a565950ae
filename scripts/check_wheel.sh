#!/usr/bin/env bash
# The built wheel works from any directory: build it, install it (not editable) into a fresh
# virtual environment, then run the demo, an index build of a folder, a search, the service and
# the task functions' doctests from an empty temporary directory, with no results/,
# checkpoints/ or repository beside them. `make wheel-check` runs it; CI runs it.
#
# The fresh environment borrows the installed dependencies of .venv through a .pth file (so
# that this check takes a minute, not a torch download); pip still resolves the wheel's
# requirements against them. CHECK_WHEEL_FULL=1 installs every dependency from the registry
# instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
python=$("$repo/.venv/bin/python" -c 'import os, sys; print(os.path.join(sys.base_prefix, "bin", "python3.10"))')

echo "building the wheel"
rm -rf "$repo/build"  # (setuptools would package what an earlier, interrupted build left there)
"$repo/.venv/bin/python" -m build --wheel --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
rm -rf "$repo/build"
wheel=$(ls "$work"/dist/lava_retrieval-*.whl)

echo "installing $(basename "$wheel") into a fresh environment"
"$python" -m venv "$work/env"
if [ -z "${CHECK_WHEEL_FULL:-}" ]; then
    site=$("$repo/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    mine=$("$work/env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" >"$mine/_borrowed_dependencies.pth"
fi
"$work/env/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
if [ -n "${CHECK_WHEEL_FULL:-}" ]; then  # (the doctests below need pytest)
    "$work/env/bin/python" -m pip install --quiet --disable-pip-version-check pytest
fi
bin="$work/env/bin"

# The data set where it is, every cache (embeddings, compiled kernels) empty and in $work: the
# commands below compute everything with the wheel's code and write nothing into this home.
export LAVA_RETRIEVAL_DATA
LAVA_RETRIEVAL_DATA=$("$repo/.venv/bin/python" -c 'from lava_retrieval.data.fashion_mnist import load_fashion_mnist as f; print(f().directory)')
export XDG_CACHE_HOME="$work/cache"
cd "$work" && mkdir run && cd run
where=$("$bin/python" -c 'import lava_retrieval, os; print(os.path.dirname(lava_retrieval.__file__))')
find "$where" -type f ! -name '*.pyc' | sort >"$work/installed-files"
case "$where" in
    "$work/env/"*) echo "lava_retrieval imported from the wheel: $where" ;;
    *) echo "error: lava_retrieval imported from $where, not from the wheel" >&2; exit 1 ;;
esac

"$bin/python" - <<'PY'
# A folder of the user's own pictures: Fashion-MNIST test images, dark on light, larger.
import os
from PIL import Image
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
data = load_fashion_mnist()
os.makedirs("pictures/shoes")
for i in range(40):
    picture = Image.fromarray(255 - data.test_images[i]).resize((84, 84))
    picture.save(f"pictures/{'shoes/' if data.test_labels[i] in (5, 7, 9) else ''}{i:03d}.png")
PY

echo "lava-retrieval demo"
"$bin/lava-retrieval" demo --corpus 2000 --json >demo.json 2>demo.log || { cat demo.log; exit 1; }
test -s runs/demo-retrieval.png
echo "lava-retrieval index build"
"$bin/lava-retrieval" index build pictures --out catalogue --json >build.json 2>build.log \
    || { cat build.log; exit 1; }
"$bin/python" -c 'import json; assert json.load(open("build.json"))["count"] == 40'
echo "lava-retrieval search"
"$bin/lava-retrieval" search catalogue pictures/shoes/000.png -k 3 --json >search.json
"$bin/python" - <<'PY'
import json
hits = json.load(open("search.json"))["queries"][0]["results"]
assert hits[0]["path"].endswith("pictures/shoes/000.png") and hits[0]["score"] > 0.999, hits[0]
PY
echo "lava-retrieval serve"
port=$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/lava-retrieval" serve --index catalogue --port "$port" >serve.log 2>&1 &
server=$!
"$bin/python" - "$port" <<'PY' || { cat serve.log; exit 1; }
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(240):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=2)
        break
    except OSError:
        time.sleep(0.5)
info = json.load(urllib.request.urlopen(base + "/api/info"))
assert info["count"] == 40, info
spec = json.load(urllib.request.urlopen(base + "/api/openapi.json"))
assert "/api/search" in spec["paths"]
body = json.dumps({"ids": [0], "k": 2}).encode()
request = urllib.request.Request(base + "/api/search/batch", body, {"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(request))
assert answer["results"][0]["hits"][0]["id"] == 0, answer
PY
kill -TERM "$server"; wait "$server" || true  # (a background job ignores SIGINT)
server=
echo "the task functions' doctests"
"$bin/python" -m pytest -q -p no:cacheprovider --doctest-modules \
    "$where/apps/tasks.py" "$where/apps/openapi.py" >doctest.log 2>&1 || { cat doctest.log; exit 1; }
if ! find "$where" -type f ! -name '*.pyc' | sort | cmp -s - "$work/installed-files"; then
    echo "error: files were written into the installed package:" >&2
    find "$where" -type f ! -name '*.pyc' | sort | diff "$work/installed-files" - >&2
    exit 1
fi
echo "the wheel works from $PWD: demo, index build, search, serve, doctests"
