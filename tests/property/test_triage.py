"""One batch of mixed records against the plainest model of what processing it must do.

The process service decodes a batch's plain records together, column by column, judges their
lateness against the batch-wide bounds first, and sends every other record the general way.
Whatever the mix (objects and arrays, plain records and records with extra fields, malformed
and invalid ones, readings late or early against their own record's arrival, resends and
conflicting versions of the same identity), the outcome must be the model's: each record taken
item by item in stream order, each item parsed, checked against its record's arrival, and the
first version of each identity counted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryQuarantine, MemoryStore
from iotpipe.application import ProcessService
from iotpipe.domain import InvalidReading, LatenessPolicy, Reading, Reason, Stats
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import RawBatch, RawRecord
from tests.oracle import plain_parse, windows_of
from tests.strategies import BASE_MS, payload, readings

pytestmark = pytest.mark.unit

POLICY = LatenessPolicy(horizon=timedelta(hours=1), max_skew=timedelta(minutes=5))
NOW = BASE_MS + 2 * MS_PER_HOUR


@st.composite
def record_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A record's bytes and its arrival time (``None``: the stream did not say)."""
    kind = draw(st.sampled_from(["object", "array", "extra field", "malformed", "invalid"]))
    items: list[dict[str, Any]] = [
        payload(r) for r in draw(st.lists(readings(), min_size=1, max_size=3))
    ]
    if kind == "malformed":
        data = b"{not json"
    elif kind == "object":
        data = orjson.dumps(items[0])
    elif kind == "extra field":
        data = orjson.dumps([{**item, "firmware": "1.2"} for item in items])
    elif kind == "invalid":
        items[-1] = {**items[-1], "timestamp": "yesterday"}
        data = orjson.dumps(items)
    else:
        data = orjson.dumps(items)
    arrived = draw(st.none() | st.integers(BASE_MS, BASE_MS + 4 * MS_PER_HOUR))
    return data, arrived


def model(records: list[RawRecord]) -> tuple[dict[tuple[str, int], Stats], list[tuple], dict]:
    """Windows, refusals ``(record, item, reason)`` and counts, the plainest way."""
    counted: dict[tuple[str, int], Reading] = {}
    refused: list[tuple[str, int, Reason]] = []
    counts = {"received": 0, "accepted": 0, "duplicates": 0}
    for record in records:
        try:
            value = orjson.loads(record.data)
        except orjson.JSONDecodeError:
            counts["received"] += 1
            refused.append((record.record_id, 0, Reason.MALFORMED_JSON))
            continue
        items = value if isinstance(value, list) else [value]
        counts["received"] += len(items)
        arrived = NOW if record.arrived_ms is None else record.arrived_ms
        for index, item in enumerate(items):
            try:
                reading = plain_parse(item)
            except InvalidReading as exc:
                refused.append((record.record_id, index, exc.reason))
                continue
            late = POLICY.check(reading.timestamp_ms, arrived)
            first = counted.get(reading.identity)
            if late is not None:
                refused.append((record.record_id, index, late))
            elif first is None:
                counted[reading.identity] = reading
                counts["accepted"] += 1
            elif first.fingerprint() == reading.fingerprint():
                counts["duplicates"] += 1
            else:
                refused.append((record.record_id, index, Reason.CONFLICTING_DUPLICATE))
    return windows_of(counted.values()), sorted(refused), counts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_bodies(), min_size=1, max_size=12))
def test_a_mixed_batch_is_processed_as_the_model_says(
    bodies: list[tuple[bytes, int | None]],
) -> None:
    records = [RawRecord(f"{n:03}", data, arrived) for n, (data, arrived) in enumerate(bodies)]
    store, quarantine = MemoryStore(), MemoryQuarantine()
    service = ProcessService(store, ManualClock(NOW), quarantine=quarantine, lateness=POLICY)
    report = service.process(RawBatch("b", tuple(records)))
    windows, refused, counts = model(records)
    stored = {w.key: w.stats for w in _every_window(store)}
    assert stored == windows
    got = sorted((r.record_id, r.index, r.reason) for r in quarantine.rejections())
    assert got == refused
    assert (report.received, report.accepted, report.duplicates) == (
        counts["received"],
        counts["accepted"],
        counts["duplicates"],
    )
    assert sum(report.rejected.values()) == len(refused)


def _every_window(store: MemoryStore) -> list:
    hours = range(BASE_MS - 4 * MS_PER_HOUR, BASE_MS + 8 * MS_PER_HOUR, MS_PER_HOUR)
    return [w for hour in hours for w in store.fleet_hour(hour, limit=1000).items]
