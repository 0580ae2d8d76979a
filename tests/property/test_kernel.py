"""The fast path (:mod:`iotpipe.domain.kernels`) against the plain definition, on the same input.

Same bytes in, same readings, windows and absorptions out: the kernel decodes a batch's records
into columns and grows the common window inline; the plain definition parses each item by the
declared rules and absorbs reading by reading (:meth:`HourlyWindow.absorb`). Neither side of
an assertion here computes with the other.
"""

from __future__ import annotations

from array import array
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpipe.domain import HourlyWindow, InvalidReading, Reading
from iotpipe.domain import window as window_module
from iotpipe.domain.kernels import ReadingColumns, absorb_all, decode_records
from iotpipe.domain.kernels.packing import fingerprints_of, identity_keys
from iotpipe.domain.reading import fold
from iotpipe.domain.time import MS_PER_HOUR
from tests.oracle import plain_parse
from tests.strategies import BASE_MS, payload, readings

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
    mostly later ones (so the inline growth is common), sometimes repeats of held ones or
    earlier ones, sometimes resends and conflicting versions within the offer."""
    device = "d1"
    held = draw(st.lists(readings(st.just(device)), max_size=6))
    held = [r._replace(timestamp_ms=BASE_MS + r.timestamp_ms % HALF_HOUR) for r in held]
    offered = draw(st.lists(readings(st.just(device)), min_size=1, max_size=8))
    late = draw(st.booleans())
    offered = [
        r._replace(timestamp_ms=BASE_MS + (0 if late else HALF_HOUR) + r.timestamp_ms % HALF_HOUR)
        for r in offered
    ]
    if held and draw(st.booleans()):
        offered.append(draw(st.sampled_from(held)))
    if draw(st.booleans()):  # a resend or a conflicting version within the offer
        again = draw(st.sampled_from(offered))
        offered.append(again._replace(values=draw(st.sampled_from([again.values, (1, None)]))))
    window, _ = HourlyWindow(device, BASE_MS).absorb(held)
    return window, offered


@settings(max_examples=500, deadline=None)
@given(st.lists(windows_and_offers(), min_size=1, max_size=4), st.integers(4, 20))
def test_the_kernel_absorbs_as_the_plain_definition(
    cases: list[tuple[HourlyWindow, list[Reading]]], room: int
) -> None:
    windows = [window for window, _ in cases]
    with pytest.MonkeyPatch.context() as patch:  # small windows: the full window is common
        patch.setattr(window_module, "MAX_READINGS_PER_WINDOW", room)
        kernel = absorb_all(windows, [bare(rows) for _, rows in cases])
        plain = [window.absorb(rows) for window, rows in cases]
    assert kernel == plain


@st.composite
def records(draw: st.DrawFn) -> list[bytes]:
    """A batch of stream records as devices and ingest send them: objects and arrays of
    readings, some with unknown fields, some invalid, some not JSON."""
    batch: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        items: list[Any] = [payload(r) for r in draw(st.lists(readings(), min_size=1, max_size=3))]
        kind = draw(st.sampled_from(["object", "array", "array", "extra", "invalid", "junk"]))
        if kind == "extra":
            items[0] = {**items[0], "firmware": "1.2"}
        elif kind == "invalid":
            items[-1] = {**items[-1], "timestamp": "yesterday"}
        body = b"{not json" if kind == "junk" else orjson.dumps(items)
        batch.append(orjson.dumps(items[0]) if kind == "object" else body)
    return batch


def plain_records(batch: list[bytes]) -> list[list[Reading] | None]:
    """Each record's readings by the declared rules (``None``: a record with any refusal)."""
    out: list[list[Reading] | None] = []
    for data in batch:
        try:
            value = orjson.loads(data)
            items = value if isinstance(value, list) else [value]
            out.append([plain_parse(item) for item in items])
        except (orjson.JSONDecodeError, InvalidReading):
            out.append(None)
    return out


def windows_of(rows: list[Reading]) -> dict[tuple[str, int], list[Reading]]:
    grouped: dict[tuple[str, int], list[Reading]] = {}
    for reading in rows:
        grouped.setdefault((reading.device_id, reading.hour_ms), []).append(reading)
    return grouped


@settings(max_examples=300, deadline=None)
@given(records())
def test_same_bytes_in_same_windows_out(batch: list[bytes]) -> None:
    decoded = decode_records(batch)
    plain = plain_records(batch)
    # Every record the declared rules refuse, in whole or in part, is declined by the kernel;
    # every record it takes holds exactly the readings the declared rules find in it.
    refused = {i for i, rows in enumerate(plain) if rows is None}
    assert refused <= set(decoded.declined)
    taken = [i for i in range(len(batch)) if i not in decoded.declined]
    assert decoded.owners == [i for i in taken for _ in plain[i]]  # type: ignore[union-attr]
    assert list(decoded.columns) == [r for i in taken for r in plain[i]]  # type: ignore[union-attr]
    # Absorbed window by window, the kernel's columns and the plain readings give the same.
    columns, offers = decoded.columns, windows_of(list(decoded.columns))
    positions: dict[tuple[str, int], list[int]] = {}
    for position, reading in enumerate(columns):
        positions.setdefault((reading.device_id, reading.hour_ms), []).append(position)
    keys = list(offers)
    kernel = absorb_all(
        [HourlyWindow(*k) for k in keys], [columns.take(positions[k]) for k in keys]
    )
    assert kernel == [HourlyWindow(*k).absorb(offers[k]) for k in keys]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**45)), max_size=40))
def test_digests_fold_word_by_word_as_one_by_one(pairs: list[tuple[int, int]]) -> None:
    # The fold runs on one integer made of all the digests' words; it must give each digest
    # the plain formula's value, negative digests and neighbouring words included.
    digests = array("q", [d for d, _ in pairs])
    times = [t for _, t in pairs]
    plain = [fold(d) for d in digests]
    assert fingerprints_of(digests) == plain
    keys = identity_keys(times, digests)
    assert keys.tolist() == [
        (t % MS_PER_HOUR) << 16 | fp for t, fp in zip(times, plain, strict=True)
    ]


@pytest.mark.parametrize(
    "stranger",
    [
        Reading("d2", BASE_MS + 5, (1, None)),  # another device
        Reading("d1", BASE_MS + MS_PER_HOUR, (1, None)),  # the next hour
        Reading("d1", BASE_MS - 1, (1, None)),  # the hour before
    ],
)
def test_the_kernel_refuses_another_windows_readings_as_the_plain_definition(
    stranger: Reading,
) -> None:
    window = HourlyWindow("d1", BASE_MS)
    offer = [Reading("d1", BASE_MS + 1, (1, None)), stranger]
    with pytest.raises(ValueError, match="outside window"):
        window.absorb(offer)
    with pytest.raises(ValueError, match="outside window"):
        absorb_all([window], [bare(offer)])
