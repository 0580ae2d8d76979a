"""Pub/Sub deliveries (push CloudEvent data, pulled messages) as raw records and batches."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from iotpipe.adapters.gcp import NotAPubSubEvent, batch_from_push, record_from_message
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
