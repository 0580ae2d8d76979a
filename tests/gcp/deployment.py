"""A deployment of the GCP runtime on the emulators: the resources, the functions' environment,
and helpers shared by the function tests (in-process and across processes)."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.entrypoints.gcp import settings
from iotpipe.simulator import Faults, Fleet
from tests.gcp_support import PROJECT, Server, reset_firestore, unique

MAIN = Path(__file__).resolve().parents[2] / "src" / "iotpipe" / "entrypoints" / "gcp" / "main.py"
KEY = "gcp-test-key-123456"
T0 = parse_instant("2025-08-31T10:00:00Z")


@dataclass
class Deployment:
    """A topic with a pull subscription, a bucket, an empty Firestore, and the environment the
    functions would get."""

    topic: str
    topic_path: str
    subscription: str
    bucket: str
    env: dict[str, str] = field(default_factory=dict)


def deploy(firestore: Server, pubsub: Server, storage: Server) -> Deployment:
    """Create the resources on the emulators and return them with the functions' environment."""
    from google.cloud import pubsub_v1
    from google.cloud import storage as storage_lib

    reset_firestore(firestore)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = unique("readings")
    topic_path = publisher.topic_path(PROJECT, topic)
    publisher.create_topic(name=topic_path)
    subscription = subscriber.subscription_path(PROJECT, unique("process"))
    subscriber.create_subscription(name=subscription, topic=topic_path, ack_deadline_seconds=60)
    subscriber.close()
    bucket = unique("archive")
    storage_lib.Client(project=PROJECT).create_bucket(bucket)
    env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_EMULATOR_HOST": firestore.host,
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "STORAGE_EMULATOR_HOST": storage.url,
        settings.PROJECT: PROJECT,
        settings.TOPIC: topic,
        settings.BUCKET: bucket,
        settings.API_KEYS: KEY,
        settings.LATENESS_HORIZON_HOURS: "0",  # the tests send old readings
    }
    return Deployment(topic, topic_path, subscription, bucket, env)


def source_dir(directory: Path, extra: Iterable[Path] = ()) -> Path:
    """``directory`` holding main.py (and ``extra`` files) as the source archive lays it out:
    functions-framework adds the source's directory to sys.path, so never point it inside
    the package."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in (MAIN, *extra):
        shutil.copy(path, directory / path.name)
    return directory


def push_body(message: Any, subscription: str) -> dict[str, Any]:
    """The data of a ``messagePublished`` CloudEvent for a pulled message (Eventarc's shape)."""
    published = message.publish_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": published,
        },
        "subscription": subscription,
    }


def cloud_event_headers(message_id: str, topic_path: str) -> dict[str, str]:
    """A binary-mode CloudEvent's headers, as Eventarc sends them to a 2nd gen function."""
    return {
        "ce-id": message_id,
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": f"//pubsub.googleapis.com/{topic_path}",
        "ce-time": "2025-08-31T10:00:00Z",
        "content-type": "application/json",
    }


def pull(subscription: str, max_messages: int = 100, wait_s: float = 3.0) -> list[Any]:
    """Received messages (with ack ids) of one pull; ``[]`` when none came in ``wait_s``."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            try:
                answer = subscriber.pull(
                    subscription=subscription, max_messages=max_messages, timeout=5
                )
            except exceptions.DeadlineExceeded:  # the emulator's "nothing yet"
                continue
            if answer.received_messages:
                return list(answer.received_messages)
        return []
    finally:
        subscriber.close()


def acknowledge(subscription: str, ack_ids: list[str]) -> None:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscriber.acknowledge(subscription=subscription, ack_ids=ack_ids)
    subscriber.close()


def fleet_lines(devices: int = 4, hours: int = 2, faults: Faults | None = None) -> list[str]:
    """Simulated readings, one JSON text per reading."""
    return list(Fleet(devices, 120, seed=11).payloads(T0, T0 + hours * MS_PER_HOUR, faults))


def bodies(lines: list[str], size: int = 97) -> list[bytes]:
    """The lines as JSON array bodies of up to ``size`` readings."""
    return [
        b"[" + b",".join(x.encode() for x in lines[i : i + size]) + b"]"
        for i in range(0, len(lines), size)
    ]
