"""Pub/Sub deliveries (push CloudEvent data, pulled messages) as raw records and batches."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest

from iotpipe.adapters.gcp import NotAPubSubEvent, batch_from_push, record_from_message
from iotpipe.adapters.gcp.events import StorageNotification, storage_notification
from iotpipe.domain.time import parse_instant
from iotpipe.ports import RawBatch, RawRecord

pytestmark = pytest.mark.unit


def delivery(**message: object) -> dict[str, object]:
    return {"message": message, "subscription": "projects/p/subscriptions/s"}


def test_a_push_delivery_is_a_one_record_batch_named_by_the_message_id() -> None:
    data = delivery(
        data=base64.b64encode(b'[{"device_id":"d1"}]').decode(),
        attributes={"device_id": "d1"},
        messageId="1234567890",
        publishTime="2025-08-31T10:00:00.123456789Z",
    )
    record = RawRecord("1234567890", b'[{"device_id":"d1"}]', 1_756_634_400_123)
    assert batch_from_push(data) == RawBatch("1234567890", (record,))


def test_snake_case_keys_and_missing_data_are_read_too() -> None:
    data = delivery(message_id="7", publish_time="2025-08-31T10:00:00Z")
    assert batch_from_push(data).records == (RawRecord("7", b"", 1_756_634_400_000),)
    assert batch_from_push(delivery(messageId="8")).records[0].arrived_ms is None


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"message": "text"},
        delivery(data="aGk="),  # no message id
        delivery(messageId="1", data="not base64!"),
        delivery(messageId="1", publishTime="yesterday"),
        delivery(messageId=""),
    ],
)
def test_anything_else_is_not_a_pubsub_event(data: dict[str, object]) -> None:
    with pytest.raises(NotAPubSubEvent):
        batch_from_push(data)


def test_a_pulled_message_keeps_its_id_data_and_publish_time() -> None:
    published = datetime(2025, 8, 31, 10, 0, 0, 123999, tzinfo=UTC)
    message = SimpleNamespace(message_id="42", data=b"[1]", publish_time=published)
    assert record_from_message(message) == RawRecord("42", b"[1]", 1_756_634_400_123)


# --- Cloud Storage notifications (a new stream file) ------------------------------------------


def _notification(attributes: dict[str, str], resource: object = None) -> dict[str, object]:
    data = "" if resource is None else base64.b64encode(orjson.dumps(resource)).decode()
    return delivery(data=data, attributes=attributes, messageId="9", publishTime=PUBLISHED)


PUBLISHED = "2025-08-31T10:01:00.5Z"
NOTIFIED = {
    "eventType": "OBJECT_FINALIZE",
    "bucketId": "archive-b",
    "objectId": "stream/2025-08-31/10_00_00Z_u.jsonl",
    "objectGeneration": "1756634460123456",
    "payloadFormat": "JSON_API_V1",
}


def test_a_bucket_notification_is_read_from_its_attributes_and_object_resource() -> None:
    resource = {"size": "2048", "generation": "1756634460123456", "timeCreated": PUBLISHED}
    found = storage_notification(_notification(NOTIFIED, resource))
    assert found == StorageNotification(
        "OBJECT_FINALIZE",
        "archive-b",
        "stream/2025-08-31/10_00_00Z_u.jsonl",
        1756634460123456,
        parse_instant(PUBLISHED),
        2048,
    )
    assert found.finalized
    bare = storage_notification(_notification({**NOTIFIED, "payloadFormat": "NONE"}))
    assert bare is not None and bare.generation == 1756634460123456 and bare.size is None
    deleted = storage_notification(_notification({**NOTIFIED, "eventType": "OBJECT_DELETE"}))
    assert deleted is not None and not deleted.finalized


def test_a_readings_message_is_no_notification() -> None:
    data = base64.b64encode(b"[]").decode()
    assert storage_notification(delivery(data=data, attributes={"device_id": "d"})) is None
    assert storage_notification(delivery(data=data)) is None


@pytest.mark.parametrize(
    ("attributes", "resource"),
    [
        ({"eventType": "OBJECT_FINALIZE", "bucketId": "b"}, None),  # no object
        ({**NOTIFIED, "objectGeneration": "soon"}, None),
        (NOTIFIED, {"timeCreated": "yesterday"}),
    ],
)
def test_a_broken_notification_is_not_a_pubsub_event(
    attributes: dict[str, str], resource: object
) -> None:
    with pytest.raises(NotAPubSubEvent):
        storage_notification(_notification(attributes, resource))
