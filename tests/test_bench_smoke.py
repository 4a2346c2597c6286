"""The benchmarks keep working: each one's ``--quick`` run prints its figures.

Not a timing assertion (a loaded machine must not fail the suite); PASS or MISS are both
fine here, a crash or a missing figure is not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_quick(script: str, *extra: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_bulk_reauth_quick_prints_clientlink_and_bare_loop_times() -> None:
    # The --limits mode shares all but its last lines; one run keeps the suite cheap.
    out = run_quick("bulk_reauth.py")
    assert "clientlink jobs.start -> job.finished:" in out
    assert "bare asyncio+httpx loop:" in out
    assert "items done 50, failed 0" in out
    assert "ratio clientlink / bare:" in out


def test_manage_clients_quick_prints_paint_and_keystroke_times() -> None:
    out = run_quick("manage_clients.py")
    assert "first paint:" in out and "bare DataTable" in out
    assert "filter keystroke:" in out and "bare in-process filter" in out


def test_rpc_fairness_quick_prints_idle_and_flooded_p99() -> None:
    out = run_quick("rpc_fairness.py")
    assert "idle:" in out and "flooded:" in out
    assert "p99 flooded / idle:" in out
