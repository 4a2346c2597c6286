#!/usr/bin/env bash
# The demo: a throwaway practice on the local sandbox, with the daemon and the TUI.
# Extra arguments go to `clientlink demo` (try --auto-approve, --no-tui, --orgs N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/clientlink demo "$@"
