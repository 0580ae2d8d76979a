"""Lambda Kinesis events into raw batches: from what the stream really returns, end to end."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from iotpipe.adapters.aws import (
    DynamoStore,
    KinesisStream,
    NotAKinesisEvent,
    S3Archive,
    S3Quarantine,
    batch_from_kinesis_event,
    batch_id,
    record_from_kinesis,
)
from iotpipe.adapters.clock import ManualClock
from iotpipe.application import Pipeline
from iotpipe.application.codecs import archive as fmt
from iotpipe.domain import LatenessPolicy, Stats, parse_reading
from iotpipe.domain.time import to_ms
from iotpipe.ports import RawRecord, StreamMessage
from tests.aws.streams import create_stream, lambda_event, read_stream
from tests.aws_support import MotoServer, fresh_table
from tests.strategies import BASE_MS

pytestmark = pytest.mark.integration

STREAM = "iotpipe-readings"
BUCKET = "iotpipe-archive"


def _event_record(sequence: str, data: bytes, arrived: object, shard: str = "shardId-000000000000"):
    return {
        "eventID": f"{shard}:{sequence}",
        "eventSource": "aws:kinesis",
        "kinesis": {
            "sequenceNumber": sequence,
            "partitionKey": "d1",
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": arrived,
        },
    }


def test_records_from_get_records_round_trip_through_a_lambda_event(moto: MotoServer) -> None:
    kinesis = moto.client("kinesis")
    arn = create_stream(kinesis, STREAM, shards=1)
    payloads = [orjson.dumps({"n": i}) for i in range(25)] + [b"\xff\xfe not utf-8"]
    KinesisStream(STREAM, kinesis).publish([StreamMessage("d1", p) for p in payloads])
    [(shard, _), *_] = got = read_stream(kinesis, STREAM)
    records = [r for _, r in got]
    batch = batch_from_kinesis_event(lambda_event(shard, records, arn))
    assert [r.data for r in batch.records] == payloads
    assert [r.record_id for r in batch.records] == [r["SequenceNumber"] for r in records]
    assert [r.arrived_ms for r in batch.records] == [
        to_ms(r["ApproximateArrivalTimestamp"]) for r in records
    ]
    first, last = records[0]["SequenceNumber"], records[-1]["SequenceNumber"]
    assert batch.batch_id == f"{shard}-{first}-{last}"
    assert int(first) < int(last)  # sequence numbers compare as integers, never as text


def test_arrival_times_are_exact_milliseconds() -> None:
    record = record_from_kinesis(_event_record("1", b"{}", 1_756_634_400.129))
    assert record == RawRecord("1", b"{}", 1_756_634_400_129)
    assert record_from_kinesis(_event_record("2", b"", 1_756_634_400)).arrived_ms == (
        1_756_634_400_000
    )
    # Finer than a millisecond is cut, as event timestamps are (to_ms truncates too).
    assert record_from_kinesis(_event_record("3", b"", 1_756_634_400.1299)).arrived_ms == (
        1_756_634_400_129
    )
    when = datetime(2025, 8, 31, 10, 0, 0, 129_000, tzinfo=UTC)
    assert record_from_kinesis(_event_record("4", b"", when.timestamp())).arrived_ms == to_ms(when)


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": []},
        {"Records": [{"eventID": "shardId-0:1"}]},
        {"Records": [{**_event_record("1", b"x", 1.0), "kinesis": {"sequenceNumber": "1"}}]},
        {"Records": [_event_record("1", b"x", "soon")]},
        {"Records": [_event_record("1", b"x", 1.0), _event_record("2", b"y", 1.0, "shardId-1")]},
    ],
    ids=["no-records", "empty", "no-kinesis", "no-data", "bad-time", "two-shards"],
)
def test_what_is_not_a_kinesis_event_is_refused(event) -> None:
    with pytest.raises(NotAKinesisEvent):
        batch_from_kinesis_event(event)


def test_the_batch_id_comes_from_the_shard_and_the_first_and_last_sequence_numbers() -> None:
    records = [_event_record(s, b"{}", 1.5, "shardId-000000000007") for s in ("41", "42", "99")]
    assert batch_id(records) == "shardId-000000000007-41-99"
    assert batch_from_kinesis_event({"Records": records}).batch_id == batch_id(records)


def test_a_delivered_event_processed_twice_counts_once_end_to_end(moto: MotoServer) -> None:
    """Ingest -> Kinesis -> a Lambda event -> process (DynamoDB, S3), then the same event again."""
    kinesis, s3 = moto.client("kinesis"), moto.client("s3")
    arn = create_stream(kinesis, STREAM, shards=1)
    s3.create_bucket(Bucket=BUCKET)
    store = DynamoStore(fresh_table(moto), moto.client("dynamodb"))
    pipeline = Pipeline(
        store=store,
        clock=ManualClock(BASE_MS),
        stream=KinesisStream(STREAM, kinesis),
        archive=S3Archive(BUCKET, s3),
        quarantine=S3Quarantine(BUCKET, s3),
        lateness=LatenessPolicy.unbounded(),
    )
    items = [
        {"device_id": f"d{i % 3}", "timestamp": f"2025-08-31T10:{i:02d}:00Z", "temperature": i}
        for i in range(30)
    ]
    conflicting = {**items[0], "temperature": 99}  # a resend with other values
    invalid = {"device_id": "d1", "timestamp": "soon", "temperature": 1}
    ingested = pipeline.ingest([*items, items[4], conflicting, invalid])
    assert (ingested.accepted, len(ingested.rejected), ingested.unpublished) == (32, 1, ())
    [(shard, _), *_] = got = read_stream(kinesis, STREAM)
    event = lambda_event(shard, [r for _, r in got], arn)

    first = pipeline.process(batch_from_kinesis_event(event))
    assert (first.accepted, first.duplicates, first.conflicts) == (30, 1, 1)
    assert first.failed_records == ()
    writes = store.ops().writes
    again = pipeline.process(batch_from_kinesis_event(event))  # Lambda retried the batch
    assert (again.accepted, again.duplicates, again.windows_updated) == (0, 31, 0)
    assert store.ops().writes == writes

    stored = {w.key: w.stats for w in pipeline.query.every_window()}
    expected: dict[tuple[str, int], list] = {}
    for item in items:
        r = parse_reading(item)
        expected.setdefault((r.device_id, r.hour_ms), []).append(r)
    assert stored == {k: Stats.of(v) for k, v in expected.items()}
    # The retried batch overwrote its own archive and quarantine objects.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert [k.split("/")[0] for k in keys] == ["raw", "rejected"]
    assert all(shard in k and k.endswith(fmt.SUFFIX) for k in keys)
    [rejection] = S3Quarantine(BUCKET, s3).rejections()
    assert rejection.reason.value == "conflicting_duplicate"
    assert orjson.loads(rejection.payload)["temperature"] == 99
