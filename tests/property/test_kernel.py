"""Readings held as columns behave as the readings they hold, and absorb as they do.

The process path carries a batch as :class:`ReadingColumns` and grows the common window inline
(:func:`absorb_all`); everything else takes the general way. These properties hold the columns
to the readings, and the inline growth to the general way, value for value.
"""

from __future__ import annotations

from array import array
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpipe.domain import HourlyWindow, Reading, ReadingColumns, absorb_all
from iotpipe.domain.reading import fingerprints_of, identity_keys
from iotpipe.domain.time import MS_PER_HOUR
from tests.strategies import BASE_MS, readings

pytestmark = pytest.mark.unit

HALF_HOUR = MS_PER_HOUR // 2


def bare(rows: list[Reading]) -> ReadingColumns:
    """Columns built from raw lists, as the decoder builds them (no Reading objects yet)."""
    return ReadingColumns(
        [r.device_id for r in rows],
        [r.timestamp_ms for r in rows],
        tuple([r.values[i] for r in rows] for i in range(len(rows[0].values) if rows else 2)),
        [None if r.location is None else r.location.lat for r in rows],
        [None if r.location is None else r.location.lon for r in rows],
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(readings(), max_size=12))
def test_columns_are_the_readings_they_hold(rows: list[Reading]) -> None:
    for columns in (bare(rows), ReadingColumns.of(rows)):
        assert len(columns) == len(rows)
        assert list(columns) == rows
        assert repr(list(columns)) == repr(rows)  # same types: int fixed point, float degrees
        assert columns.fingerprints == [r.fingerprint() for r in rows]
        assert columns.identity_keys.tolist() == [
            (r.timestamp_ms % MS_PER_HOUR) << 16 | r.fingerprint() for r in rows
        ]
        assert [columns.row(i) for i in range(len(rows))] == rows


@settings(max_examples=300, deadline=None)
@given(st.lists(readings(), min_size=1, max_size=12), st.data())
def test_taking_and_splitting_keep_each_reading_with_its_fingerprint(
    rows: list[Reading], data: st.DataObject
) -> None:
    columns = bare(rows)
    positions = data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=20))
    taken = columns.take(positions)
    assert list(taken) == [rows[i] for i in positions]
    assert taken.fingerprints == [rows[i].fingerprint() for i in positions]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    bounds = [0, *cuts, len(rows)]
    parts = columns.split(bounds)
    assert [list(p) for p in parts] == [rows[a:b] for a, b in pairwise(bounds)]
    assert [p.identity_keys.tolist() for p in parts] == [
        columns.identity_keys[a:b].tolist() for a, b in pairwise(bounds)
    ]


@st.composite
def windows_and_offers(draw: st.DrawFn) -> tuple[HourlyWindow, list[Reading]]:
    """A window holding some readings of its first half hour, and readings offered to it:
    mostly later ones (so the inline growth is common), sometimes repeats of held ones."""
    device = "d1"
    held = draw(st.lists(readings(st.just(device)), max_size=6))
    held = [r._replace(timestamp_ms=BASE_MS + r.timestamp_ms % HALF_HOUR) for r in held]
    offered = draw(st.lists(readings(st.just(device)), min_size=1, max_size=8))
    offered = [
        r._replace(timestamp_ms=BASE_MS + HALF_HOUR + r.timestamp_ms % HALF_HOUR) for r in offered
    ]
    if held and draw(st.booleans()):
        offered.append(draw(st.sampled_from(held)))
    window, _ = HourlyWindow(device, BASE_MS).absorb(held)
    return window, offered


@settings(max_examples=500, deadline=None)
@given(st.lists(windows_and_offers(), min_size=1, max_size=4))
def test_the_inline_growth_is_the_general_way(cases: list[tuple[HourlyWindow, list]]) -> None:
    windows = [window for window, _ in cases]
    offered = [bare(rows) for _, rows in cases]
    inline = absorb_all(windows, offered)
    general = [window._absorb(bare(rows)) for window, rows in cases]
    assert inline == general
    for (updated, absorption), (_, rows) in zip(inline, cases, strict=True):
        assert updated.latest == max(
            [updated.latest, *absorption.new], key=lambda r: -1 if r is None else r.timestamp_ms
        )
        assert len(absorption.new) + len(absorption.duplicates) + len(absorption.conflicts) == len(
            rows
        )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**45)), max_size=40))
def test_digests_fold_word_by_word_as_one_by_one(pairs: list[tuple[int, int]]) -> None:
    # The fold runs on one integer made of all the digests' words; it must give each digest
    # the plain formula's value, negative digests and neighbouring words included.
    digests = array("q", [d for d, _ in pairs])
    times = [t for _, t in pairs]
    plain = [(d ^ d >> 16 ^ d >> 32 ^ d >> 48) & 0xFFFF for d in digests]
    assert fingerprints_of(digests) == plain
    keys = identity_keys(times, digests)
    assert keys.tolist() == [
        (t % MS_PER_HOUR) << 16 | fp for t, fp in zip(times, plain, strict=True)
    ]
