"""Hourly windows, identity sets and lateness."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotpipe.domain import (
    Absorption,
    HourlyWindow,
    IdentitySet,
    LatenessPolicy,
    Reading,
    Reason,
    Stats,
)
from iotpipe.domain import window as window_module
from iotpipe.domain.time import MS_PER_HOUR, format_instant, hour_start, parse_instant
from iotpipe.domain.window import CorruptIdentitySet

pytestmark = pytest.mark.unit

HOUR = parse_instant("2025-08-31T10:00:00Z")


def r(offset_ms: int, temperature: float = 20.0, device: str = "d1") -> Reading:
    return Reading(device, HOUR + offset_ms, (round(temperature * 1000), None))


def test_the_hourly_window_is_the_utc_hour_of_the_event_time() -> None:
    assert (
        format_instant(hour_start(parse_instant("2025-08-31T12:30:00+02:00")))
        == "2025-08-31T10:00:00Z"
    )
    assert (
        format_instant(hour_start(parse_instant("2025-08-31T00:59:59.999-01:00")))
        == "2025-08-31T01:00:00Z"
    )


def test_absorb_counts_new_and_classifies_duplicates_and_conflicts() -> None:
    window, first = HourlyWindow("d1", HOUR).absorb([r(0), r(1), r(0), r(1, 25.0)])
    assert first == Absorption(new=(0, 1), duplicates=(2,), conflicts=(3,))
    again, second = window.absorb([r(1), r(0, 99.0), r(2)])
    assert second == Absorption(new=(2,), duplicates=(0,), conflicts=(1,))
    assert again.stats == Stats.of([r(0), r(1), r(2)])
    unchanged, nothing = again.absorb([r(2), r(0)])
    assert unchanged is again and not nothing.new


def test_absorb_refuses_readings_of_another_window() -> None:
    with pytest.raises(ValueError, match="outside window"):
        HourlyWindow("d1", HOUR).absorb([r(MS_PER_HOUR)])
    with pytest.raises(ValueError, match="outside window"):
        HourlyWindow("d1", HOUR).absorb([r(0, device="d2")])


def test_a_full_window_refuses_more_readings_without_losing_them(monkeypatch) -> None:
    monkeypatch.setattr(window_module, "MAX_READINGS_PER_WINDOW", 3)
    window, absorbed = HourlyWindow("d1", HOUR).absorb([r(i) for i in range(5)])
    assert absorbed == Absorption(new=(0, 1, 2), overflow=(3, 4))
    _, again = window.absorb([r(0), r(9)])
    assert again == Absorption(duplicates=(0,), overflow=(1,))


@given(st.sets(st.tuples(st.integers(0, MS_PER_HOUR - 1), st.integers(0, 0xFFFF)), max_size=200))
def test_identity_sets_round_trip_through_bytes(entries) -> None:
    by_offset = dict(entries)
    identities = IdentitySet().with_added(by_offset.items())
    decoded = IdentitySet.from_bytes(identities.to_bytes())
    assert decoded == identities
    assert sorted(decoded) == sorted(by_offset.items())
    for offset, fingerprint in by_offset.items():
        assert decoded.fingerprint_at(offset) == fingerprint


@pytest.mark.parametrize(
    ("per_second", "limit_bytes"),
    [(1, 20_000), (10, 200_000), (20, 400_000)],
)
def test_identity_sets_stay_compact_at_supported_rates(per_second: int, limit_bytes: int) -> None:
    """An hour of identities at the given rate, with realistic jitter and random fingerprints."""
    import random

    rng = random.Random(per_second)
    step = 1000 // per_second
    entries = {
        t + rng.randrange(step // 4 or 1): rng.randrange(0x10000)
        for t in range(0, MS_PER_HOUR, step)
    }
    encoded = IdentitySet().with_added(entries.items()).to_bytes()
    assert len(encoded) < limit_bytes, f"{len(encoded)} bytes at {per_second}/s"


@pytest.mark.parametrize(
    "data", [b"\x02abc", b"\x01not zlib", b"\x01" + __import__("zlib").compress(b"123")]
)
def test_corrupt_identity_bytes_raise_a_library_error(data: bytes) -> None:
    with pytest.raises(CorruptIdentitySet):
        IdentitySet.from_bytes(data)


@pytest.mark.parametrize(
    ("policy", "offset", "expected"),
    [
        (LatenessPolicy(), -timedelta(days=6), None),
        (LatenessPolicy(), -timedelta(days=8), Reason.TOO_LATE),
        (LatenessPolicy(), timedelta(minutes=4), None),
        (LatenessPolicy(), timedelta(minutes=6), Reason.FROM_FUTURE),
        (LatenessPolicy.backfill(), -timedelta(days=3650), None),
        (LatenessPolicy.backfill(), timedelta(minutes=6), Reason.FROM_FUTURE),
        (LatenessPolicy.unbounded(), timedelta(days=3650), None),
        (
            LatenessPolicy(horizon=timedelta(hours=1), max_skew=timedelta(0)),
            timedelta(milliseconds=1),
            Reason.FROM_FUTURE,
        ),
    ],
)
def test_lateness_policy(
    policy: LatenessPolicy, offset: timedelta, expected: Reason | None
) -> None:
    now = HOUR
    assert policy.check(now + offset // timedelta(milliseconds=1), now) is expected


@pytest.mark.parametrize(
    ("reading", "fingerprint"),
    [
        (Reading("d", 1, (20000, 50000), __import__("iotpipe").Location(34.05, -118.24)), 10605),
        (Reading("d", 1, (20000, None), None), 53842),
    ],
)
def test_fingerprints_are_stable_across_processes_and_versions(
    reading: Reading, fingerprint: int
) -> None:
    """Golden values (the same on CPython 3.8 to 3.13): stored identity sets depend on them."""
    assert reading.fingerprint() == fingerprint
