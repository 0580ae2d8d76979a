"""Instants as integer epoch milliseconds (UTC), and the hourly and daily windows over them.

Time is data here: nothing in the domain reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MS_PER_SECOND = 1000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(instant: datetime) -> int:
    """Epoch milliseconds of an aware datetime, truncated to the millisecond."""
    if instant.tzinfo is None:
        raise ValueError("naive datetimes have no place in time arithmetic; attach a UTC offset")
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * MS_PER_SECOND + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=ms)


def hour_start(ms: int) -> int:
    """Start of the UTC hour that contains the instant (the reading's hourly window)."""
    return ms - ms % MS_PER_HOUR


def day_start(ms: int) -> int:
    """Start of the UTC day that contains the instant."""
    return ms - ms % MS_PER_DAY


#: The supported range of event times: [1970-01-01T00:00:00Z, 9999-12-31T00:00:00Z).
MIN_MS = 0
MAX_MS = 253_402_214_400_000


def format_instant(ms: int) -> str:
    """RFC 3339 in UTC with a ``Z``; milliseconds shown only when present."""
    t = from_ms(ms)
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    millis = ms % MS_PER_SECOND
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def parse_instant(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 string with an offset (``Z`` or ``+hh:mm``).

    Raises ``ValueError`` for anything else, naive timestamps included.
    """
    head, _, tail = text.partition(".")
    if tail:  # fromisoformat keeps microseconds at most: cut longer fractions first
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"
    return to_ms(datetime.fromisoformat(text.replace("z", "Z").replace("t", "T")))
