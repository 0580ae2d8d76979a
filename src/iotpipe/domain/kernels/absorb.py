"""A batch's readings into their windows, the common window grown inline, column by column.

:meth:`HourlyWindow.absorb <iotpipe.domain.HourlyWindow.absorb>` says what absorbing means,
reading by reading. A stream batch touches thousands of windows with a few readings each, and
almost every one is the common case: its readings are columns, all new (distinct, and later
than every identity the window holds) and within room. That window is grown here in one step
per column: moments from sorted columns, identities appended as packed keys. Every other window
takes the plain definition itself, so the two can only differ where a property test holds them
equal.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import repeat
from operator import mul

from iotpipe.domain import window as plain
from iotpipe.domain.aggregate import Located, Moments, Stats
from iotpipe.domain.identity import IdentitySet
from iotpipe.domain.kernels.columns import ReadingColumns
from iotpipe.domain.reading import Reading
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.domain.window import Absorption, HourlyWindow

_new = tuple.__new__  # builds the named tuples without their Python-level __new__
_NO_VALUES = Moments()


def absorb_all(
    windows: Sequence[HourlyWindow], offered: Sequence[Sequence[Reading]]
) -> list[tuple[HourlyWindow, Absorption]]:
    """``[w.absorb(r) for w, r in zip(windows, offered)]``, the common window grown inline."""
    return list(map(_absorb, windows, offered))


def _absorb(window: HourlyWindow, readings: Sequence[Reading]) -> tuple[HourlyWindow, Absorption]:
    if type(readings) is not ReadingColumns:
        return window.absorb(readings)
    ordered = sorted(readings.times)
    if not _all_new(window, readings, ordered):
        return window.absorb(readings)
    return _grown(window, readings, ordered), _new(
        Absorption, (tuple(range(len(ordered))), (), (), ())
    )


def _all_new(window: HourlyWindow, columns: ReadingColumns, ordered: list[int]) -> bool:
    """Whether every reading is the window's, new, at its own time and within room
    (``ordered``: the readings' event times, sorted)."""
    held, n = window.seen.keys, len(ordered)
    if not n or window.stats.count + n > plain.MAX_READINGS_PER_WINDOW:
        return False
    hour, first, last = window.hour_ms, ordered[0], ordered[-1]
    return (
        hour <= first
        and last < hour + MS_PER_HOUR
        and (not held or first - hour > held[-1] >> 16)
        and len(set(ordered)) == n
        and columns.devices.count(window.device_id) == n
    )


def _grown(window: HourlyWindow, columns: ReadingColumns, ordered: list[int]) -> HourlyWindow:
    """The window with every reading of the columns added. All are new and later than every
    reading the window holds (see :func:`_all_new`): the newest of them is the window's latest,
    the last event time is theirs, and their keys follow the held ones."""
    device, hour, stats, seen, _ = window
    times = columns.times
    # An empty window holds no values: its moments take the columns' width (their schema's).
    held = stats.metrics if stats.count else repeat(_NO_VALUES, len(columns.values))
    first, last = ordered[0], ordered[-1]
    newest = times.index(last)
    grown = _new(
        Stats,
        (
            stats.count + len(times),
            tuple(map(_grown_moments, held, columns.values)),
            first if stats.first_ms is None else stats.first_ms,
            last,
            _later_located(stats.located, columns, newest),
        ),
    )
    # Appended in order, the keys stay sorted (readings in time order have their keys in order).
    keys = columns.identity_keys
    added = keys if ordered == times else array("Q", sorted(keys))
    identities = IdentitySet(seen.keys + added)
    return _new(HourlyWindow, (device, hour, grown, identities, columns.row(newest)))


def _grown_moments(moments: Moments, column: list[int | None]) -> Moments:
    """The moments with a column of values added (``None``: absent), in one step."""
    try:
        # sorted() raises on None among numbers, sum() on a lone None: no value compared
        values: list[int] = sorted(column)  # type: ignore[arg-type]
        added = sum(values)
    except TypeError:  # some readings lack this metric
        values = sorted([v for v in column if v is not None])
        added = sum(values)
    if not values:
        return moments
    count, total, squares, low, high = moments
    least, most = values[0], values[-1]
    return _new(
        Moments,
        (
            count + len(values),
            total + added,
            squares + sum(map(mul, values, values)),
            least if low is None or least < low else low,
            most if high is None or most > high else high,
        ),
    )


def _later_located(held: Located | None, columns: ReadingColumns, newest: int) -> Located | None:
    """The window's last location once the columns are added: their greatest
    ``(time, lat, lon)``, if any reading carries one (every one is later than the window's
    readings, see :func:`_all_new`), else the held one."""
    lat = columns.lats[newest]
    if lat is not None:  # the common case: the newest reading is located (its time is unique)
        return _new(Located, (columns.times[newest], lat, columns.lons[newest]))
    places = zip(columns.times, columns.lats, columns.lons, strict=True)
    located = [place for place in places if place[1] is not None]
    return _new(Located, max(located)) if located else held


__all__ = ["absorb_all"]
