"""Schema evolution on every store (memory, SQLite, DynamoDB on moto, Firestore on its
emulator): the store's schema record, checked at start-up (:func:`iotpipe.application.use_schema`).

Adding a metric keeps every stored window readable (old windows lack it); removing one keeps its
aggregates queryable (as a retired metric); changing a kept metric's unit or resolution is
refused with a message saying what to do, unless the metric gets a new name.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from iotpipe.application import settle_schema, use_schema
from iotpipe.domain import Metric, Reading, SchemaConflict, TelemetrySchema
from iotpipe.domain.evolution import SchemaRecord, record_of
from iotpipe.domain.telemetry import SchemaRecordChanged
from iotpipe.ports import Contribution
from tests.strategies import BASE_MS

pytestmark = pytest.mark.unit

PRESSURE = Metric("pressure", "kPa", 0, 1000, exponent=-1)
POWER = Metric("power", "kW", 0, 100)
BASE = TelemetrySchema((PRESSURE,), location=None)
MORE = TelemetrySchema((PRESSURE, POWER), location=None)
ONLY_POWER = TelemetrySchema((POWER,), location=None)


def _apply(store, schema: TelemetrySchema, ts: int, **values: float) -> None:
    fixed = tuple(
        None if m.name not in values else m.to_fixed(values[m.name]) for m in schema.metrics
    )
    reading = Reading("dev-1", ts, fixed, None)
    result = store.apply([Contribution("dev-1", reading.hour_ms, (reading,))])
    assert not result.failed


def _view(store, schema: TelemetrySchema) -> list[dict[str, int]]:
    """Each stored window's count per metric of ``schema``."""
    page = store.hourly("dev-1", 0, 2**60, limit=10)
    return [
        {n: m.count for n, m in zip(schema.names, w.stats.moments(schema), strict=True)}
        for w in page.items
    ]


def test_adding_then_removing_metrics_keeps_every_window_readable(store_factory) -> None:
    store = store_factory()
    assert use_schema(store, BASE) == BASE
    _apply(store, BASE, BASE_MS, pressure=500.5)
    # A restart with a metric more: the record grows, the old window simply lacks it.
    assert use_schema(store, MORE) == MORE
    _apply(store, MORE, BASE_MS + 3_600_000, pressure=501, power=12.5)
    assert _view(store, MORE) == [{"pressure": 1, "power": 0}, {"pressure": 1, "power": 1}]
    [kept] = [w for w in store.hourly("dev-1", 0, 2**60, limit=10).items][:1]
    assert kept.stats.moments(MORE)[0].total == 5005  # 500.5 at 0.1, exactly
    # A restart without pressure: it is run as retired, its aggregates still read.
    running = use_schema(store, ONLY_POWER)
    assert running.names == ("power", "pressure")
    assert [m.retired for m in running.metrics] == [False, True]
    assert running.metric("pressure").exponent == -1
    assert _view(store, running) == [{"power": 0, "pressure": 1}, {"power": 1, "pressure": 1}]
    found = store.schema_records().read()
    assert found is not None and found[0] == record_of(MORE)


def _fleet(store, hour_ms: int, schema: TelemetrySchema) -> dict[str, tuple[int, int]]:
    """The hour's fleet total (kept as windows are written) per metric of ``schema``:
    ``(count, total)``."""
    stats = store.fleet_total(hour_ms).stats
    return {n: (m.count, m.total) for n, m in zip(schema.names, stats.moments(schema), strict=True)}


def test_fleet_totals_follow_the_schema_and_keep_retired_metrics(store_factory) -> None:
    # Format 2 keeps each hour's fleet total beside the windows (lanes, a row, a total in
    # memory), encoded by metric name: a total written under one schema is read, grown and
    # written again under the next, and must lose no metric on the way.
    store = store_factory()
    hour0, hour1 = BASE_MS, BASE_MS + 3_600_000
    use_schema(store, BASE)
    _apply(store, BASE, hour0, pressure=500.5)
    assert _fleet(store, hour0, BASE) == {"pressure": (1, 5005)}
    use_schema(store, MORE)
    _apply(store, MORE, hour1, pressure=501, power=12)
    assert _fleet(store, hour0, MORE) == {"pressure": (1, 5005), "power": (0, 0)}
    assert _fleet(store, hour1, MORE) == {"pressure": (1, 5010), "power": (1, 12_000)}
    # Without pressure (retired): hour 1's total grows by power only and keeps pressure's sums.
    running = use_schema(store, ONLY_POWER)
    _apply(store, running, hour1 + 60_000, power=13)
    assert _fleet(store, hour1, running) == {"power": (2, 25_000), "pressure": (1, 5010)}
    assert _fleet(store, hour0, running) == {"power": (0, 0), "pressure": (1, 5005)}
    assert store.fleet_total(hour1).devices == 1


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        (replace(PRESSURE, exponent=-2), "resolution 0.1 in the store, 0.01 in the schema"),
        (replace(PRESSURE, unit="bar"), "unit 'kPa' in the store, 'bar' in the schema"),
    ],
)
def test_changing_a_kept_metric_is_refused_unless_renamed(
    store_factory, changed: Metric, message: str
) -> None:
    store = store_factory()
    use_schema(store, BASE)
    _apply(store, BASE, BASE_MS, pressure=500.5)
    with pytest.raises(SchemaConflict) as refused:
        use_schema(store, TelemetrySchema((changed,), location=None))
    assert message in str(refused.value) and "new name" in str(refused.value)
    assert store.schema_records().read()[0] == record_of(BASE)  # nothing was recorded
    renamed = TelemetrySchema((replace(changed, name="pressure_v2"),), location=None)
    running = use_schema(store, renamed)
    assert running.names == ("pressure_v2", "pressure")
    assert _view(store, running) == [{"pressure_v2": 0, "pressure": 1}]


def test_a_store_written_before_schema_records_is_taken_to_hold_the_default_payload(
    store_factory,
) -> None:
    from iotpipe.domain import DEFAULT_SCHEMA

    store = store_factory()
    _apply(store, DEFAULT_SCHEMA, BASE_MS, temperature=20.5)  # no record was ever written
    assert store.schema_records().read() is None
    coarse = TelemetrySchema((replace(DEFAULT_SCHEMA.metrics[0], exponent=-1),))
    with pytest.raises(SchemaConflict, match=r"resolution 0\.001 in the store"):
        use_schema(store, coarse)
    assert use_schema(store, DEFAULT_SCHEMA) == DEFAULT_SCHEMA


def test_the_record_is_written_under_a_concurrency_token(store_factory) -> None:
    records = store_factory().schema_records()
    assert records.read() is None
    records.write(record_of(BASE), None)
    with pytest.raises(SchemaRecordChanged):
        records.write(record_of(MORE), None)  # someone else created it first
    record, version = records.read()
    assert record == record_of(BASE)
    records.write(record_of(MORE), version)
    with pytest.raises(SchemaRecordChanged):
        records.write(record_of(BASE), version)  # stale: it changed since that version
    assert records.read()[0] == record_of(MORE)


def test_two_start_ups_adding_different_metrics_keep_both(store_factory) -> None:
    store = store_factory()
    records = store.schema_records()
    settle_schema(records, BASE)

    class Racing:
        """The record as another start-up changes it between this one's read and write."""

        def __init__(self) -> None:
            self.raced = False

        def read(self):
            return records.read()

        def write(self, record: SchemaRecord, expected) -> None:
            if not self.raced:
                self.raced = True
                settle_schema(records, TelemetrySchema((PRESSURE, POWER), location=None))
            records.write(record, expected)

    flow = Metric("flow", "l/min", 0, 500)
    running = settle_schema(Racing(), TelemetrySchema((PRESSURE, flow), location=None))
    assert running.names == ("pressure", "flow", "power")
    assert {m.name for m in records.read()[0].metrics} == {"pressure", "power", "flow"}
