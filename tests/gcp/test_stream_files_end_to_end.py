"""The files path end to end: stream files in the archive bucket, their notifications pushed by
the Pub/Sub emulator to the process function (a functions-framework server), Firestore.

The emulators cannot run the Cloud Storage subscription that writes the files: the test writes
them as it would (see :mod:`tests.gcp.stream_files`) and publishes each file's notification to
a topic whose push subscription targets the process function, as the deployment's
``${prefix}-process-files`` subscription does. The store's fleet lanes are on (8, the files
mode's default). The files hold every reading of the fleet split across them, some messages in
two files, out of order, bad lines, an empty file; one file is announced twice; one is deleted
before its notification comes; one notification is about an object outside ``stream/``, one
about a file there whose name the subscription does not make. One
device's window writes fail the first times: the file holding it is applied in part, answered
500, delivered again by the emulator and completed exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe.adapters.gcp.firestore import FirestoreStore
from iotpipe.domain import FleetTotal, merge_all
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.simulator import Faults
from tests.gcp.deployment import T0, Deployment, deploy, fleet_lines, source_dir
from tests.gcp.stream_files import announce, stream_name, write_file
from tests.gcp.test_end_to_end import _entries, _serve, wait_for
from tests.gcp_support import PROJECT, Server, unique
from tests.oracle import expected_windows

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

LANES = 8
HOURS = 2
FLAKY = "iot-sensor-010"  # the last device: in the big file's second chunk
CHUNK_DEVICES = 5  # the function's chunks here (400 in production): the big file has two


@dataclass
class FilesStack:
    deployment: Deployment
    files_topic: str
    process: Server


@pytest.fixture
def stack(
    firestore_server: Server, pubsub_server: Server, storage_server: Server, tmp_path: Path
) -> Iterator[FilesStack]:
    from google.cloud import pubsub_v1
    from google.pubsub_v1.types import PushConfig

    deployment = deploy(firestore_server, pubsub_server, storage_server)
    source = source_dir(tmp_path / "source", [Path(__file__).with_name("faulty_main.py")])
    env = {
        **deployment.env,
        "IOTPIPE_FLEET_LANES": str(LANES),
        "IOTPIPE_TEST_FLAKY_DEVICE": FLAKY,
        "IOTPIPE_TEST_FLAKY_FAILURES": "2",
        "IOTPIPE_TEST_CHUNK_DEVICES": str(CHUNK_DEVICES),
    }
    process = _serve("process", source / "faulty_main.py", env)
    try:
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        files_topic = publisher.topic_path(PROJECT, unique("archive-files"))
        publisher.create_topic(name=files_topic)
        endpoint = f"{process.url}/projects/{PROJECT}/topics/archive-files"
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(PROJECT, unique("process-files")),
                "topic": files_topic,
                "push_config": PushConfig(push_endpoint=endpoint),
                "ack_deadline_seconds": 30,
            }
        )
        subscriber.close()
        yield FilesStack(deployment, files_topic, process)
    finally:
        process.stop()


def _messages(lines: list[str]) -> list[bytes]:
    """Ingest's messages: here one reading each, as devices that post every reading send."""
    return [b"[" + line.encode() + b"]" for line in lines]


def _done(server: Server, name: str, times: int = 1) -> bool:
    """Whether the file was processed whole ``times`` times."""
    runs = [f for f in _logged(server, "file processed") if f["batch_id"] == name]
    return sum(1 for run in runs if run["failed_chunks"] == 0) >= times


def _logged(server: Server, message: str) -> list[dict[str, Any]]:
    return [e for e in _entries(server) if e["message"] == message]


def test_stream_files_are_processed_exactly_whatever_their_delivery(stack: FilesStack) -> None:
    lines = fleet_lines(devices=10, hours=HOURS, faults=Faults(duplicates=0.05, disorder=0.2))
    messages = _messages(lines)
    rng = random.Random(7)
    bucket, topic = stack.deployment.bucket, stack.files_topic
    # The big file: every message, in arrival order. Its lines are grouped by device into
    # chunks of 5 devices, so the flaky device's all sit in the second chunk: the first chunk
    # applies, the second fails.
    big = write_file(bucket, stream_name(T0 + HOURS * MS_PER_HOUR, "big"), messages)
    # Another file: a sample of the same messages again, shuffled, with bad lines.
    bad = [b"not json at all", b'[{"device_id": "x", "timestamp": "2025-08-31T10:00:00Z"}', b"{}"]
    # (Without the flaky device: its faults are for the big file's second chunk alone.)
    steady = [m for m in messages if orjson.loads(m)[0]["device_id"] != FLAKY]
    again = rng.sample(steady, 120) + bad
    rng.shuffle(again)
    mixed = write_file(bucket, stream_name(T0 + HOURS * MS_PER_HOUR + 61_000, "mixed"), again)
    empty = write_file(bucket, stream_name(T0 + HOURS * MS_PER_HOUR + 122_000, "empty"), [])
    ghost = [b'[{"device_id": "ghost", "timestamp": "2025-08-31T10:00:00Z", "temperature": 1}]']
    gone = write_file(bucket, stream_name(T0 + HOURS * MS_PER_HOUR, "gone"), ghost)
    other = write_file(bucket, "elsewhere/2025-08-31/12_00_00Z_x.jsonl", ghost)
    stray = write_file(bucket, "stream/notes.jsonl", ghost)  # not a name Pub/Sub makes
    gone.delete()  # before its notification is processed (the blob keeps its generation)

    for blob in (mixed, big, empty, gone, other, stray):
        announce(topic, bucket, blob)
    wait_for(lambda: _done(stack.process, big.name), 120, "the big file to be processed")
    announce(topic, bucket, big)  # a duplicate notification: changes nothing

    expected = expected_windows(lines)
    store = FirestoreStore(_firestore(), fleet_lanes=LANES)
    devices = sorted({d for d, _ in expected})

    def stored() -> dict[tuple[str, int], Any]:
        found = {}
        for device in devices:
            page = store.hourly(device, T0, T0 + HOURS * MS_PER_HOUR, limit=10)
            found.update({(device, w.hour_ms): w.stats for w in page.items})
        return found

    wait_for(lambda: stored() == expected, 120, "the store to hold exactly the oracle's windows")
    wait_for(lambda: _done(stack.process, big.name, times=2), 60, "the duplicate notification")
    assert store.latest("ghost") is None  # neither the deleted file nor the ignored ones
    for hour in (T0, T0 + MS_PER_HOUR):
        mine = [stats for (_, h), stats in expected.items() if h == hour]
        assert store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))

    files = _logged(stack.process, "file processed")
    big_runs = [f for f in files if f["batch_id"] == big.name]
    # Applied in part (the first chunk), redelivered, then completed.
    assert big_runs[0]["chunks"] == 2 and big_runs[0]["failed_chunks"] == 1
    assert 0 < big_runs[0]["accepted"] < len(messages)
    assert big_runs[-2]["failed_chunks"] == 0 and big_runs[-2]["accepted"] > 0
    again = big_runs[-1]  # the second notification, once the file was done
    assert again["failed_chunks"] == 0 and again["accepted"] == 0
    assert again["duplicates"] + again["rejected_total"] == again["received"]
    assert sum(f["accepted"] for f in files) == sum(s.count for s in expected.values())
    mixed_runs = [f for f in files if f["batch_id"] == mixed.name]
    assert mixed_runs and all(run["rejected_total"] == len(bad) for run in mixed_runs)
    assert [f["chunks"] for f in files if f["batch_id"] == empty.name] == [0]
    assert [g["batch_id"] for g in _logged(stack.process, "file gone")] == [gone.name]
    ignored = _logged(stack.process, "notification ignored")
    assert sorted(i["object"] for i in ignored) == sorted([other.name, stray.name])
    # An object under stream/ that is not a stream file's name is data left unprocessed: an error.
    assert {i["object"]: i["severity"] for i in ignored} == {
        other.name: "INFO",
        stray.name: "ERROR",
    }

    from google.cloud import storage

    client = storage.Client(project=PROJECT)
    assert list(client.list_blobs(bucket, prefix="raw/")) == []  # the file is the archive
    rejected = [b.name for b in client.list_blobs(bucket, prefix="rejected/")]
    assert rejected and all("mixed" in name for name in rejected)  # its bad lines' chunks


def _firestore() -> Any:
    from google.cloud import firestore

    return firestore.Client(project=PROJECT)
