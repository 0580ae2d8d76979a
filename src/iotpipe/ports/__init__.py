"""The interfaces between the application and the outside world (hexagonal ports)."""

from typing import TYPE_CHECKING

from iotpipe._exports import lazy_exports
from iotpipe.ports.archive import (
    ArchiveFiles,
    Bucket,
    CheckedArchive,
    Quarantine,
    RawArchive,
    UnreadableObject,
)
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
from iotpipe.ports.schema import SchemaKeeper, SchemaRecords
from iotpipe.ports.store import (
    DEADLINE_PASSED,
    AggregateStore,
    ApplyResult,
    Contribution,
    Deadline,
    RetryPolicy,
    Version,
    WindowKey,
)
from iotpipe.ports.stream import BatchSource, CommittableSource, ReadingStream

__all__ = [
    "DEADLINE_PASSED",
    "AggregateStore",
    "ApplyResult",
    "ArchiveFiles",
    "BatchSource",
    "Bucket",
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
    "SchemaKeeper",
    "SchemaRecords",
    "StoreOps",
    "StreamMessage",
    "UnreadableObject",
    "Version",
    "WindowKey",
]


if not TYPE_CHECKING:  # a former name, served from the adapters by name: ports sit below
    # them, and the layer contracts hold for every real import
    __getattr__, __dir__ = lazy_exports(
        __name__, {}, moved={"WindowStoreBase": "iotpipe.adapters.window_store"}
    )
