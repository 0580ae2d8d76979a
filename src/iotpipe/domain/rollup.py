"""Daily and fleet-wide rollups: merges of hourly windows, nothing more.

A fleet total is kept up to date as windows are written: a window only ever grows (readings
are added, never removed), so what a merge of windows gains when one window grows is that
window's :func:`growth`: the difference of its sums, and its new extremes, which merge
idempotently. Adding each write's growth exactly once to a total that holds the window as it
was keeps the total equal to the merge of every window as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from iotpipe.domain.aggregate import Moments, Stats, merge_all
from iotpipe.domain.time import day_start
from iotpipe.domain.window import HourlyWindow


@dataclass(frozen=True, slots=True)
class DailyRollup:
    """One device's aggregate over one UTC day, merged from its hourly windows."""

    device_id: str
    day_ms: int
    stats: Stats


def daily(windows: Iterable[HourlyWindow]) -> list[DailyRollup]:
    """Group hourly windows by (device, UTC day) and merge each group; sorted by key."""
    groups: dict[tuple[str, int], list[Stats]] = {}
    for window in windows:
        groups.setdefault((window.device_id, day_start(window.hour_ms)), []).append(window.stats)
    return [DailyRollup(dev, day, merge_all(parts)) for (dev, day), parts in sorted(groups.items())]


def fleet(windows: Iterable[HourlyWindow]) -> Stats:
    """The fleet-wide aggregate of many devices' windows."""
    return merge_all(window.stats for window in windows)


class FleetTotal(NamedTuple):
    """The merge of every device's window of one hour, and how many windows it holds."""

    stats: Stats = Stats()
    devices: int = 0

    def merge(self, other: FleetTotal) -> FleetTotal:
        """The total of both sets of windows (disjoint sets: each window counted once)."""
        return FleetTotal(self.stats.merge(other.stats), self.devices + other.devices)

    def grown(self, before: Stats | None, after: Stats) -> FleetTotal:
        """This total, one of whose windows went from ``before`` (``None``: not yet held) to
        ``after`` (``after`` holds every reading of ``before``)."""
        delta = after if before is None else growth(before, after)
        return FleetTotal(self.stats.merge(delta), self.devices + (before is None))


def growth(before: Stats, after: Stats) -> Stats:
    """What a merge holding a window's ``before`` gains when the window becomes ``after``.

    ``after`` must hold every reading of ``before`` (windows only grow). Sums and counts are
    the differences; first, last, extremes and the last location are ``after``'s own, which a
    merge takes idempotently, so ``merge_all([*others, before]).merge(growth(before, after))
    == merge_all([*others, after])`` exactly.
    """
    if not before.count:
        return after
    return Stats(
        after.count - before.count,
        tuple(map(_moments_growth, before.metrics, after.metrics)),
        after.first_ms,
        after.last_ms,
        after.located,
    )


def _moments_growth(before: Moments, after: Moments) -> Moments:
    added = after.count - before.count
    if not added:  # no new value of this metric: its extremes are unchanged
        return Moments()
    return Moments(
        added,
        after.total - before.total,
        after.squares - before.squares,
        after.minimum,
        after.maximum,
    )
