"""The AWS process handler under DynamoDB throttling: time to answer, and what it reports.

One Kinesis batch (``--devices`` devices x ``--hours`` hours, one message per device and 5
readings, as ingest publishes) is processed against moto while a werkzeug front answers every
``PutItem`` of one device's windows with ``ProvisionedThroughputExceededException`` (below
botocore, so its retry mode runs; ``--refusals N`` lets each write through after N refusals,
-1 never). Two set-ups, measured in the same run:

- baseline: what the handler did before: boto3 clients with no configuration, so botocore's
  default retry mode, which was ``legacy`` until botocore changed it in mid-2025 (and still is
  in Lambda runtimes bundling an older boto3): up to 10 attempts and ~25 s of sleeping per
  throttled DynamoDB call; set here explicitly, since this machine's botocore defaults to
  ``standard``; and no deadline;
- configured: the handler as deployed: :data:`iotpipe.entrypoints.aws.clients.CLIENTS` (standard
  mode, 3 attempts, short timeouts) and a deadline from a Lambda context with ``--time-left``
  seconds left.

A handler still running when its time is up is killed by Lambda, which then retries (and
bisects) the whole batch: the target is an answer within the time left, naming the records to
retry. Figures: seconds to answer, records reported for retry, throttled requests botocore sent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Iterator
from typing import Any

import orjson

from results import json_option, use_test_helpers, write

STREAM, TABLE, BUCKET = "bench-readings", "bench-windows", "bench-archive"
HOT = "iot-sensor-002"


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def batch(server: Any, devices: int, hours: int) -> list[dict[str, Any]]:
    """The Lambda event records of the stream (fresh resources on the moto server)."""
    from tests.aws.streams import event_record, read_stream

    from iotpipe.adapters.aws import create_table
    from iotpipe.domain.time import MS_PER_HOUR, parse_instant
    from iotpipe.simulator import Fleet

    server.reset()
    kinesis = server.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    server.client("s3").create_bucket(Bucket=BUCKET)
    start = parse_instant("2025-08-31T10:00:00Z")
    lines = list(Fleet(devices, 300, seed=3).payloads(start, start + hours * MS_PER_HOUR))
    by_device: dict[str, list[str]] = {}
    for line in lines:
        by_device.setdefault(orjson.loads(line)["device_id"], []).append(line)
    for device, own in sorted(by_device.items()):
        for i in range(0, len(own), 5):
            data = b"[" + b",".join(x.encode() for x in own[i : i + 5]) + b"]"
            kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey=device)
    records = [event_record(shard, r) for shard, r in read_stream(kinesis, STREAM)]
    create_table(server.client("dynamodb"), TABLE)
    return records


def run_once(
    server: Any, configured: bool, args: argparse.Namespace, time_left: float
) -> dict[str, float | int | bool]:
    """One invocation under throttling: seconds, records to retry, throttled requests."""
    from tests.aws.throttling import LambdaContext, ThrottlingFront

    from iotpipe.entrypoints.aws import bootstrap, clients, process, settings

    records = batch(server, args.devices, args.hours)
    refused: dict[str, int] = {}

    def throttle(operation: str, body: dict[str, Any]) -> bool:
        item = body.get("Item", {})
        key = f"{item.get('PK', {}).get('S', '')} {item.get('SK', {}).get('S', '')}"
        if operation != "PutItem" or HOT not in key:
            return False
        refused[key] = refused.get(key, 0) + 1
        return args.refusals < 0 or refused[key] <= args.refusals

    front = ThrottlingFront(throttle)
    env = {
        "AWS_ENDPOINT_URL": front.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        settings.TABLE_NAME: TABLE,
        settings.BUCKET: BUCKET,
        settings.LATENESS_HORIZON_HOURS: "0",
    }
    real_client = clients.client
    try:
        with environment(env):
            clients.client.cache_clear()
            bootstrap.process_service.cache_clear()
            if not configured:  # the clients as they were (legacy retries), no deadline
                import boto3
                from botocore.config import Config

                legacy = Config(retries={"mode": "legacy"})
                # Where the composition root finds its clients (bootstrap imports `client`).
                bootstrap.client = lambda service: boto3.client(service, config=legacy)  # type: ignore[assignment]
            context = LambdaContext(time_left) if configured else None
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the handler's log lines
                answer = process.handler({"Records": records}, context)
            seconds = time.perf_counter() - started
    finally:
        bootstrap.client = real_client
        clients.client.cache_clear()
        bootstrap.process_service.cache_clear()
        front.stop()
    return {
        "seconds": seconds,
        "records": len(records),
        "retry": len(answer["batchItemFailures"]),
        "throttled": sum(front.throttled.values()),
        "in_time": seconds <= time_left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=6)
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--time-left", type=float, default=10.0)
    parser.add_argument("--refusals", type=int, default=-1, help="-1: refuse every attempt")
    json_option(parser)
    args = parser.parse_args()
    use_test_helpers()
    from tests.aws_support import shared_server

    server = shared_server()
    figures = {
        "baseline": run_once(server, False, args, args.time_left),
        "configured": run_once(server, True, args, args.time_left),
        # The deployed timeout (60 s): time for every window but the throttled ones.
        "configured_full": run_once(server, True, args, 60.0),
        "time_left": args.time_left,
        "devices": args.devices,
        "hours": args.hours,
        "refusals": args.refusals,
    }
    print(f"{'set-up':52} {'answer':>8} {'to retry':>9} {'throttled':>9} in time")
    for name, label in (
        ("baseline", "legacy retry mode, no deadline (before)"),
        ("configured", f"CLIENTS + deadline ({args.time_left:g} s left)"),
        ("configured_full", "CLIENTS + deadline (60 s left, the deployed timeout)"),
    ):
        r = figures[name]
        print(
            f"{label:52} {r['seconds']:>6.1f} s {r['retry']:>4}/{r['records']:<4} "
            f"{r['throttled']:>9} {'yes' if r['in_time'] else 'NO'}"
        )
    write(args.json, figures)


if __name__ == "__main__":
    main()
