"""The tests' oracle: what a store must hold for some payload lines, computed the plainest way.

Each distinct valid reading once (resends collapse on identity, the first version wins, as a
window keeps the first version it counted), folded per window with ``Stats.of``. The end-to-end
tests on every runtime hold what the pipeline stored to this.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from iotpipe.domain import InvalidReading, Reading, Stats, parse_reading


def distinct_readings(lines: Iterable[str | bytes]) -> list[Reading]:
    """The distinct valid readings among JSON lines (malformed or invalid lines are skipped)."""
    distinct: dict[tuple[str, int], Reading] = {}
    for line in lines:
        try:
            reading = parse_reading(orjson.loads(line))
        except (orjson.JSONDecodeError, InvalidReading):
            continue
        distinct.setdefault(reading.identity, reading)
    return sorted(distinct.values())


def expected_windows(lines: Iterable[str | bytes]) -> dict[tuple[str, int], Stats]:
    """Each window's statistics over the distinct valid readings (what must be stored)."""
    windows: dict[tuple[str, int], list[Reading]] = {}
    for reading in distinct_readings(lines):
        windows.setdefault((reading.device_id, reading.hour_ms), []).append(reading)
    return {key: Stats.of(readings) for key, readings in windows.items()}
