"""Compressed Pub/Sub messages on the emulators: ingest publishes messages over 1 KB as base64
text of their zlib bytes (``IOTPIPE_STREAM_COMPRESSION``, default ``zlib``), and every reader
reads them exactly beside plain ones:

- the messages path: the ingest and process functions served by functions-framework, the
  messages pulled from the Pub/Sub emulator and pushed to process (the archive object holds
  the JSON); a corrupt packed message is quarantined as ``corrupt_record`` and acknowledged;
- the files path: a stream file of packed, plain and corrupt packed lines in
  gcp-storage-emulator, announced to the process function served by functions-framework in its
  own process: the store is the oracle's, the corrupt lines alone are quarantined;
- replay of a packed stream-file archive in Cloud Storage into a fresh Firestore store.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from iotpipe.adapters.gcp.firestore import FirestoreStore
from iotpipe.application.codecs.archive import decode_batch, decode_rejections
from iotpipe.application.payloads import is_packed_text, pack, pack_text, unpack
from iotpipe.domain import Reason
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.entrypoints.gcp import settings
from iotpipe.simulator import Faults
from tests.gcp.deployment import T0, Deployment, acknowledge, bodies, fleet_lines, pull
from tests.gcp.stream_files import announce, stream_name, write_file
from tests.gcp.test_end_to_end import wait_for
from tests.gcp.test_functions import (  # noqa: F401 - the fixtures, shared
    Functions,
    assert_exact,
    deployed,
    functions,
    source,
)
from tests.gcp.test_stream_files_end_to_end import (  # noqa: F401 - the fixture, shared
    FilesStack,
    _done,
    _logged,
    stack,
)
from tests.gcp_support import PROJECT, Server, unique
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration

HOURS = 2


def _pull_all(deployment: Deployment) -> list[Any]:
    """Every message on the deployment's subscription (left unacknowledged)."""
    found: list[Any] = []
    for _ in range(20):
        got = pull(deployment.subscription, wait_s=1.5)
        if not got:
            break
        found += got
    return found


def _bucket(deployment: Deployment) -> Any:
    from google.cloud import storage

    return storage.Client(project=PROJECT).bucket(deployment.bucket)


def _rejections(bucket: Any) -> list[Any]:
    return [
        r
        for blob in bucket.list_blobs(prefix="rejected/")
        for r in decode_rejections(blob.download_as_bytes())
    ]


def test_ingest_publishes_packed_messages_that_process_reads_exactly(
    functions: Functions,  # noqa: F811 - the shared fixture
) -> None:
    lines = fleet_lines(faults=Faults(duplicates=0.2, disorder=0.2))
    small = lines[:1]  # a request of one reading: one message under 1 KB
    for body in [*bodies(lines), *bodies(small)]:
        response = functions.post(body)
        assert response.status_code == 202, response.data
    received = _pull_all(functions.deployment)
    data = [item.message.data for item in received]
    packed = [d for d in data if is_packed_text(d)]
    plain = [d for d in data if not is_packed_text(d)]
    # Messages over 1 KB go packed (text: no newline), the one-reading one plain.
    assert packed and all(len(unpack(d)) > 1000 and b"\n" not in d for d in packed)
    assert plain and all(len(d) <= 1000 and d.startswith(b"[") for d in plain)
    assert sum(len(orjson.loads(unpack(d))) for d in data) == len(lines) + 1
    for item in received:
        assert functions.deliver(item.message) == 200
    acknowledge(functions.deployment.subscription, [item.ack_id for item in received])
    assert_exact(functions, lines, HOURS)
    # The per-message archive keeps JSON, as AWS's does.
    archived = [
        record.data
        for blob in _bucket(functions.deployment).list_blobs(prefix="raw/")
        for record in decode_batch("b", blob.download_as_bytes()).records
    ]
    assert len(archived) == len(received)
    assert all(d.startswith(b"[") for d in archived)
    assert sorted(archived) == sorted(unpack(d) for d in data)


def test_compression_none_publishes_plain_json(
    functions: Functions,  # noqa: F811 - the shared fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(settings.STREAM_COMPRESSION, "none")
    lines = fleet_lines(devices=2, hours=1)
    for body in bodies(lines):
        assert functions.post(body).status_code == 202
    data = [item.message.data for item in _pull_all(functions.deployment)]
    assert data and any(len(d) > 1000 for d in data)
    assert not any(is_packed_text(d) for d in data)
    sent = sorted(
        orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for d in data for r in orjson.loads(d)
    )
    assert sent == sorted(orjson.dumps(orjson.loads(x), option=orjson.OPT_SORT_KEYS) for x in lines)


def test_a_corrupt_packed_message_is_quarantined_and_acknowledged(
    functions: Functions,  # noqa: F811 - the shared fixture
) -> None:
    from google.cloud import pubsub_v1

    good = bodies(fleet_lines(devices=1)[:20])[0]
    corrupt = {
        "bad base64": pack_text(good)[:-3],
        "bad zlib": base64.b64encode(pack(good)[:-9]),
    }
    publisher = pubsub_v1.PublisherClient()
    for data in corrupt.values():
        publisher.publish(functions.deployment.topic_path, data).result()
    assert functions.drain() == 0  # poison never loops
    rejected = _rejections(_bucket(functions.deployment))
    assert sorted(r.payload for r in rejected) == sorted(corrupt.values())
    assert {r.reason for r in rejected} == {Reason.CORRUPT_RECORD}


def test_a_stream_file_of_packed_plain_and_corrupt_lines_is_processed_exactly(
    stack: FilesStack,  # noqa: F811 - the shared fixture
) -> None:
    lines = fleet_lines(devices=4, hours=HOURS, faults=Faults(duplicates=0.05, disorder=0.2))
    messages = bodies(lines, size=12)  # ~1.8 KB each: packed by ingest
    # Alternately packed and plain, as during an upgrade; some resent packed the other way.
    file_lines = [pack_text(m) if n % 2 else m for n, m in enumerate(messages)]
    file_lines += [pack_text(m) for m in messages[:6:2]] + messages[1:6:2]
    # Corrupt packed lines, each a copy of a message that is also there whole: the oracle holds.
    corrupt = [
        pack_text(messages[0])[:-3],
        base64.b64encode(pack(messages[1])[:-9]),
        pack_text(messages[2])[:50] + b"*" + pack_text(messages[2])[51:],
    ]
    file_lines[5:5] = corrupt
    assert not any(b"\n" in line for line in file_lines)
    bucket = stack.deployment.bucket
    blob = write_file(bucket, stream_name(T0 + HOURS * MS_PER_HOUR, "packed"), file_lines)
    announce(stack.files_topic, bucket, blob)
    wait_for(lambda: _done(stack.process, blob.name), 120, "the packed file to be processed")

    expected = expected_windows(lines)
    store = FirestoreStore(_firestore(), fleet_lanes=8)
    stored: dict[Any, Any] = {}
    for device in sorted({d for d, _ in expected}):
        page = store.hourly(device, T0, T0 + HOURS * MS_PER_HOUR, limit=10)
        stored.update({(device, w.hour_ms): w.stats for w in page.items})
    assert stored == expected
    [run] = [f for f in _logged(stack.process, "file processed") if f["batch_id"] == blob.name]
    assert run["records"] == len(file_lines)
    assert run["rejected"] == {"corrupt_record": len(corrupt)}
    rejected = _rejections(_bucket(stack.deployment))
    assert sorted(r.payload for r in rejected) == sorted(corrupt)  # the lines as they were
    assert {r.reason for r in rejected} == {Reason.CORRUPT_RECORD}
    assert sorted(r.record_id for r in rejected) == [f"{blob.name}#{n}" for n in (6, 7, 8)]


def test_replay_of_a_packed_stream_file_archive_equals_the_oracle(
    storage_server: Server, firestore_server: Server
) -> None:
    from google.cloud import firestore, storage

    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.gcp import GcsArchive
    from iotpipe.application import ProcessService, QueryService, replay
    from iotpipe.domain import LatenessPolicy

    client = storage.Client(project=PROJECT)
    name = unique("replay-packed")
    client.create_bucket(name)
    lines = fleet_lines(devices=4, hours=3, faults=Faults(duplicates=0.1, disorder=0.2))
    messages = bodies(lines, size=15)
    half = len(messages) // 2
    write_file(name, stream_name(T0 + 3 * MS_PER_HOUR - 2000, "a"), messages[:half])
    packed = [pack_text(m) for m in messages[half:]] + [pack_text(messages[0])[:-3]]
    write_file(name, stream_name(T0 + 3 * MS_PER_HOUR - 1000, "b"), packed)
    store = FirestoreStore(firestore.Client(project=PROJECT), prefix=unique("replay") + "_")
    processor = ProcessService(store, SystemClock(), lateness=LatenessPolicy.backfill())
    report = replay(GcsArchive(name, client), processor, T0, T0 + 3 * MS_PER_HOUR)
    assert report.ok and report.records == len(messages) + 1
    expected = expected_windows(lines)
    stored = QueryService(store).every_window()  # the store's own prefix: this replay's alone
    assert {(w.device_id, w.hour_ms): w.stats for w in stored} == expected


def _firestore() -> Any:
    from google.cloud import firestore

    return firestore.Client(project=PROJECT)
