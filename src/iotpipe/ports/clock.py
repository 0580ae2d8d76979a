"""The processing clock: "now" is passed in, never read inside the core."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    """A source of the current time."""

    def now_ms(self) -> int:
        """The current instant in UTC epoch milliseconds."""
        ...
