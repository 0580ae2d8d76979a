"""The interfaces between the application and the outside world (hexagonal ports)."""

import importlib
import warnings

from iotpipe.ports.archive import Bucket, Quarantine, RawArchive
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
    AggregateStore,
    ApplyResult,
    Contribution,
    RetryPolicy,
    Version,
    WindowKey,
)
from iotpipe.ports.stream import BatchSource, ReadingStream

__all__ = [
    "AggregateStore",
    "ApplyResult",
    "BatchSource",
    "Bucket",
    "Clock",
    "Contribution",
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
    "Version",
    "WindowKey",
]


def __getattr__(name: str) -> object:
    if name == "WindowStoreBase":
        # A deprecated alias, imported by name: ports sit below the adapters, and the layer
        # contracts hold for every real import.
        warnings.warn(
            "iotpipe.ports.WindowStoreBase is deprecated: import it from "
            "iotpipe.adapters.window_store",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("iotpipe.adapters.window_store").WindowStoreBase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
