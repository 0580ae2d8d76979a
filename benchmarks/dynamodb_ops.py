"""DynamoDB store operations and billed capacity per 1,000 readings, measured against moto.

The scenario (``--profile``, see profiles.py): a fleet of ``--devices`` sensors (fleet: 1,000),
one reading every ``--interval`` seconds each (fleet: 10 s; high-rate: 100 devices at 0.1 s),
processed in batches of ``--batch-minutes`` of arrivals (1 minute: what a Kinesis event source
mapping with a one-minute batching window hands one Lambda invocation), for ``--minutes`` of
event time (default 60: a whole hour, since a window's item, and so its write cost, grows
through its hour).

Each batch runs through the real processing use case (decode, validate, dedupe, aggregate) into
:class:`~iotpipe.adapters.aws.DynamoStore` on a moto server in this process. Prints, per 1,000
readings: items read and written, requests by kind, and read and write capacity units as
DynamoDB bills them (computed from item sizes by the store; moto's own figures ignore sizes).
Needs the ``dev`` extra (moto). Absolute speed against moto means nothing; the counts do. The
defaults take ~7 minutes (moto answers ~200 requests a second); per 1,000 readings the figures
do not depend on the fleet's size, so ``--devices 100`` prints the same ones in about a minute.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
from moto.server import ThreadedMotoServer

from iotpipe.adapters.aws import DynamoStore, create_table
from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryArchive
from iotpipe.application import Pipeline
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import parse_instant
from iotpipe.ports import RawBatch, RawRecord
from iotpipe.simulator import Fleet
from profiles import apply_profile, archived, profile_options
from results import json_option, write

START = "2025-08-31T10:00:00Z"


def batches(fleet: Fleet, start_ms: int, minutes: int, batch_minutes: int) -> Iterator[RawBatch]:
    """The fleet's readings, one record each, in batches of ``batch_minutes`` of arrivals."""
    span = batch_minutes * 60_000
    for n, first in enumerate(range(start_ms, start_ms + minutes * 60_000, span)):
        records = tuple(
            RawRecord(f"{n}-{i}", orjson.dumps(reading), parse_instant(reading["timestamp"]))
            for i, reading in enumerate(fleet.readings(first, first + span))
        )
        yield RawBatch(f"batch-{n}", records)


def moto_dynamodb() -> tuple[ThreadedMotoServer, Any]:
    """A moto server on a free local port, and a DynamoDB client pointed at it."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="benchmark",
        aws_secret_access_key="benchmark",
    )
    return server, client


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Process every batch; returns the totals."""
    server, client = moto_dynamodb()
    try:
        create_table(client, "iotpipe-windows")
        store = DynamoStore("iotpipe-windows", client, fleet_shards=args.fleet_shards)
        start = parse_instant(START)
        archive = MemoryArchive()  # the S3 layout and format, to count objects and bytes
        pipeline = Pipeline(
            store=store,
            clock=ManualClock(start),
            archive=archive,
            lateness=LatenessPolicy.unbounded(),
        )
        fleet = Fleet(devices=args.devices, interval_s=args.interval, seed=1)
        readings = windows = touched = 0
        began = time.perf_counter()
        for batch in batches(fleet, start, args.minutes, args.batch_minutes):
            report = pipeline.process(batch)
            if report.failed_records:
                raise SystemExit(f"batch {batch.batch_id} failed: {report.errors}")
            readings += report.accepted
            windows += report.windows_updated
            touched += report.windows_touched
        return {
            "readings": readings,
            "windows": windows,
            "windows_touched": touched,
            "ops": store.ops(),
            "archive": archived(archive),
            "seconds": time.perf_counter() - began,
        }
    finally:
        server.stop()


def per_thousand(totals: dict[str, Any]) -> dict[str, float]:
    """The figures per 1,000 readings."""
    ops, extra = totals["ops"], totals["ops"].extra
    per = 1000 / totals["readings"]
    return {
        "items_read": ops.reads * per,
        "items_written": ops.writes * per,
        "windows_touched": totals["windows_touched"] * per,
        "batch_gets": extra.get("batch_gets", 0) * per,
        "puts": extra.get("puts", 0) * per,
        "gets": extra.get("gets", 0) * per,
        "rcu": extra.get("read_half_units", 0) / 2 * per,
        "wcu": extra.get("write_units", 0) * per,
        "index_wcu": extra.get("index_write_units", 0) * per,
        "conflicts": extra.get("conflicts", 0) * per,
        "archive_objects": totals["archive"]["objects"] * per,
        "archive_bytes": totals["archive"]["bytes"] * per,
    }


def show(args: argparse.Namespace, totals: dict[str, Any]) -> None:
    """Print the totals per 1,000 readings."""
    ops, readings = totals["ops"], totals["readings"]
    extra = ops.extra
    per = 1000 / readings

    def line(label: str, value: float) -> None:
        print(f"  {label:<34} {value * per:10.1f}")

    print(
        f"{args.devices} devices x 1 reading / {args.interval:g} s, "
        f"{args.batch_minutes}-minute batches, {args.minutes} minutes: "
        f"{readings:,} readings, {totals['windows']:,} window writes "
        f"({totals['seconds']:.0f} s against moto)"
    )
    print("per 1,000 readings:")
    line("items read", ops.reads)
    line("items written", ops.writes)
    line("  floor: windows touched", totals["windows_touched"])
    line("BatchGetItem requests", extra.get("batch_gets", 0))
    line("PutItem requests", extra.get("puts", 0))
    line("GetItem requests (registry)", extra.get("gets", 0))
    line("read capacity units (RCU)", extra.get("read_half_units", 0) / 2)
    line("write capacity units (WCU)", extra.get("write_units", 0))
    line("  of which fleet index WCU", extra.get("index_write_units", 0))
    line("conditional-write conflicts", extra.get("conflicts", 0))
    line("archive objects (one per batch)", totals["archive"]["objects"])
    line("archive bytes (gzip JSON lines)", totals["archive"]["bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    profile_options(parser)
    parser.add_argument("--minutes", type=int, default=60, help="event time to simulate")
    parser.add_argument("--fleet-shards", type=int, default=16, help="as deploy/aws's default")
    json_option(parser)
    args = apply_profile(parser.parse_args())
    totals = run(args)
    show(args, totals)
    scenario = {k: getattr(args, k) for k in ("profile", "devices", "interval", "batch_minutes")}
    figures = {"readings": totals["readings"], "seconds": totals["seconds"]}
    write(args.json, {**scenario, **figures, "per_1000": per_thousand(totals)})


if __name__ == "__main__":
    main()
