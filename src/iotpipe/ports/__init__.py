"""The interfaces between the application and the outside world (hexagonal ports)."""

from iotpipe.ports.archive import CheckedArchive, Quarantine, RawArchive, UnreadableObject
from iotpipe.ports.clock import Clock
from iotpipe.ports.records import (
    DeviceSummary,
    Page,
    PublishResult,
    RawBatch,
    RawRecord,
    Rejection,
    StoreOps,
    StreamMessage,
)
from iotpipe.ports.store import (
    DEADLINE_PASSED,
    AggregateStore,
    ApplyResult,
    Contribution,
    Deadline,
    RetryPolicy,
    Version,
    WindowKey,
    WindowStoreBase,
)
from iotpipe.ports.stream import BatchSource, CommittableSource, ReadingStream

__all__ = [
    "DEADLINE_PASSED",
    "AggregateStore",
    "ApplyResult",
    "BatchSource",
    "CheckedArchive",
    "Clock",
    "CommittableSource",
    "Contribution",
    "Deadline",
    "DeviceSummary",
    "Page",
    "PublishResult",
    "Quarantine",
    "RawArchive",
    "RawBatch",
    "RawRecord",
    "ReadingStream",
    "Rejection",
    "RetryPolicy",
    "StoreOps",
    "StreamMessage",
    "UnreadableObject",
    "Version",
    "WindowKey",
    "WindowStoreBase",
]
