"""``iotpipe process --store sqlite:PATH`` on a large file: readings/s and the child's peak RSS.

Generates the simulated fleet of process_throughput.py (default 1,000,000 readings from 1,000
devices over 24 h, one reading every 86.4 s each) and a file a quarter as long (the same fleet
and rate over a quarter of the time), then runs the real command line in a fresh process on
each, into a new SQLite store, writing the aggregates to a file. The child's peak resident set
comes from ``wait4`` (its own, not the largest of all children). The baseline is
process_throughput.py's (``orjson.loads`` + a dict fold), run on the long file in its own
process in the same run.

Target (issue #9): peak RSS at most 300 MB, independent of the file's length (the long file's
figure within 25% of the short one's, for four times the readings).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from process_throughput import _phase, generate
from results import json_option, write

TARGET_RSS_MB = 300.0
FLAT_WITHIN = 1.25


def run_cli(path: Path, work: Path) -> dict[str, Any]:
    """Run ``iotpipe process`` on ``path`` into a new SQLite store; seconds and peak RSS."""
    store = work / f"{path.stem}.db"
    store.unlink(missing_ok=True)
    command = [
        str(Path(sys.executable).parent / "iotpipe"),
        "process",
        str(path),
        "--store",
        f"sqlite:{store}",
        "--output",
        str(work / f"{path.stem}.hourly.jsonl"),
    ]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    summary = child.stderr.read().decode().strip()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"iotpipe process failed ({code}): {summary}")
    return {"seconds": seconds, "rss_mb": _mb(usage), "summary": summary}


def _mb(usage: resource.struct_rusage) -> float:
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--hours", type=int, default=24, help="a multiple of 4")
    parser.add_argument("--repeat", type=int, default=1, help="runs per file; the best counts")
    json_option(parser)
    args = parser.parse_args()
    if args.hours % 4:
        parser.error("--hours must be a multiple of 4 (the short file is a quarter as long)")

    with tempfile.TemporaryDirectory(prefix="iotpipe-cli-") as tmp:
        work = Path(tmp)
        long_, short = work / "long.jsonl", work / "short.jsonl"
        n_long = generate(long_, args.readings, args.devices, args.hours)
        n_short = generate(short, args.readings // 4, args.devices, args.hours // 4)
        runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "long": [], "short": []}
        for _ in range(args.repeat):
            runs["baseline"].append(_phase("baseline", long_, 10_000, None))
            runs["long"].append(run_cli(long_, work))
            runs["short"].append(run_cli(short, work))
    best = {name: min(results, key=lambda r: r["seconds"]) for name, results in runs.items()}
    figures = {
        "readings": n_long,
        "short_readings": n_short,
        "devices": args.devices,
        "hours": args.hours,
        "baseline_rate": best["baseline"]["readings"] / best["baseline"]["seconds"],
        "cli_rate": n_long / best["long"]["seconds"],
        "short_cli_rate": n_short / best["short"]["seconds"],
        "rss_mb": max(r["rss_mb"] for r in runs["long"]),
        "short_rss_mb": max(r["rss_mb"] for r in runs["short"]),
        "summary": best["long"]["summary"],
        "target_rss_mb": TARGET_RSS_MB,
        "flat_within": FLAT_WITHIN,
    }
    show(figures)
    write(args.json, figures)


def show(f: dict[str, Any]) -> None:
    """Print the figures."""
    print(f"iotpipe process --store sqlite:PATH, {f['devices']:,} devices")
    print(f"{'':44} {'readings/s':>12} {'ratio':>6} {'peak RSS':>9}")
    print(f"{'baseline: orjson.loads + dict fold':44} {f['baseline_rate']:>12,.0f} {1:>6.2f}")
    for label, rate, rss in (
        (f"iotpipe process, {f['readings']:,} readings", f["cli_rate"], f["rss_mb"]),
        (f"iotpipe process, {f['short_readings']:,} readings", f["short_cli_rate"], None),
    ):
        shown = f"{f['short_rss_mb']:>6.0f} MB" if rss is None else f"{rss:>6.0f} MB"
        print(f"{label:44} {rate:>12,.0f} {rate / f['baseline_rate']:>6.2f} {shown}")
    print(f["summary"])
    verdict = "met" if rss_target_met(f) else "NOT met"
    print(
        f"peak RSS <= {f['target_rss_mb']:.0f} MB at both lengths and within "
        f"{f['flat_within'] - 1:.0%} of each other: {verdict}"
    )


def rss_target_met(f: dict[str, Any]) -> bool:
    """Both runs within the target, and the long one within ``flat_within`` of the short one."""
    most = max(f["rss_mb"], f["short_rss_mb"])
    return bool(most <= f["target_rss_mb"] and f["rss_mb"] <= f["short_rss_mb"] * f["flat_within"])


if __name__ == "__main__":
    main()
