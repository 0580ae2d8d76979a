"""Simulated IoT devices: a deterministic fleet of sensors with optional delivery faults.

The same seed gives the same readings, byte for byte; a reading's values depend only on the
seed, the device and its timestamp, so overlapping runs produce exact resends, never
conflicting values. Values are plausible: each device has its own base levels and home;
temperature follows a daily cycle in the device's local solar time, humidity moves against it,
both carry noise, and the location jitters around home.
Faults are injected by rate: device resends (exact duplicates), out-of-order delivery, and
malformed payloads.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant

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
_MALFORMED = (
    '{"device_id": "iot-sensor-001", "timestamp": ',
    '{"device_id": "", "timestamp": "2025-08-31T10:00:00Z", "temperature": 20}',
    '{"device_id": "x", "timestamp": "2025-08-31T10:00:00", "temperature": 20}',
    '{"device_id": "x", "timestamp": "2025-08-31T10:00:00Z", "temperature": "hot"}',
    '{"device_id": "x", "timestamp": "2025-08-31T10:00:00Z", "humidity": 140}',
    "[1, 2, 3]",
)


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
    base_temperature: float
    base_humidity: float
    lat: float
    lon: float
    phase_ms: int


class Fleet:
    """``devices`` sensors reporting every ``interval_s`` seconds, determined by ``seed``."""

    def __init__(self, devices: int = 20, interval_s: float = 60.0, seed: int = 42) -> None:
        if devices < 1 or interval_s <= 0:
            raise ValueError("a fleet needs at least one device and a positive interval")
        rng = random.Random(seed)
        self.interval_ms = max(1, round(interval_s * 1000))
        self.seed = seed
        self.devices = [self._device(i, rng) for i in range(devices)]
        self._by_phase = sorted(self.devices, key=lambda d: (d.phase_ms, d.device_id))

    def _device(self, i: int, rng: random.Random) -> _Device:
        lat, lon = _HOMES[i % len(_HOMES)]
        return _Device(
            device_id=f"iot-sensor-{i + 1:03d}",
            base_temperature=rng.uniform(15.0, 28.0),
            base_humidity=rng.uniform(35.0, 70.0),
            lat=round(lat + rng.uniform(-0.05, 0.05), 4),
            lon=round(lon + rng.uniform(-0.05, 0.05), 4),
            phase_ms=rng.randrange(0, self.interval_ms),
        )

    def readings(self, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
        """Every reading with event time in ``[start_ms, end_ms)``, in time order."""
        first = start_ms - start_ms % self.interval_ms
        for tick in range(first, end_ms + self.interval_ms, self.interval_ms):
            for device in self._by_phase:
                ts = tick + device.phase_ms
                if start_ms <= ts < end_ms:
                    yield self._reading(device, ts)

    def payloads(self, start_ms: int, end_ms: int, faults: Faults | None = None) -> Iterator[str]:
        """The readings as JSON text lines, with faults injected at their rates."""
        import orjson

        faults = faults or Faults()
        rng = random.Random(f"{self.seed}:faults:{start_ms}")
        skews = self._clock_skews(faults)
        held: list[str] = []  # out of order: delivered a little later
        late: list[str] = []  # late: delivered after everything else
        for reading in self.readings(start_ms, end_ms):
            skew = skews.get(reading["device_id"])
            if skew:
                reading["timestamp"] = format_instant(parse_instant(reading["timestamp"]) + skew)
            line = orjson.dumps(reading).decode()
            if rng.random() < faults.malformed:
                yield rng.choice(_MALFORMED)
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
                skews[device.device_id] = round((2 * noise.uniform() - 1) * faults.skew_s * 1000)
        return skews

    def _reading(self, device: _Device, ts: int) -> dict[str, Any]:
        noise = _Noise(self.seed, device.device_id, ts)
        local_hours = (ts / MS_PER_HOUR + device.lon / 15.0) % 24
        cycle = math.sin((local_hours - 9.0) / 24.0 * 2 * math.pi)  # peaks mid-afternoon
        temperature = device.base_temperature + 4.0 * cycle + 0.3 * noise.gauss()
        humidity = device.base_humidity - 8.0 * cycle + 1.0 * noise.gauss()
        return {
            "device_id": device.device_id,
            "timestamp": format_instant(ts),
            "temperature": round(temperature, 2),
            "humidity": round(min(100.0, max(0.0, humidity)), 2),
            "location": {
                "lat": round(device.lat + (noise.uniform() - 0.5) * 2e-4, 6),
                "lon": round(device.lon + (noise.uniform() - 0.5) * 2e-4, 6),
            },
        }


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
