"""The aggregate store in memory: the reference implementation of the store port."""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Sequence

from iotpipe.adapters.memory.schema_records import MemorySchemaRecords
from iotpipe.adapters.window_store import Save, WindowStoreBase
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    FleetTotal,
    HourlyWindow,
    IotPipeError,
    Moments,
    Reading,
    Stats,
    TelemetrySchema,
    WindowConflict,
)
from iotpipe.ports import (
    DeviceSummary,
    Page,
    RetryPolicy,
    StoreOps,
    Version,
    WindowKey,
)


class MemoryStore(WindowStoreBase):
    """Windows and latest readings in dictionaries, guarded by one lock.

    Every window carries an integer version, so the optimistic-concurrency path of
    :class:`~iotpipe.adapters.window_store.WindowStoreBase` is exercised exactly as on a remote
    store. Reads and writes are counted as a remote store would bill them: one per window or
    registry item. Each hour's fleet total is updated with every window write, under the same
    hold of the lock: atomically, so exactly once.
    """

    def __init__(self, retry: RetryPolicy | None = None) -> None:
        super().__init__(retry)
        self._lock = threading.RLock()
        self._windows: dict[WindowKey, tuple[HourlyWindow, int]] = {}
        self._hours: dict[str, list[int]] = {}  # device -> sorted hours
        self._fleet: dict[int, list[str]] = {}  # hour -> sorted devices
        self._totals: dict[int, FleetTotal] = {}
        self._registered: set[str] = set()
        self._devices: list[str] = []  # sorted
        self._reads = 0
        self._writes = 0
        self._schema_records = MemorySchemaRecords()
        self._schema = DEFAULT_SCHEMA

    def schema_records(self) -> MemorySchemaRecords:
        """Where this store keeps its schema record (:func:`~iotpipe.application.settle_schema`)."""
        return self._schema_records

    @property
    def schema(self) -> TelemetrySchema:
        """The schema of the windows it holds (kept as objects, nothing to encode by it)."""
        return self._schema

    @schema.setter
    def schema(self, schema: TelemetrySchema) -> None:
        # What a persistent store does as it decodes by name: windows held under another
        # schema are read by the new one (a metric they lack is empty; retired ones stay).
        with self._lock:
            if schema != self._schema:
                old, held, totals = self._schema, self._windows, self._totals
                self._windows = {k: (reshaped(w, old, schema), v) for k, (w, v) in held.items()}
                self._totals = {
                    hour: total._replace(stats=_reshaped_stats(total.stats, old, schema))
                    for hour, total in totals.items()
                }
            self._schema = schema

    # --- hooks -----------------------------------------------------------------------------

    def _load(
        self, keys: Sequence[WindowKey], *, strong: bool = False
    ) -> dict[WindowKey, tuple[HourlyWindow, Version]]:
        with self._lock:
            self._reads += len(keys)
            stored = self._windows
            return {key: stored[key] for key in stored.keys() & keys}

    def _save(self, window: HourlyWindow, expected: Version) -> None:
        outcome = self._save_all([Save(window, expected, None)])[0]
        if outcome is not None:
            raise outcome

    def _save_all(self, windows: Sequence[Save]) -> list[IotPipeError | None]:
        """Each window written if its version is still the expected one, under one hold of the
        lock, with its growth added to its hour's fleet total; a new window also lists its
        device, as the base class's ``_save_all`` does."""
        outcomes: list[IotPipeError | None] = []
        with self._lock:
            stored = self._windows
            for window, expected, _ in windows:
                key = (window.device_id, window.hour_ms)
                current = stored.get(key)
                if current is None:
                    if expected is not None:
                        outcomes.append(WindowConflict(f"window {key} changed since it was read"))
                        continue
                    self._register(key[0])
                    insort(self._hours.setdefault(key[0], []), key[1])
                    insort(self._fleet.setdefault(key[1], []), key[0])
                    stored[key] = (window, 1)
                elif current[1] != expected:
                    outcomes.append(WindowConflict(f"window {key} changed since it was read"))
                    continue
                else:
                    stored[key] = (window, current[1] + 1)
                total = self._totals.get(key[1], FleetTotal())
                before = None if current is None else current[0].stats
                self._totals[key[1]] = total.grown(before, window.stats)
                outcomes.append(None)
            self._writes += outcomes.count(None)
        return outcomes

    def _register(self, device_id: str) -> None:
        with self._lock:
            self._reads += 1
            if device_id not in self._registered:
                self._registered.add(device_id)
                insort(self._devices, device_id)
                self._writes += 1

    # --- queries -----------------------------------------------------------------------------

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's windows in ``[start_ms, end_ms)``; the cursor is the last hour returned."""
        with self._lock:
            hours = self._hours.get(device_id, [])
            low = start_ms if cursor is None else max(start_ms, int(cursor) + 1)
            i = bisect_left(hours, low)
            chosen = [h for h in hours[i : i + limit + 1] if h < end_ms]
            self._reads += min(len(chosen), limit)
            items = [self._windows[(device_id, h)][0] for h in chosen[:limit]]
        more = len(chosen) > limit
        return Page(items, str(items[-1].hour_ms) if more else None)

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """Every device's window for the hour; the cursor is the last device returned."""
        with self._lock:
            devices = self._fleet.get(hour_ms, [])
            i = 0 if cursor is None else bisect_left(devices, cursor + "\0")
            chosen = devices[i : i + limit + 1]
            items = [self._windows[(d, hour_ms)][0] for d in chosen[:limit]]
            self._reads += len(items)
        return Page(items, items[-1].device_id if len(chosen) > limit else None)

    def fleet_total(self, hour_ms: int) -> FleetTotal:
        """The hour's fleet total (one read)."""
        with self._lock:
            self._reads += 1
            return self._totals.get(hour_ms, FleetTotal())

    def latest(self, device_id: str) -> Reading | None:
        """The device's latest reading: the newest reading of its newest window."""
        with self._lock:
            newest = self._newest(device_id)
        return None if newest is None else newest.latest

    def _newest(self, device_id: str) -> HourlyWindow | None:
        hours = self._hours.get(device_id)
        if not hours:
            return None
        self._reads += 1
        return self._windows[(device_id, hours[-1])][0]

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """Devices in id order; the cursor is the last device returned."""
        with self._lock:
            i = 0 if cursor is None else bisect_left(self._devices, cursor + "\0")
            chosen = self._devices[i : i + limit + 1]
            items = [DeviceSummary(d, _last_seen(self._newest(d))) for d in chosen[:limit]]
        return Page(items, items[-1].device_id if len(chosen) > limit else None)

    def ops(self) -> StoreOps:
        """Reads and writes so far."""
        with self._lock:
            return StoreOps(self._reads, self._writes)


def _last_seen(window: HourlyWindow | None) -> int | None:
    return None if window is None or window.latest is None else window.latest.timestamp_ms


def reshaped(window: HourlyWindow, old: TelemetrySchema, new: TelemetrySchema) -> HourlyWindow:
    """A window held under ``old`` as ``new`` reads it: each metric by name, empty if absent."""
    latest = window.latest
    if latest is not None:
        values = dict(zip(old.names, latest.values, strict=True))
        latest = latest._replace(values=tuple(values.get(n) for n in new.names))
    return window._replace(stats=_reshaped_stats(window.stats, old, new), latest=latest)


def _reshaped_stats(stats: Stats, old: TelemetrySchema, new: TelemetrySchema) -> Stats:
    """An aggregate (a window's, or an hour's fleet total) held under ``old`` as ``new``
    reads it."""
    if not stats.count:
        return stats
    by_name = dict(zip(old.names, stats.moments(old), strict=True))
    return stats._replace(metrics=tuple(by_name.get(n, Moments()) for n in new.names))
