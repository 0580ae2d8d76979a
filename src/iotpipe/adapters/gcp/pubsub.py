"""The reading stream on Cloud Pub/Sub: one message per stream message, batched by the client.

Decisions:

- **One Pub/Sub message per** :class:`~iotpipe.ports.StreamMessage`. Ingest already groups an
  HTTP request's readings by device (a JSON array per device), so a request of 500 readings
  from one device is one message; per-reading messages would multiply publish and delivery
  costs (Pub/Sub bills each message's bytes plus ~40 of metadata, and at least 1,000 bytes
  per publish request) and store writes (one per message that
  touches a window). The device id travels as the ``device_id`` attribute (for subscription
  filters and inspection); the data is the JSON array as ingest encoded it, or packed (below).
- **Batching** is the client's (:data:`DEFAULT_BATCH`): the messages of one request leave in
  one ``Publish`` call (up to 500 messages and 4 MB, after at most 5 ms), within the service's
  limits of 1,000 messages and 10 MB per call.
- **No ordering keys.** Aggregates do not depend on order (the promise of this library), so
  ordering buys nothing and costs: ordered publishing is limited per key and stops a key's
  later messages after a failure until it is resumed, and ordered subscriptions deliver a key's
  messages one at a time; dead-lettering on an ordered subscription also fails silently in the
  emulator. A :class:`PubSubStream` never sets one; make the publisher with
  :func:`publisher_client`, which leaves message ordering off.
- **Compressed messages** (``compress=True``, the default): a message over
  :data:`PACK_OVER` bytes is sent as :func:`~iotpipe.application.payloads.pack_text`, base64
  text of its zlib bytes (a device-minute of ~9.1 KB of JSON becomes ~1.3 KB), because Pub/Sub
  bills bytes twice here (publishing, and the Cloud Storage subscription that writes the
  archive files) and those files hold one message per line: a message must be text without a
  newline, which raw zlib is not. Pub/Sub's 1,000-byte minimum is per request, not per message,
  so a small message in a request with others bills its real size; packing one under 1 KB
  saves next to nothing (base64 adds a third to what zlib saves), so it is sent as it is, as a
  packed form that is not smaller is. Every reader unpacks by the form's first characters, so
  plain messages still work (:func:`~iotpipe.application.payloads.unpack`).
- **Failures are reported, never dropped.** Every publish future is awaited (up to
  ``timeout_s`` in all); a message that the client could not publish after its bounded retries
  (transient errors are retried within ``timeout_s``), or that is over the 10 MB limit, is in
  :attr:`PublishResult.failed` by its index, with the last error. A message whose future timed
  out may still be published later by the client: the caller resends it, and the windows
  absorb the duplicate once.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

from google.api_core import retry as retries

from iotpipe.adapters.gcp.errors import describe, is_transient
from iotpipe.application.payloads import pack_text
from iotpipe.ports import PublishResult, StreamMessage

#: Pub/Sub's limit on one message's data.
MAX_MESSAGE_BYTES = 10 * 1000 * 1000
#: The publisher's batching: a request's messages go out in one call, within 5 ms.
DEFAULT_BATCH: dict[str, Any] = {"max_messages": 500, "max_bytes": 4_000_000, "max_latency": 0.005}
DEVICE_ATTRIBUTE = "device_id"
#: Messages of more bytes than this are packed (``compress=True``): the size below which
#: packing gains next to nothing, as on Kinesis (1 KB).
PACK_OVER = 1000


def publisher_client(**batch: Any) -> Any:
    """A ``PublisherClient`` with :data:`DEFAULT_BATCH` (overridable) and ordering off.

    Honours ``PUBSUB_EMULATOR_HOST``, as every Pub/Sub client does.
    """
    # google-cloud-pubsub ships no type information: imported by name, so it is Any here.
    pubsub_v1 = importlib.import_module("google.cloud.pubsub_v1")
    settings = pubsub_v1.types.BatchSettings(**{**DEFAULT_BATCH, **batch})
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=False)
    return pubsub_v1.PublisherClient(batch_settings=settings, publisher_options=options)


class PubSubStream:
    """A :class:`~iotpipe.ports.ReadingStream` publishing to one Pub/Sub topic.

    ``topic`` is the full path (``projects/<project>/topics/<topic>``); ``publisher`` a
    ``google.cloud.pubsub_v1.PublisherClient`` (typed ``Any``), e.g. from
    :func:`publisher_client`. ``timeout_s`` bounds a whole :meth:`publish`, retries included:
    ingest answers the device within it. ``compress=False`` publishes every message's data as it
    is (for readers that cannot unpack yet: see docs/deployment.md on upgrading).
    """

    def __init__(
        self, topic: str, publisher: Any, *, timeout_s: float = 10.0, compress: bool = True
    ) -> None:
        if not topic.startswith("projects/") or "/topics/" not in topic:
            raise ValueError(f"topic must be a full path projects/<p>/topics/<t>, not {topic!r}")
        self.topic = topic
        self._publisher = publisher
        self._timeout_s = timeout_s
        self._compress = compress
        self._retry = retries.Retry(
            predicate=is_transient, initial=0.05, maximum=1.0, timeout=timeout_s
        )

    def publish(self, messages: Sequence[StreamMessage]) -> PublishResult:
        """Publish every message; report the indexes that were not published, and why."""
        deadline = time.monotonic() + self._timeout_s
        failed: list[int] = []
        error: str | None = None
        pending: list[tuple[int, Any]] = []
        for index, message in enumerate(messages):
            data = self._wire(message.data)
            if len(data) > MAX_MESSAGE_BYTES:
                failed.append(index)
                error = f"message of {len(data)} bytes is over Pub/Sub's 10 MB limit"
                continue
            try:
                future = self._publisher.publish(
                    self.topic,
                    data,
                    retry=self._retry,
                    timeout=self._timeout_s,
                    **{DEVICE_ATTRIBUTE: message.key},
                )
            except Exception as exc:  # a stopped client, a bad attribute: not published
                failed.append(index)
                error = describe(exc)
                continue
            pending.append((index, future))
        for index, future in pending:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # whatever the reason, this message is not (known) published
                failed.append(index)
                error = describe(exc)
        return PublishResult(tuple(sorted(failed)), error if failed else None)

    def _wire(self, data: bytes) -> bytes:
        return message_data(data, compress=self._compress)


def message_data(data: bytes, *, compress: bool = True) -> bytes:
    """The data a :class:`PubSubStream` sends for a message's ``data``: packed text when
    ``compress`` and that is smaller, and worth it (over :data:`PACK_OVER` bytes)."""
    if not compress or len(data) <= PACK_OVER:
        return data
    packed = pack_text(data)
    return packed if len(packed) < len(data) else data
