"""A stateful test: the store (each adapter) and a plain-dict model driven by the same steps.

The model keeps the first reading of each identity in a dict; the statistics it expects are
summed with plain integers (:mod:`tests.oracle`), never with the code under test."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from iotpipe.domain import FleetTotal, Reading, Stats, merge_all
from iotpipe.domain.time import MS_PER_HOUR, hour_start
from iotpipe.ports import Contribution
from tests.oracle import windows_of
from tests.strategies import BASE_MS, readings

pytestmark = pytest.mark.unit

DEVICES = ["d1", "d2", "d3"]


def machine_for(factory):
    class StoreMachine(RuleBasedStateMachine):
        """Model: identity -> first reading counted; stats and 'latest' derived from it."""

        def __init__(self) -> None:
            super().__init__()
            self.store = factory()
            self.model: dict[tuple[str, int], Reading] = {}

        @rule(batch=st.lists(readings(st.sampled_from(DEVICES)), min_size=1, max_size=12))
        def apply(self, batch: list[Reading]) -> None:
            groups: dict[tuple[str, int], list[Reading]] = {}
            for r in batch:
                groups.setdefault((r.device_id, hour_start(r.timestamp_ms)), []).append(r)
            result = self.store.apply(
                [Contribution(d, h, tuple(rs)) for (d, h), rs in groups.items()]
            )
            assert not result.failed
            expected_new = 0
            for r in batch:
                if r.identity not in self.model:
                    self.model[r.identity] = r
                    expected_new += 1
            assert sum(len(a.new) for a in result.absorbed.values()) == expected_new
            assert len(result.written) <= len(groups)

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def replay_some(self, data: st.DataObject) -> None:
            again = data.draw(st.lists(st.sampled_from(sorted(self.model.values())), min_size=1))
            groups: dict[tuple[str, int], list[Reading]] = {}
            for r in again:
                groups.setdefault((r.device_id, hour_start(r.timestamp_ms)), []).append(r)
            result = self.store.apply(
                [Contribution(d, h, tuple(rs)) for (d, h), rs in groups.items()]
            )
            assert not result.written, "replaying counted readings must write nothing"

        @rule(
            device=st.sampled_from(DEVICES),
            start=st.integers(-1, 4),
            span=st.integers(0, 4),
            limit=st.integers(1, 4),
        )
        def hourly_pages_match_the_model(
            self, device: str, start: int, span: int, limit: int
        ) -> None:
            lo, hi = BASE_MS + start * MS_PER_HOUR, BASE_MS + (start + span) * MS_PER_HOUR
            got, cursor = [], None
            while True:
                page = self.store.hourly(device, lo, hi, limit=limit, cursor=cursor)
                assert len(page.items) <= limit
                got.extend(page.items)
                if page.cursor is None:
                    break
                cursor = page.cursor
            expected = self._windows(lambda key: key[0] == device and lo <= key[1] < hi)
            assert [(w.key, w.stats) for w in got] == sorted(expected.items())

        @rule(hour=st.integers(0, 2), limit=st.integers(1, 3))
        def fleet_hour_matches_the_model(self, hour: int, limit: int) -> None:
            h = BASE_MS + hour * MS_PER_HOUR
            got, cursor = [], None
            while True:
                page = self.store.fleet_hour(h, limit=limit, cursor=cursor)
                got.extend(page.items)
                if page.cursor is None:
                    break
                cursor = page.cursor
            expected = sorted(self._windows(lambda k: k[1] == h).items())
            assert [(w.key, w.stats) for w in got] == expected
            total = FleetTotal(merge_all(stats for _, stats in expected), len(expected))
            assert self.store.fleet_total(h) == total

        @invariant()
        def latest_and_devices_match_the_model(self) -> None:
            for device in DEVICES:
                mine = [r for r in self.model.values() if r.device_id == device]
                expected = max(mine, key=lambda r: r.timestamp_ms) if mine else None
                assert self.store.latest(device) == expected
            page = self.store.devices(limit=10)
            assert [(d.device_id, d.last_seen_ms) for d in page.items] == sorted(
                (dev, max(r.timestamp_ms for r in self.model.values() if r.device_id == dev))
                for dev in {r.device_id for r in self.model.values()}
            )

        def _windows(self, keep) -> dict[tuple[str, int], Stats]:
            return {k: v for k, v in windows_of(self.model.values()).items() if keep(k)}

    return StoreMachine


def test_store_agrees_with_a_plain_dict_model(store_factory) -> None:
    run_state_machine_as_test(
        machine_for(store_factory),
        settings=settings(
            max_examples=40,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
