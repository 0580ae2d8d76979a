"""What every aggregate store backend shares: exactly-once absorption, metering, limits.

:class:`WindowStoreBase` absorbs each contribution into its window exactly once with optimistic
concurrency: read the windows and their versions, absorb, write each only if its version is
unchanged, retry the conflicted ones. Backends implement only the ``_load``/``_save``/
``_register`` hooks and the queries (and may override ``_save_all`` to write a round's windows
together), so exactness is proven once, in the domain, for all of them.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from operator import itemgetter

from iotpipe.domain import Absorption, HourlyWindow, IotPipeError, StoreUnavailable, WindowConflict
from iotpipe.domain.kernels import absorb_all
from iotpipe.ports import ApplyResult, Contribution, RetryPolicy, StoreOps, Version, WindowKey

_Saved = tuple[WindowKey, Contribution, Absorption]


class WindowStoreBase(ABC):
    """Shared ``apply`` logic over per-backend hooks (see the module docstring)."""

    def __init__(
        self, retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def apply(self, contributions: Sequence[Contribution]) -> ApplyResult:
        """Absorb each contribution exactly once; conflicting writers are retried, then reported."""
        round_ = _Round()
        pending = list(contributions)
        retries = 0
        for attempt in range(1, self._retry.attempts + 1):
            pending = self._apply_round(pending, round_)
            if not pending:
                break
            retries += len(pending)
            self._sleep(self._retry.delay(attempt))
        for contribution in pending:
            round_.failed[contribution.key] = (
                "conflict: too many concurrent writers, retries exhausted"
            )
        return ApplyResult(round_.absorbed, frozenset(round_.written), round_.failed, retries)

    def _apply_round(
        self, contributions: Sequence[Contribution], done: _Round
    ) -> list[Contribution]:
        """One read-absorb-write round; the contributions whose write conflicted."""
        if not contributions:
            return []
        keys = list(map(_KEY, contributions))
        try:
            loaded = self._load(keys)
        except IotPipeError as exc:
            done.failed.update({key: _describe(exc) for key in keys})
            return []
        stored = list(map(loaded.get, keys))
        windows = [HourlyWindow(*key) if s is None else s[0] for key, s in zip(keys, stored)]  # noqa: B905
        updates = absorb_all(windows, list(map(_READINGS, contributions)))
        saving: list[_Saved] = []
        saves: list[tuple[HourlyWindow, Version]] = []
        for contribution, window, found, (updated, absorption) in zip(  # noqa: B905
            contributions, windows, stored, updates
        ):
            if updated is window:  # nothing new: no write at all
                done.absorbed[contribution.key] = absorption
            else:
                saving.append((contribution.key, contribution, absorption))
                saves.append((updated, None if found is None else found[1]))
        return done.settle(saving, self._save_all(saves))

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


class _Round:
    """What an ``apply`` has settled so far, window by window."""

    def __init__(self) -> None:
        self.absorbed: dict[WindowKey, Absorption] = {}
        self.written: set[WindowKey] = set()
        self.failed: dict[WindowKey, str] = {}

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


_KEY = itemgetter(0, 1)  # a contribution's (device_id, hour_ms), at C speed
_READINGS = itemgetter(2)


def _describe(exc: IotPipeError) -> str:
    kind = "unavailable" if isinstance(exc, StoreUnavailable) else type(exc).__name__
    return f"{kind}: {exc}"
