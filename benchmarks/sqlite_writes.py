"""Bytes the SQLite store writes per 1,000 readings (schema 2), beside what schema 1 rewrote.

The scenario (``--profile``, see profiles.py; default ``per-second``: 100 devices at one reading
a second, 1-minute batches, for a whole hour): each batch goes through the process use case into
an :class:`~iotpipe.adapters.local.SqliteStore` file, in this process. Printed, per 1,000
readings:

- **bytes written**: what this process passed to ``write()`` (``wchar`` of ``/proc/self/io``:
  the WAL's page frames at each commit, the checkpoints into the database file; Linux only),
  and the file's size at the end;
- the **baseline**, computed in the same run from the same window writes (a mirror of the
  store): the bytes of the row schema 1 rewrote on each write (the window record and its whole
  identity set), a lower bound of what it wrote (SQLite writes whole pages);
- the JSON bytes of the readings themselves, for scale.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.local import SqliteStore
from iotpipe.adapters.memory import MemoryArchive, MemoryStore
from iotpipe.adapters.window_store import Save
from iotpipe.application import Pipeline
from iotpipe.application.codecs.window import window_to_record
from iotpipe.domain import IotPipeError, LatenessPolicy
from iotpipe.domain.time import parse_instant
from iotpipe.ports import RawBatch, RawRecord
from iotpipe.simulator import Fleet
from profiles import apply_profile, profile_options
from results import json_option, write

START = "2025-08-31T10:00:00Z"


class Schema1Bytes(MemoryStore):
    """The in-memory store, adding up the row schema 1 rewrote on each window write."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def _save_all(self, windows: Sequence[Save]) -> list[IotPipeError | None]:
        outcomes = super()._save_all(windows)
        for save, outcome in zip(windows, outcomes, strict=True):
            if outcome is None:
                record = window_to_record(save.window)
                seen = record.pop("seen")
                self.bytes += len(orjson.dumps(record)) + len(seen)
        return outcomes


def wchar() -> int:
    """Bytes this process has passed to write() so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise SystemExit("no wchar in /proc/self/io")


def run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """Process the scenario into a new file and the mirror; the totals."""
    start = parse_instant(START)
    fleet = Fleet(devices=args.devices, interval_s=args.interval, seed=1)
    baseline = Schema1Bytes()
    span, end = args.batch_minutes * 60_000, start + args.minutes * 60_000
    readings = json_bytes = 0
    with SqliteStore(path) as store:
        pipes = [
            Pipeline(
                store=s,
                clock=ManualClock(start),
                archive=MemoryArchive(),
                lateness=LatenessPolicy.unbounded(),
            )
            for s in (store, baseline)
        ]
        began = time.perf_counter()
        written = 0
        for n, first in enumerate(range(start, end, span)):
            lines = [orjson.dumps(r) for r in fleet.readings(first, min(first + span, end))]
            batch = RawBatch(f"b{n}", tuple(RawRecord(str(i), d) for i, d in enumerate(lines)))
            mark = wchar()
            report = pipes[0].process(batch)
            written += wchar() - mark  # the store's writes only (the archive is in memory)
            pipes[1].process(batch)
            readings += report.accepted
            json_bytes += sum(len(d) for d in lines)
        seconds = time.perf_counter() - began
    return {
        "readings": readings,
        "bytes_written": written,
        "file_bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*")),
        "baseline_bytes": baseline.bytes,
        "json_bytes": json_bytes,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    profile_options(parser)
    parser.set_defaults(profile="per-second")
    parser.add_argument("--minutes", type=int, default=60, help="event time to simulate")
    json_option(parser)
    args = apply_profile(parser.parse_args())
    with tempfile.TemporaryDirectory(prefix="iotpipe-sqlite-") as tmp:
        totals = run(args, Path(tmp) / "store.db")
    per = 1000 / totals["readings"]
    figures = {k: v * per for k, v in totals.items() if "bytes" in k}
    print(
        f"{args.devices} devices x 1 reading / {args.interval:g} s, {args.batch_minutes}-min "
        f"batches, {args.minutes} min: {totals['readings']:,} readings ({totals['seconds']:.0f} s)"
    )
    print("per 1,000 readings:")
    print(f"  bytes written by the store (schema 2)  {figures['bytes_written']:12,.0f}")
    print(f"  the file's size at the end             {figures['file_bytes']:12,.0f}")
    print(f"  baseline: schema 1 rows rewritten       {figures['baseline_bytes']:12,.0f}")
    print(f"  the readings' JSON                     {figures['json_bytes']:12,.0f}")
    scenario = {k: getattr(args, k) for k in ("profile", "devices", "interval", "batch_minutes")}
    write(args.json, {**scenario, "readings": totals["readings"], "per_1000": figures})


if __name__ == "__main__":
    main()
