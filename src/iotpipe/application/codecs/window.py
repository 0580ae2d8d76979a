"""A window as a flat, JSON-safe record: the shared storage format of every persistent store.

Every number stays an exact integer (fixed point; see :mod:`iotpipe.domain.metrics`), so a
stored window decodes to exactly the window that was written. Per metric, by the name the
telemetry schema gives it, the record holds ``[count, total, squares, min, max]`` in units of
the metric's resolution; a metric the record lacks (added to the schema after the window was
written) decodes as empty. ``latest`` is the canonical JSON of the window's latest reading
(:meth:`~iotpipe.domain.TelemetrySchema.canonical`). ``seen`` is the compact identity set as
bytes; stores keep it in a binary column or attribute. The largest integer is a sum of squares:
at most ``(1e7)**2 * 72,000 = 7.2e18`` (a schema keeps every metric's range within 1e7 units of
its resolution), within the signed 64-bit range Firestore and SQLite use.
"""

from __future__ import annotations

from typing import Any

from iotpipe.domain import (
    DEFAULT_SCHEMA,
    HourlyWindow,
    IdentitySet,
    Located,
    Moments,
    Reading,
    Stats,
    TelemetrySchema,
    parse_reading,
)

FORMAT = 1

#: The fields of a window record, in the order :func:`window_to_record` writes them.
RECORD_FIELDS = (
    "format",
    "device_id",
    "hour_ms",
    "count",
    "first_ms",
    "last_ms",
    "metrics",
    "located",
    "latest",
    "seen",
)


def window_to_record(
    window: HourlyWindow, schema: TelemetrySchema = DEFAULT_SCHEMA
) -> dict[str, Any]:
    """The window, whose readings are of ``schema``, as a dict of str, int, list, None and one
    ``bytes`` value (``seen``)."""
    stats = window.stats
    return {
        "format": FORMAT,
        "device_id": window.device_id,
        "hour_ms": window.hour_ms,
        "count": stats.count,
        "first_ms": stats.first_ms,
        "last_ms": stats.last_ms,
        "metrics": metrics_to_record(stats, schema),
        "located": None if stats.located is None else list(stats.located),
        "latest": latest_to_record(window.latest, schema),
        "seen": window.seen.to_bytes(),
    }


def window_from_record(
    record: dict[str, Any], schema: TelemetrySchema = DEFAULT_SCHEMA
) -> HourlyWindow:
    """The window :func:`window_to_record` encoded, its metrics read by ``schema``'s names."""
    stats = Stats(
        int(record["count"]),
        metrics_from_record(record["metrics"], schema),
        _int_or_none(record["first_ms"]),
        _int_or_none(record["last_ms"]),
        None if record["located"] is None else _located(record["located"]),
    )
    latest = record.get("latest")
    return HourlyWindow(
        str(record["device_id"]),
        int(record["hour_ms"]),
        stats,
        IdentitySet.from_bytes(bytes(record["seen"])),
        latest_from_record(latest, schema),
    )


# --- the metrics, by name (issue #19: the names come from the telemetry schema) ----------------


def metrics_to_record(stats: Stats, schema: TelemetrySchema) -> dict[str, list[Any]]:
    """Each metric's moments by its name: ``[count, total, squares, min, max]``."""
    return {name: list(m) for name, m in zip(schema.names, stats.moments(schema), strict=True)}


def metrics_from_record(metrics: dict[str, Any], schema: TelemetrySchema) -> tuple[Moments, ...]:
    """The moments of each metric of the schema, in its order (empty where the record has none)."""
    return tuple(_moments(metrics.get(name)) for name in schema.names)


def latest_to_record(latest: Reading | None, schema: TelemetrySchema) -> dict[str, Any] | None:
    """The latest reading in the canonical format (``None``: none)."""
    return None if latest is None else latest.to_json(schema)


def latest_from_record(latest: Any, schema: TelemetrySchema) -> Reading | None:
    """The reading :func:`latest_to_record` wrote."""
    return None if latest is None else parse_reading(latest, schema.canonical())


def _moments(values: list[Any] | None) -> Moments:
    if not values or not int(values[0]):
        return Moments()
    count, total, squares, low, high = values
    return Moments(int(count), int(total), int(squares), int(low), int(high))


def _located(values: list[Any]) -> Located:
    ts, lat, lon = values
    return Located(int(ts), float(lat), float(lon))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
