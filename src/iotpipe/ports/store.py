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
from contextvars import ContextVar
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

    def apply(
        self, contributions: Sequence[Contribution], deadline: Deadline | None = None
    ) -> ApplyResult:
        """Absorb each contribution exactly once; conflicting writers are retried, then reported.

        With a ``deadline``, windows are written one at a time and none is started after it
        (nor a read, nor a retry round): those left are failed with ``"deadline: ..."``.
        Backends see it through :meth:`_out_of_time` (to bound their own retries).
        """
        absorbed: dict[WindowKey, Absorption] = {}
        written: set[WindowKey] = set()
        failed: dict[WindowKey, str] = {}
        pending = list(contributions)
        retries = 0
        token = _DEADLINE.set(deadline)
        try:
            for attempt in range(1, self._retry.attempts + 1):
                pending = self._apply_round(pending, absorbed, written, failed, deadline)
                if not pending or self._out_of_time():
                    break
                retries += len(pending)
                self._sleep(self._retry.delay(attempt))
        finally:
            _DEADLINE.reset(token)
        reason = DEADLINE_PASSED if self._out_of_time(deadline) else _RETRIES_EXHAUSTED
        for contribution in pending:
            failed[contribution.key] = reason
        return ApplyResult(absorbed, frozenset(written), failed, retries)

    def _out_of_time(self, deadline: Deadline | None = None) -> bool:
        """Whether the deadline of the ``apply`` in progress (or the one given) has passed."""
        deadline = deadline or _DEADLINE.get()
        return deadline is not None and deadline.passed()

    def _apply_round(
        self,
        contributions: Sequence[Contribution],
        absorbed: dict[WindowKey, Absorption],
        written: set[WindowKey],
        failed: dict[WindowKey, str],
        deadline: Deadline | None = None,
    ) -> list[Contribution]:
        if not contributions:
            return []
        keys = list(map(_KEY, contributions))
        if self._out_of_time(deadline):
            failed.update(dict.fromkeys(keys, DEADLINE_PASSED))
            return []
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
        outcomes = self._save_all(saves) if deadline is None else self._save_until(saves, deadline)
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

    def _save_until(
        self, windows: Sequence[tuple[HourlyWindow, Version]], deadline: Deadline
    ) -> list[IotPipeError | None]:
        """As :meth:`_save_all`, one window at a time, starting none once ``deadline`` passed
        (a backend's batched writes are given up for the check between windows)."""
        outcomes: list[IotPipeError | None] = []
        for window in windows:
            if deadline.passed():
                outcomes.append(StoreUnavailable(DEADLINE_PASSED))
            else:
                outcomes += self._save_all([window])
        return outcomes

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


#: Why a window was not written: the caller's deadline passed before its write could start.
DEADLINE_PASSED = "deadline: not started, the time left was too short (retried later)"
_RETRIES_EXHAUSTED = "conflict: too many concurrent writers, retries exhausted"
#: The deadline of the ``apply`` running in this thread (or task), for the backends' hooks.
_DEADLINE: ContextVar[Deadline | None] = ContextVar("iotpipe_store_deadline", default=None)

_KEY = itemgetter(0, 1)  # a contribution's (device_id, hour_ms), at C speed
_READINGS = itemgetter(2)


def _describe(exc: IotPipeError) -> str:
    kind = "unavailable" if isinstance(exc, StoreUnavailable) else type(exc).__name__
    return f"{kind}: {exc}"
