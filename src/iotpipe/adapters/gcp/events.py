"""Pub/Sub messages as the ports' raw records and batches: pushed (CloudEvents) and pulled.

A Cloud Function (2nd gen) triggered by a topic receives a CloudEvent of type
``google.cloud.pubsub.topic.v1.messagePublished`` whose data is::

    {"message": {"data": "<base64>", "attributes": {"device_id": "..."},
                 "messageId": "1234", "publishTime": "2025-08-31T10:00:00.123456789Z"},
     "subscription": "projects/<p>/subscriptions/<s>"}

A push subscription posts the same object as the request body, with ``deliveryAttempt`` when
the subscription has a dead-letter policy; some producers spell the keys
``message_id``/``publish_time``: both are read. Pub/Sub omits ``data`` when a message has none
(an attribute-only message): its payload is then empty, which the process use case quarantines
like any unreadable record, and the delivery is acknowledged. :func:`push_delivery` reads an
HTTP push request in each shape it comes in: a plain push body, or a CloudEvent in binary
(``ce-*`` headers) or structured mode; a message without ``messageId`` takes the CloudEvent's
``id``.

A message may also be a Cloud Storage notification (a new stream file in the archive bucket):
:func:`storage_notification` tells it apart by its ``eventType`` attribute and reads it.

Each delivery carries one message, so a batch is one record: its id is the message id, which
stays the same on every redelivery, so the archive object named after it is overwritten, never
duplicated. Its arrival time is the ``publishTime`` (when Pub/Sub accepted the message), so
lateness is judged alike on every delivery.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from iotpipe.domain.time import parse_instant, to_ms
from iotpipe.ports import RawBatch, RawRecord

#: The CloudEvent type of a Pub/Sub trigger.
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


class NotAPubSubEvent(ValueError):
    """The event data is not shaped like a Pub/Sub message delivery."""


@dataclass(frozen=True, slots=True)
class PushDelivery:
    """One pushed delivery: the message data object, and what the envelope says about it."""

    data: Mapping[str, Any]
    event_id: str | None = None
    """The CloudEvent's ``id`` (the message id a trigger sets), if it came as a CloudEvent."""

    @property
    def subscription(self) -> str | None:
        """The subscription that pushed it (not in a converted CloudEvent)."""
        value = self.data.get("subscription")
        return None if value is None else str(value)

    @property
    def delivery_attempt(self) -> int | None:
        """Pub/Sub's delivery count (with a dead-letter policy only)."""
        value = self.data.get("deliveryAttempt")
        return value if isinstance(value, int) else None

    def batch(self) -> RawBatch:
        """The delivery's one-record batch (:func:`batch_from_push`)."""
        return batch_from_push(self.data, self.event_id)


def push_delivery(body: bytes, headers: Mapping[str, str]) -> PushDelivery:
    """The delivery an HTTP push request carries (header names lower-case): a Pub/Sub push
    body, a binary-mode CloudEvent (``ce-id`` header, the data as body) or a structured one
    (``specversion``, ``id`` and ``data`` in the body)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotAPubSubEvent(f"the push body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise NotAPubSubEvent("the push body is not a JSON object")
    if "ce-id" in headers:
        return PushDelivery(document, headers["ce-id"])
    if "specversion" in document:
        data = document.get("data")
        if not isinstance(data, dict):
            raise NotAPubSubEvent("a structured CloudEvent without a data object")
        event_id = document.get("id")
        return PushDelivery(data, None if event_id is None else str(event_id))
    return PushDelivery(document)


#: The ``eventType`` attribute of a bucket notification for a new object (or a new version).
OBJECT_FINALIZE = "OBJECT_FINALIZE"


@dataclass(frozen=True, slots=True)
class StorageNotification:
    """A Cloud Storage notification about one object, as its Pub/Sub message carries it.

    The attributes name the event, bucket, object and generation; with the ``JSON_API_V1``
    payload the data is the object resource, whose ``timeCreated`` and ``size`` are kept.
    """

    event_type: str
    bucket: str
    name: str
    generation: int | None = None
    created_ms: int | None = None
    size: int | None = None

    @property
    def finalized(self) -> bool:
        """Whether it announces a new object (or a new version of one)."""
        return self.event_type == OBJECT_FINALIZE


def storage_notification(data: Mapping[str, Any]) -> StorageNotification | None:
    """The bucket notification a pushed delivery carries, or ``None`` if the message is not
    one (no ``eventType`` attribute: a readings message). Raises :class:`NotAPubSubEvent` for
    a notification without its bucket or object."""
    try:
        attributes = data["message"].get("attributes") or {}
    except (KeyError, TypeError, AttributeError) as exc:
        raise NotAPubSubEvent(f"not a Pub/Sub message delivery: {exc!r}") from exc
    if not isinstance(attributes, Mapping) or "eventType" not in attributes:
        return None
    bucket, name = attributes.get("bucketId"), attributes.get("objectId")
    if not bucket or not name:
        raise NotAPubSubEvent("a Cloud Storage notification names its bucketId and objectId")
    resource = _object_resource(data["message"].get("data"))
    created = resource.get("timeCreated")
    return StorageNotification(
        str(attributes["eventType"]),
        str(bucket),
        str(name),
        _integer(attributes.get("objectGeneration") or resource.get("generation")),
        None if created is None else _instant(created),
        _integer(resource.get("size")),
    )


def _object_resource(encoded: object) -> Mapping[str, Any]:
    """The JSON_API_V1 object resource of a notification (empty with payload ``NONE``)."""
    if not encoded:
        return {}
    try:
        resource = orjson.loads(base64.b64decode(str(encoded), validate=True))
    except (binascii.Error, orjson.JSONDecodeError) as exc:
        raise NotAPubSubEvent(f"a notification without an object resource: {exc}") from exc
    return resource if isinstance(resource, dict) else {}


def _integer(value: object) -> int | None:
    """Cloud Storage writes its 64-bit numbers as strings in JSON."""
    try:
        return None if value is None else int(str(value))
    except ValueError as exc:
        raise NotAPubSubEvent(f"not a number: {value!r}") from exc


def record_from_push(data: Mapping[str, Any], fallback_id: str | None = None) -> RawRecord:
    """The raw record of a pushed delivery (a ``messagePublished`` CloudEvent's data, or a push
    body). A message without ``data`` has an empty payload; one without ``messageId`` (or
    ``message_id``) takes ``fallback_id``, the CloudEvent's id."""
    try:
        message = data["message"]
        message_id = message.get("messageId") or message.get("message_id") or fallback_id
        payload = base64.b64decode(message.get("data") or "", validate=True)
        published = message.get("publishTime") or message.get("publish_time")
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise NotAPubSubEvent(f"not a Pub/Sub message delivery: {exc!r}") from exc
    if not message_id:
        raise NotAPubSubEvent("a Pub/Sub message has a messageId (or its CloudEvent an id)")
    published_ms = None if published is None else _instant(published)
    return RawRecord(str(message_id), payload, published_ms)


def batch_from_push(data: Mapping[str, Any], fallback_id: str | None = None) -> RawBatch:
    """The one-record batch of a pushed delivery; the batch id is the message id."""
    record = record_from_push(data, fallback_id)
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
