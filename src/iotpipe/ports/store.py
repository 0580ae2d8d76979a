"""The aggregate store: where hourly windows and each device's latest reading live.

:class:`AggregateStore` is what the application needs. The logic every backend shares
(exactly-once absorption under optimistic concurrency) is
:class:`~iotpipe.adapters.window_store.WindowStoreBase`, beside the backends.

Store cost scales with windows, not readings: one write per window a batch changes (none for
a replay), plus one registry write the first time a device is ever seen. A device's latest
reading lives in its newest window, so it costs no extra write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from iotpipe.domain import Absorption, FleetTotal, HourlyWindow, Reading
from iotpipe.ports.records import DeviceSummary, Page, StoreOps

WindowKey = tuple[str, int]
"""``(device_id, hour_ms)``."""


class Contribution(NamedTuple):
    """Readings of one batch for one window, offered for absorption (a named tuple: a batch
    makes one per window it touches)."""

    device_id: str
    hour_ms: int
    readings: Sequence[Reading]

    @property
    def key(self) -> WindowKey:
        """The window the readings belong to."""
        return (self.device_id, self.hour_ms)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What :meth:`AggregateStore.apply` did: per window, how readings were absorbed or why not."""

    absorbed: Mapping[WindowKey, Absorption] = field(default_factory=dict)
    """Per window, how its contribution's readings were taken (positions in ``readings``)."""
    written: frozenset[WindowKey] = frozenset()
    failed: Mapping[WindowKey, str] = field(default_factory=dict)
    retries: int = 0
    """Window writes repeated because another writer got there first."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in time (``time.monotonic()`` seconds) after which no new store call starts.

    A serverless function has a hard timeout: work still running then is lost whole, and the
    platform retries the whole batch. A deadline lets a store stop in time instead, and report
    what it did not start as failed, so that only that part is retried.
    """

    at: float

    @staticmethod
    def after(seconds: float) -> Deadline:
        """The deadline ``seconds`` from now (at once if ``seconds`` is not positive)."""
        return Deadline(time.monotonic() + max(0.0, seconds))

    def passed(self) -> bool:
        """Whether the deadline has passed: start nothing more."""
        return time.monotonic() >= self.at


class AggregateStore(Protocol):
    """Hourly windows and latest readings, updated idempotently and safely under concurrency."""

    def apply(
        self, contributions: Sequence[Contribution], deadline: Deadline | None = None
    ) -> ApplyResult:
        """Absorb each contribution into its window exactly once; report windows that failed.

        With a ``deadline``, no read or write starts after it: the windows not written by then
        are reported failed (``"deadline: ..."``), like any transient failure.
        """
        ...

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's windows with ``start_ms <= hour < end_ms``, in hour order.

        Windows returned by queries carry their statistics and latest reading; their ``seen``
        may be empty (identities are the store's business, read only to absorb readings)."""
        ...

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """Every device's window for one hour, in device order."""
        ...

    def fleet_total(self, hour_ms: int) -> FleetTotal:
        """Every device's window of one hour merged, and how many windows that is.

        Kept up to date as windows are written (never by reading every window, except on
        Firestore with its fleet lanes off): exactly the merge of the hour's windows, each
        counted once, though a backend that folds it asynchronously (DynamoDB: from the
        table's stream) may lag the windows by seconds.
        """
        ...

    def latest(self, device_id: str) -> Reading | None:
        """The device's reading with the greatest event time, if any (from its newest window)."""
        ...

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """Devices seen so far, in device order, with the event time of their latest reading."""
        ...

    def ops(self) -> StoreOps:
        """Reads and writes performed so far."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff, for write conflicts."""

    attempts: int = 8
    base_delay_s: float = 0.005
    max_delay_s: float = 0.5

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


Version = int | str | None
"""A backend's concurrency token for a window (``None``: the window does not exist yet)."""


#: Why a window was not written: the caller's deadline passed before its write could start.
DEADLINE_PASSED = "deadline: not started, the time left was too short (retried later)"
