"""The process function (HTTP, the target of the Pub/Sub push subscriptions): one Pub/Sub
message -> the process use case -> Firestore, the Cloud Storage archive and quarantine.

It takes two kinds of message, told apart by their attributes:

- a **Cloud Storage notification** (``eventType``, ``bucketId``, ``objectId``: the default
  path, ``process_from = "files"``): a new stream file in the archive bucket, written by the
  Pub/Sub Cloud Storage subscription. The file (the notification's generation of it) is read
  and processed in chunks of lines, without writing an archive object: the file is the
  archive (:class:`~iotpipe.application.StreamFileService`). A file that no longer exists is
  logged and acknowledged; a notification about another bucket, another event, an object
  outside ``stream/`` or one whose name is not a stream file's is acknowledged and ignored;
  any chunk left with unapplied readings makes the whole file be delivered again
  (:class:`Redeliver`), which the store's exactness makes harmless;
- a **readings message** (``process_from = "messages"``): archived as one object and
  processed, as below.

It reads the push request itself (:func:`~iotpipe.adapters.gcp.events.push_delivery`) rather
than through functions-framework's CloudEvent conversion, which answers 400 before any code
runs for a message without ``data`` (an attribute-only message: valid in Pub/Sub, which omits
empty data), so such a message would be retried and dead-lettered instead of quarantined. A
plain push body, and a CloudEvent in binary or structured mode (an Eventarc trigger), are all
read; the message id falls back to the CloudEvent's ``id``; ``subscription`` and
``deliveryAttempt`` reach the summary line.

Acknowledgement is the answer's status: 200 acknowledges the message, anything else makes
Pub/Sub deliver it again (with the subscription's backoff, then to its dead-letter topic).

- Bad data (malformed JSON, invalid readings, too late, conflicting duplicates) is quarantined
  and the message acknowledged: a poison message never loops.
- A transient failure (the store or the archive unavailable, conflicts beyond the retries)
  leaves some readings unapplied: the function raises :class:`Redeliver`. On the next delivery
  the windows already written absorb their readings again as duplicates, which changes nothing.
- A request that is not a Pub/Sub delivery is answered 400, and an error retrying cannot fix
  (permission denied, a missing index) raises (500): either way, after the subscription's
  maximum delivery attempts the message rests on the dead-letter topic, for inspection.

One summary line per message (``"batch processed"``) carries the same counts as on AWS; the
log-based metrics are derived from it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from iotpipe.adapters.gcp.events import (
    NotAPubSubEvent,
    PushDelivery,
    StorageNotification,
    push_delivery,
    storage_notification,
)
from iotpipe.application.codecs.archive import STREAM_FILENAME_PREFIX, stream_file_time
from iotpipe.entrypoints.gcp import bootstrap
from iotpipe.entrypoints.gcp import observability as obs
from iotpipe.entrypoints.gcp.clients import settings
from iotpipe.ports import RawBatch

if TYPE_CHECKING:
    import flask

    # Annotations only: the use cases load with the first delivery, not with this module.
    from iotpipe.application import FileReport, ProcessReport

FUNCTION = "process"


class Redeliver(RuntimeError):
    """Raised so that Pub/Sub delivers the message again: some readings are not applied yet."""


def handle_request(request: flask.Request) -> flask.Response:
    """Answer one push request: 200 to acknowledge, 400 for what is not a Pub/Sub delivery,
    500 (:class:`Redeliver`) to have the message delivered again."""
    import flask

    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        delivery = push_delivery(request.get_data(), headers)
        notification = storage_notification(delivery.data)
        batch = None if notification else delivery.batch()
    except NotAPubSubEvent as exc:
        trace = obs.trace_from_headers(headers)
        with obs.serving(FUNCTION, settings().project, trace):
            obs.log("ERROR", "not a Pub/Sub message delivery", error=str(exc))
        return flask.Response(str(exc), status=400, mimetype="text/plain")
    try:
        if notification is not None:
            handle_file(delivery, notification, headers)
        elif batch is not None:
            handle(delivery, batch, headers)
    except Redeliver as exc:
        return flask.Response(str(exc), status=500, mimetype="text/plain")
    return flask.Response("", status=200)


def handle(delivery: PushDelivery, batch: RawBatch, headers: Mapping[str, str]) -> None:
    """Process one delivery's batch; raise :class:`Redeliver` to have it delivered again."""
    started = time.perf_counter()
    with obs.serving(FUNCTION, settings().project, _trace(headers)):
        try:
            report = bootstrap.process_service().process(batch)
        except Exception as exc:
            obs.log("ERROR", "batch failed", batch_id=batch.batch_id, error=repr(exc))
            raise
        _observe(report, time.perf_counter() - started, delivery)
    if report.failed_records:
        raise Redeliver(f"message {batch.batch_id}: {'; '.join(report.errors)}")


def handle_file(
    delivery: PushDelivery, notification: StorageNotification, headers: Mapping[str, str]
) -> None:
    """Process the stream file a bucket notification announces (or acknowledge a notification
    that is not about one); raise :class:`Redeliver` to have it delivered again."""
    started = time.perf_counter()
    with obs.serving(FUNCTION, settings().project, _trace(headers)):
        ignored = _not_ours(notification)
        if ignored:
            # A misnamed object under stream/ is data nobody will process: say so loudly.
            misnamed = ignored == _MISNAMED
            severity = "ERROR" if misnamed else "INFO"
            obs.log(severity, "notification ignored", object=notification.name, reason=ignored)
            return
        try:
            report = bootstrap.stream_file_service().process(
                notification.name, notification.generation
            )
        except Exception as exc:
            obs.log("ERROR", "file failed", batch_id=notification.name, error=repr(exc))
            raise
        _observe_file(report, time.perf_counter() - started, delivery, notification)
    if report.redeliver:
        raise Redeliver(f"file {notification.name}: {'; '.join(report.errors)}")


def _not_ours(notification: StorageNotification) -> str:
    """Why a notification is not a stream file to process (``""``: it is one)."""
    if not notification.finalized:
        return f"event {notification.event_type}"
    if notification.bucket != settings().need_bucket():
        return f"bucket {notification.bucket} is not the archive bucket"
    if not notification.name.startswith(STREAM_FILENAME_PREFIX):
        return f"not under {STREAM_FILENAME_PREFIX}"
    if stream_file_time(notification.name) is None:  # a file put there by hand, say
        return _MISNAMED
    return ""


_MISNAMED = "not a stream file name (the Cloud Storage subscription's)"


def _observe_file(
    report: FileReport, seconds: float, delivery: PushDelivery, notice: StorageNotification
) -> None:
    if not report.found:
        obs.log("WARNING", "file gone", batch_id=report.name, generation=notice.generation)
        return
    obs.log(
        "WARNING" if report.redeliver else "INFO",
        "file processed",
        subscription=delivery.subscription,
        delivery_attempt=delivery.delivery_attempt,
        **report.counts(),
        bytes=notice.size,
        duration_ms=round(seconds * 1000, 1),
        file_age_ms=None
        if notice.created_ms is None
        else time.time_ns() // 1_000_000 - notice.created_ms,
    )


def _observe(report: ProcessReport, seconds: float, delivery: PushDelivery) -> None:
    lag_ms = None if report.newest_ms is None else time.time_ns() // 1_000_000 - report.newest_ms
    obs.log(
        "WARNING" if report.failed_records else "INFO",
        "batch processed",
        subscription=delivery.subscription,
        delivery_attempt=delivery.delivery_attempt,
        **report.counts(),
        duration_ms=round(seconds * 1000, 1),
        lag_ms=lag_ms,
    )


def _trace(headers: Mapping[str, str]) -> obs.Trace | None:
    """The delivery's trace: the push request's ``traceparent`` or ``x-cloud-trace-context``
    (Pub/Sub push and Eventarc send them), else a binary CloudEvent's ``ce-traceparent``."""
    found = obs.trace_from_headers(headers)
    if found is None and "ce-traceparent" in headers:
        found = obs.trace_from_headers({"traceparent": headers["ce-traceparent"]})
    return found
