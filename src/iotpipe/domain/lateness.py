"""When a reading is too old or too far ahead to count: a policy passed in as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from iotpipe.domain.errors import Reason
from iotpipe.domain.time import MAX_MS, MIN_MS


@dataclass(frozen=True, slots=True)
class LatenessPolicy:
    """Bounds on event time relative to a reference instant (the time a record arrived).

    ``horizon``: readings older than this are refused as ``too_late`` (``None``: no limit, for
    backfills). ``max_skew``: readings more than this ahead are refused as ``from_future``
    (``None``: no limit).
    """

    horizon: timedelta | None = timedelta(days=7)
    max_skew: timedelta | None = timedelta(minutes=5)
    _horizon_ms: int | None = field(init=False, repr=False, compare=False, default=None)
    _skew_ms: int | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # Checked once per reading: keep the bounds as plain integers.
        object.__setattr__(self, "_horizon_ms", None if self.horizon is None else _ms(self.horizon))
        object.__setattr__(self, "_skew_ms", None if self.max_skew is None else _ms(self.max_skew))

    @staticmethod
    def backfill() -> LatenessPolicy:
        """No horizon (any age counts); still refuses readings from the future."""
        return LatenessPolicy(horizon=None)

    @staticmethod
    def unbounded() -> LatenessPolicy:
        """Accept any event time."""
        return LatenessPolicy(horizon=None, max_skew=None)

    def bounds(self, reference_ms: int) -> tuple[int, int]:
        """The event times accepted against this reference, ``[low, high]`` inclusive.

        Without a horizon or a skew the bound is the edge of the supported time range, so a
        hot loop can compare two integers per reading; :meth:`check` says the same reading by
        reading.
        """
        skew, horizon = self._skew_ms, self._horizon_ms
        low = MIN_MS if horizon is None else reference_ms - horizon
        high = MAX_MS if skew is None else reference_ms + skew
        return low, high

    def check(self, timestamp_ms: int, reference_ms: int) -> Reason | None:
        """The reason to refuse a reading with this event time, or ``None`` to accept it."""
        skew, horizon = self._skew_ms, self._horizon_ms
        if skew is not None and timestamp_ms > reference_ms + skew:
            return Reason.FROM_FUTURE
        if horizon is not None and timestamp_ms < reference_ms - horizon:
            return Reason.TOO_LATE
        return None


def _ms(delta: timedelta) -> int:
    return delta // timedelta(milliseconds=1)
