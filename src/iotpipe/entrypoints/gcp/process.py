"""The process function (CloudEvent ``google.cloud.pubsub.topic.v1.messagePublished``): one
Pub/Sub message -> the process use case -> Firestore, the Cloud Storage archive and quarantine.

Acknowledgement is the function's outcome: returning acknowledges the message, raising makes
Pub/Sub deliver it again (with the subscription's backoff, then to its dead-letter topic).

- Bad data (malformed JSON, invalid readings, too late, conflicting duplicates) is quarantined
  and the message acknowledged: a poison message never loops.
- A transient failure (the store or the archive unavailable, conflicts beyond the retries)
  leaves some readings unapplied: the function raises :class:`Redeliver`. On the next delivery
  the windows already written absorb their readings again as duplicates, which changes nothing.
- An event that is not a Pub/Sub delivery, or an error retrying cannot fix (permission denied,
  a missing index), raises too: after the subscription's maximum delivery attempts the message
  rests on the dead-letter topic, for inspection and redrive.

One summary line per message (``"batch processed"``) carries the same counts as on AWS; the
log-based metrics are derived from it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from iotpipe.adapters.gcp.events import NotAPubSubEvent, batch_from_push
from iotpipe.application import ProcessReport
from iotpipe.entrypoints.gcp import bootstrap
from iotpipe.entrypoints.gcp import observability as obs
from iotpipe.entrypoints.gcp.clients import settings

FUNCTION = "process"


class Redeliver(RuntimeError):
    """Raised so that Pub/Sub delivers the message again: some readings are not applied yet."""


service = bootstrap.process_service  # its former name


def handle(event: Any) -> None:
    """Process one pushed message; raise to have it delivered again (see the module docstring).

    ``event`` is the CloudEvent functions-framework passes (its ``data`` is the delivery).
    """
    started = time.perf_counter()
    data = event.data if isinstance(event.data, Mapping) else {}
    with obs.serving(FUNCTION, settings().project, _trace(event)):
        try:
            batch = batch_from_push(data)
        except NotAPubSubEvent as exc:
            obs.log("ERROR", "not a Pub/Sub message delivery", event_id=_id(event), error=str(exc))
            raise
        try:
            report = bootstrap.process_service().process(batch)
        except Exception as exc:
            obs.log("ERROR", "batch failed", batch_id=batch.batch_id, error=repr(exc))
            raise
        _observe(report, time.perf_counter() - started, data)
    if report.failed_records:
        raise Redeliver(f"message {batch.batch_id}: {'; '.join(report.errors)}")


def _observe(report: ProcessReport, seconds: float, data: Mapping[str, Any]) -> None:
    lag_ms = None if report.newest_ms is None else time.time_ns() // 1_000_000 - report.newest_ms
    obs.log(
        "WARNING" if report.failed_records else "INFO",
        "batch processed",
        subscription=data.get("subscription"),
        delivery_attempt=data.get("deliveryAttempt"),
        **report.counts(),
        duration_ms=round(seconds * 1000, 1),
        lag_ms=lag_ms,
    )


def _trace(event: Any) -> obs.Trace | None:
    """The delivery's trace: the event's ``traceparent`` extension, else the push request's
    headers (Pub/Sub push and Eventarc send ``traceparent``)."""
    parent = _attribute(event, "traceparent")
    if parent:
        return obs.trace_from_headers({"traceparent": parent})
    try:
        import flask
    except ImportError:  # pragma: no cover - functions-framework always brings flask
        return None
    if not flask.has_request_context():
        return None
    return obs.trace_from_headers({k.lower(): v for k, v in flask.request.headers.items()})


def _id(event: Any) -> str | None:
    return _attribute(event, "id")


def _attribute(event: Any, name: str) -> str | None:
    try:
        value = event[name]
    except (KeyError, TypeError):
        return None
    return None if value is None else str(value)
