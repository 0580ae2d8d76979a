"""The library's exception hierarchy and the reason codes of rejected readings."""

from __future__ import annotations

from enum import StrEnum


class IotPipeError(Exception):
    """Base of every error iotpipe raises on purpose."""


class InvalidReading(IotPipeError):
    """A payload is not a valid reading; carries a machine-readable reason and a message."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class WindowConflict(IotPipeError):
    """Another writer changed a window between our read and our write (retry it)."""


class StoreUnavailable(IotPipeError):
    """The aggregate store could not be reached or refused the work (transient)."""


class StreamUnavailable(IotPipeError):
    """The stream could not accept or deliver records (transient)."""


class StreamFull(StreamUnavailable):
    """The stream's backlog is at its bound: nothing was accepted; try again in
    ``retry_after_s`` seconds (backpressure, not an outage)."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ArchiveUnavailable(IotPipeError):
    """The raw archive or quarantine could not be written or read (transient)."""


class Reason(StrEnum):
    """Stable, machine-readable codes for why a payload was not counted."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_DEVICE_ID = "missing_device_id"
    INVALID_DEVICE_ID = "invalid_device_id"
    MISSING_TIMESTAMP = "missing_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    INVALID_METRIC = "invalid_metric"
    METRIC_OUT_OF_RANGE = "metric_out_of_range"
    NO_METRICS = "no_metrics"
    INVALID_LOCATION = "invalid_location"
    TOO_LATE = "too_late"
    FROM_FUTURE = "from_future"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    WINDOW_FULL = "window_full"
    CORRUPT_RECORD = "corrupt_record"
