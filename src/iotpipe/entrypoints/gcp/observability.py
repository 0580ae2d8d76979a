"""Structured logs on stdout in Cloud Logging's JSON format, with trace correlation.

Cloud Functions (2nd gen) ships each stdout line to Cloud Logging; a line that is a JSON object
becomes a structured entry: ``severity`` and ``message`` are lifted into the entry, the special
keys ``logging.googleapis.com/trace``, ``.../spanId``, ``.../trace_sampled`` and ``.../labels``
into its trace and labels, and every other key stays in ``jsonPayload`` (where log-based
metrics read the per-batch counts). No client library is needed (google-cloud-logging would add
~100 ms to a cold start for the same lines).

Traces come from the ``traceparent`` header (W3C) or, failing that, ``X-Cloud-Trace-Context``
(``TRACE/SPAN;o=1``, the span in decimal). Python ``logging`` records of the ``iotpipe`` logger
(e.g. the API's unexpected errors, with their traceback) are written the same way, with the
trace of the request being served.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
LABELS_KEY = "logging.googleapis.com/labels"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?$")


@dataclass(frozen=True, slots=True)
class Trace:
    """A request's trace: id (32 hex), span (16 hex, if known) and whether it is sampled."""

    trace_id: str
    span_id: str | None = None
    sampled: bool = False

    def fields(self, project: str | None) -> dict[str, Any]:
        """The special log keys that tie an entry to this trace."""
        trace = f"projects/{project}/traces/{self.trace_id}" if project else self.trace_id
        out: dict[str, Any] = {TRACE_KEY: trace, SAMPLED_KEY: self.sampled}
        if self.span_id:
            out[SPAN_KEY] = self.span_id
        return out


def trace_from_headers(headers: Mapping[str, str]) -> Trace | None:
    """The trace of a request (header names lower-case), ``None`` if it carries none."""
    parent = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if parent and parent.group(1) != "0" * 32:
        return Trace(parent.group(1), parent.group(2), int(parent.group(3), 16) & 1 == 1)
    cloud = _CLOUD_TRACE.match(headers.get("x-cloud-trace-context", "").strip())
    if cloud:
        span = cloud.group(2)
        span_hex = f"{int(span):016x}" if span and int(span) < 2**64 else None
        return Trace(cloud.group(1).lower(), span_hex, cloud.group(3) == "1")
    return None


@dataclass(frozen=True, slots=True)
class _Context:
    function: str
    project: str | None
    trace: Trace | None


_current: contextvars.ContextVar[_Context | None] = contextvars.ContextVar(
    "iotpipe_gcp_log_context", default=None
)


@contextmanager
def serving(function: str, project: str | None, trace: Trace | None) -> Iterator[None]:
    """Tag every log line written while serving one request with its function and trace."""
    token = _current.set(_Context(function, project, trace))
    try:
        yield
    finally:
        _current.reset(token)


def log(severity: str, message: str, **fields: Any) -> None:
    """One structured log line (with the current function's label and trace, if any)."""
    entry: dict[str, Any] = {"severity": severity, "message": message, "time": _now(), **fields}
    context = _current.get()
    if context is not None:
        entry[LABELS_KEY] = {"function": context.function}
        if context.trace is not None:
            entry.update(context.trace.fields(context.project))
    sys.stdout.write(orjson.dumps(entry, default=str).decode() + "\n")
    sys.stdout.flush()


class CloudLoggingHandler(logging.Handler):
    """Writes ``logging`` records as structured lines (tracebacks in ``message``, where Error
    Reporting finds them)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            log(_SEVERITY.get(record.levelno, "DEFAULT"), message, logger=record.name)
        except Exception:  # a log line must never break the request
            self.handleError(record)


_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


def configure_logging() -> None:
    """Send the ``iotpipe`` logger's records through :class:`CloudLoggingHandler` (once)."""
    logger = logging.getLogger("iotpipe")
    if not any(isinstance(h, CloudLoggingHandler) for h in logger.handlers):
        logger.addHandler(CloudLoggingHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False  # functions-framework's root handlers would print it again


def _now() -> str:
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"
