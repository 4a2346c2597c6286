"""Benchmark: ``clientlink --help`` from a cold process against a bare Python start.

Times the installed ``clientlink`` console script printing its help, against the floor of
the same interpreter starting and exiting (``python -c pass``), each the median of
``--runs`` runs, one after the other in the same run.

Run: .venv/bin/python bench/cli_help.py [--runs 9] [--quick]
Target (issue 14): clientlink --help within 0.15 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.15


def median_seconds(command: list[str], runs: int) -> float:
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here as JSON")
    args = parser.parse_args()
    if args.quick:
        args.runs = 3
    script = Path(sys.executable).with_name("clientlink")
    if not script.exists():
        raise SystemExit(f"{script} not found: install clientlink in this environment")
    ours = median_seconds([str(script), "--help"], args.runs)
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    verdict = "PASS" if ours <= TARGET else "MISS"
    print(
        f"clientlink --help: {ours:6.3f} s   bare python start {bare:6.3f} s   "
        f"ratio {ours / bare:5.1f}x   (target <= {TARGET} s)  {verdict}"
    )
    if args.json:
        figures = {"runs": args.runs, "clientlink_s": ours, "bare_s": bare}
        Path(args.json).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
