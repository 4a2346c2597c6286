"""The benchmarks keep working: each one's ``--quick`` run prints its figures.

Not a timing assertion (a loaded machine must not fail the suite); PASS or MISS are both
fine here, a crash or a missing figure is not.
"""

from __future__ import annotations

import json
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


def test_bench_run_quick_prints_one_table_and_writes_the_same_as_json(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    result = subprocess.run(
        [str(BENCH / "run"), "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "load average before" in out
    header = next(line for line in out.splitlines() if line.startswith("measure"))
    assert header.split() == ["measure", "clientlink", "bare", "ratio", "target", "result"]
    data = json.loads(report.read_text())
    assert data["quick"] is True and len(data["load_before"]) == 3
    measures = [row["measure"] for row in data["rows"]]
    for expected in (
        "bulk re-auth, 50 clients",
        "Xero's limits on",
        "invitation emails",
        "filter keystroke p95",
        "daemon idle RSS",
        "start to ready",
        "clientlink --help",
        "RPC round trip, daemon.hello",
        "RPC round trip, clients.list",
        "RPC p99 while",
    ):
        assert any(expected in measure for measure in measures), (expected, measures)
    for row in data["rows"]:
        assert row["verdict"] in ("pass", "miss"), row
        # The table shows each row the JSON holds.
        assert row["measure"] in out and row["clientlink"] in out, row


def test_bench_run_refuses_an_unknown_benchmark_name() -> None:
    result = subprocess.run(
        [str(BENCH / "run"), "--only", "bulk-1k,nonesuch"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "no benchmark named nonesuch" in result.stderr
