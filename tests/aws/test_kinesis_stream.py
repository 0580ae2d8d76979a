"""KinesisStream against Kinesis on the moto server: limits, partial failures, retries, reports."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from iotpipe.adapters.aws import KinesisStream
from iotpipe.adapters.aws.kinesis import BILLING_UNIT, MAX_BYTES_PER_CALL, MAX_BYTES_PER_RECORD
from iotpipe.application.payloads import encode_items, is_packed, unpack
from iotpipe.domain.time import parse_instant
from iotpipe.ports import PublishResult, RetryPolicy, StreamMessage
from iotpipe.simulator import Fleet
from tests.aws.faults import Intercepted, client_error, fail_first
from tests.aws.streams import create_stream, read_stream
from tests.aws_support import MotoServer

pytestmark = pytest.mark.integration

STREAM = "iotpipe-readings"
RETRY = RetryPolicy(attempts=4, base_delay_s=0.05, max_delay_s=1.0)


def messages(count: int, size: int = 40, devices: int = 7) -> list[StreamMessage]:
    """Messages of ``size`` bytes that do not compress (so they are sent as they are)."""
    return [
        StreamMessage(
            f"device-{i % devices}", f"{i:08d}".encode() + random.Random(i).randbytes(size - 8)
        )
        for i in range(count)
    ]


def device_minutes(count: int) -> list[StreamMessage]:
    """Messages as ingest publishes them: a device's minute of readings, ~9 KB of JSON."""
    start = parse_instant("2025-08-31T10:00:00Z")
    by_device: dict[str, list[object]] = {}
    for reading in Fleet(count, 1.0, seed=3).readings(start, start + 60_000):
        by_device.setdefault(str(reading["device_id"]), []).append(reading)
    return [StreamMessage(key, encode_items(items)) for key, items in by_device.items()]


def stream_with(moto: MotoServer, shards: int = 2, **overrides: Any) -> Intercepted:
    """Create the stream; the real client to reach it, with ``overrides`` intercepted."""
    kinesis = moto.client("kinesis")
    create_stream(kinesis, STREAM, shards)
    return Intercepted(kinesis, **overrides)


def _sent_sizes(spy: Intercepted) -> list[tuple[int, int]]:
    calls = [kw["Records"] for name, kw in spy.requests if name == "put_records"]
    return [(len(c), sum(len(r["Data"]) + len(r["PartitionKey"]) for r in c)) for c in calls]


def test_everything_put_is_on_the_stream_with_its_key_and_arrival_time(moto: MotoServer) -> None:
    spy = stream_with(moto)
    stream = KinesisStream(STREAM, spy, retry=RETRY, sleep=pytest.fail)
    sent = messages(1_200)
    before = time.time()
    assert stream.publish(sent) == PublishResult()  # nothing failed
    after = time.time()
    assert [n for n, _ in _sent_sizes(spy)] == [500, 500, 200]
    records = read_stream(moto.client("kinesis"), STREAM)
    assert sorted((r["PartitionKey"], r["Data"]) for _, r in records) == sorted(
        (m.key, m.data) for m in sent
    )
    for _, record in records:
        arrived = record["ApproximateArrivalTimestamp"].timestamp()
        assert before - 1 <= arrived <= after + 1
    # One device's messages all land on one shard (the partition key is the device id).
    shards_of: dict[str, set[str]] = {}
    for shard, record in records:
        shards_of.setdefault(record["PartitionKey"], set()).add(shard)
    assert all(len(s) == 1 for s in shards_of.values())
    assert len(set().union(*shards_of.values())) == 2  # and the devices use both shards


def test_calls_stay_under_5_mib_and_records_over_1_mib_are_reported(moto: MotoServer) -> None:
    spy = stream_with(moto, shards=1)
    stream = KinesisStream(STREAM, spy, retry=RETRY, sleep=pytest.fail)
    big = messages(11, size=600 * 1024)
    [too_big] = messages(1, size=MAX_BYTES_PER_RECORD)  # + key: over the limit
    result = stream.publish([*big[:5], too_big, *big[5:]])
    assert result.failed == (5,)
    assert "1 MiB" in (result.error or "")
    sizes = _sent_sizes(spy)
    assert [n for n, _ in sizes] == [8, 3]
    assert all(total <= MAX_BYTES_PER_CALL for _, total in sizes)
    assert len(read_stream(moto.client("kinesis"), STREAM)) == 11


def test_records_over_1_kb_are_sent_packed_and_small_ones_as_they_are(moto: MotoServer) -> None:
    spy = stream_with(moto, shards=1)
    minutes, small = device_minutes(20), messages(5, size=200)
    assert all(len(m.data) > 8 * BILLING_UNIT for m in minutes)
    stream = KinesisStream(STREAM, spy, retry=RETRY, sleep=pytest.fail)
    assert stream.publish([*minutes, *small]) == PublishResult()
    stored = {r["SequenceNumber"]: r for _, r in read_stream(moto.client("kinesis"), STREAM)}
    datas = [r["Data"] for r in stored.values()]
    packed = [d for d in datas if is_packed(d)]
    assert len(packed) == len(minutes)  # the minutes packed, the small ones not
    assert all(len(d) + len("iot-sensor-000") <= BILLING_UNIT for d in packed)  # 1 KB billed
    assert sorted(map(unpack, datas)) == sorted(m.data for m in [*minutes, *small])


def test_compress_false_sends_every_record_as_it_is(moto: MotoServer) -> None:
    spy = stream_with(moto, shards=1)
    minutes = device_minutes(3)
    stream = KinesisStream(STREAM, spy, retry=RETRY, sleep=pytest.fail, compress=False)
    assert stream.publish(minutes) == PublishResult()
    datas = sorted(r["Data"] for _, r in read_stream(moto.client("kinesis"), STREAM))
    assert datas == sorted(m.data for m in minutes)


def test_the_1_mib_limit_counts_the_bytes_sent(moto: MotoServer) -> None:
    spy = stream_with(moto, shards=1)
    json_text = encode_items([{"n": i, "pad": "ab" * 20} for i in range(25_000)])
    assert len(json_text) > MAX_BYTES_PER_RECORD  # over the limit as JSON, far under packed
    result = KinesisStream(STREAM, spy, retry=RETRY, sleep=pytest.fail).publish(
        [StreamMessage("device-1", json_text)]
    )
    assert result == PublishResult()
    [(_, record)] = read_stream(moto.client("kinesis"), STREAM)
    assert unpack(record["Data"]) == json_text


def _fail_records(should_fail, times: int = 1):
    """An override marking each record ``should_fail`` picks as throttled the first ``times``
    times it is sent: it sends the others to the real stream and reports per record, as
    Kinesis does (failed records are not written)."""
    failures: Counter[bytes] = Counter()

    def put_records(real, *, StreamName, Records):  # noqa: N803 - boto3's names
        failing = {
            i for i, r in enumerate(Records) if should_fail(r) and failures[r["Data"]] < times
        }
        failures.update(Records[i]["Data"] for i in failing)
        passing = [r for i, r in enumerate(Records) if i not in failing]
        accepted = iter(real(StreamName=StreamName, Records=passing)["Records"] if passing else [])
        results = [
            {
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": "Rate exceeded for shard shardId-000000000000",
            }
            if i in failing
            else next(accepted)
            for i in range(len(Records))
        ]
        return {"FailedRecordCount": len(failing), "Records": results}

    return put_records


def test_records_that_failed_are_sent_again_after_a_jittered_backoff(moto: MotoServer) -> None:
    override = _fail_records(lambda r: r["PartitionKey"] in {"device-1", "device-4"})
    spy = stream_with(moto, put_records=override)
    sleeps: list[float] = []
    stream = KinesisStream(STREAM, spy, retry=RETRY, sleep=sleeps.append)
    sent = messages(700)
    result = stream.publish(sent)
    assert result.failed == () and result.error is None
    # First attempt: 500 + 200; the retry sends just the failed ones (2 devices of 7).
    retried = sum(1 for m in sent if m.key in {"device-1", "device-4"})
    assert [n for n, _ in _sent_sizes(spy)] == [500, 200, retried]
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= RETRY.base_delay_s * 2
    # Each message is on the stream exactly once: the failed ones were not written before.
    on_stream = sorted(r["Data"] for _, r in read_stream(moto.client("kinesis"), STREAM))
    assert on_stream == sorted(m.data for m in sent)


def test_what_still_fails_after_the_last_attempt_is_reported_never_dropped(
    moto: MotoServer,
) -> None:
    override = _fail_records(lambda r: r["PartitionKey"] == "device-3", times=99)
    spy = stream_with(moto, put_records=override)
    sleeps: list[float] = []
    stream = KinesisStream(STREAM, spy, retry=RETRY, sleep=sleeps.append)
    sent = messages(30)
    result = stream.publish(sent)
    assert result.failed == tuple(i for i, m in enumerate(sent) if m.key == "device-3")
    assert "ProvisionedThroughputExceededException" in (result.error or "")
    assert spy.calls["put_records"] == RETRY.attempts
    assert len(sleeps) == RETRY.attempts - 1
    caps = [min(RETRY.max_delay_s, RETRY.base_delay_s * 2**n) for n in range(1, RETRY.attempts)]
    assert all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))
    on_stream = sorted(r["Data"] for _, r in read_stream(moto.client("kinesis"), STREAM))
    assert on_stream == sorted(m.data for m in sent if m.key != "device-3")


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException", "PutRecords"),
        client_error("InternalFailure", "PutRecords", status=500),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    ],
    ids=["throttled", "5xx", "network"],
)
def test_a_whole_call_failing_transiently_is_retried(moto: MotoServer, error) -> None:
    spy = stream_with(moto, put_records=fail_first(2, error))
    sleeps: list[float] = []
    stream = KinesisStream(STREAM, spy, retry=RETRY, sleep=sleeps.append)
    sent = messages(10)
    assert stream.publish(sent).failed == ()
    assert spy.calls["put_records"] == 3 and len(sleeps) == 2
    assert len(read_stream(moto.client("kinesis"), STREAM)) == 10


def test_a_missing_stream_is_reported_at_once_without_retrying(moto: MotoServer) -> None:
    spy = Intercepted(moto.client("kinesis"))
    stream = KinesisStream("no-such-stream", spy, retry=RETRY, sleep=pytest.fail)
    result = stream.publish(messages(3))
    assert result.failed == (0, 1, 2)
    assert "ResourceNotFoundException" in (result.error or "")
    assert spy.calls["put_records"] == 1


def test_publishing_nothing_makes_no_call(moto: MotoServer) -> None:
    spy = Intercepted(moto.client("kinesis"))
    assert KinesisStream(STREAM, spy).publish([]).failed == ()
    assert spy.calls["put_records"] == 0
