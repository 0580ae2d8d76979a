"""DynamoDB capacity per 1,000 readings through the AWS handlers against moto, billed as DynamoDB
bills it, beside the previous release's layout (format 1) billed for the very same writes.

The scenario (``--profile``, see profiles.py): ``--devices`` sensors, one reading every
``--interval`` seconds each, for ``--minutes`` of event time (default 60: a whole hour, since
format 1's write cost grows through the hour). Each Kinesis record is one device's minute of
readings (``--record minute``, devices posting their last minute once a minute) or one reading
(``--record reading``, devices posting each reading); Lambda batches hold ``--batch-seconds``
of arrivals (default: the profile's minutes). Each batch goes through the real process handler
(``iotpipe.entrypoints.aws.process.handler``, a real-shaped Kinesis event) into the table on a
moto server, then the table's new stream records through the real fold handler
(``iotpipe.entrypoints.aws.fleet.handler``, the event a tumbling window delivers).

Prints, per 1,000 readings: write and read capacity units of the process function's store and
of the fold's lanes, as DynamoDB bills them (the larger of the item before and after, rounded
up to 1 KB per write; 4 KB per read, halved when eventually consistent), requests and archive
objects; and the **baseline**: the same writes as format 1 billed them (each window written
whole, identity set included: its item size from ``dynamodb_items.window_item``; each read of a
window strongly consistent on its whole size), computed in the same run from the same windows.
Needs the ``dev`` extra (moto). Absolute speed against moto means nothing; the counts do.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import orjson
from moto.server import ThreadedMotoServer

from iotpipe.adapters.aws import create_table
from iotpipe.adapters.aws.dynamodb_items import item_size, window_item
from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryArchive, MemoryStore
from iotpipe.adapters.window_store import Save
from iotpipe.application import Pipeline
from iotpipe.domain import IotPipeError, LatenessPolicy
from iotpipe.domain.time import parse_instant
from iotpipe.ports import RawBatch, RawRecord
from iotpipe.simulator import Fleet
from profiles import apply_profile, archived, profile_options
from results import json_option, write

START = "2025-08-31T10:00:00Z"
TABLE, BUCKET, SHARD = "iotpipe-windows", "iotpipe-archive", "shardId-000000000000"


class Format1Bill(MemoryStore):
    """The in-memory store, billing each window write and read as format 1 would have (the
    whole window item, identity set included), on the same windows."""

    def __init__(self, shards: int) -> None:
        super().__init__()
        self.shards = shards
        self.write_units = 0
        self.read_half_units = 0

    def _load(self, keys, *, strong=False):  # type: ignore[no-untyped-def]
        found = super()._load(keys, strong=strong)
        for key in keys:  # format 1 read every window strongly consistent, on its whole size
            stored = found.get(key)
            units = 1 if stored is None else -(-self._size(stored[0], stored[1]) // 4096)
            self.read_half_units += 2 * units
        return found

    def _save_all(self, windows: Sequence[Save]) -> list[IotPipeError | None]:
        before = {s.window.key: self._windows.get(s.window.key) for s in windows}
        outcomes = super()._save_all(windows)
        for save, outcome in zip(windows, outcomes, strict=True):
            if outcome is None:
                old = before[save.window.key]
                version = 1 if old is None else old[1] + 1
                size = self._size(save.window, version)
                size = max(size, 0 if old is None else self._size(old[0], old[1]))
                self.write_units += -(-size // 1024) + (1 if old is None else 0)  # + index
        return outcomes

    def _register(self, device_id: str) -> None:
        if device_id not in self._registered:
            self.write_units += 1
            self.read_half_units += 1
        super()._register(device_id)

    def _size(self, window, version) -> int:  # type: ignore[no-untyped-def]
        return item_size(window_item(window, version, self.shards, None))


def batches(args: argparse.Namespace, start_ms: int) -> Iterator[list[tuple[bytes, int]]]:
    """Each batch's records as ``(data, arrival ms)``, in arrival order."""
    fleet = Fleet(devices=args.devices, interval_s=args.interval, seed=1)
    span = args.batch_seconds * 1000
    end = start_ms + args.minutes * 60_000
    for first in range(start_ms, end, span):
        readings = list(fleet.readings(first, min(first + span, end)))
        if args.record == "reading":
            yield [(orjson.dumps(r), parse_instant(r["timestamp"])) for r in readings]
            continue
        minutes: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in readings:
            at = parse_instant(r["timestamp"])
            minutes.setdefault((r["device_id"], at // 60_000), []).append(r)
        records = [
            (orjson.dumps(group), parse_instant(group[-1]["timestamp"]))
            for _, group in sorted(minutes.items(), key=lambda kv: kv[0][1])
        ]
        yield records


def kinesis_event(records: list[tuple[bytes, int]], first_seq: int) -> dict[str, Any]:
    """The event Lambda's Kinesis event source mapping delivers for these records."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "p",
                    "sequenceNumber": str(first_seq + i),
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": arrived / 1000,
                },
                "eventSource": "aws:kinesis",
                "eventID": f"{SHARD}:{first_seq + i}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/readings",
            }
            for i, (data, arrived) in enumerate(records)
        ]
    }


class StreamFeed:
    """The table stream's event source mapping, in miniature: each shard's new records as the
    fold handler receives them (B values in base64, the shard named by the tumbling window)."""

    def __init__(self, streams: Any, dynamodb: Any) -> None:
        self._streams = streams
        self._arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        self._iterators: dict[str, str] = {}

    def events(self) -> Iterator[dict[str, Any]]:
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = (
                self._iterators.get(shard_id)
                or self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while True:
                out = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = out["NextShardIterator"]
                self._iterators[shard_id] = iterator
                if not out["Records"]:
                    break
                yield {"Records": [_lambda_record(r) for r in out["Records"]], "shardId": shard_id}


def _lambda_record(record: dict[str, Any]) -> dict[str, Any]:
    def attr(value: dict[str, Any]) -> dict[str, Any]:
        (kind, inner), *_ = value.items()
        return {"B": base64.b64encode(inner).decode()} if kind == "B" else value

    body = {k: v for k, v in record["dynamodb"].items() if k != "ApproximateCreationDateTime"}
    for image in ("NewImage", "OldImage", "Keys"):
        if image in body:
            body[image] = {k: attr(v) for k, v in body[image].items()}
    return {**record, "dynamodb": body}


#: Minutes of event time over which the read units compare with format 1's.
WHOLE_HOUR = 60
#: Why a shorter run's read units do not compare with format 1's (printed with them).
PART_OF_HOUR = (
    "RCU compare with format 1 over a whole hour only: a shorter run spreads the one-off reads "
    "(start-up, each device's registry entry, each window's first read) over few readings, and "
    "format 1's reads are still small early in the hour (its windows grow through it)"
)


def moto_server() -> tuple[ThreadedMotoServer, str]:
    """A moto server on a free local port, and its endpoint."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def deploy(endpoint: str, shards: int) -> dict[str, Any]:
    """The table and bucket, and the environment Lambda would give the handlers."""
    environment = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "benchmark",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        "AWS_DEFAULT_REGION": "us-east-1",
        "IOTPIPE_TABLE_NAME": TABLE,
        "IOTPIPE_BUCKET": BUCKET,
        "IOTPIPE_FLEET_SHARDS": str(shards),
        "IOTPIPE_LATENESS_HORIZON_HOURS": "0",
    }
    os.environ.update(environment)
    clients = {s: boto3.client(s) for s in ("dynamodb", "dynamodbstreams", "s3")}
    create_table(clients["dynamodb"], TABLE)
    clients["s3"].create_bucket(Bucket=BUCKET)
    return clients


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Process every batch through the handlers; returns the totals."""
    server, endpoint = moto_server()
    try:
        clients = deploy(endpoint, args.fleet_shards)
        from iotpipe.entrypoints.aws import bootstrap, fleet, process

        start = parse_instant(START)
        baseline = Format1Bill(args.fleet_shards)
        mirror = Pipeline(
            store=baseline,
            clock=ManualClock(start),
            archive=MemoryArchive(),  # the S3 layout and format, to count objects and bytes
            lateness=LatenessPolicy.unbounded(),
        )
        feed = StreamFeed(clients["dynamodbstreams"], clients["dynamodb"])
        # Built as the first invocation builds it, and its start-up reads counted apart: on this
        # new table (no schema record yet) the schema check looks for devices in every registry
        # shard, once; a later start reads the record only (not metered by the store).
        startup = dict(bootstrap.process_service().store.ops().extra)
        readings = sequence = windows = 0
        began = time.perf_counter()
        for n, records in enumerate(batches(args, start)):
            out = process.handler(kinesis_event(records, sequence), None)
            if out["batchItemFailures"]:
                raise SystemExit(f"batch {n} left records to retry: {out}")
            sequence += len(records)
            report = mirror.process(
                RawBatch(
                    f"b{n}", tuple(RawRecord(str(i), d, a) for i, (d, a) in enumerate(records))
                )
            )
            readings += report.accepted
            windows += report.windows_updated
            for event in feed.events():
                fleet.handler(event, None)
        return {
            "readings": readings,
            "windows": windows,
            "ops": bootstrap.process_service().store.ops(),
            "startup_read_half_units": startup.get("read_half_units", 0),
            "fold": bootstrap.fleet_fold().ops(),
            "baseline_wcu": baseline.write_units,
            "baseline_rcu": baseline.read_half_units / 2,
            "archive": archived(mirror.archive),  # type: ignore[arg-type]
            "seconds": time.perf_counter() - began,
        }
    finally:
        server.stop()


def per_thousand(totals: dict[str, Any]) -> dict[str, float]:
    """The figures per 1,000 readings."""
    ops, fold = totals["ops"], totals["fold"]
    extra, folded = ops.extra, fold.extra
    per = 1000 / totals["readings"]
    store_wcu = extra.get("write_units", 0)
    fold_wcu = folded.get("write_units", 0)
    return {
        "wcu": (store_wcu + fold_wcu) * per,
        "store_wcu": store_wcu * per,
        "fold_wcu": fold_wcu * per,
        "index_wcu": extra.get("index_write_units", 0) * per,
        "rcu": (extra.get("read_half_units", 0) + folded.get("read_half_units", 0)) / 2 * per,
        "store_rcu": extra.get("read_half_units", 0) / 2 * per,
        "startup_rcu": totals["startup_read_half_units"] / 2 * per,
        "baseline_wcu": totals["baseline_wcu"] * per,
        "baseline_rcu": totals["baseline_rcu"] * per,
        "items_written": ops.writes * per,
        "items_read": ops.reads * per,
        "window_writes": totals["windows"] * per,
        "segment_puts": extra.get("segment_puts", 0) * per,
        "lane_puts": folded.get("lane_puts", 0) * per,
        "conflicts": extra.get("conflicts", 0) * per,
        "archive_objects": totals["archive"]["objects"] * per,
        "archive_bytes": totals["archive"]["bytes"] * per,
    }


def show(args: argparse.Namespace, totals: dict[str, Any]) -> None:
    """Print the totals per 1,000 readings."""
    p = per_thousand(totals)
    print(
        f"{args.devices} devices x 1 reading / {args.interval:g} s, one {args.record} per record, "
        f"{args.batch_seconds}-second batches, {args.minutes} minutes: {totals['readings']:,} "
        f"readings, {totals['windows']:,} window writes ({totals['seconds']:.0f} s against moto)"
    )
    print("per 1,000 readings:")
    for label, key in (
        ("WCU, process + fold (format 2)", "wcu"),
        ("  of which the process function's", "store_wcu"),
        ("  of which the device index", "index_wcu"),
        ("  of which the fleet lanes (fold)", "fold_wcu"),
        ("RCU (format 2)", "rcu"),
        ("  of which the first start-up", "startup_rcu"),
        ("baseline: WCU of format 1", "baseline_wcu"),
        ("baseline: RCU of format 1", "baseline_rcu"),
        ("window writes", "window_writes"),
        ("segments sealed", "segment_puts"),
        ("lane writes", "lane_puts"),
        ("conditional-write conflicts", "conflicts"),
        ("archive objects", "archive_objects"),
        ("archive bytes (gzip JSON lines)", "archive_bytes"),
    ):
        print(f"  {label:<34} {p[key]:10.1f}")
    if args.minutes < WHOLE_HOUR:
        print(f"note: {PART_OF_HOUR}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    profile_options(parser)
    parser.add_argument("--minutes", type=int, default=60, help="event time to simulate")
    parser.add_argument("--fleet-shards", type=int, default=8, help="as deploy/aws's default")
    parser.add_argument("--record", choices=("minute", "reading"), default="minute")
    parser.add_argument("--batch-seconds", type=int, help="default: --batch-minutes x 60")
    json_option(parser)
    args = apply_profile(parser.parse_args())
    args.batch_seconds = args.batch_seconds or args.batch_minutes * 60
    totals = run(args)
    show(args, totals)
    scenario = {
        k: getattr(args, k)
        for k in (
            *("profile", "devices", "interval", "batch_minutes", "batch_seconds", "record"),
            "minutes",
        )
    }
    figures = {"readings": totals["readings"], "seconds": totals["seconds"]}
    write(args.json, {**scenario, **figures, "per_1000": per_thousand(totals)})


if __name__ == "__main__":
    main()
