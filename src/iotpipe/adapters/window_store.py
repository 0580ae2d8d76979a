"""What every aggregate store backend shares: exactly-once absorption, metering, limits.

:class:`WindowStoreBase` absorbs each contribution into its window exactly once with optimistic
concurrency: read the windows and their versions, absorb, write each only if its version is
unchanged, retry the conflicted ones. Backends implement only the ``_load``/``_save``/
``_register`` hooks and the queries (and may override ``_save_all`` to write a round's windows
together), so exactness is proven once, in the domain, for all of them. With a deadline (a
serverless function's time left), no read, write or retry starts after it: the windows left
are reported failed, so that only they are delivered again.

A backend that stores identities apart from the window (format 2, see
:mod:`iotpipe.application.codecs.heads`) loads only the recent ones (:attr:`Stored.horizon`
says up to where the others are sealed away); the round then asks it (:meth:`_complete`) for
the rest of exactly those windows that were offered a reading at or below their horizon, so
every window is absorbed with every identity its offered readings could repeat. A backend sees
each write with what it was read as (:class:`Save`), to keep its fleet totals: each write adds
the window's growth to a total of its hour exactly once (:meth:`FleetTotal.grown
<iotpipe.domain.FleetTotal.grown>`).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from operator import itemgetter
from typing import Any, NamedTuple

from iotpipe.domain import Absorption, HourlyWindow, IotPipeError, StoreUnavailable, WindowConflict
from iotpipe.domain.kernels import absorb_all
from iotpipe.ports import (
    DEADLINE_PASSED,
    ApplyResult,
    Contribution,
    Deadline,
    RetryPolicy,
    StoreOps,
    Version,
    WindowKey,
)

_Saved = tuple[WindowKey, Contribution, Absorption]


class Stored(NamedTuple):
    """A window as a backend read it.

    ``window`` has the complete statistics and latest reading. Its ``seen`` is complete when
    ``horizon`` is ``None``; otherwise it may lack identities at offsets ``<= horizon`` (sealed
    into segments not read), and a reading offered at such an offset needs :meth:`_complete`.
    ``head`` is the backend's own (what it needs to write the window back).
    """

    window: HourlyWindow
    version: Version
    horizon: int | None = None
    head: Any = None


class Save(NamedTuple):
    """One window write of a round: the absorbed window, the version it must still have, and
    how it was read (``None``: it did not exist)."""

    window: HourlyWindow
    expected: Version
    before: Stored | None


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
        done = _Round()
        token = _DEADLINE.set(deadline)
        try:
            pending, retries = self._rounds(list(contributions), done, deadline)
        finally:
            _DEADLINE.reset(token)
        reason = DEADLINE_PASSED if self._out_of_time(deadline) else _RETRIES_EXHAUSTED
        done.failed.update(dict.fromkeys(map(_KEY, pending), reason))
        return ApplyResult(done.absorbed, frozenset(done.written), done.failed, retries)

    def _rounds(
        self, pending: list[Contribution], done: _Round, deadline: Deadline | None
    ) -> tuple[list[Contribution], int]:
        """Rounds until no write conflicts, the attempts are spent or the deadline passed;
        the contributions left and the number of window writes retried."""
        retries = 0
        for attempt in range(1, self._retry.attempts + 1):
            pending = self._apply_round(pending, done, deadline)
            if not pending or self._out_of_time(deadline):
                break
            retries += len(pending)
            self._sleep(self._retry.delay(attempt))
        return pending, retries

    def _out_of_time(self, deadline: Deadline | None = None) -> bool:
        """Whether the deadline of the ``apply`` in progress (or the one given) has passed."""
        deadline = deadline or _DEADLINE.get()
        return deadline is not None and deadline.passed()

    def _apply_round(
        self, contributions: Sequence[Contribution], done: _Round, deadline: Deadline | None
    ) -> list[Contribution]:
        """One read-absorb-write round; the contributions whose write conflicted."""
        if not contributions:
            return []
        keys = list(map(_KEY, contributions))
        if self._out_of_time(deadline):
            done.failed.update(dict.fromkeys(keys, DEADLINE_PASSED))
            return []
        try:
            stored = self._read(keys, contributions, strong=bool(done.conflicted))
        except IotPipeError as exc:
            done.failed.update({key: _describe(exc) for key in keys})
            return []
        windows = [HourlyWindow(*key) if s is None else s.window for key, s in zip(keys, stored)]  # noqa: B905
        updates = absorb_all(windows, list(map(_READINGS, contributions)))
        saving: list[_Saved] = []
        saves: list[Save] = []
        for contribution, window, found, (updated, absorption) in zip(  # noqa: B905
            contributions, windows, stored, updates
        ):
            if updated is window:  # nothing new: no write at all
                done.absorbed[contribution.key] = absorption
            else:
                saving.append((contribution.key, contribution, absorption))
                saves.append(Save(updated, None if found is None else found.version, found))
        outcomes = self._save_all(saves) if deadline is None else self._save_until(saves, deadline)
        return done.settle(saving, outcomes)

    def _read(
        self, keys: Sequence[WindowKey], contributions: Sequence[Contribution], strong: bool
    ) -> list[Stored | None]:
        """The stored windows of a round, completed where an offered reading needs it."""
        loaded = self._load(keys, strong=strong)
        stored = [_as_stored(loaded.get(key)) for key in keys]
        need = {
            key: s
            for key, s, c in zip(keys, stored, contributions)  # noqa: B905
            if s is not None and s.horizon is not None and _earliest(c) <= s.horizon
        }
        if not need:
            return stored
        completed = self._complete(need)
        return [completed.get(key, s) if s is not None else None for key, s in zip(keys, stored)]  # noqa: B905

    def _complete(self, windows: dict[WindowKey, Stored]) -> dict[WindowKey, Stored]:
        """The same windows with every identity in ``seen`` (backends that seal identities
        away override this; by default windows are always complete)."""
        return windows

    def _save_until(self, windows: Sequence[Save], deadline: Deadline) -> list[IotPipeError | None]:
        """As :meth:`_save_all`, one window at a time, starting none once ``deadline`` passed
        (a backend's batched writes are given up for the check between windows)."""
        outcomes: list[IotPipeError | None] = []
        for window in windows:
            if deadline.passed():
                outcomes.append(StoreUnavailable(DEADLINE_PASSED))
            else:
                outcomes += self._save_all([window])
        return outcomes

    def _save_all(self, windows: Sequence[Save]) -> list[IotPipeError | None]:
        """Write each changed window as :meth:`_save` does; per window ``None`` (written),
        :class:`WindowConflict` (retry it) or another :class:`IotPipeError` (failed).

        A new window (``expected`` is ``None``) first registers its device. Backends that can
        write several windows in one round trip or transaction override this; each window's
        write must stay conditional on its own version.
        """
        outcomes: list[IotPipeError | None] = []
        for window, expected, _ in windows:
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
    def _load(
        self, keys: Sequence[WindowKey], *, strong: bool = False
    ) -> Mapping[WindowKey, Stored | tuple[HourlyWindow, Version]]:
        """The stored windows among ``keys`` with their versions (missing keys are absent).

        ``strong`` asks for a strongly consistent read: the round retries windows whose write
        conflicted (a backend may read eventually consistent otherwise: a stale read only ever
        costs a conflict, since every write is conditional on the version read)."""

    @abstractmethod
    def _save(self, window: HourlyWindow, expected: Version) -> None:
        """Write the window if its stored version is still ``expected``, else raise
        :class:`WindowConflict`. Raise :class:`StoreUnavailable` for transient failures."""

    @abstractmethod
    def _register(self, device_id: str) -> None:
        """List the device among those seen (idempotent; cheap when already listed)."""


class _Round:
    """What an ``apply`` has settled so far, window by window."""

    def __init__(self) -> None:
        self.absorbed: dict[WindowKey, Absorption] = {}
        self.written: set[WindowKey] = set()
        self.failed: dict[WindowKey, str] = {}
        self.conflicted = 0

    def settle(
        self, saved: Sequence[_Saved], outcomes: Sequence[IotPipeError | None]
    ) -> list[Contribution]:
        """Record each write's outcome; the contributions whose write conflicted."""
        conflicted: list[Contribution] = []
        for (key, contribution, absorption), outcome in zip(saved, outcomes, strict=True):
            if outcome is None:
                self.absorbed[key] = absorption
                self.written.add(key)
            elif isinstance(outcome, WindowConflict):
                conflicted.append(contribution)
                self.conflicted += 1
            else:
                self.failed[key] = _describe(outcome)
        return conflicted


class Meter:
    """Counts of a store's reads, writes, requests and conflicts, by name (thread-safe)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, **amounts: int) -> None:
        """Add to the named counts."""
        with self._lock:
            self._counts.update(amounts)

    def ops(self, reads: str = "reads", writes: str = "writes") -> StoreOps:
        """The counts as :class:`~iotpipe.ports.StoreOps`: the ``reads`` and ``writes`` counts,
        every other count in ``extra``."""
        with self._lock:
            counts = dict(self._counts)
        extra = {k: v for k, v in counts.items() if k not in (reads, writes)}
        return StoreOps(counts.get(reads, 0), counts.get(writes, 0), extra)


def check_limit(limit: int) -> None:
    """Refuse a page size below 1 (every store's queries page)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")


_RETRIES_EXHAUSTED = "conflict: too many concurrent writers, retries exhausted"
#: The deadline of the ``apply`` running in this thread (or task), for the backends' hooks.
_DEADLINE: ContextVar[Deadline | None] = ContextVar("iotpipe_store_deadline", default=None)

_KEY = itemgetter(0, 1)  # a contribution's (device_id, hour_ms), at C speed
_READINGS = itemgetter(2)


def _as_stored(found: Stored | tuple[HourlyWindow, Version] | None) -> Stored | None:
    if found is None or isinstance(found, Stored):
        return found
    return Stored(*found)


def _earliest(contribution: Contribution) -> int:
    """The smallest offset in its hour among a contribution's readings."""
    readings = contribution.readings
    times = getattr(readings, "times", None)  # the columns of a decoded batch
    first = min(times) if times is not None else min(r.timestamp_ms for r in readings)
    return first - contribution.hour_ms


def _describe(exc: IotPipeError) -> str:
    kind = "unavailable" if isinstance(exc, StoreUnavailable) else type(exc).__name__
    return f"{kind}: {exc}"
