"""Every benchmark in bench/ at the issue's sizes, as one table (``bench/run``).

Each benchmark runs as its own process (``python bench/<name>.py ... --json FILE``), one
after the other, so none shares memory, a loop or a core's caches with another; each
measures clientlink against its bare baseline in that same run. The table gives per
measure clientlink's figure, the bare baseline's, their ratio, the target and whether it
is met, with the machine's load average before and after; ``--json PATH`` writes the same
rows (and every benchmark's raw figures) as JSON.

Run: bench/run [--quick] [--repeat N] [--only NAME,...] [--json PATH]
  --quick   small sizes, a smoke run (tests/test_bench_smoke.py): the figures mean little
  --repeat  run each benchmark N times and take the median of each figure
  --only    a comma-separated subset of the benchmark names (``bench/run --list``)
A missed target is a finding, not a failure: the exit status is non-zero only when a
benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


@dataclass
class Row:
    """One line of the table."""

    measure: str
    clientlink: str
    bare: str
    ratio: float | None
    target: str
    verdict: str  # "pass", "miss", "holds" (no target of its own) or "error"
    figures: dict[str, Any]


Extract = Callable[[dict[str, Any]], list[Row]]


@dataclass
class Benchmark:
    name: str
    script: str
    full: list[str]
    quick: list[str]
    extract: Extract


def verdict(met: bool) -> str:
    return "pass" if met else "miss"


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def bulk(label: str) -> Extract:
    def extract(f: dict[str, Any]) -> list[Row]:
        ratio = f["clientlink_s"] / f["bare_s"]
        ok = f["failed"] == 0 and f["done"] == f["clients"]
        return [
            Row(
                f"{label}, {f['clients']:,} clients, limits off",
                seconds(f["clientlink_s"]),
                seconds(f["bare_s"]),
                ratio,
                "≤ 1.15x",
                verdict(ok and ratio <= 1.15),
                f,
            )
        ]

    return extract


def bulk_limits(f: dict[str, Any]) -> list[Row]:
    ratio = f["clientlink_s"] / f["bound_s"]
    ok = f["failed"] == 0 and f["done"] == f["clients"] and f["served_429"] == 0
    return [
        Row(
            f"bulk re-authorisation, {f['clients']:,}, Xero's limits on ({f['served_429']} x 429)",
            seconds(f["clientlink_s"]),
            f"bound {seconds(f['bound_s'])}",
            ratio,
            "0 x 429, ≤ 1.10x bound",
            verdict(ok and ratio <= 1.10),
            f,
        )
    ]


def invites(f: dict[str, Any]) -> list[Row]:
    ratio = f["clientlink_per_s"] / f["bare_per_s"]
    return [
        Row(
            f"{f['emails']:,} invitation emails (rate)",
            f"{f['clientlink_per_s']:.0f}/s",
            f"{f['bare_per_s']:.0f}/s",
            ratio,
            "≥ 0.8x",
            verdict(ratio >= 0.8),
            f,
        )
    ]


def keystroke(f: dict[str, Any]) -> list[Row]:
    ours, bare = p95(f["keystrokes_s"]), p95(f["bare_keystrokes_s"])
    return [
        Row(
            f"filter keystroke p95 ({len(f['keystrokes_s'])} keys), {f['clients']:,} clients",
            seconds(ours),
            f"{seconds(bare)} (in-process)",
            ours / bare,
            "p95 < 50 ms",
            verdict(ours < 0.050),
            f,
        ),
        Row(
            f"Manage Clients first paint, {f['clients']:,} clients",
            seconds(f["paint_s"]),
            f"{seconds(f['bare_paint_s'])} (all rows)",
            f["paint_s"] / f["bare_paint_s"],
            "< 1 s",
            verdict(f["paint_s"] < 1.0),
            f,
        ),
    ]


def idle(rss_target: float, ready_target: float) -> Extract:
    def extract(f: dict[str, Any]) -> list[Row]:
        n = f["grants"]
        return [
            Row(
                f"daemon idle RSS, {n:,} watched clients",
                f"{f['rss_mb']:.1f} MB",
                f"{f['bare_rss_mb']:.1f} MB (asyncio loop)",
                f["rss_mb"] / f["bare_rss_mb"],
                f"≤ {rss_target:.0f} MB",
                verdict(f["rss_mb"] <= rss_target),
                f,
            ),
            Row(
                f"daemon idle CPU, {n:,} watched clients",
                f"{f['cpu_share'] * 100:.2f} %",
                f"{f['bare_cpu_share'] * 100:.2f} %",
                None,
                "< 1 % of a core",
                verdict(f["cpu_share"] < 0.01),
                f,
            ),
            Row(
                f"start to ready, {n:,} clients",
                seconds(f["ready_s"]),
                f"{seconds(f['bare_start_s'])} (python + sqlite3)",
                f["ready_s"] / f["bare_start_s"],
                f"≤ {seconds(ready_target)}",
                verdict(f["ready_s"] <= ready_target),
                f,
            ),
        ]

    return extract


def cli_help(f: dict[str, Any]) -> list[Row]:
    return [
        Row(
            "clientlink --help",
            seconds(f["clientlink_s"]),
            f"{seconds(f['bare_s'])} (python -c pass)",
            f["clientlink_s"] / f["bare_s"],
            "≤ 150 ms",
            verdict(f["clientlink_s"] <= 0.150),
            f,
        )
    ]


def roundtrip(f: dict[str, Any]) -> list[Row]:
    rows = []
    for key, label in (("hello", "daemon.hello"), ("page", "clients.list page of 50")):
        ratio = f[f"{key}_s"] / f[f"bare_{key}_s"]
        rows.append(
            Row(
                f"RPC round trip, {label}",
                f"{f[f'{key}_s'] * 1e6:.0f} µs",
                f"{f[f'bare_{key}_s'] * 1e6:.0f} µs",
                ratio,
                "holds (≤ 1.5x)",
                verdict(ratio <= 1.5),
                f,
            )
        )
    return rows


def fairness(f: dict[str, Any]) -> list[Row]:
    ratio = f["flooded_p99_s"] / f["idle_p99_s"]
    return [
        Row(
            "RPC p99 while 3 clients flood the socket",
            seconds(f["flooded_p99_s"]),
            f"{seconds(f['idle_p99_s'])} (idle)",
            ratio,
            "< 2x",
            verdict(ratio < 2.0),
            f,
        )
    ]


BENCHMARKS = [
    Benchmark(
        "bulk-1k", "bulk_reauth.py", ["--clients", "1000"], ["--quick"], bulk("bulk re-auth")
    ),
    Benchmark(
        "bulk-10k",
        "bulk_reauth.py",
        ["--clients", "10000"],
        ["--clients", "120"],
        bulk("bulk re-auth"),
    ),
    Benchmark(
        "bulk-limits-1k",
        "bulk_reauth.py",
        ["--clients", "1000", "--limits"],
        ["--quick", "--limits"],
        bulk_limits,
    ),
    Benchmark("invites", "invites_email.py", ["--emails", "5000"], ["--quick"], invites),
    Benchmark(
        "filter",
        "manage_clients.py",
        ["--clients", "10000", "--keystrokes", "20"],
        ["--quick", "--keystrokes", "3"],
        keystroke,
    ),
    Benchmark(
        "idle-10k",
        "watcher_idle.py",
        ["--grants", "10000", "--seconds", "10"],
        ["--quick"],
        idle(60, 0.4),
    ),
    Benchmark(
        "idle-100k",
        "watcher_idle.py",
        ["--grants", "100000", "--seconds", "10"],
        ["--grants", "500", "--seconds", "2"],
        idle(100, 1.0),
    ),
    Benchmark("help", "cli_help.py", [], ["--quick"], cli_help),
    Benchmark("rpc", "rpc_roundtrip.py", [], ["--quick"], roundtrip),
    Benchmark("fairness", "rpc_fairness.py", [], ["--quick"], fairness),
]


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over the runs; lists of samples joined; the rest as the first."""
    merged: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(first, bool) or not isinstance(first, (int, float, list)):
            merged[key] = first
        elif isinstance(first, list):
            merged[key] = [sample for value in values for sample in value]
        elif all(isinstance(value, int) for value in values):
            merged[key] = statistics.median_low(values)
        else:
            merged[key] = statistics.median(values)
    if len(runs) > 1:
        merged["runs"] = runs
    return merged


def run_one(bench: Benchmark, quick: bool, folder: Path, log: Path) -> dict[str, Any]:
    """The benchmark's figures; raises RuntimeError with its output's tail if it failed."""
    out = folder / f"{bench.name}.json"
    command = [sys.executable, str(BENCH / bench.script), *(bench.quick if quick else bench.full)]
    with log.open("a", encoding="utf-8") as sink:
        sink.write(f"\n$ {' '.join(command)}\n")
        sink.flush()
        done = subprocess.run(
            [*command, "--json", str(out)], stdout=sink, stderr=subprocess.STDOUT, cwd=BENCH.parent
        )
    if done.returncode != 0 or not out.exists():
        tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
        raise RuntimeError(f"{bench.script} exited with {done.returncode}:\n{tail}")
    return json.loads(out.read_text(encoding="utf-8"))


def table(rows: list[Row]) -> str:
    header = ("measure", "clientlink", "bare", "ratio", "target", "result")
    cells = [
        (
            r.measure,
            r.clientlink,
            r.bare,
            "—" if r.ratio is None else f"{r.ratio:.2f}x",
            r.target,
            r.verdict.upper(),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
        for line in [header, *cells]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def load_text(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the median counts")
    parser.add_argument("--only", help="comma-separated benchmark names (see --list)")
    parser.add_argument("--list", action="store_true", help="name the benchmarks and stop")
    parser.add_argument("--json", metavar="PATH", help="also write the table here as JSON")
    args = parser.parse_args(argv)
    if args.list:
        for bench in BENCHMARKS:
            print(f"{bench.name:15} {bench.script} {' '.join(bench.full)}")
        return 0
    if args.repeat < 1:
        parser.error("--repeat takes a number of runs, 1 or more")
    chosen = BENCHMARKS
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(names) - {bench.name for bench in BENCHMARKS})
        if unknown:
            parser.error(f"no benchmark named {', '.join(unknown)} (see --list)")
        chosen = [bench for bench in BENCHMARKS if bench.name in names]

    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[Row] = []
    errors = 0
    with tempfile.TemporaryDirectory(prefix="cl-suite-", dir="/tmp") as name:
        folder = Path(name)
        log = Path(args.json).with_suffix(".log") if args.json else folder / "bench.log"
        log.write_text("", encoding="utf-8")
        for bench in chosen:
            print(f"running {bench.name} ...", flush=True)
            try:
                figures = combine(
                    [run_one(bench, args.quick, folder, log) for _ in range(args.repeat)]
                )
                rows += bench.extract(figures)
            except (RuntimeError, KeyError, ValueError, ZeroDivisionError) as error:
                errors += 1
                print(f"  {bench.name} did not run: {error}", file=sys.stderr)
                rows.append(Row(bench.name, "—", "—", None, "—", "error", {"error": str(error)}))
    load_after = os.getloadavg()
    elapsed = time.perf_counter() - started

    mode = "quick sizes" if args.quick else "full sizes"
    repeat = f"median of {args.repeat} runs" if args.repeat > 1 else "one run each"
    print(
        f"\nclientlink benchmarks ({mode}, {repeat}) on {platform.node()}, "
        f"{os.cpu_count()} cores, {elapsed / 60:.1f} min"
    )
    print(f"load average before {load_text(load_before)}, after {load_text(load_after)}\n")
    print(table(rows))
    if args.json:
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "repeat": args.repeat,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": load_after,
            "seconds": elapsed,
            "rows": [asdict(row) for row in rows],
        }
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
