"""The store port's contract, run against every store adapter (see ``tests/conftest.py``)."""

from __future__ import annotations

import threading

import pytest

from iotpipe.domain import FleetTotal, Location, Reading, Stats, merge_all
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import Contribution
from tests.strategies import BASE_MS

pytestmark = pytest.mark.unit

H0, H1, H2 = BASE_MS, BASE_MS + MS_PER_HOUR, BASE_MS + 2 * MS_PER_HOUR


def reading(
    device: str, ts: int, temperature: float = 20.0, humidity: float | None = 50.0
) -> Reading:
    hum = None if humidity is None else round(humidity * 1000)
    return Reading(device, ts, (round(temperature * 1000), hum), Location(1.0, 2.0))


def contribute(store, *readings: Reading):
    groups: dict[tuple[str, int], list[Reading]] = {}
    for r in readings:
        groups.setdefault((r.device_id, r.hour_ms), []).append(r)
    return store.apply([Contribution(d, h, tuple(rs)) for (d, h), rs in groups.items()])


def all_pages(fetch, limit: int):
    items, cursor = [], None
    while True:
        page = fetch(limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        items.extend(page.items)
        if page.cursor is None:
            return items
        cursor = page.cursor


def test_an_empty_store_has_nothing(store_factory) -> None:
    store = store_factory()
    assert store.hourly("d1", 0, 2**60, limit=10).items == []
    assert store.fleet_hour(H0, limit=10).items == []
    assert store.devices(limit=10).items == []
    assert store.latest("d1") is None


def test_applying_counts_new_readings_and_writes_each_window_once(store_factory) -> None:
    store = store_factory()
    before = store.ops().writes
    result = contribute(store, reading("d1", H0), reading("d1", H0 + 1000), reading("d2", H1))
    assert not result.failed
    assert result.written == {("d1", H0), ("d2", H1)}
    assert sum(len(a.new) for a in result.absorbed.values()) == 3
    # One write per window, plus one registry write per device seen for the first time, plus
    # (a store committing its fleet total with the windows) one lane write per hour touched.
    assert store.ops().writes - before <= 2 + 2 + 2
    [window] = store.hourly("d1", H0, H1, limit=10).items
    assert window.stats == Stats.of([reading("d1", H0), reading("d1", H0 + 1000)])
    assert window.stats.count == 2  # queries carry statistics; identities are the store's
    more = contribute(store, reading("d1", H0 + 2), reading("d1", H0 + 3), reading("d2", H1 + 1))
    assert more.written == {("d1", H0), ("d2", H1)}
    assert store.ops().writes - before <= 4 + 2 + 4  # known devices: windows (and lanes)


def test_reapplying_is_a_no_op_that_writes_nothing(store_factory) -> None:
    store = store_factory()
    batch = [reading("d1", H0), reading("d1", H0 + 5), reading("d1", H1 + 7)]
    contribute(store, *batch)
    writes = store.ops().writes
    result = contribute(store, *reversed(batch))
    assert result.written == frozenset()
    assert sum(len(a.duplicates) for a in result.absorbed.values()) == 3
    assert store.ops().writes == writes


def test_a_conflicting_duplicate_is_reported_and_not_counted(store_factory) -> None:
    store = store_factory()
    contribute(store, reading("d1", H0, temperature=20.0))
    offered = [reading("d1", H0, temperature=99.0), reading("d1", H0 + 1, 21.0)]
    result = contribute(store, *offered)
    absorption = result.absorbed[("d1", H0)]
    assert [offered[i].value("temperature") for i in absorption.conflicts] == [99.0]
    assert [offered[i].value("temperature") for i in absorption.new] == [21.0]
    [window] = store.hourly("d1", H0, H1, limit=5).items
    assert window.stats.count == 2
    assert window.stats.metric("temperature").maximum == 21_000


def test_hourly_is_half_open_ordered_and_paginates_without_gaps(store_factory) -> None:
    store = store_factory()
    hours = [BASE_MS + k * MS_PER_HOUR for k in range(7)]
    contribute(store, *[reading("d1", h + 10) for h in reversed(hours)], reading("d2", H0))
    assert [w.hour_ms for w in store.hourly("d1", hours[1], hours[5], limit=100).items] == hours[
        1:5
    ]
    for limit in (1, 2, 3, 7, 8):
        got = all_pages(lambda **kw: store.hourly("d1", hours[0], hours[6] + 1, **kw), limit)
        assert [w.hour_ms for w in got] == hours
    assert store.hourly("d3", 0, 2**60, limit=5).items == []


def test_fleet_hour_lists_every_device_in_order_across_pages(store_factory) -> None:
    store = store_factory()
    devices = [f"dev-{i:02d}" for i in range(11)]
    contribute(
        store, *[reading(d, H1 + i) for i, d in enumerate(reversed(devices))], reading("x", H2)
    )
    for limit in (1, 4, 11, 50):
        got = all_pages(lambda **kw: store.fleet_hour(H1, **kw), limit)
        assert [w.device_id for w in got] == devices
        assert all(w.hour_ms == H1 for w in got)


def test_devices_paginate_with_their_last_event_time(store_factory) -> None:
    store = store_factory()
    contribute(store, reading("b", H0), reading("a", H1 + 5), reading("a", H0), reading("c", H2))
    for limit in (1, 2, 3):
        got = all_pages(store.devices, limit)
        assert [(d.device_id, d.last_seen_ms) for d in got] == [("a", H1 + 5), ("b", H0), ("c", H2)]


def test_latest_moves_forward_in_event_time_only(store_factory) -> None:
    store = store_factory()
    newest = reading("d1", H1 + 500, temperature=30.0)
    contribute(store, newest)
    contribute(store, reading("d1", H0, temperature=10.0))  # late, older reading
    assert store.latest("d1") == newest
    newer = reading("d1", H2, temperature=31.0)
    contribute(store, newer)
    assert store.latest("d1") == newer


def _written_by_four_threads(store, readings: list, *, step: int, size: int) -> list[BaseException]:
    """Four threads write overlapping slices (``size`` readings every ``step``, each from its
    own offset); what any of them raised (a failed write included), for the caller to assert."""
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for start in range(offset, len(readings), step):
                result = contribute(store, *readings[start : start + size])
                assert not result.failed, result.failed
        except BaseException as exc:  # surfaced to the caller
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_writers_of_the_same_windows_end_exact(store_factory) -> None:
    store = store_factory()
    readings = [reading(f"d{i % 3}", H0 + i * 7, temperature=i % 50) for i in range(300)]
    assert not _written_by_four_threads(store, readings, step=25, size=40)
    for device in ("d0", "d1", "d2"):
        [window] = store.hourly(device, H0, H1, limit=5).items
        assert window.stats == Stats.of([r for r in readings if r.device_id == device])


def test_fleet_total_is_the_merge_of_the_hours_windows_each_counted_once(store_factory) -> None:
    store = store_factory()
    first = [
        reading(f"d{i}", H0 + 60_000 * i + k * 1000, 20.0 + k) for i in range(3) for k in range(5)
    ]
    contribute(store, *first, reading("d0", H1 + 5))
    assert store.fleet_total(H2) == FleetTotal()
    # Resends, a conflicting duplicate, a late reading into an older part of the hour, a new
    # device: only the new readings grow the total, the device count only with new windows.
    later = [
        *first[:4],
        reading("d1", first[5].timestamp_ms, 99.0),
        reading("d2", H0 + 1, -5.0),
        reading("d3", H0 + 3_000_000, 30.0, humidity=None),
    ]
    contribute(store, *later)
    windows = all_pages(lambda **kw: store.fleet_hour(H0, **kw), 10)
    expected = merge_all(w.stats for w in windows)
    assert expected.count == 15 + 2
    assert store.fleet_total(H0) == FleetTotal(expected, 4)
    assert store.fleet_total(H1) == FleetTotal(Stats.of([reading("d0", H1 + 5)]), 1)


def test_fleet_total_stays_exact_under_concurrent_writers(store_factory) -> None:
    store = store_factory()
    readings = [reading(f"d{i % 5}", H0 + i * 13, temperature=i % 40) for i in range(250)]
    assert not _written_by_four_threads(store, readings, step=30, size=45)
    assert store.fleet_total(H0) == FleetTotal(Stats.of(readings), 5)
