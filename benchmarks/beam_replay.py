"""The Beam replay on the DirectRunner with 2 worker processes beside ``iotpipe replay``, on the
same archive in the same run: readings/s and store writes per 1,000 readings of each.

The archive has docs/scaling.md's shape (the ``per-second`` profile of profiles.py): devices at
one reading per second, each posting its last minute once a minute (one stream record of 60
readings), one archive object per minute of arrivals. Full size: 100 devices for 2 hours
(720,000 readings, 120 objects); ``--devices``/``--minutes`` choose another.

Each run replays the archive into a new SQLite store with both commands, each a fresh process
(``.venv-beam/bin/iotpipe``: Beam has an environment of its own), timed from start to exit. A
Beam replay of an empty time range, also timed, is the fixed cost of starting the pipeline and
its workers; the readings over (wall time minus that) and over the workers is the marginal rate
per worker that docs/deployment.md's estimates start from. Store writes: the single process's
come from its store's own counter (the same replay run in this process), Beam's from its
``store_writes`` counter. ``--repeat`` runs it all several times (the machine is shared: read
the ratios, and the spread).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.local import FileArchive, SqliteStore
from iotpipe.application import ProcessService, replay
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.ports import RawBatch, RawRecord
from iotpipe.simulator import Fleet
from results import ROOT, json_option, write

BEAM = Path(os.environ.get("IOTPIPE_BEAM_VENV", ROOT / ".venv-beam")) / "bin" / "iotpipe"
START = parse_instant("2025-08-31T00:00:00Z")
MS_PER_MINUTE = 60_000


def build_archive(root: Path, devices: int, minutes: int) -> int:
    """The archive: one object per minute, one record per device (its minute of readings)."""
    fleet = Fleet(devices, 1.0, seed=20)
    archive = FileArchive(root)
    total = 0
    for minute in range(minutes):
        begin = START + minute * MS_PER_MINUTE
        by_device: dict[str, list[dict[str, Any]]] = {}
        for reading in fleet.readings(begin, begin + MS_PER_MINUTE):
            by_device.setdefault(reading["device_id"], []).append(reading)
        arrived = begin + MS_PER_MINUTE + 2_000
        records = tuple(
            RawRecord(f"{minute}-{n}", orjson.dumps(items), arrived)
            for n, items in enumerate(by_device.values())
        )
        total += sum(len(items) for items in by_device.values())
        archive.write(RawBatch(f"shard-0_{minute:08d}", records), arrived)
    return total


def _command(store: Path, archive: Path, end: str, *beam: str) -> list[str]:
    span = ["--from", format_instant(START - MS_PER_HOUR), "--to", end]
    base = [str(BEAM), "replay", "--archive", str(archive), "--store", f"sqlite:{store}", *span]
    if beam:
        base += ["--runner", "direct", "--", *beam]
    return base


def _timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return seconds, done.stdout.strip()


def one_run(archive: Path, work: Path, end: str, workers: int) -> dict[str, Any]:
    """Both replays (and Beam's empty range) once, each into a new store."""
    for name in ("single.db", "beam.db", "empty.db"):
        (work / name).unlink(missing_ok=True)
    beam_flags = (f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing")
    single_s, single_out = _timed(_command(work / "single.db", archive, end))
    beam_s, beam_out = _timed(_command(work / "beam.db", archive, end, *beam_flags))
    empty_end = format_instant(START - MS_PER_HOUR + 1000)
    empty_s, _ = _timed(_command(work / "empty.db", archive, empty_end, *beam_flags))
    found = re.search(r"(\d+) worker processes\).* (\d+) store writes", beam_out)
    if not found:
        raise SystemExit(f"no counters in the Beam summary: {beam_out}")
    return {
        "single_s": single_s,
        "beam_s": beam_s,
        "beam_empty_s": empty_s,
        "beam_workers": int(found.group(1)),
        "beam_writes": int(found.group(2)),
        "single_summary": single_out,
        "beam_summary": beam_out,
    }


def single_process_writes(archive: Path, work: Path) -> int:
    """Store writes of the single-process replay (the same use case, run here)."""
    with SqliteStore(work / "counted.db") as store:
        service = ProcessService(store, SystemClock(), lateness=LatenessPolicy.backfill())
        assert replay(FileArchive(archive), service, 0, 2**62).ok
        return store.ops().writes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    json_option(parser)
    args = parser.parse_args()
    if not BEAM.exists():
        raise SystemExit(f"{BEAM} is missing: make beam-env builds the Beam environment")
    with tempfile.TemporaryDirectory(prefix="iotpipe-beam-bench-") as tmp:
        work = Path(tmp)
        readings = build_archive(work / "archive", args.devices, args.minutes)
        end = format_instant(START + (args.minutes + 60) * MS_PER_MINUTE)
        print(f"archive: {readings:,} readings, {args.devices} devices, {args.minutes} objects")
        runs = []
        for number in range(1, args.repeat + 1):
            run = one_run(work / "archive", work, end, args.workers)
            runs.append(run)
            print(
                f"run {number}: iotpipe replay {run['single_s']:.2f} s "
                f"({readings / run['single_s']:,.0f} readings/s); Beam, {run['beam_workers']} "
                f"worker processes {run['beam_s']:.2f} s ({readings / run['beam_s']:,.0f} "
                f"readings/s), of which start-up {run['beam_empty_s']:.2f} s (empty range)"
            )
        writes = single_process_writes(work / "archive", work)
    print(f"{runs[-1]['single_summary']}\n{runs[-1]['beam_summary']}")
    figures = summarise(runs, readings, writes, args.workers)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    write(args.json, figures)


def summarise(
    runs: list[dict[str, Any]], readings: int, writes: int, workers: int
) -> dict[str, Any]:
    """Medians of the runs, every run's times, and the writes per 1,000 readings."""
    single = statistics.median(r["single_s"] for r in runs)
    beam = statistics.median(r["beam_s"] for r in runs)
    empty = statistics.median(r["beam_empty_s"] for r in runs)
    marginal = max(beam - empty, 1e-9)
    return {
        "readings": readings,
        "runs": len(runs),
        "workers": workers,
        "worker_processes_seen": min(r["beam_workers"] for r in runs),
        "single_seconds": [round(r["single_s"], 3) for r in runs],
        "beam_seconds": [round(r["beam_s"], 3) for r in runs],
        "beam_startup_seconds": [round(r["beam_empty_s"], 3) for r in runs],
        "single_rate": readings / single,
        "beam_rate": readings / beam,
        "beam_marginal_rate_per_worker": readings / marginal / workers,
        "single_writes_per_1000": writes * 1000 / readings,
        "beam_writes_per_1000": statistics.median(r["beam_writes"] for r in runs) * 1000 / readings,
    }


if __name__ == "__main__":
    main()
