"""Throttling ends as partial-batch retries, not timeouts: the process handler under DynamoDB
throttling injected below botocore (tests/aws/throttling.py), with a Lambda context that has
10 s left.

The handler must answer before those 10 s are up (Lambda would otherwise kill it, and retry and
bisect the whole batch), naming in ``batchItemFailures`` exactly the records it did not apply;
delivering again from the lowest of them, as Lambda does, must converge to the exact aggregates.
"""

from __future__ import annotations

import base64
import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from iotpipe.adapters.aws import create_table
from iotpipe.adapters.aws import dynamodb_items as items
from iotpipe.application.codecs import heads
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.entrypoints.aws import bootstrap, clients, process, settings
from iotpipe.simulator import Fleet
from tests.aws.streams import event_record, read_stream
from tests.aws.throttling import LambdaContext, ThrottlingFront
from tests.aws_support import REGION, MotoServer
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration

STREAM, TABLE, BUCKET = "throttled-readings", "throttled-windows", "throttled-archive"
T0 = parse_instant("2025-08-31T10:00:00Z")
HOT = "iot-sensor-002"  # every write of this device's windows is throttled
TIME_LEFT_S = 10.0


def _hot_put(operation: str, body: dict[str, Any]) -> bool:
    item = body.get("Item", {})
    keys = (item.get("PK", {}).get("S", ""), item.get("SK", {}).get("S", ""))
    return operation == "PutItem" and any(HOT in key for key in keys)  # heads: SK = device


@pytest.fixture
def front(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThrottlingFront]:
    """The handlers' resources on moto, the handlers' clients sent through the throttling front."""
    moto.client("kinesis").create_stream(StreamName=STREAM, ShardCount=1)
    create_table(moto.client("dynamodb"), TABLE)
    moto.client("s3").create_bucket(Bucket=BUCKET)
    gate = ThrottlingFront(_hot_put)
    for name, value in {
        "AWS_ENDPOINT_URL": gate.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        settings.TABLE_NAME: TABLE,
        settings.BUCKET: BUCKET,
        settings.LATENESS_HORIZON_HOURS: "0",
        settings.FLEET_SHARDS: "3",
    }.items():
        monkeypatch.setenv(name, value)
    _forget()
    yield gate
    _forget()
    gate.stop()


def _forget() -> None:
    for cached in (
        clients.client,
        bootstrap.ingest_api,
        bootstrap.query_api,
        bootstrap.process_service,
    ):
        cached.cache_clear()


def _batch(moto: MotoServer) -> tuple[list[dict[str, Any]], list[str]]:
    """A stream of 6 devices x 4 hours, one message per device and 5 readings (as ingest
    publishes), read back as a Lambda batch."""
    lines = list(Fleet(6, 300, seed=3).payloads(T0, T0 + 4 * MS_PER_HOUR))
    by_device: dict[str, list[str]] = {}
    for line in lines:
        by_device.setdefault(orjson.loads(line)["device_id"], []).append(line)
    kinesis = moto.client("kinesis")
    for device, own in sorted(by_device.items()):
        for i in range(0, len(own), 5):
            data = b"[" + b",".join(x.encode() for x in own[i : i + 5]) + b"]"
            kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey=device)
    events = [event_record(shard, r, region=REGION) for shard, r in read_stream(kinesis, STREAM)]
    return events, lines


def _windows(record: dict[str, Any]) -> set[tuple[str, int]]:
    items = orjson.loads(base64.b64decode(record["kinesis"]["data"]))
    return {(i["device_id"], parse_instant(i["timestamp"]) // MS_PER_HOUR) for i in items}


def _stored(moto: MotoServer) -> dict[tuple[str, int], int]:
    found = moto.client("dynamodb").scan(TableName=TABLE)["Items"]
    heads_ = (i for i in found if i["PK"]["S"].startswith(items.HEAD_PREFIX))
    windows = (
        heads.decode_head(i["SK"]["S"], int(i["H"]["N"]), items.binary(i["w"])).window
        for i in heads_
    )
    return {(w.device_id, w.hour_ms // MS_PER_HOUR): w.stats.count for w in windows}


def test_throttled_writes_end_as_batch_item_failures_in_time_and_redelivery_converges(
    moto: MotoServer, front: ThrottlingFront
) -> None:
    batch, lines = _batch(moto)
    assert len(batch) > 40

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(process.handler, {"Records": batch}, LambdaContext(TIME_LEFT_S))
        try:
            response = call.result(timeout=TIME_LEFT_S)
        except concurrent.futures.TimeoutError:
            front.enabled = False  # let the stuck invocation finish, then fail
            pytest.fail(f"the handler was still running when its {TIME_LEFT_S} s ran out")
    took = time.monotonic() - started
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    print(
        f"answered in {took:.2f} s: {len(failed)} of {len(batch)} records to retry, "
        f"throttled: {front.throttled}"
    )

    # botocore's retry mode ran: every throttled call was attempted 3 times (CLIENTS).
    attempts = clients.CLIENTS["dynamodb"].attempts
    assert front.throttled["PutItem"] >= attempts
    assert front.throttled["PutItem"] % attempts == 0, front.throttled
    # Exactly the records with a reading in a window that is not stored are to be retried.
    stored = _stored(moto)
    unapplied = {r["kinesis"]["sequenceNumber"] for r in batch if _windows(r) - stored.keys()}
    assert failed == unapplied, (sorted(failed, key=int), sorted(unapplied, key=int))
    hot = {r["kinesis"]["sequenceNumber"] for r in batch if any(d == HOT for d, _ in _windows(r))}
    assert hot <= failed  # a throttled window is never reported applied
    assert failed and took < TIME_LEFT_S

    # Lambda delivers again from the lowest failed sequence number; the throttling is over.
    front.enabled = False
    pending = batch
    for _ in range(5):
        if not failed:
            break
        first = min(int(s) for s in failed)
        pending = [r for r in pending if int(r["kinesis"]["sequenceNumber"]) >= first]
        response = process.handler({"Records": pending}, LambdaContext(60))
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert not failed
    expected = expected_windows(lines)
    assert _stored(moto) == {(d, h // MS_PER_HOUR): s.count for (d, h), s in expected.items()}
