#!/usr/bin/env bash
# Creates .venv from a Python 3.10 interpreter, installs the package (editable, with the dev,
# ray, nir and docs extras) and makes Fashion-MNIST available. Called by `make setup`; safe to run
# again.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python310() {
    local candidate
    for candidate in "${PYTHON310:-}" python3.10; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root=$(pyenv root)
        for candidate in $(ls -d "$root"/versions/3.10*/bin/python3.10 2>/dev/null | sort -V -r); do
            if "$candidate" -c 'import venv' 2>/dev/null; then
                echo "$candidate"
                return 0
            fi
        done
    fi
    return 1
}

if [ ! -x .venv/bin/python ]; then
    if ! python=$(find_python310); then
        cat >&2 <<'MSG'
error: lava-retrieval needs Python 3.10 (Lava 0.10 supports no other version), and none was found.
Install one and run `make setup` again, for example:
  Debian/Ubuntu:  apt-get install python3.10 python3.10-venv   (or the deadsnakes PPA)
  pyenv:          pyenv install 3.10
  conda:          conda create -n py310 python=3.10, then PYTHON310=$(conda run -n py310 which python) make setup
Or point PYTHON310 at a 3.10 interpreter: PYTHON310=/path/to/python3.10 make setup
MSG
        exit 1
    fi
    echo "creating .venv with $python"
    "$python" -m venv .venv
fi

.venv/bin/python -m pip install --quiet --upgrade "pip>=23"
.venv/bin/python -m pip install --quiet --progress-bar off -e ".[dev,ray,nir,docs]"

# Fashion-MNIST: Debian's package where apt can be used, otherwise the download into the cache.
if [ -z "${LAVA_RETRIEVAL_DATA:-}" ] && [ ! -d /usr/share/datasets/fashion-mnist ] \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's dataset-fashion-mnist"
    if ! apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
            || echo "apt-get could not install dataset-fashion-mnist; falling back to the download"
    fi
fi

# Chromium for the web page's browser test (Playwright drives Debian's build: Playwright's own
# browser download is never used). Without it that one test is skipped.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium (for the browser test)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
            || echo "apt-get could not install chromium; the browser test will be skipped"
    fi
fi
.venv/bin/lava-retrieval data
