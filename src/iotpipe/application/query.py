"""The query use case: hourly ranges, daily rollups, fleet hours, latest readings, devices."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from iotpipe.domain import DailyRollup, HourlyWindow, Reading, Stats, daily, fleet
from iotpipe.domain.time import MS_PER_DAY, day_start
from iotpipe.ports import AggregateStore, DeviceSummary, Page

T = TypeVar("T")

#: Page size used when the service itself walks every page (rollups, fleet totals).
_WALK_PAGE = 500
_BEGINNING, _END = -(2**62), 2**62


@dataclass(frozen=True, slots=True)
class FleetHour:
    """One page of every device's window for an hour, the fleet-wide merge of all of them and
    how many windows (devices) that merge holds."""

    page: Page[HourlyWindow]
    fleet: Stats
    devices: int = 0


class QueryService:
    """Read-side use cases over an :class:`AggregateStore`."""

    def __init__(self, store: AggregateStore) -> None:
        self._store = store

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's hourly windows in ``[start_ms, end_ms)``, one page."""
        return self._store.hourly(device_id, start_ms, end_ms, limit=limit, cursor=cursor)

    def daily(self, device_id: str, start_ms: int, end_ms: int) -> list[DailyRollup]:
        """Daily rollups of the UTC days overlapping ``[start_ms, end_ms)``, merged from hours."""
        first = day_start(start_ms)
        last = day_start(end_ms - 1) + MS_PER_DAY
        return daily(self._walk_hourly(device_id, first, last))

    def fleet_hour(self, hour_ms: int, *, limit: int, cursor: str | None = None) -> FleetHour:
        """One page of the hour's windows, and the merge over every device: the store's fleet
        total, kept as windows are written (no walk over the hour's windows)."""
        page = self._store.fleet_hour(hour_ms, limit=limit, cursor=cursor)
        total = self._store.fleet_total(hour_ms)
        return FleetHour(page, total.stats, total.devices)

    def fleet_walk(self, hour_ms: int) -> Stats:
        """The fleet merge recomputed from every window of the hour (for checks and repairs:
        its cost grows with the fleet; :meth:`fleet_hour` reads the kept total)."""
        return fleet(self._walk_fleet(hour_ms))

    def latest(self, device_id: str) -> Reading | None:
        """The device's latest reading, or ``None`` for a device never seen."""
        return self._store.latest(device_id)

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """Devices seen, with their last event time, one page."""
        return self._store.devices(limit=limit, cursor=cursor)

    def every_window(self) -> Iterator[HourlyWindow]:
        """Every stored window, sorted by device then hour (walks all pages)."""
        for device in _walk(lambda cursor: self._store.devices(limit=_WALK_PAGE, cursor=cursor)):
            yield from self._walk_hourly(device.device_id, _BEGINNING, _END)

    def _walk_hourly(self, device_id: str, start_ms: int, end_ms: int) -> Iterator[HourlyWindow]:
        return _walk(
            lambda cursor: self._store.hourly(
                device_id, start_ms, end_ms, limit=_WALK_PAGE, cursor=cursor
            )
        )

    def _walk_fleet(self, hour_ms: int) -> Iterator[HourlyWindow]:
        return _walk(
            lambda cursor: self._store.fleet_hour(hour_ms, limit=_WALK_PAGE, cursor=cursor)
        )


def _walk(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of every page, following cursors until the last page."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.cursor is None:
            return
        cursor = page.cursor
