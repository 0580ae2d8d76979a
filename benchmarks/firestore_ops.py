"""Firestore document reads and writes per 1,000 readings, measured against the emulator.

The scenario is the AWS one (``--profile``, see profiles.py): a fleet of ``--devices`` sensors
(fleet: 1,000), one reading every ``--interval`` seconds each (fleet: 10 s; high-rate: 100
devices at 0.1 s), in ``--batch-minutes`` batches (1 minute), for ``--minutes`` of event time
(default 60, a whole hour). On GCP a batch is one Pub/Sub
message, delivered to one process invocation: ingest publishes one message per device per
request, so a device that posts its last minute of readings once a minute makes one message of
6 readings. Each message runs through the real processing use case into
:class:`~iotpipe.adapters.gcp.FirestoreStore` on the Firestore emulator, ``--workers`` messages
at a time (push subscriptions deliver concurrently). ``--batch-minutes 0`` sends every reading
as its own message (devices that post each reading as it is taken).

``--fleet-lanes`` (0, the GCP deployment's default: off) sets the store's fleet lanes. Prints,
per 1,000 readings: Pub/Sub messages, document reads and writes as Firestore bills them
(lookups of missing documents and empty queries count one read each), requests by kind and
conflicts. The emulator's speed means nothing; the counts do, and per 1,000 readings they do not
depend on the fleet's size (``--devices 100`` prints the same figures ten times faster).

Uses ``FIRESTORE_EMULATOR_HOST`` if set, else starts the Cloud SDK's emulator (Java) itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.gcp import FirestoreStore
from iotpipe.adapters.gcp.firestore import EMULATOR_COMMIT_BYTES
from iotpipe.adapters.memory import MemoryArchive
from iotpipe.application import ProcessService
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import parse_instant
from iotpipe.ports import RawBatch, RawRecord
from iotpipe.simulator import Fleet
from profiles import apply_profile, archived, profile_options
from results import json_option, write

START = "2025-08-31T10:00:00Z"
PROJECT = "iotpipe-benchmark"


@contextmanager
def firestore_emulator() -> Iterator[str]:
    """``host:port`` of a Firestore emulator: the one named by the environment, or a new one."""
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        yield os.environ["FIRESTORE_EMULATOR_HOST"]
        return
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise SystemExit("needs the Cloud SDK's Firestore emulator (or FIRESTORE_EMULATOR_HOST)")
    root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    launcher = Path(root) / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(launcher), "start", "--host=127.0.0.1", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the launcher starts a JVM: stop the whole group
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/")
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.read().strip() == b"Ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the Firestore emulator did not answer at {url}")


def messages(fleet: Fleet, start_ms: int, args: argparse.Namespace) -> Iterator[list[RawBatch]]:
    """Each batch period's messages: one per device (or per reading with ``--batch-minutes 0``),
    each a one-record batch as the process function receives it."""
    span = (args.batch_minutes or 1) * 60_000
    number = 0
    for first in range(start_ms, start_ms + args.minutes * 60_000, span):
        readings = list(fleet.readings(first, first + span))
        groups: list[list[dict[str, Any]]]
        if args.batch_minutes:
            by_device: dict[str, list[dict[str, Any]]] = {}
            for reading in readings:
                by_device.setdefault(reading["device_id"], []).append(reading)
            groups = list(by_device.values())
        else:
            groups = [[reading] for reading in readings]
        period = []
        for group in groups:
            number += 1
            arrived = parse_instant(group[-1]["timestamp"])
            record = RawRecord(str(number), orjson.dumps(group), arrived)
            period.append(RawBatch(str(number), (record,)))
        yield period


def run(args: argparse.Namespace, host: str) -> dict[str, Any]:
    """Process every message; returns the totals."""
    from google.cloud import firestore

    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    client = firestore.Client(project=PROJECT)
    store = FirestoreStore(
        client,
        prefix=f"b{time.time_ns()}_",
        fleet_lanes=args.fleet_lanes,
        commit_bytes=EMULATOR_COMMIT_BYTES,
    )
    start = parse_instant(START)
    archive = MemoryArchive()  # the Cloud Storage layout and format, to count objects and bytes
    service = ProcessService(
        store, ManualClock(start), archive=archive, lateness=LatenessPolicy.unbounded()
    )
    fleet = Fleet(devices=args.devices, interval_s=args.interval, seed=1)
    readings = windows = touched = sent = 0
    began = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        for period in messages(fleet, start, args):
            for report in pool.map(service.process, period):
                if report.failed_records:
                    raise SystemExit(f"message {report.batch_id} failed: {report.errors}")
                readings += report.accepted
                windows += report.windows_updated
                touched += report.windows_touched
                sent += 1
    return {
        "readings": readings,
        "windows": windows,
        "windows_touched": touched,
        "messages": sent,
        "ops": store.ops(),
        "archive": archived(archive),
        "seconds": time.perf_counter() - began,
    }


def per_thousand(totals: dict[str, Any]) -> dict[str, float]:
    """The figures per 1,000 readings."""
    ops, per = totals["ops"], 1000 / totals["readings"]
    return {
        "messages": totals["messages"] * per,
        "document_reads": ops.reads * per,
        "document_writes": ops.writes * per,
        "windows_touched": totals["windows_touched"] * per,
        "lookups": ops.extra.get("lookups", 0) * per,
        "gets": ops.extra.get("gets", 0) * per,
        "queries": ops.extra.get("queries", 0) * per,
        "conflicts": ops.extra.get("conflicts", 0) * per,
        "archive_objects": totals["archive"]["objects"] * per,
        "archive_bytes": totals["archive"]["bytes"] * per,
    }


def show(args: argparse.Namespace, totals: dict[str, Any]) -> None:
    """Print the totals per 1,000 readings."""
    ops, readings = totals["ops"], totals["readings"]
    per = 1000 / readings

    def line(label: str, value: float) -> None:
        print(f"  {label:<34} {value * per:10.1f}")

    batching = (
        f"{args.batch_minutes}-minute messages per device"
        if args.batch_minutes
        else "one message per reading"
    )
    print(
        f"{args.devices} devices x 1 reading / {args.interval:g} s, {batching}, "
        f"{args.minutes} minutes: {readings:,} readings, {totals['messages']:,} messages, "
        f"{totals['windows']:,} window writes ({totals['seconds']:.0f} s against the emulator), "
        f"fleet lanes: {args.fleet_lanes or 'off'}"
    )
    print("per 1,000 readings:")
    line("Pub/Sub messages (invocations)", totals["messages"])
    line("document reads", ops.reads)
    line("document writes", ops.writes)
    line("  floor: windows touched", totals["windows_touched"])
    line("lookups (BatchGetDocuments)", ops.extra.get("lookups", 0))
    line("registry gets", ops.extra.get("gets", 0))
    line("queries", ops.extra.get("queries", 0))
    line("write conflicts", ops.extra.get("conflicts", 0))
    line("archive objects (one per message)", totals["archive"]["objects"])
    line("archive bytes (gzip JSON lines)", totals["archive"]["bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    profile_options(parser)  # --batch-minutes 0: one message per reading
    parser.add_argument("--minutes", type=int, default=60, help="event time to simulate")
    parser.add_argument("--workers", type=int, default=8, help="messages processed at once")
    parser.add_argument(
        "--fleet-lanes",
        type=int,
        default=0,
        help="Firestore fleet lanes (0, the deployment's default: off; 8: the lanes on)",
    )
    json_option(parser)
    args = apply_profile(parser.parse_args())
    with firestore_emulator() as host:
        totals = run(args, host)
    show(args, totals)
    keys = ("profile", "devices", "interval", "batch_minutes", "fleet_lanes")
    scenario = {k: getattr(args, k) for k in keys}
    figures = {"readings": totals["readings"], "seconds": totals["seconds"]}
    write(args.json, {**scenario, **figures, "per_1000": per_thousand(totals)})


if __name__ == "__main__":
    main()
