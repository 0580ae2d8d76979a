"""S3Archive and S3Quarantine against S3 on the moto server: layout, overwrites, ranges, errors."""

from __future__ import annotations

import gzip

import orjson
import pytest
from botocore.exceptions import ClientError

from iotpipe.adapters.aws import S3Archive, S3Quarantine
from iotpipe.adapters.memory import MemoryArchive
from iotpipe.application.codecs import archive as fmt
from iotpipe.domain import ArchiveUnavailable, Reason
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.ports import RawBatch, RawRecord, Rejection
from tests.aws.faults import Intercepted
from tests.aws_support import MotoServer

pytestmark = pytest.mark.integration

BUCKET = "iotpipe-archive"
T10 = parse_instant("2025-08-31T10:00:00Z")


def batch(batch_id: str, n: int = 3, arrived: int = T10 + 5) -> RawBatch:
    records = tuple(
        RawRecord(f"{batch_id}-{i}", orjson.dumps({"device_id": "d", "i": i}), arrived + i)
        for i in range(n)
    )
    return RawBatch(batch_id, records)


@pytest.fixture
def s3(moto: MotoServer):
    client = moto.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def keys(s3, prefix: str = "") -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_batches_are_gzip_json_lines_under_hive_partitions(s3) -> None:
    archive = S3Archive(BUCKET, s3)
    odd = RawBatch("shardId-000000000000-41-42", (RawRecord("41", b"\xff\x00", T10),))
    archive.write(odd, T10 + 59 * 60_000)
    key = "raw/dt=2025-08-31/hour=10/shardId-000000000000-41-42.jsonl.gz"
    assert keys(s3) == [key]
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    assert stored["ContentType"] == "application/gzip"
    body = stored["Body"].read()
    assert body == fmt.encode_batch(odd)
    [line] = gzip.decompress(body).splitlines()
    assert orjson.loads(line)["data_b64"] == "/wA="  # bytes that are not UTF-8, kept exactly
    assert list(archive.read(T10, T10 + MS_PER_HOUR)) == [odd]


def test_a_retried_batch_overwrites_its_own_object(s3) -> None:
    archive = S3Archive(BUCKET, s3, prefix="prod")
    archive.write(batch("b-1"), T10)
    archive.write(batch("b-1"), T10)
    archive.write(batch("b-2"), T10)
    assert keys(s3) == [
        "prod/raw/dt=2025-08-31/hour=10/b-1.jsonl.gz",
        "prod/raw/dt=2025-08-31/hour=10/b-2.jsonl.gz",
    ]
    assert [b.batch_id for b in archive.read(T10, T10 + MS_PER_HOUR)] == ["b-1", "b-2"]
    # Objects that are not batches (markers left by other tools) are passed over.
    s3.put_object(Bucket=BUCKET, Key="prod/raw/dt=2025-08-31/hour=10/_SUCCESS", Body=b"")
    assert [b.batch_id for b in archive.read(T10, T10 + MS_PER_HOUR)] == ["b-1", "b-2"]


def test_reading_a_range_pages_through_each_hour_like_the_memory_archive(s3) -> None:
    spy = Intercepted(s3)
    archive = S3Archive(BUCKET, spy, page_size=2)
    reference = MemoryArchive()
    for hour in range(-1, 5):  # 09:00 .. 14:00
        for n in range(5):
            b = batch(f"h{hour}-b{n}", n=2, arrived=T10 + hour * MS_PER_HOUR)
            archive.write(b, T10 + hour * MS_PER_HOUR + n)
            reference.write(b, T10 + hour * MS_PER_HOUR + n)
    got = list(archive.read(T10, T10 + 3 * MS_PER_HOUR))  # 10:00, 11:00 and 12:00
    assert got == list(reference.read(T10, T10 + 3 * MS_PER_HOUR))
    assert [b.batch_id for b in got] == [f"h{h}-b{n}" for h in range(3) for n in range(5)]
    listed = [kw for name, kw in spy.requests if name == "list_objects_v2"]
    assert len(listed) == 3 * 3  # 5 objects at 2 a page: 3 pages per hour
    # A range that starts inside an hour begins with the next whole hour, as everywhere.
    assert [b.batch_id for b in archive.read(T10 + 1, T10 + MS_PER_HOUR + 1)] == [
        f"h1-b{n}" for n in range(5)
    ]


def test_the_quarantine_keeps_rejections_under_rejected(s3) -> None:
    quarantine = S3Quarantine(BUCKET, s3)
    first = [Rejection("7", 0, Reason.MALFORMED_JSON, "not JSON", b"{oops")]
    quarantine.put("b-1", T10, first)
    quarantine.put("b-1", T10, first)  # a retry overwrites
    second = [Rejection("9", 2, Reason.TOO_LATE, "late", b'{"device_id": "d"}')]
    quarantine.put("b-2", T10 + MS_PER_HOUR, second)
    assert keys(s3) == [
        "rejected/dt=2025-08-31/hour=10/b-1.jsonl.gz",
        "rejected/dt=2025-08-31/hour=11/b-2.jsonl.gz",
    ]
    assert quarantine.rejections() == first + second


def test_every_s3_error_is_archive_unavailable(moto: MotoServer) -> None:
    client = moto.client("s3")  # no bucket was created
    archive = S3Archive("no-such-bucket", client)
    with pytest.raises(ArchiveUnavailable) as raised:
        archive.write(batch("b"), T10)
    assert isinstance(raised.value.__cause__, ClientError)
    assert "NoSuchBucket" in str(raised.value)
    with pytest.raises(ArchiveUnavailable):
        list(archive.read(T10, T10 + MS_PER_HOUR))
    with pytest.raises(ArchiveUnavailable):
        S3Quarantine("no-such-bucket", client).put("b", T10, [])
