"""Processing throughput of the in-memory pipeline beside a baseline measured in the same run.

Generates simulated readings as JSON lines (default 1,000,000 over 1,000 devices and 24 hours,
with locations, like the mission's example payload), then runs each phase in a fresh process
over the same file, alternating, ``--repeat`` times, and keeps each phase's best run:

- baseline: ``orjson.loads`` of each line plus a dict fold of count and sum per (device, hour);
- pipeline: the in-memory process path (decode, validate, lateness, dedupe, aggregate, store)
  in batches of ``--batch-size`` lines (default 10,000: the largest batch Lambda takes from
  Kinesis).

Prints readings/s and the ratio to the baseline, each phase's peak RSS, and store writes per
1,000 readings with the worst batch's window writes beside the distinct windows it touched.
These machines are noisy: read the ratio, not the absolute rates.

``--schema FILE`` runs both phases over readings of a declared telemetry schema (issue #19; e.g.
``benchmarks/schemas/six_metrics.toml``: six metrics under nested paths, epoch-ms times): the
simulator shapes the payloads by it, the baseline reads its device and time paths, and the
pipeline decodes with the decoder generated from it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from results import json_option, write

TARGET_RATIO = 0.35  # issue #9: at least 35% of the baseline's rate


def generate(
    path: Path, readings: int, devices: int, hours: int, schema: Path | None = None
) -> int:
    """Write the simulated fleet's readings as JSON lines; returns how many."""
    from iotpipe.domain.time import MS_PER_HOUR, parse_instant
    from iotpipe.simulator import Fleet

    interval_s = hours * 3600 / (readings / devices)
    if schema is None:  # as before declared schemas: the default payload, unchanged
        fleet = Fleet(devices=devices, interval_s=interval_s, seed=1)
    else:
        fleet = Fleet(devices, interval_s, 1, _load(schema))
    start = parse_instant("2025-08-31T00:00:00Z")
    count = 0
    with path.open("wb") as out:
        for line in fleet.payloads(start, start + hours * MS_PER_HOUR):
            out.write(line.encode() + b"\n")
            count += 1
    return count


def _load(schema: Path) -> Any:
    from iotpipe.adapters.schema_file import load_schema

    return load_schema(schema)


def baseline(path: Path, schema: Path | None = None) -> dict[str, float]:
    """orjson.loads + a dict fold of count and sum per (device, hour)."""
    if schema is not None:
        return _declared_baseline(path, _load(schema))
    folds: dict[tuple[str, str], list[float]] = {}
    started = time.perf_counter()
    n = 0
    with path.open("rb") as lines:
        for line in lines:
            d = orjson.loads(line)
            key = (d["device_id"], d["timestamp"][:13])
            acc = folds.get(key)
            if acc is None:
                folds[key] = [1, d.get("temperature") or 0.0]
            else:
                acc[0] += 1
                acc[1] += d.get("temperature") or 0.0
            n += 1
    elapsed = time.perf_counter() - started
    return {"readings": n, "seconds": elapsed, "windows": len(folds), "rss_mb": _peak_rss_mb()}


def _declared_baseline(path: Path, schema: Any) -> dict[str, float]:
    """The baseline over a declared schema's payloads: the device, the hour and the first
    metric read at their paths (``operator.itemgetter`` chains), the same fold."""
    from functools import reduce
    from operator import getitem

    def getter(dotted: str) -> Any:
        steps = dotted.split(".")
        return lambda d: reduce(getitem, steps, d)

    device, stamp = getter(schema.device_id), getter(schema.timestamp)
    metric = getter(schema.metrics[0].path)
    per_hour = 3_600_000 if schema.timestamp_format == "epoch_ms" else 3_600
    folds: dict[tuple[str, int], list[float]] = {}
    started = time.perf_counter()
    n = 0
    with path.open("rb") as lines:
        for line in lines:
            d = orjson.loads(line)
            key = (device(d), stamp(d) // per_hour)
            acc = folds.get(key)
            if acc is None:
                folds[key] = [1, metric(d) or 0.0]
            else:
                acc[0] += 1
                acc[1] += metric(d) or 0.0
            n += 1
    elapsed = time.perf_counter() - started
    return {"readings": n, "seconds": elapsed, "windows": len(folds), "rss_mb": _peak_rss_mb()}


def pipeline(path: Path, batch_size: int, schema: Path | None = None) -> dict[str, float]:
    """The in-memory process path over the file, batch by batch."""
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.memory import MemoryQuarantine, MemoryStore
    from iotpipe.application import Pipeline
    from iotpipe.domain import LatenessPolicy

    store = MemoryStore()
    declared = {} if schema is None else {"schema": _load(schema)}
    pipe = Pipeline(
        store=store,
        clock=SystemClock(),
        quarantine=MemoryQuarantine(),
        lateness=LatenessPolicy.backfill(),
        **declared,
    )
    batches = accepted = excess = 0
    started = time.perf_counter()
    with path.open("rb") as lines:
        for report in pipe.process_payloads(lines, batch_size=batch_size, source="bench"):
            batches += 1
            accepted += report.accepted
            excess = max(excess, report.windows_updated - report.windows_touched)
    elapsed = time.perf_counter() - started
    ops = store.ops()
    return {
        "readings": accepted,
        "seconds": elapsed,
        "windows": sum(1 for _ in pipe.query.every_window()),
        "batches": batches,
        "writes": ops.writes,
        "window_writes_beyond_windows": excess,
        "rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase(name: str, path: Path, batch_size: int, schema: Path | None) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", name, "--input", str(path)]
    command += ["--batch-size", str(batch_size)]
    command += [] if schema is None else ["--schema", str(schema)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ.copy())
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase; the best counts")
    parser.add_argument(
        "--schema", type=Path, help="readings of this telemetry schema (default: the default)"
    )
    parser.add_argument("--phase", choices=["baseline", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    json_option(parser)
    args = parser.parse_args()

    if args.phase:
        run = (
            baseline(args.input, args.schema)
            if args.phase == "baseline"
            else pipeline(args.input, args.batch_size, args.schema)
        )
        print(json.dumps(run))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "readings.jsonl"
        n = generate(path, args.readings, args.devices, args.hours, args.schema)
        print(
            f"{n:,} readings from {args.devices:,} devices over {args.hours} h "
            f"({path.stat().st_size / 1e6:.0f} MB of JSON lines), batches of {args.batch_size:,}, "
            f"best of {args.repeat}" + (f", schema {args.schema}" if args.schema else "")
        )
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "pipeline": []}
        for _ in range(args.repeat):
            for name, results in runs.items():
                results.append(_phase(name, path, args.batch_size, args.schema))
    base = min(runs["baseline"], key=lambda r: r["seconds"])
    pipe = min(runs["pipeline"], key=lambda r: r["seconds"])
    _report(base, pipe)
    write(args.json, {"readings": n, "baseline": base, "pipeline": pipe, "target": TARGET_RATIO})


def _report(base: dict[str, float], pipe: dict[str, float]) -> None:
    base_rate = base["readings"] / base["seconds"]
    pipe_rate = pipe["readings"] / pipe["seconds"]
    ratio = pipe_rate / base_rate
    per_k = pipe["writes"] * 1000 / pipe["readings"]
    print(f"\n{'':36} {'readings/s':>12} {'ratio':>6} {'peak RSS':>9}")
    for name, rate, r, rss in (
        ("baseline: orjson.loads + dict fold", base_rate, 1.0, base["rss_mb"]),
        ("iotpipe in-memory process path", pipe_rate, ratio, pipe["rss_mb"]),
    ):
        print(f"{name:36} {rate:>12,.0f} {r:>6.2f} {rss:>6.0f} MB")
    print(
        f"\nwindows {pipe['windows']:,.0f} (baseline {base['windows']:,.0f}), "
        f"batches {pipe['batches']:,.0f}; "
        f"store writes {pipe['writes']:,.0f} = {per_k:.1f} per 1,000 readings"
    )
    print(
        f"throughput >= {TARGET_RATIO:.0%} of baseline: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'} ({ratio:.1%})"
    )
    within = pipe["window_writes_beyond_windows"] <= 0
    print(
        "window writes per batch <= distinct windows in the batch: "
        f"{'met' if within else 'NOT met'}; never one write per reading: "
        f"{'met' if per_k < 1000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
