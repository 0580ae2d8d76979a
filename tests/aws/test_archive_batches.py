"""The raw archive under Lambda's redelivery shapes: whole retries, partial retries, bisection.

A batch delivered again whole overwrites its own object; a partial retry (from the first failed
record) and a bisected half are new batches with new ids, so the archive holds some records
twice. Replaying that archive into an empty store must still give exactly the aggregates of the
distinct readings, with the repeated readings counted as duplicates: what the docs promise.
"""

from __future__ import annotations

import base64
import inspect
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from iotpipe.adapters.aws import DynamoStore, S3Archive, create_table, events
from iotpipe.adapters.clock import ManualClock
from iotpipe.application import ProcessService, replay
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from tests.aws.streams import event_record
from tests.aws_support import MotoServer
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration

T0 = parse_instant("2025-08-31T10:00:00Z")
SHARD = "shardId-000000000000"
BUCKET = "archive-batches"


def _records(count: int) -> list[dict[str, Any]]:
    """Lambda event records of ``count`` readings (one per record), sequence numbers 1..count."""
    out = []
    for i in range(count):
        reading = {"device_id": f"d{i % 3}", "timestamp": T0 + i * 1000, "temperature": i}
        reading["timestamp"] = datetime.fromtimestamp(reading["timestamp"] / 1000, UTC).isoformat()
        record = {
            "PartitionKey": reading["device_id"],
            "SequenceNumber": str(i + 1),
            "Data": orjson.dumps(reading),
            "ApproximateArrivalTimestamp": datetime.fromtimestamp(T0 / 1000 + i, UTC),
        }
        out.append(event_record(SHARD, record))
    return out


def _lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [base64.b64decode(r["kinesis"]["data"]) for r in records]


def test_redelivered_shapes_archive_records_again_and_replay_counts_them_once(
    moto: MotoServer,
) -> None:
    s3, dynamodb = moto.client("s3"), moto.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    create_table(dynamodb, "live")
    archive = S3Archive(BUCKET, s3)
    live = ProcessService(DynamoStore("live", dynamodb), ManualClock(T0), archive)
    records = _records(12)
    deliveries = [
        records,  # the first delivery ...
        records,  # ... again whole (a function error without bisection): the same object
        records[7:],  # a partial retry from the first failed record: a new object
        records[:6],  # the two halves of a bisected batch: two more
        records[6:],
    ]
    for delivered in deliveries:
        assert not live.process(
            events.batch_from_kinesis_event({"Records": delivered})
        ).failed_records
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="raw/")["Contents"]]
    ids = {events.batch_id(d) for d in deliveries}
    assert len(ids) == 4 and len(keys) == 4  # the whole retry overwrote; the others did not
    assert all(any(i in key for key in keys) for i in ids)

    create_table(dynamodb, "rebuilt")
    rebuilt = DynamoStore("rebuilt", dynamodb)
    processor = ProcessService(rebuilt, ManualClock(T0), lateness=LatenessPolicy.backfill())
    report = replay(archive, processor, T0 - MS_PER_HOUR, T0 + 2 * MS_PER_HOUR)
    archived = sum(len(d) for d in deliveries[1:])  # 12 + 5 + 6 + 6 records in 4 objects
    assert (report.received, report.accepted) == (archived, 12)
    assert report.duplicates == archived - 12  # what the repeated objects cost: reads, no writes
    expected = expected_windows(_lines(records))
    got = rebuilt.hourly("d0", T0 - MS_PER_HOUR, T0 + MS_PER_HOUR, limit=10).items
    assert {(w.device_id, w.hour_ms): w.stats for w in got} == {
        k: v for k, v in expected.items() if k[0] == "d0"
    }


def test_the_batch_id_documentation_says_when_it_changes() -> None:
    """The module used to promise an id "the same on every retry": hold the docs to the code."""
    text = inspect.getdoc(events) or ""
    assert "partial" in text and "bisect" in text
    assert "A retried batch has\nthe same id" not in (events.__doc__ or "")
