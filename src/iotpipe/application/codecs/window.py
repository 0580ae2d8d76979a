"""A window as a flat, JSON-safe record: the shared storage format of every persistent store.

Every number stays an exact integer (fixed point; see :mod:`iotpipe.domain.metrics`), so a
stored window decodes to exactly the window that was written. Per metric the record holds
``[count, total, squares, min, max]``. ``seen`` is the compact identity set as bytes; stores
keep it in a binary column or attribute. The largest integer is a sum of squares: at most
``1e12 * 72,000 = 7.2e16``, within the signed 64-bit range Firestore and SQLite use.
"""

from __future__ import annotations

from typing import Any

from iotpipe.domain import (
    METRIC_NAMES,
    HourlyWindow,
    IdentitySet,
    Located,
    Moments,
    Stats,
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


def window_to_record(window: HourlyWindow) -> dict[str, Any]:
    """The window as a dict of str, int, list, None and one ``bytes`` value (``seen``)."""
    stats = window.stats
    return {
        "format": FORMAT,
        "device_id": window.device_id,
        "hour_ms": window.hour_ms,
        "count": stats.count,
        "first_ms": stats.first_ms,
        "last_ms": stats.last_ms,
        "metrics": {name: list(m) for name, m in zip(METRIC_NAMES, stats.metrics, strict=True)},
        "located": None if stats.located is None else list(stats.located),
        "latest": None if window.latest is None else window.latest.to_json(),
        "seen": window.seen.to_bytes(),
    }


def window_from_record(record: dict[str, Any]) -> HourlyWindow:
    """The window :func:`window_to_record` encoded (metrics added later decode as empty)."""
    metrics = record["metrics"]
    stats = Stats(
        int(record["count"]),
        tuple(_moments(metrics.get(name)) for name in METRIC_NAMES),
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
        None if latest is None else parse_reading(latest),
    )


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
