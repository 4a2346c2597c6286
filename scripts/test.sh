#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Debian packages the tests use: a private D-Bus session for desktop notifications, and
# systemd-analyze to verify the unit files.
missing=()
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "test: installing Debian packages: ${missing[*]}"
    sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
.venv/bin/ruff check .
# The layout's import contracts ([tool.importlinter] in pyproject.toml).
.venv/bin/lint-imports --no-cache
# One pytest worker per core (pytest-xdist); each builds its own seeded practice once.
# CLIENTLINK_TEST_WORKERS overrides (0 runs in this process), as does a later `-n` in "$@".
exec .venv/bin/python -m pytest -n "${CLIENTLINK_TEST_WORKERS:-auto}" "$@"
