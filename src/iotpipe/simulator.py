"""Simulated IoT devices: a deterministic fleet of sensors with optional delivery faults.

The same seed gives the same readings, byte for byte; a reading's values depend only on the
seed, the device and its timestamp, so overlapping runs produce exact resends, never
conflicting values. Payloads follow a telemetry schema (the default payload unless one is
given): nested paths, epoch or RFC 3339 timestamps, a position or none.

Values are plausible: each device has its own level of each metric (drawn from the metric's
``typical`` range) and its own home; every metric follows a daily cycle in the device's local
solar time (``daily``: its swing; a negative one moves against the sun, as humidity does
against temperature), carries Gaussian ``noise``, and stays within the metric's range; the
location jitters around home. A metric declared without simulation hints gets a level in the
middle fifth of its range, a daily swing of 5% and noise of 1% of it. Values are written with
one decimal fewer than the metric's resolution keeps (two for 0.001).

Faults are injected by rate: device resends (exact duplicates), out-of-order delivery, late
delivery, skewed device clocks, and malformed payloads (shaped like the schema's: truncated
JSON, an empty device id, a naive or mistyped timestamp, a metric that is not a number or is out
of range, an array of numbers).
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from iotpipe.domain import DEFAULT_SCHEMA, Metric, TelemetrySchema
from iotpipe.domain.metrics import Simulation
from iotpipe.domain.telemetry import steps
from iotpipe.domain.time import MS_PER_HOUR, MS_PER_SECOND, format_instant

_HOMES = (  # (lat, lon) of a few cities, so fleets spread over time zones
    (34.0522, -118.2437),
    (40.7128, -74.0060),
    (51.5074, -0.1278),
    (48.8566, 2.3522),
    (35.6762, 139.6503),
    (-33.8688, 151.2093),
    (19.0760, 72.8777),
    (-23.5505, -46.6333),
)
#: The default payload's malformed lines, as the simulator has always written them.
_DEFAULT_MALFORMED = (
    '{"device_id": "iot-sensor-001", "timestamp": ',
    '{"device_id": "", "timestamp": "2025-08-31T10:00:00Z", "temperature": 20}',
    '{"device_id": "x", "timestamp": "2025-08-31T10:00:00", "temperature": 20}',
    '{"device_id": "x", "timestamp": "2025-08-31T10:00:00Z", "temperature": "hot"}',
    '{"device_id": "x", "timestamp": "2025-08-31T10:00:00Z", "humidity": 140}',
    "[1, 2, 3]",
)
_MALFORMED_AT_MS = 1_756_634_400_000  # 2025-08-31T10:00:00Z


@dataclass(frozen=True, slots=True)
class Faults:
    """Injected faults. Rates (0..1) apply per reading, except ``skewed``, which is the share
    of devices whose clocks are off by up to ``skew_s`` seconds either way."""

    duplicates: float = 0.0
    disorder: float = 0.0
    malformed: float = 0.0
    late: float = 0.0
    skewed: float = 0.0
    skew_s: float = 900.0


@dataclass(frozen=True, slots=True)
class _Device:
    device_id: str
    levels: tuple[float, ...]  # one per metric of the schema
    lat: float
    lon: float
    phase_ms: int


class Fleet:
    """``devices`` sensors reporting every ``interval_s`` seconds, determined by ``seed``,
    sending payloads of ``schema``."""

    def __init__(
        self,
        devices: int = 20,
        interval_s: float = 60.0,
        seed: int = 42,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        if devices < 1 or interval_s <= 0:
            raise ValueError("a fleet needs at least one device and a positive interval")
        rng = random.Random(seed)
        self.schema = schema
        self.interval_ms = max(1, round(interval_s * 1000))
        self.seed = seed
        self._metrics = tuple((m, _hints(m)) for m in schema.accepted)
        self.devices = [self._device(i, rng) for i in range(devices)]
        self._by_phase = sorted(self.devices, key=lambda d: (d.phase_ms, d.device_id))
        # Epoch seconds keep whole seconds: each reading is made at the time it will carry.
        self._tick_ms = MS_PER_SECOND if schema.timestamp_format == "epoch_s" else 1
        self._malformed = _DEFAULT_MALFORMED if schema.is_default else _malformed(schema)

    def _device(self, i: int, rng: random.Random) -> _Device:
        lat, lon = _HOMES[i % len(_HOMES)]
        return _Device(
            device_id=f"iot-sensor-{i + 1:03d}",
            levels=tuple(rng.uniform(*hints.typical) for _, hints in self._metrics),
            lat=round(lat + rng.uniform(-0.05, 0.05), 4),
            lon=round(lon + rng.uniform(-0.05, 0.05), 4),
            phase_ms=rng.randrange(0, self.interval_ms),
        )

    def readings(self, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
        """Every reading with event time in ``[start_ms, end_ms)``, in time order, as the
        payload the schema describes."""
        for device, ts in self._ticks(start_ms, end_ms):
            yield self._payload(device, ts)

    def _ticks(self, start_ms: int, end_ms: int) -> Iterator[tuple[_Device, int]]:
        first = start_ms - start_ms % self.interval_ms
        for tick in range(first, end_ms + self.interval_ms, self.interval_ms):
            for device in self._by_phase:
                ts = tick + device.phase_ms
                ts -= ts % self._tick_ms
                if start_ms <= ts < end_ms:
                    yield device, ts

    def payloads(self, start_ms: int, end_ms: int, faults: Faults | None = None) -> Iterator[str]:
        """The readings as JSON text lines, with faults injected at their rates."""
        import orjson

        faults = faults or Faults()
        rng = random.Random(f"{self.seed}:faults:{start_ms}")
        skews = self._clock_skews(faults)
        held: list[str] = []  # out of order: delivered a little later
        late: list[str] = []  # late: delivered after everything else
        for device, ts in self._ticks(start_ms, end_ms):
            reading = self._payload(device, ts, skews.get(device.device_id, 0))
            line = orjson.dumps(reading).decode()
            if rng.random() < faults.malformed:
                yield rng.choice(self._malformed)
            if rng.random() < faults.late:
                late.append(line)
                continue
            if rng.random() < faults.disorder:
                held.append(line)
                continue
            yield line
            if rng.random() < faults.duplicates:
                yield line
            if held and rng.random() < 0.2:
                yield held.pop(0)
        yield from held
        yield from late

    def _clock_skews(self, faults: Faults) -> dict[str, int]:
        """Milliseconds each skewed device's clock is off by (deterministic per seed)."""
        skews: dict[str, int] = {}
        for device in self.devices:
            noise = _Noise(self.seed, device.device_id, -1)
            if noise.uniform() < faults.skewed:
                skew = round((2 * noise.uniform() - 1) * faults.skew_s * 1000)
                skews[device.device_id] = skew - skew % self._tick_ms
        return skews

    def _payload(self, device: _Device, ts: int, skew: int = 0) -> dict[str, Any]:
        """The reading of a device at ``ts`` (a skewed clock stamps it ``skew`` ms off)."""
        noise = _Noise(self.seed, device.device_id, ts)
        local_hours = (ts / MS_PER_HOUR + device.lon / 15.0) % 24
        cycle = math.sin((local_hours - 9.0) / 24.0 * 2 * math.pi)  # peaks mid-afternoon
        body: dict[str, Any] = {}
        schema = self.schema
        _put(body, schema.device_id, device.device_id)
        _put(body, schema.timestamp, _stamp(ts + skew, schema))
        values = [
            level + hints.daily * cycle + hints.noise * noise.gauss()
            for (_, hints), level in zip(self._metrics, device.levels, strict=True)
        ]
        for (metric, _), value in zip(self._metrics, values, strict=True):
            within = min(metric.maximum, max(metric.minimum, value))
            _put(body, metric.path, round(within, max(0, -metric.exponent - 1)))
        if schema.location is not None:
            _put(body, schema.location.lat, round(device.lat + (noise.uniform() - 0.5) * 2e-4, 6))
            _put(body, schema.location.lon, round(device.lon + (noise.uniform() - 0.5) * 2e-4, 6))
        return body


def _hints(metric: Metric) -> Simulation:
    """The metric's simulation hints, or ones made from its range."""
    if metric.simulation is not None:
        return metric.simulation
    span = metric.maximum - metric.minimum
    low = metric.minimum + 0.4 * span
    return Simulation((low, low + 0.2 * span), 0.05 * 0.2 * span, 0.01 * 0.2 * span)


def _stamp(ts: int, schema: TelemetrySchema) -> object:
    if schema.timestamp_format == "epoch_ms":
        return ts
    if schema.timestamp_format == "epoch_s":
        return ts // MS_PER_SECOND
    return format_instant(ts)


def _put(body: dict[str, Any], path: str, value: object) -> None:
    """Set the value at a dotted path, making the objects on the way."""
    *outer, last = steps(path)
    for key in outer:
        body = body.setdefault(key, {})
    body[last] = value


def _malformed(schema: TelemetrySchema) -> tuple[str, ...]:
    """Malformed payloads shaped like the schema's (one of each rejection the simulator
    exercises), built as the default payload's are."""
    first = schema.accepted[0]
    good = _valid_value(first)
    stamp = _stamp(_MALFORMED_AT_MS, schema)
    naive = "2025-08-31T10:00:00" if schema.timestamp_format == "rfc3339" else "10:00"

    def line(device: str, when: object, path: str, value: object) -> str:
        body: dict[str, Any] = {}
        _put(body, schema.device_id, device)
        _put(body, schema.timestamp, when)
        _put(body, path, value)
        return json.dumps(body)

    cut = line("iot-sensor-001", "\x00", first.path, good)
    return (
        cut[: cut.index('"\\u0000"')],
        line("", stamp, first.path, good),
        line("x", naive, first.path, good),
        line("x", stamp, first.path, "hot"),
        line("x", stamp, first.path, first.maximum + abs(first.maximum - first.minimum)),
        "[1, 2, 3]",
    )


def _valid_value(metric: Metric) -> float:
    typical = _hints(metric).typical
    return round((typical[0] + typical[1]) / 2, max(0, -metric.exponent - 1))


class _Noise:
    """Deterministic pseudo-random numbers from (seed, device, instant): splitmix64."""

    _MASK = (1 << 64) - 1

    def __init__(self, seed: int, device_id: str, ts: int) -> None:
        # zlib.crc32, not hash(): string hashes are salted per process.
        self._state = (
            seed * 0x9E3779B97F4A7C15 ^ zlib.crc32(device_id.encode()) << 32 ^ ts
        ) & self._MASK

    def uniform(self) -> float:
        """A float in [0, 1)."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & self._MASK
        z = self._state
        z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9 & self._MASK
        z = (z ^ z >> 27) * 0x94D049BB133111EB & self._MASK
        return ((z ^ z >> 31) >> 11) / float(1 << 53)

    def gauss(self) -> float:
        """A standard normal variate (Box-Muller)."""
        u = 1.0 - self.uniform()  # (0, 1]: log stays finite
        return math.sqrt(-2.0 * math.log(u)) * math.cos(2 * math.pi * self.uniform())
