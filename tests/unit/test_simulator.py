"""The simulated fleet: deterministic, plausible readings and faults at their rates."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from typing import Any

import orjson
import pytest

from iotpipe.domain import METRICS, InvalidReading, parse_reading
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, parse_instant
from iotpipe.simulator import Faults, Fleet

T_START = parse_instant("2025-08-31T10:00:00Z")

pytestmark = pytest.mark.unit

START_MS = 1_756_634_400_000  # 2025-08-31T10:00:00Z
END_MS = START_MS + MS_PER_HOUR


def _parsed(lines: list[str]) -> list[Any]:
    return [parse_reading(orjson.loads(line)) for line in lines]


def test_same_seed_same_fleet_and_readings() -> None:
    a, b = Fleet(5, 60.0, seed=11), Fleet(5, 60.0, seed=11)
    assert a.devices == b.devices
    assert list(a.readings(START_MS, END_MS)) == list(b.readings(START_MS, END_MS))
    faults = Faults(duplicates=0.1, disorder=0.1, malformed=0.1)
    assert list(a.payloads(START_MS, END_MS, faults)) == list(b.payloads(START_MS, END_MS, faults))


def test_different_seeds_differ() -> None:
    a, b = Fleet(5, 60.0, seed=1), Fleet(5, 60.0, seed=2)
    assert a.devices != b.devices
    assert list(a.readings(START_MS, END_MS)) != list(b.readings(START_MS, END_MS))


def test_device_ids_are_stable_and_valid() -> None:
    fleet = Fleet(12, 60.0, seed=3)
    assert [d.device_id for d in fleet.devices] == [f"iot-sensor-{i:03d}" for i in range(1, 13)]


@pytest.mark.parametrize(("devices", "interval_s"), [(0, 60.0), (-1, 60.0), (3, 0.0), (3, -5.0)])
def test_fleet_refuses_nonsense(devices: int, interval_s: float) -> None:
    with pytest.raises(ValueError, match="at least one device"):
        Fleet(devices, interval_s)


@pytest.mark.parametrize(
    ("devices", "interval_s", "start_ms", "end_ms"),
    [
        (4, 60.0, START_MS, END_MS),
        (3, 7.5, START_MS + 1_234, START_MS + 10 * 60_000 + 17),  # unaligned range
        (1, 3600.0, START_MS, START_MS + 6 * MS_PER_HOUR),
        (6, 0.5, START_MS, START_MS + 30_000),
    ],
)
def test_readings_cover_the_range_at_the_interval(
    devices: int, interval_s: float, start_ms: int, end_ms: int
) -> None:
    fleet = Fleet(devices, interval_s, seed=5)
    interval_ms = round(interval_s * 1000)
    per_device: dict[str, list[int]] = defaultdict(list)
    readings = list(fleet.readings(start_ms, end_ms))
    newest: int | None = None
    for body in readings:
        reading = parse_reading(body)  # every simulated reading is a valid payload
        assert start_ms <= reading.timestamp_ms < end_ms
        per_device[reading.device_id].append(reading.timestamp_ms)
        # Emitted tick by tick: never more than one interval behind the newest so far.
        if newest is not None:
            assert reading.timestamp_ms > newest - interval_ms
        newest = reading.timestamp_ms if newest is None else max(newest, reading.timestamp_ms)

    assert set(per_device) == {d.device_id for d in fleet.devices}
    for stamps in per_device.values():
        assert stamps == sorted(stamps)  # in time order per device
        assert all(b - a == interval_ms for a, b in itertools.pairwise(stamps))
        # The range is covered: no gap at either end longer than the interval.
        assert stamps[0] - start_ms < interval_ms
        assert end_ms - stamps[-1] <= interval_ms
    identities = [(r["device_id"], r["timestamp"]) for r in readings]
    assert len(identities) == len(set(identities))


def test_empty_range_has_no_readings() -> None:
    fleet = Fleet(3, 60.0)
    assert list(fleet.readings(START_MS, START_MS)) == []
    assert list(fleet.payloads(END_MS, START_MS)) == []


def test_values_stay_within_metric_bounds() -> None:
    fleet = Fleet(8, 300.0, seed=13)
    seen = 0
    for body in fleet.readings(START_MS, START_MS + 2 * MS_PER_DAY):
        reading = parse_reading(body)
        for metric in METRICS:
            value = reading.value(metric.name)
            assert value is not None
            assert metric.minimum <= value <= metric.maximum
        assert reading.location is not None
        home = next(d for d in fleet.devices if d.device_id == reading.device_id)
        assert abs(reading.location.lat - home.lat) <= 1.01e-4
        assert abs(reading.location.lon - home.lon) <= 1.01e-4
        seen += 1
    assert seen == 8 * 2 * 24 * 12
    temperatures = [parse_reading(b).value("temperature") for b in fleet.readings(START_MS, END_MS)]
    assert all(0 < t < 40 for t in temperatures if t is not None)  # plausible, not just in bounds


def test_humidity_moves_against_temperature_over_a_day() -> None:
    fleet = Fleet(3, 120.0, seed=21)
    for device in fleet.devices:
        rows = [
            r
            for r in fleet.readings(START_MS, START_MS + MS_PER_DAY)
            if r["device_id"] == device.device_id
        ]
        assert len(rows) == 24 * 30
        temperature = [r["temperature"] for r in rows]
        humidity = [r["humidity"] for r in rows]
        assert statistics.correlation(temperature, humidity) < -0.7
        assert max(temperature) - min(temperature) > 5  # a real daily cycle


def test_duplicate_rate_is_roughly_honoured() -> None:
    fleet = Fleet(10, 60.0, seed=8)
    end = START_MS + 500 * 60_000  # 10 devices x 500 minutes = 5000 readings
    clean = list(fleet.payloads(START_MS, end))
    noisy = list(fleet.payloads(START_MS, end, Faults(duplicates=0.2)))
    assert len(clean) == 5000
    extra = len(noisy) - len(clean)
    assert 0.17 * 5000 < extra < 0.23 * 5000
    assert set(noisy) == set(clean)
    repeats = sum(a == b for a, b in itertools.pairwise(noisy))
    assert repeats == extra  # a resend follows its original immediately


def test_disorder_rate_is_roughly_honoured_and_loses_nothing() -> None:
    fleet = Fleet(10, 60.0, seed=8)
    end = START_MS + 500 * 60_000
    clean = list(fleet.payloads(START_MS, end))
    disordered = list(fleet.payloads(START_MS, end, Faults(disorder=0.1)))
    assert sorted(disordered) == sorted(clean)  # each reading exactly once
    position = {line: i for i, line in enumerate(clean)}
    late, newest = 0, -1
    for line in disordered:
        if position[line] < newest:
            late += 1
        newest = max(newest, position[line])
    assert 0.07 * 5000 < late < 0.13 * 5000


def test_malformed_rate_is_roughly_honoured() -> None:
    fleet = Fleet(10, 60.0, seed=8)
    end = START_MS + 500 * 60_000
    lines = list(fleet.payloads(START_MS, end, Faults(malformed=0.05)))
    bad = 0
    for line in lines:
        try:
            parse_reading(orjson.loads(line))
        except (orjson.JSONDecodeError, InvalidReading):
            bad += 1
    assert len(lines) - bad == 5000
    assert 0.035 * 5000 < bad < 0.065 * 5000


def test_no_faults_means_one_line_per_reading_in_order() -> None:
    fleet = Fleet(4, 60.0, seed=2)
    readings = list(fleet.readings(START_MS, END_MS))
    lines = list(fleet.payloads(START_MS, END_MS, Faults()))
    assert [orjson.loads(line) for line in lines] == readings
    assert _parsed(lines) == [parse_reading(r) for r in readings]


def test_readings_come_in_event_time_order_across_the_fleet() -> None:
    fleet = Fleet(devices=7, interval_s=60, seed=3)
    stamps = [parse_instant(r["timestamp"]) for r in fleet.readings(T_START, T_START + 3_600_000)]
    assert stamps == sorted(stamps) and len(stamps) == 7 * 60


def test_a_readings_values_do_not_depend_on_where_the_range_starts() -> None:
    """Overlapping runs must produce exact resends, not conflicting duplicates."""
    fleet = Fleet(devices=3, interval_s=60, seed=9)
    whole = {
        (r["device_id"], r["timestamp"]): r for r in fleet.readings(T_START, T_START + 7_200_000)
    }
    later = list(fleet.readings(T_START + 1_800_000, T_START + 7_200_000))
    assert later and all(whole[(r["device_id"], r["timestamp"])] == r for r in later)


def test_late_readings_arrive_after_everything_else() -> None:
    fleet = Fleet(devices=5, interval_s=60, seed=4)
    lines = list(fleet.payloads(T_START, T_START + 7_200_000, Faults(late=0.1)))
    stamps = [parse_instant(orjson.loads(line)["timestamp"]) for line in lines]
    truth = [parse_instant(r["timestamp"]) for r in fleet.readings(T_START, T_START + 7_200_000)]
    assert sorted(stamps) == truth  # nothing lost, nothing added
    newest = stamps.index(truth[-1])
    tail = stamps[newest + 1 :]  # delivered after the newest reading: the late ones
    assert 30 <= len(tail) <= 95 and tail == sorted(tail) and tail[0] < T_START + 3_600_000


def test_skewed_clocks_shift_whole_devices_deterministically() -> None:
    fleet = Fleet(devices=20, interval_s=300, seed=5)
    true = {r["device_id"]: r["timestamp"] for r in fleet.readings(T_START, T_START + 300_000)}
    faults = Faults(skewed=0.5, skew_s=600)
    shifted = [orjson.loads(x) for x in fleet.payloads(T_START, T_START + 300_000, faults)]
    offsets = {
        r["device_id"]: parse_instant(r["timestamp"]) - parse_instant(true[r["device_id"]])
        for r in shifted
    }
    skewed = [d for d, off in offsets.items() if off]
    assert 3 <= len(skewed) <= 17
    assert all(abs(off) <= 600_000 for off in offsets.values())
    again = [orjson.loads(x) for x in fleet.payloads(T_START, T_START + 300_000, faults)]
    assert again == shifted
