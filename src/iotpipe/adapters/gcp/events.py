"""Pub/Sub messages as the ports' raw records and batches: pushed (CloudEvents) and pulled.

A Cloud Function (2nd gen) triggered by a topic receives a CloudEvent of type
``google.cloud.pubsub.topic.v1.messagePublished`` whose data is::

    {"message": {"data": "<base64>", "attributes": {"device_id": "..."},
                 "messageId": "1234", "publishTime": "2025-08-31T10:00:00.123456789Z"},
     "subscription": "projects/<p>/subscriptions/<s>"}

(functions-framework builds the same from a plain push request; some producers spell the keys
``message_id``/``publish_time``: both are read). Each event carries one message, so a batch is
one record: its id is the message id, which stays the same on every redelivery, so the archive
object named after it is overwritten, never duplicated. Its arrival time is the ``publishTime``
(when Pub/Sub accepted the message), so lateness is judged alike on every delivery.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from iotpipe.domain.time import parse_instant, to_ms
from iotpipe.ports import RawBatch, RawRecord

#: The CloudEvent type of a Pub/Sub trigger.
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


class NotAPubSubEvent(ValueError):
    """The event data is not shaped like a Pub/Sub message delivery."""


def record_from_push(data: Mapping[str, Any]) -> RawRecord:
    """The raw record of a pushed delivery (a ``messagePublished`` CloudEvent's data)."""
    try:
        message = data["message"]
        message_id = str(message.get("messageId") or message["message_id"])
        payload = base64.b64decode(message.get("data") or "", validate=True)
        published = message.get("publishTime") or message.get("publish_time")
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise NotAPubSubEvent(f"not a Pub/Sub message delivery: {exc!r}") from exc
    if not message_id:
        raise NotAPubSubEvent("a Pub/Sub message has a messageId")
    return RawRecord(message_id, payload, None if published is None else _instant(published))


def batch_from_push(data: Mapping[str, Any]) -> RawBatch:
    """The one-record batch of a pushed delivery; the batch id is the message id."""
    record = record_from_push(data)
    return RawBatch(record.record_id, (record,))


def record_from_message(message: Any) -> RawRecord:
    """The raw record of a pulled ``google.pubsub_v1.PubsubMessage`` (or a subscriber's
    ``Message``): its id, its data and its publish time."""
    published = message.publish_time
    return RawRecord(
        str(message.message_id),
        bytes(message.data),
        None if published is None else to_ms(published),
    )


def _instant(text: object) -> int:
    try:
        return parse_instant(str(text))
    except ValueError as exc:
        raise NotAPubSubEvent(f"not a publish time: {text!r}") from exc
