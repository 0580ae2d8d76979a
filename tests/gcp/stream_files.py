"""Stream files and their bucket notifications, made on the emulators as GCP makes them.

The emulators cannot run a Pub/Sub Cloud Storage subscription (the Pub/Sub emulator has no
export subscriptions), so the tests write the files it would write, in its documented text
format (each message's data and a newline) under the names the archive codec parses, to
gcp-storage-emulator; and publish the notification Cloud Storage would send for each
(``OBJECT_FINALIZE``, payload ``JSON_API_V1``) to a real Pub/Sub emulator topic. What the
subscription itself is configured to do is held by the Terraform's static tests.
"""

from __future__ import annotations

from typing import Any

import orjson

from iotpipe.application.codecs.archive import (
    STREAM_FILENAME_PREFIX,
    STREAM_FILENAME_SUFFIX,
)
from iotpipe.domain.time import format_instant, from_ms
from tests.gcp_support import PROJECT


def stream_name(opened_ms: int, unique: str) -> str:
    """A stream file's name as Pub/Sub makes it (``YYYY-MM-DD/hh_mm_ssZ`` then ``_<uuid>``)."""
    t = from_ms(opened_ms)
    return f"{STREAM_FILENAME_PREFIX}{t:%Y-%m-%d/%H_%M_%S}Z_{unique}{STREAM_FILENAME_SUFFIX}"


def write_file(bucket: str, name: str, messages: list[bytes]) -> Any:
    """Write a file in the text format; its blob (with its generation)."""
    from google.cloud import storage

    blob = storage.Client(project=PROJECT).bucket(bucket).blob(name)
    blob.upload_from_string(b"".join(m + b"\n" for m in messages), content_type="text/plain")
    return blob


def notification(
    bucket: str, name: str, generation: Any, size: int
) -> tuple[bytes, dict[str, str]]:
    """The data and attributes of an ``OBJECT_FINALIZE`` notification with a JSON_API_V1
    payload (the object resource; Cloud Storage writes 64-bit numbers as strings)."""
    resource = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "name": name,
        "bucket": bucket,
        "generation": str(generation),
        "contentType": "text/plain",
        "timeCreated": format_instant(1_764_900_000_000),
        "size": str(size),
    }
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": bucket,
        "objectId": name,
        "objectGeneration": str(generation),
        "payloadFormat": "JSON_API_V1",
        "notificationConfig": f"projects/_/buckets/{bucket}/notificationConfigs/1",
    }
    return orjson.dumps(resource), attributes


def announce(topic_path: str, bucket: str, blob: Any) -> str:
    """Publish the notification of a written blob; the message id."""
    from google.cloud import pubsub_v1

    data, attributes = notification(bucket, blob.name, blob.generation, blob.size or 0)
    return str(pubsub_v1.PublisherClient().publish(topic_path, data, **attributes).result())
