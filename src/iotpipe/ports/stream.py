"""The stream between ingest and processing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from iotpipe.ports.records import PublishResult, RawBatch, StreamMessage


class ReadingStream(Protocol):
    """Publishes messages of raw readings, at least once, partitioned by ``message.key``."""

    def publish(self, messages: Sequence[StreamMessage]) -> PublishResult:
        """Publish every message; report (never drop) the ones that could not be published."""
        ...


@runtime_checkable
class BatchSource(Protocol):
    """A stream that hands out batches when asked (in-process streams; clouds push instead)."""

    def poll(self, max_records: int, timeout_s: float = 0.0) -> RawBatch | None:
        """Up to ``max_records`` records as one batch, or ``None`` if none came in time."""
        ...


@runtime_checkable
class CommittableSource(BatchSource, Protocol):
    """A source that hands out the same batch until it is committed (a durable log).

    Commit a batch once the store has applied it: a crash before that re-delivers it, which
    exactness makes harmless.
    """

    def commit(self, batch: RawBatch) -> None:
        """The batch is applied: never hand it out again."""
        ...
