#!/usr/bin/env bash
# Prepares a fresh clone: Debian packages it needs, a virtual environment, clientlink installed
# editable with its test tools. Safe to run again; it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "setup: need root to run: $*" >&2; return 1; fi
}

if ! command -v "$PYTHON" >/dev/null; then
    echo "setup: $PYTHON not found; install Python 3.11 or newer" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: clientlink needs Python 3.11 or newer ($("$PYTHON" --version))" >&2
    exit 1
fi

# Debian ships venv/ensurepip separately from python3.
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    echo "setup: installing Debian's python3-venv"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi

# One set-up at a time: scripts/demo.sh and scripts/test.sh started together on a fresh clone
# would both build .venv. The second waits here, then finds it done.
exec 9>.venv.lock
if ! flock -n 9; then
    echo "setup: another set-up is preparing .venv; waiting for it"
    flock 9
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi

stamp=.venv/.clientlink-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing clientlink and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    echo "$want" > "$stamp"
fi
