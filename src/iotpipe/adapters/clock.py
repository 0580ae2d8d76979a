"""Clocks: the system's, and a manual one for tests, simulations and backfills."""

from __future__ import annotations

import threading
import time


class SystemClock:
    """The machine's wall clock, in UTC epoch milliseconds."""

    def now_ms(self) -> int:
        """Now."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, now_ms: int = 0) -> None:
        self._now = now_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """The instant the clock was last set or advanced to."""
        with self._lock:
            return self._now

    def set(self, now_ms: int) -> None:
        """Jump to an instant."""
        with self._lock:
            self._now = now_ms

    def advance(self, ms: int) -> None:
        """Move forward by ``ms`` milliseconds."""
        with self._lock:
            self._now += ms
