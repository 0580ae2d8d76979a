"""GcsArchive and GcsQuarantine on the storage emulator: the S3 layout, overwrite on redelivery."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from iotpipe.adapters.gcp import GcsArchive, GcsQuarantine
from iotpipe.domain import ArchiveUnavailable, Reason
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import RawBatch, RawRecord, Rejection
from tests.gcp_support import PROJECT, Server, unique

pytestmark = pytest.mark.integration

T0 = 1_756_634_400_000 + 125_000  # 2025-08-31T10:02:05Z


@pytest.fixture
def bucket(storage_server: Server) -> tuple[Any, str]:
    """A storage client on the emulator and a new, empty bucket."""
    from google.cloud import storage

    client = storage.Client(project=PROJECT)
    name = unique("archive")
    client.create_bucket(name)
    return client, name


def batch(message_id: str, *payloads: bytes) -> RawBatch:
    return RawBatch(message_id, tuple(RawRecord(message_id, p, T0) for p in payloads))


def names(client: Any, bucket: str) -> list[str]:
    return sorted(b.name for b in client.list_blobs(bucket))


def test_raw_batches_are_archived_under_the_s3_layout(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    archive = GcsArchive(name, client)
    archive.write(batch("1234567", b'[{"device_id":"d1"}]', b"\xff\xfe not utf-8"), T0)
    archive.write(batch("1234568", b"[]"), T0 + MS_PER_HOUR)
    assert names(client, name) == [
        "raw/dt=2025-08-31/hour=10/1234567.jsonl.gz",
        "raw/dt=2025-08-31/hour=11/1234568.jsonl.gz",
    ]
    blob = client.bucket(name).get_blob("raw/dt=2025-08-31/hour=10/1234567.jsonl.gz")
    assert blob.content_type == "application/gzip" and not blob.content_encoding
    lines = [orjson.loads(x) for x in gzip.decompress(blob.download_as_bytes()).splitlines()]
    assert [line["id"] for line in lines] == ["1234567", "1234567"]
    assert lines[0]["arrived"] == "2025-08-31T10:02:05Z" and "data_b64" in lines[1]
    read = list(archive.read(T0 - T0 % MS_PER_HOUR, T0 + 2 * MS_PER_HOUR))
    assert read == [
        batch("1234567", b'[{"device_id":"d1"}]', b"\xff\xfe not utf-8"),
        batch("1234568", b"[]"),
    ]


def test_a_redelivered_message_overwrites_its_own_object(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    archive = GcsArchive(name, client, prefix="pipeline-a")
    for _ in range(3):
        archive.write(batch("42", b"[1]"), T0)
    assert names(client, name) == ["pipeline-a/raw/dt=2025-08-31/hour=10/42.jsonl.gz"]
    assert list(archive.read(T0 - T0 % MS_PER_HOUR, T0 + MS_PER_HOUR)) == [batch("42", b"[1]")]


def test_rejections_are_quarantined_under_rejected(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    quarantine = GcsQuarantine(name, client)
    rejection = Rejection("77", 0, Reason.MALFORMED_JSON, "not JSON", b"{oops")
    quarantine.put("77", T0, [rejection])
    quarantine.put("77", T0, [rejection])  # the same message again: overwritten
    assert names(client, name) == ["rejected/dt=2025-08-31/hour=10/77.jsonl.gz"]
    assert quarantine.rejections() == [rejection]


def test_a_missing_bucket_is_an_archive_failure(storage_server: Server) -> None:
    from google.cloud import storage

    client = storage.Client(project=PROJECT)
    with pytest.raises(ArchiveUnavailable, match="gs://"):
        GcsArchive(unique("missing"), client, timeout_s=5).write(batch("1", b"[]"), T0)
    with pytest.raises(ArchiveUnavailable):
        GcsQuarantine(unique("missing"), client, timeout_s=5).rejections()


# --- stream files (written by a Pub/Sub Cloud Storage subscription; see tests/gcp/stream_files)


def test_a_stream_file_is_read_at_its_generation_and_a_deleted_one_is_none(
    bucket: tuple[Any, str],
) -> None:
    """gcp-storage-emulator serves the live object whatever generation is asked for (Cloud
    Storage answers 404 for a generation that was replaced in a bucket without versioning,
    which read_file also reads as "gone"): here, the generation a write made, and deletion."""
    from tests.gcp.stream_files import stream_name, write_file

    client, name = bucket
    archive = GcsArchive(name, client)
    file = stream_name(T0, "u-1")
    written = write_file(name, file, [b"[2]", b"[3]"])
    assert archive.read_file(file, written.generation) == b"[2]\n[3]\n"
    assert archive.read_file(file) == b"[2]\n[3]\n"
    written.delete()
    assert archive.read_file(file, written.generation) is None  # gone: nothing to process
    assert archive.read_file("stream/never/written.jsonl") is None


def test_replay_reads_both_layouts_into_a_fresh_store_exactly(
    bucket: tuple[Any, str], firestore_db: Any
) -> None:
    """Previous releases' per-message objects and the stream files of the same hours: a
    replay into an empty store holds exactly the oracle's windows (readings in both layouts,
    and twice in one, count once)."""
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.gcp import FirestoreStore
    from iotpipe.application import ProcessService, QueryService, replay
    from iotpipe.domain import LatenessPolicy
    from tests.gcp.deployment import T0 as H0
    from tests.gcp.deployment import fleet_lines
    from tests.gcp.stream_files import stream_name, write_file
    from tests.oracle import expected_windows

    client, name = bucket
    archive = GcsArchive(name, client)
    lines = fleet_lines(devices=4, hours=3)
    messages = [b"[" + line.encode() + b"]" for line in lines]
    third = len(messages) // 3
    for n, message in enumerate(messages[: 2 * third]):  # the old layout: one object each
        arrived = H0 + 3 * MS_PER_HOUR  # after every reading
        archive.write(RawBatch(f"m{n}", (RawRecord(f"m{n}", message, arrived),)), H0)
    # The new layout: the last two thirds, one third already in the old layout.
    write_file(name, stream_name(H0 + 3 * MS_PER_HOUR - 2000, "a"), messages[third:])
    write_file(name, stream_name(H0 + 3 * MS_PER_HOUR - 1000, "b"), messages[-20:])
    write_file(name, stream_name(H0 + 9 * MS_PER_HOUR, "outside"), [b"[]"])  # after the range
    store = FirestoreStore(firestore_db, prefix=unique("replay") + "_")
    processor = ProcessService(store, SystemClock(), lateness=LatenessPolicy.backfill())
    report = replay(archive, processor, H0, H0 + 3 * MS_PER_HOUR)
    assert report.ok and report.records == 2 * third + (len(messages) - third) + 20
    assert report.batches == 2 * third + 2  # an object each, a chunk per file (< 400 devices)
    expected = expected_windows(lines)
    stored = QueryService(store).every_window()  # the store's own prefix: this replay's alone
    assert {(w.device_id, w.hour_ms): w.stats for w in stored} == expected
