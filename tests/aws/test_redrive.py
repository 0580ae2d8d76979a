"""``iotpipe redrive`` against moto: the S3 on-failure destination's invocation records (as
Lambda documents them: metadata plus the failed invocation's event) processed again into the
table, idempotently; what cannot be redriven is reported, never a crash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from iotpipe.adapters.aws import DynamoStore, create_table
from iotpipe.application.payloads import pack
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.entrypoints.cli import main
from iotpipe.simulator import Fleet
from tests.aws.streams import event_record
from tests.aws_support import REGION, MotoServer
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration

BUCKET, TABLE = "redrive-archive", "redrive-windows"
T0 = parse_instant("2025-08-31T10:00:00Z")
SHARD = "shardId-000000000003"
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/iotpipe-readings"
MAPPING = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
ARRIVED = T0 + 2 * MS_PER_HOUR  # on the stream after the readings were taken


def _event(lines: list[str], first_sequence: int, packed: bool = False) -> dict[str, Any]:
    """The Kinesis event the process function was invoked with: one reading per record,
    compressed as ingest sends records over 1 KB if ``packed``."""
    records = []
    for i, line in enumerate(lines):
        record = {
            "PartitionKey": orjson.loads(line)["device_id"],
            "SequenceNumber": str(first_sequence + i),
            "Data": pack(line.encode()) if packed else line.encode(),
            "ApproximateArrivalTimestamp": datetime.fromtimestamp(ARRIVED / 1000 + i, UTC),
        }
        records.append(event_record(SHARD, record, STREAM_ARN, REGION))
    return {"Records": records}


def _invocation_record(event: dict[str, Any], payload_as_text: bool) -> dict[str, Any]:
    """An S3 destination's object: the documented metadata, and the invocation's event."""
    records = event["Records"]
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:iotpipe-process",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 11,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": "2025-08-31T16:00:06.021Z",
        "KinesisBatchInfo": {
            "shardId": SHARD,
            "startSequenceNumber": records[0]["kinesis"]["sequenceNumber"],
            "endSequenceNumber": records[-1]["kinesis"]["sequenceNumber"],
            "approximateArrivalOfFirstRecord": "2025-08-31T10:00:00.000Z",
            "approximateArrivalOfLastRecord": "2025-08-31T10:05:00.000Z",
            "batchSize": len(records),
            "streamArn": STREAM_ARN,
        },
        "payload": orjson.dumps(event).decode() if payload_as_text else event,
    }


def _key(n: int) -> str:
    return f"aws/lambda/{MAPPING}/{SHARD}/2025/08/31/2025-08-31T16.00.0{n}-{uuid.uuid4()}"


@pytest.fixture
def destination(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two failed batches, a metadata-only record and a stray object in the bucket."""
    for name, value in {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    create_table(moto.client("dynamodb"), TABLE)
    lines = list(Fleet(3, 60, seed=4).payloads(T0, T0 + 2 * MS_PER_HOUR))
    half = len(lines) // 2
    batches = [_event(lines[:half], 1000), _event(lines[half:], 5000, packed=True)]
    keys = [_key(1), _key(2)]
    for key, event, as_text in zip(keys, batches, (True, False), strict=True):
        body = orjson.dumps(_invocation_record(event, as_text))
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    metadata_only = _invocation_record(batches[0], True)
    del metadata_only["payload"]  # what an SQS or SNS destination gets
    s3.put_object(Bucket=BUCKET, Key=_key(3), Body=orjson.dumps(metadata_only))
    s3.put_object(Bucket=BUCKET, Key=_key(4), Body=b"not json at all")
    s3.put_object(Bucket=BUCKET, Key="raw/dt=2025-08-31/hour=10/x.jsonl.gz", Body=b"ignored")
    return {"lines": lines, "keys": keys, "s3": s3, "dynamodb": moto.client("dynamodb")}


def _args(*extra: str) -> list[str]:
    return ["redrive", "--bucket", BUCKET, "--table", TABLE, "--fleet-shards", "3",
            "--lateness-horizon-hours", "0", *extra]  # fmt: skip


def _stored(dynamodb: Any, devices: set[str]) -> dict[tuple[str, int], Any]:
    store = DynamoStore(TABLE, dynamodb, fleet_shards=3)
    found = {}
    for device in devices:
        for w in store.hourly(device, T0 - MS_PER_HOUR, T0 + 3 * MS_PER_HOUR, limit=10).items:
            found[(w.device_id, w.hour_ms)] = w.stats
    return found


def test_redrive_applies_the_failed_batches_exactly_once_and_reports_the_rest(
    destination: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = expected_windows(destination["lines"])
    devices = {device for device, _ in expected}
    assert main(_args()) == 1  # two objects cannot be redriven: said, not hidden
    out, err = capsys.readouterr()
    done = [line.split("\t")[1] for line in out.splitlines() if line.startswith("done\t")]
    unreadable = [line for line in out.splitlines() if line.startswith("unreadable\t")]
    assert sorted(done) == sorted(destination["keys"])
    assert len(unreadable) == 2 and any("no payload" in line for line in unreadable)
    assert f"{len(destination['lines'])} accepted, 0 duplicates" in err
    assert _stored(destination["dynamodb"], devices) == expected

    assert main(_args("--delete")) == 1  # again: nothing changes, applied objects removed
    _, err = capsys.readouterr()
    assert f"0 accepted, {len(destination['lines'])} duplicates" in err
    assert _stored(destination["dynamodb"], devices) == expected
    left = destination["s3"].list_objects_v2(Bucket=BUCKET, Prefix="aws/lambda/")["Contents"]
    assert len(left) == 2 and not {o["Key"] for o in left} & set(destination["keys"])
    # The batches were archived as the function would have (raw/, named from the batch).
    raw = destination["s3"].list_objects_v2(Bucket=BUCKET, Prefix="raw/")["Contents"]
    assert sum(SHARD in o["Key"] for o in raw) == 2


def test_a_batch_the_store_still_refuses_is_kept_for_the_next_redrive(
    destination: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    destination["dynamodb"].delete_table(TableName=TABLE)
    create_table(destination["dynamodb"], TABLE)
    from iotpipe.adapters.aws.failures import S3FailureDestination
    from iotpipe.entrypoints.aws.redrive import redrive

    class Down:
        """A processor whose store is down: every record left unapplied."""

        def process(self, batch: Any) -> Any:
            from iotpipe.application import ProcessReport

            ids = tuple(r.record_id for r in batch.records)
            return ProcessReport(batch.batch_id, len(ids), 0, 0, 0, {}, 0, failed_records=ids)

    report = redrive(S3FailureDestination(BUCKET, destination["s3"]), Down(), delete=True)  # type: ignore[arg-type]
    assert sorted(report.unapplied) == sorted(destination["keys"]) and not report.done
    left = {o["Key"] for o in destination["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert set(destination["keys"]) <= left  # nothing deleted that is not applied
