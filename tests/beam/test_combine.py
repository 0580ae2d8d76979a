"""The replay's combine, as plain Python (no Beam needed): any split of the inputs into
accumulators, any order and any merge tree give what the single-process replay gives.

The oracle is the domain itself, used the single-process way: each batch absorbed into the
window in archive order (name order), one after the other.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpipe.domain import HourlyWindow, Location, Reading
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.entrypoints.beam.combine import WindowReadings, as_readings, merge, pack

pytestmark = pytest.mark.unit

HOUR = 1_756_598_400_000  # 2025-08-31T00:00:00Z
DEVICE = "d1"

# Few identities and few versions, so that repeats, resends and conflicts are common.
_times = st.sampled_from([HOUR + 1000 * i for i in range(8)])
_values = st.sampled_from([(10_000, None), (10_500, None), (None, 40_000)])
_places = st.sampled_from([None, Location(34.05, -118.24), Location(34.05, -118.25)])
_readings = st.builds(lambda t, v, p: Reading(DEVICE, t, v, p), _times, _values, _places)
_batches = st.lists(
    st.tuples(
        st.sampled_from([f"raw/dt=2025-08-31/hour=0{h}/b{n}" for h in range(3) for n in "xyz"]),
        st.lists(_readings, max_size=6),
    ),
    max_size=8,
    unique_by=lambda b: b[0],
)


def single_process(
    start: HourlyWindow, batches: list[tuple[str, list[Reading]]]
) -> tuple[HourlyWindow, list[int]]:
    """The window after absorbing each batch in name order, and how many readings were new,
    duplicates, conflicts."""
    window, tally = start, [0, 0, 0]
    for _, readings in sorted(batches, key=lambda b: b[0]):
        window, absorption = window.absorb(readings)
        tally = [
            tally[0] + len(absorption.new),
            tally[1] + len(absorption.duplicates),
            tally[2] + len(absorption.conflicts),
        ]
    return window, tally


def combined(batches: list[tuple[str, list[Reading]]], rng: random.Random) -> WindowReadings:
    """The batches through accumulators: shuffled, split at random, merged in a random tree."""
    order = list(batches)
    rng.shuffle(order)
    accumulators = []
    for name, readings in order:
        if not accumulators or rng.random() < 0.5:
            accumulators.append(WindowReadings())
        rng.choice(accumulators).add(name, pack(readings))
    while len(accumulators) > 1:
        rng.shuffle(accumulators)
        take = rng.randint(2, len(accumulators))
        accumulators = [merge(accumulators[:take]), *accumulators[take:]]
    return accumulators[0] if accumulators else merge([])


@settings(max_examples=300, deadline=None)
@given(batches=_batches, held=st.lists(_readings, max_size=4), seed=st.integers(0, 2**32))
def test_any_split_any_order_any_merge_tree_stores_what_the_single_process_replay_stores(
    batches: list[tuple[str, list[Reading]]], held: list[Reading], seed: int
) -> None:
    start, _ = HourlyWindow(DEVICE, HOUR).absorb(held)  # the store may hold readings already
    expected, tally = single_process(start, batches)

    offered = combined(batches, random.Random(seed)).offered()
    window, absorption = start.absorb(as_readings(DEVICE, offered))

    assert window == expected
    assert [len(absorption.new), len(absorption.duplicates), len(absorption.conflicts)] == tally
    # Deterministic: another split and merge tree offers the very same copies.
    assert combined(batches, random.Random(seed + 1)).offered() == offered


def test_each_identity_is_kept_once_the_copy_first_in_archive_order() -> None:
    early, late = Reading(DEVICE, HOUR, (1, None), None), Reading(DEVICE, HOUR, (2, None), None)
    later_first = WindowReadings().add("raw/dt=2025-08-31/hour=05/b", pack([late, late]))
    earlier = WindowReadings().add("raw/dt=2025-08-31/hour=01/a", pack([early]))
    both = merge([later_first, earlier])
    assert len(both) == 1
    assert both.kept[HOUR] == (("raw/dt=2025-08-31/hour=01/a", 0), (HOUR, (1, None), None, None))
    assert as_readings(DEVICE, both.offered()) == [early, late, late]
    # An identical repeat costs a reference: it shares the kept copy's row.
    again = WindowReadings().add("raw/dt=2025-08-31/hour=02/c", pack([Reading(*early)]))
    merged = merge([both, again])
    assert merged.repeats[-1][1] is merged.kept[HOUR][1]


def test_offered_copies_are_distinct_objects_so_the_store_can_report_each() -> None:
    reading = Reading(DEVICE, HOUR + MS_PER_HOUR - 1, (1, None), None)
    accumulator = WindowReadings().add("a", pack([reading])).add("b", pack([reading]))
    offered = accumulator.offered()
    assert [origin for origin, _ in offered] == [("a", 0), ("b", 0)]
    rebuilt = as_readings(DEVICE, offered)
    assert rebuilt == [reading, reading]
    assert rebuilt[0] is not rebuilt[1]
