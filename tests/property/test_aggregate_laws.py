"""The algebra: Moments and Stats are commutative monoids under merge, with exact equality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotpipe.domain import Moments, Reading, Stats, merge_all
from tests.oracle import plain_stats
from tests.strategies import readings

pytestmark = pytest.mark.unit

stats = st.lists(readings(), max_size=6).map(Stats.of)


@given(stats)
def test_empty_is_the_identity(a: Stats) -> None:
    assert a.merge(Stats.create()) == a
    assert Stats.create().merge(a) == a


@given(stats, stats)
def test_merge_is_commutative(a: Stats, b: Stats) -> None:
    assert a.merge(b) == b.merge(a)


@given(stats, stats, stats)
def test_merge_is_associative(a: Stats, b: Stats, c: Stats) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@given(st.lists(readings(), max_size=30), st.data())
def test_any_grouping_and_order_gives_bit_identical_results(items, data) -> None:
    whole = Stats.of(items)
    shuffled = data.draw(st.permutations(items))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=5)))
    parts = [shuffled[i:j] for i, j in zip([0, *cuts], [*cuts, len(items)], strict=True)]
    assert merge_all(Stats.of(p) for p in parts) == whole
    # Bit-identical presentation too: the floats come from exact integers.
    reordered = merge_all(Stats.of(p) for p in reversed(parts))
    for a, b in zip(reordered.metrics, whole.metrics, strict=True):
        assert a.extract() == b.extract()


@given(st.lists(readings(), min_size=1, max_size=30))
def test_summary_matches_a_direct_computation(items) -> None:
    result = Stats.of(items)
    assert result.count == len(items)
    for i, moments in enumerate(result.metrics):
        values = [r.values[i] / 1000 for r in items if r.values[i] is not None]
        summary = moments.extract()
        assert summary.count == len(values)
        if not values:
            assert summary.mean is None and summary.stddev is None
            continue
        mean = sum(values) / len(values)
        assert summary.min == min(values) and summary.max == max(values)
        assert summary.mean == pytest.approx(mean, abs=1e-9)
        variance = sum((v - mean) ** 2 for v in values) / len(values)
        assert summary.stddev == pytest.approx(variance**0.5, abs=1e-6)
    assert result.first_ms == min(r.timestamp_ms for r in items)
    assert result.last_ms == max(r.timestamp_ms for r in items)
    located = [r for r in items if r.location is not None]
    if located:
        latest = max(located, key=lambda r: (r.timestamp_ms, r.location.lat, r.location.lon))
        assert result.located is not None
        assert result.located.location == latest.location


@given(st.lists(readings(), max_size=20), st.lists(readings(), max_size=20))
def test_adding_one_at_a_time_then_merging_is_adding_all(a, b) -> None:
    # The CombineFn law: add_input folded over each part, then merge_accumulators.
    assert Stats.of(a).merge(Stats.of(b)) == Stats.of(a + b)


@given(st.lists(readings(), max_size=30))
def test_the_plain_fold_is_what_plain_integers_say(items) -> None:
    assert Stats.of(items) == plain_stats(items)


def test_moments_take_one_value_at_a_time() -> None:
    moments = Moments.create().add(5).add(-3)
    assert moments == Moments(count=2, total=2, squares=34, minimum=-3, maximum=5)
    assert moments.merge(Moments.create()) == moments
    assert moments.extract().mean == 0.001


def test_former_names_still_work_and_say_what_replaces_them() -> None:
    reading = Reading("d1", 1, (20_000, None))
    with pytest.warns(DeprecationWarning, match=r"Stats.create\(\)"):
        assert Stats.empty() == Stats.create()
    with pytest.warns(DeprecationWarning, match=r"Moments.extract\(\)"):
        assert Moments().add(1).summary() == Moments().add(1).extract()
    with pytest.warns(DeprecationWarning, match=r"Stats.of\(readings\)"):
        assert Stats.create().add([reading, reading]) == Stats.of([reading, reading])


@given(st.lists(stats, max_size=4), st.lists(readings(), max_size=12), st.data())
def test_a_windows_growth_moves_a_total_from_its_old_to_its_new_state(others, items, data) -> None:
    """What a fleet total gains when one of its windows grows, however often it grows: the
    total kept by adding growths equals the merge of the windows as they end, computed with
    plain integers."""
    from iotpipe.domain import FleetTotal, growth

    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=4)))
    states = [Stats.of(items[:cut]) for cut in [*cuts, len(items)]]  # one window, growing
    kept = FleetTotal(merge_all(others), len(others))
    before: Stats | None = None
    for state in states:
        if state.count and state != before:
            kept = kept.grown(before, state)
            before = state
    end = merge_all([*others, plain_stats(items)])
    assert kept == FleetTotal(end, len(others) + bool(items))
    if items:
        assert merge_all([*others, states[0]]).merge(growth(states[0], states[-1])) == end
