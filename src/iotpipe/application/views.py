"""The JSON representation of aggregates and readings, shared by the CLI and the HTTP API.

Each metric of the telemetry schema appears by name, at its resolution (the default schema's
unless one is given).
"""

from __future__ import annotations

from typing import Any

from iotpipe.domain import (
    DEFAULT_SCHEMA,
    DailyRollup,
    HourlyWindow,
    Reading,
    Stats,
    TelemetrySchema,
)
from iotpipe.domain.time import format_instant
from iotpipe.ports import DeviceSummary


def stats_json(stats: Stats, schema: TelemetrySchema = DEFAULT_SCHEMA) -> dict[str, Any]:
    """``count``, ``first``, ``last``, ``location`` and one object per declared metric."""
    body: dict[str, Any] = {
        "count": stats.count,
        "first": None if stats.first_ms is None else format_instant(stats.first_ms),
        "last": None if stats.last_ms is None else format_instant(stats.last_ms),
        "location": None
        if stats.located is None
        else {"lat": stats.located.lat, "lon": stats.located.lon},
    }
    for metric, moments in zip(schema.metrics, stats.moments(schema), strict=True):
        s = moments.extract(metric.exponent)
        body[metric.name] = {
            "count": s.count,
            "mean": s.mean,
            "min": s.min,
            "max": s.max,
            "stddev": s.stddev,
        }
    return body


def window_json(window: HourlyWindow, schema: TelemetrySchema = DEFAULT_SCHEMA) -> dict[str, Any]:
    """An hourly aggregate: ``device_id``, ``hour`` and :func:`stats_json`."""
    return {
        "device_id": window.device_id,
        "hour": format_instant(window.hour_ms),
        **stats_json(window.stats, schema),
    }


def daily_json(rollup: DailyRollup, schema: TelemetrySchema = DEFAULT_SCHEMA) -> dict[str, Any]:
    """A daily rollup: ``device_id``, ``day`` and :func:`stats_json`."""
    return {
        "device_id": rollup.device_id,
        "day": format_instant(rollup.day_ms)[:10],
        **stats_json(rollup.stats, schema),
    }


def reading_json(reading: Reading, schema: TelemetrySchema = DEFAULT_SCHEMA) -> dict[str, Any]:
    """A reading in the canonical format (each metric by name, an RFC 3339 ``timestamp``)."""
    return reading.to_json(schema)


def device_json(device: DeviceSummary) -> dict[str, Any]:
    """A device and the event time of its latest reading."""
    seen = device.last_seen_ms
    return {
        "device_id": device.device_id,
        "last_seen": None if seen is None else format_instant(seen),
    }
