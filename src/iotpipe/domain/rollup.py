"""Daily and fleet-wide rollups: merges of hourly windows, nothing more."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from iotpipe.domain.aggregate import Stats, merge_all
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
