"""The promise: stored aggregates do not depend on delivery.

For any readings, any split into batches, any order, any duplication (device resends, whole-batch
retries, partial retries), the stored aggregates equal those of the distinct readings processed
once. Run over every store adapter.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpipe.adapters.clock import ManualClock
from iotpipe.application import Pipeline
from iotpipe.application.payloads import encode_items
from iotpipe.application.views import window_json
from iotpipe.domain import FleetTotal, LatenessPolicy, Stats, merge_all
from iotpipe.ports import RawBatch, RawRecord
from tests.oracle import first_of_each_identity, windows_of
from tests.strategies import BASE_MS, distinct_by_identity, payload, readings

pytestmark = pytest.mark.unit


# The fixture is a factory: each example calls it for a fresh store, so sharing it is safe.
_FRESH_STORE_PER_EXAMPLE = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _pipeline(store) -> Pipeline:
    return Pipeline(store=store, clock=ManualClock(BASE_MS), lateness=LatenessPolicy.unbounded())


def _expected(items) -> dict[tuple[str, int], Stats]:
    return windows_of(first_of_each_identity(items))


def _stored(pipeline: Pipeline) -> dict[tuple[str, int], Stats]:
    return {w.key: w.stats for w in pipeline.query.every_window()}


def _totals_match(pipeline: Pipeline, expected: dict[tuple[str, int], Stats]) -> None:
    """Each hour's kept fleet total is the merge of its expected windows."""
    for hour in {h for _, h in expected}:
        mine = [s for (_, h), s in expected.items() if h == hour]
        assert pipeline.store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))


@st.composite
def deliveries(draw: st.DrawFn):
    """Readings (each identity with one set of values), and a messy delivery of them."""
    items = distinct_by_identity(draw(st.lists(readings(), min_size=1, max_size=40)))
    # Device resends: some readings appear several times.
    resent = items + draw(st.lists(st.sampled_from(items), max_size=15))
    order = draw(st.permutations(resent))
    # Records carry one reading or an array of several (one message per ingest batch).
    records: list[list] = []
    i = 0
    while i < len(order):
        n = draw(st.integers(1, 4))
        records.append(order[i : i + n])
        i += n
    # Split into batches; then retry whole batches and parts of batches, reordered.
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(records) - 1)), max_size=6))))
    batches = [
        records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True) if records[a:b]
    ]
    retries = draw(
        st.lists(
            st.tuples(st.integers(0, len(batches) - 1), st.integers(0, 10), st.integers(0, 10)),
            max_size=5,
        )
    )
    plan = list(batches)
    for b, start, length in retries:
        plan.append(batches[b][start : start + length] or batches[b])
    return items, draw(st.permutations(plan))


def _batch(n: int, records: list[list]) -> RawBatch:
    raw = tuple(
        RawRecord(f"{n}-{i}", encode_items([payload(r) for r in rec]))
        for i, rec in enumerate(records)
    )
    return RawBatch(f"batch-{n}", raw)


@settings(max_examples=60, deadline=None, suppress_health_check=_FRESH_STORE_PER_EXAMPLE)
@given(delivery=deliveries())
def test_any_split_any_order_any_duplicates_same_result(store_factory, delivery) -> None:
    items, plan = delivery
    pipeline = _pipeline(store_factory())
    for n, records in enumerate(plan):
        report = pipeline.process(_batch(n, records))
        assert report.failed_records == ()
        assert report.received == report.accepted + report.duplicates + sum(
            report.rejected.values()
        )
    assert _stored(pipeline) == _expected(items)
    _totals_match(pipeline, _expected(items))


@settings(max_examples=30, deadline=None, suppress_health_check=_FRESH_STORE_PER_EXAMPLE)
@given(delivery=deliveries())
def test_replaying_everything_changes_nothing_and_writes_nothing(store_factory, delivery) -> None:
    _, plan = delivery
    pipeline = _pipeline(store_factory())
    for n, records in enumerate(plan):
        pipeline.process(_batch(n, records))
    before = [window_json(w) for w in pipeline.query.every_window()]
    writes = pipeline.store.ops().writes
    for n, records in enumerate(reversed(plan)):
        report = pipeline.process(_batch(1000 + n, records))
        assert report.accepted == 0 and report.windows_updated == 0
    assert [window_json(w) for w in pipeline.query.every_window()] == before
    assert pipeline.store.ops().writes == writes


@settings(max_examples=30, deadline=None, suppress_health_check=_FRESH_STORE_PER_EXAMPLE)
@given(st.lists(readings(), min_size=1, max_size=30), st.data())
def test_conflicting_duplicates_never_count_twice(store_factory, items, data) -> None:
    """A resend with other values is reported, and each identity is still counted once."""
    pipeline = _pipeline(store_factory())
    twisted = [
        r._replace(values=(None if r.values[0] is not None else 1234, *r.values[1:]))
        for r in data.draw(st.lists(st.sampled_from(items), max_size=10))
    ]
    twisted = [t for t in twisted if any(v is not None for v in t.values)]
    for n, group in enumerate([items, twisted, items]):
        if group:
            pipeline.process(_batch(n, [[r] for r in group]))
    stored = _stored(pipeline)
    identities = {r.identity for r in items}
    assert sum(s.count for s in stored.values()) == len(identities)
    assert stored == _expected(items)
    _totals_match(pipeline, stored)
