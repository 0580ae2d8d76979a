"""The tests' oracle: what a store must hold, computed the plainest way, independently of the
code under test.

Each distinct valid reading once (resends collapse on identity, the first version wins, as a
window keeps the first version it counted), validated by the declared rules
(:mod:`iotpipe.domain.schema`, never the fast path), and each window's statistics summed with
plain Python integers (never ``Stats.add`` or the kernel). The end-to-end tests on every
runtime, the stateful store test and the triage model hold what the pipeline stored to this.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from iotpipe.domain import METRICS, InvalidReading, Located, Moments, Reading, Reason, Stats
from iotpipe.domain.schema import validate
from iotpipe.domain.time import MS_PER_HOUR


def plain_parse(item: object) -> Reading:
    """The reading an item holds by the declared rules alone; raises :class:`InvalidReading`."""
    if not isinstance(item, dict):
        raise InvalidReading(Reason.NOT_AN_OBJECT, "a reading must be a JSON object")
    return validate(item)


def plain_stats(readings: Iterable[Reading]) -> Stats:
    """The aggregate of readings (each counted once per occurrence), with integer sums."""
    rows = list(readings)
    if not rows:
        return Stats()
    located = [(r.timestamp_ms, *r.location) for r in rows if r.location is not None]
    return Stats(
        count=len(rows),
        metrics=tuple(_moments([r.values[i] for r in rows]) for i in range(len(METRICS))),
        first_ms=min(r.timestamp_ms for r in rows),
        last_ms=max(r.timestamp_ms for r in rows),
        located=Located(*max(located)) if located else None,
    )


def _moments(column: list[int | None]) -> Moments:
    values = [v for v in column if v is not None]
    if not values:
        return Moments()
    return Moments(len(values), sum(values), sum(v * v for v in values), min(values), max(values))


def first_of_each_identity(readings: Iterable[Reading]) -> list[Reading]:
    """The first reading of each identity, in order of first appearance."""
    first: dict[tuple[str, int], Reading] = {}
    for reading in readings:
        first.setdefault((reading.device_id, reading.timestamp_ms), reading)
    return list(first.values())


def windows_of(readings: Iterable[Reading]) -> dict[tuple[str, int], Stats]:
    """Each window's statistics over these readings (already distinct)."""
    groups: dict[tuple[str, int], list[Reading]] = {}
    for reading in readings:
        key = (reading.device_id, reading.timestamp_ms - reading.timestamp_ms % MS_PER_HOUR)
        groups.setdefault(key, []).append(reading)
    return {key: plain_stats(rows) for key, rows in groups.items()}


def distinct_readings(lines: Iterable[str | bytes]) -> list[Reading]:
    """The distinct valid readings among JSON lines (malformed or invalid lines are skipped)."""
    valid: list[Reading] = []
    for line in lines:
        try:
            valid.append(plain_parse(orjson.loads(line)))
        except (orjson.JSONDecodeError, InvalidReading):
            continue
    return sorted(first_of_each_identity(valid))


def expected_windows(lines: Iterable[str | bytes]) -> dict[tuple[str, int], Stats]:
    """Each window's statistics over the distinct valid readings (what must be stored)."""
    return windows_of(distinct_readings(lines))
