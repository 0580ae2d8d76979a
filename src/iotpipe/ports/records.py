"""The values that cross the ports: raw records and batches, messages, pages, rejections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from iotpipe.domain import Reason

T = TypeVar("T")


class RawRecord(NamedTuple):
    """One record as the stream delivered it: its id, its bytes, and when it arrived.

    ``arrived_ms`` is the stream's own arrival time (Kinesis ``ApproximateArrivalTimestamp``,
    Pub/Sub ``publishTime``); lateness is judged against it, so a retry judges alike.
    """

    record_id: str
    data: bytes
    arrived_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Records delivered together; ``batch_id`` is derived from the source, stable on retry."""

    batch_id: str
    records: tuple[RawRecord, ...]

    def arrived_ms(self) -> int | None:
        """The earliest arrival time in the batch (its archive partition), if known."""
        times = [r.arrived_ms for r in self.records if r.arrived_ms is not None]
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """What ingest publishes: a JSON array of one device's readings, keyed by device."""

    key: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Which messages (by index) the stream did not accept after its retries, and why."""

    failed: tuple[int, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A payload that was not counted, with where it came from and why."""

    record_id: str
    index: int
    reason: Reason
    message: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and the opaque cursor of the next (``None`` on the last page)."""

    items: Sequence[T]
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """A device the store has seen, and the event time of its latest reading (``None`` while
    its first window is still being written)."""

    device_id: str
    last_seen_ms: int | None


@dataclass(frozen=True, slots=True)
class StoreOps:
    """How many reads and writes a store performed (for cost reporting and benchmarks)."""

    reads: int = 0
    writes: int = 0
    extra: dict[str, int] = field(default_factory=dict)
