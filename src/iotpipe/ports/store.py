"""The aggregate store: where hourly windows and each device's latest reading live.

:class:`AggregateStore` is what the application needs. :class:`WindowStoreBase` carries the
logic every backend shares: absorb each contribution into its window exactly once with
optimistic concurrency (read the window and its version, absorb, write only if the version is
unchanged, retry on conflict). Backends implement only the ``_load``/``_save``/``_register``
hooks and the queries (and may override ``_save_all`` to write a round's windows together),
so exactness is proven once, in the domain, for all of them.

Store cost scales with windows, not readings: one write per window a batch changes (none for
a replay), plus one registry write the first time a device is ever seen. A device's latest
reading lives in its newest window, so it costs no extra write.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple, Protocol

from iotpipe.domain import (
    Absorption,
    HourlyWindow,
    IotPipeError,
    Reading,
    StoreUnavailable,
    WindowConflict,
    absorb_all,
)
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
    written: frozenset[WindowKey] = frozenset()
    failed: Mapping[WindowKey, str] = field(default_factory=dict)
    retries: int = 0
    """Window writes repeated because another writer got there first."""


class AggregateStore(Protocol):
    """Hourly windows and latest readings, updated idempotently and safely under concurrency."""

    def apply(self, contributions: Sequence[Contribution]) -> ApplyResult:
        """Absorb each contribution into its window exactly once; report windows that failed."""
        ...

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's windows with ``start_ms <= hour < end_ms``, in hour order."""
        ...

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """Every device's window for one hour, in device order."""
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


class WindowStoreBase(ABC):
    """Shared ``apply`` logic over per-backend hooks (see the module docstring)."""

    def __init__(
        self, retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def apply(self, contributions: Sequence[Contribution]) -> ApplyResult:
        """Absorb each contribution exactly once; conflicting writers are retried, then reported."""
        absorbed: dict[WindowKey, Absorption] = {}
        written: set[WindowKey] = set()
        failed: dict[WindowKey, str] = {}
        pending = list(contributions)
        retries = 0
        for attempt in range(1, self._retry.attempts + 1):
            pending = self._apply_round(pending, absorbed, written, failed)
            if not pending:
                break
            retries += len(pending)
            self._sleep(self._retry.delay(attempt))
        for contribution in pending:
            failed[contribution.key] = "conflict: too many concurrent writers, retries exhausted"
        return ApplyResult(absorbed, frozenset(written), failed, retries)

    def _apply_round(
        self,
        contributions: Sequence[Contribution],
        absorbed: dict[WindowKey, Absorption],
        written: set[WindowKey],
        failed: dict[WindowKey, str],
    ) -> list[Contribution]:
        if not contributions:
            return []
        keys = list(map(_KEY, contributions))
        try:
            loaded = self._load(keys)
        except IotPipeError as exc:
            failed.update({key: _describe(exc) for key in keys})
            return []
        found = list(map(loaded.get, keys))
        windows = [HourlyWindow(*key) if f is None else f[0] for key, f in zip(keys, found)]  # noqa: B905
        updates = absorb_all(windows, list(map(_READINGS, contributions)))
        changes: list[tuple[WindowKey, Contribution, Absorption]] = []
        saves: list[tuple[HourlyWindow, Version]] = []
        for contribution, key, window, stored, (updated, absorption) in zip(  # noqa: B905
            contributions, keys, windows, found, updates
        ):
            if updated is window:  # nothing new: no write at all
                absorbed[key] = absorption
            else:
                changes.append((key, contribution, absorption))
                saves.append((updated, None if stored is None else stored[1]))
        outcomes = self._save_all(saves)
        conflicted: list[Contribution] = []
        for (key, contribution, absorption), outcome in zip(changes, outcomes, strict=True):
            if outcome is None:
                absorbed[key] = absorption
                written.add(key)
            elif isinstance(outcome, WindowConflict):
                conflicted.append(contribution)
            else:
                failed[key] = _describe(outcome)
        return conflicted

    def _save_all(
        self, windows: Sequence[tuple[HourlyWindow, Version]]
    ) -> list[IotPipeError | None]:
        """Write each changed window as :meth:`_save` does; per window ``None`` (written),
        :class:`WindowConflict` (retry it) or another :class:`IotPipeError` (failed).

        A new window (``expected`` is ``None``) first registers its device. Backends that can
        write several windows in one round trip or transaction override this; each window's
        write must stay conditional on its own version.
        """
        outcomes: list[IotPipeError | None] = []
        for window, expected in windows:
            try:
                if expected is None:  # a new window: make sure its device is listed
                    self._register(window.device_id)
                self._save(window, expected)
            except IotPipeError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    @abstractmethod
    def _load(self, keys: Sequence[WindowKey]) -> dict[WindowKey, tuple[HourlyWindow, Version]]:
        """The stored windows among ``keys`` with their versions (missing keys are absent)."""

    @abstractmethod
    def _save(self, window: HourlyWindow, expected: Version) -> None:
        """Write the window if its stored version is still ``expected``, else raise
        :class:`WindowConflict`. Raise :class:`StoreUnavailable` for transient failures."""

    @abstractmethod
    def _register(self, device_id: str) -> None:
        """List the device among those seen (idempotent; cheap when already listed)."""


_KEY = itemgetter(0, 1)  # a contribution's (device_id, hour_ms), at C speed
_READINGS = itemgetter(2)


def _describe(exc: IotPipeError) -> str:
    kind = "unavailable" if isinstance(exc, StoreUnavailable) else type(exc).__name__
    return f"{kind}: {exc}"
