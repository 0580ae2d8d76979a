"""The DynamoDB item codec: exact values, DynamoDB's number texts, billed sizes, stable shards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpipe.adapters.aws.dynamodb_items import (
    from_attr,
    item_size,
    shard_of,
    to_attr,
    window_from_item,
    window_item,
)
from iotpipe.domain import HourlyWindow, Location, Reading
from tests.strategies import BASE_MS, readings

pytestmark = pytest.mark.unit


def test_numbers_are_decoded_by_value_whatever_their_spelling() -> None:
    # Real DynamoDB answers in its own canonical text; moto echoes what was sent.
    assert from_attr({"N": "100"}) == from_attr({"N": "1E+2"}) == from_attr({"N": "100.0"}) == 100
    assert isinstance(from_attr({"N": "1E+2"}), int)
    assert from_attr({"N": "72000000000000000001"}) == 72_000_000_000_000_000_001
    assert from_attr({"N": "-1.50"}) == -1.5


def test_floats_too_small_for_a_dynamodb_number_survive_as_text() -> None:
    # DynamoDB numbers stop at 1e-130; a float latitude may be 5e-324.
    assert to_attr(5e-324) == {"S": "5e-324"}
    window, _ = HourlyWindow("d", BASE_MS).absorb(
        [Reading("d", BASE_MS + 1, (20_000, None), Location(5e-324, -0.0))]
    )
    back = window_from_item(window_item(window, 3, 8, None))
    assert back == window
    assert back.stats.located is not None and back.stats.located.lat == 5e-324


@settings(max_examples=50, deadline=None)
@given(st.lists(readings(st.just("d1")), min_size=1, max_size=30))
def test_a_window_round_trips_through_its_item(batch: list[Reading]) -> None:
    hour = batch[0].hour_ms
    window, _ = HourlyWindow("d1", hour).absorb([r for r in batch if r.hour_ms == hour])
    item = window_item(window, 7, 4, ttl_days=None)
    assert window_from_item(item) == window
    assert item["version"] == {"N": "7"}


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"name": {"S": "héllo"}}, 4 + 6),  # UTF-8 bytes of the name and the value
        ({"n": {"N": "123456"}}, 1 + 3 + 1),  # one byte per two significant digits, plus one
        ({"n": {"N": "-0.00120"}}, 1 + 1 + 1),  # leading and trailing zeros do not count
        ({"n": {"N": "1234567"}}, 1 + 4 + 1),
        ({"b": {"B": b"\x00" * 10}}, 1 + 10),
        ({"z": {"NULL": True}, "t": {"BOOL": True}}, 2 + 2),
        ({"l": {"L": [{"N": "1"}, {"NULL": True}]}}, 1 + 3 + (1 + 2) + (1 + 1)),
        ({"m": {"M": {"k": {"S": "v"}}}}, 1 + 3 + (1 + 1 + 1)),
    ],
)
def test_item_sizes_follow_dynamodb_rules(item, size) -> None:
    assert item_size(item) == size


def test_shards_are_stable_across_processes_and_releases() -> None:
    # The shard is part of the stored layout (index and registry keys): pinned values, so a
    # change of hash would fail here instead of hiding every stored device from queries.
    assert [shard_of(d, 8) for d in ("iot-sensor-001", "d1", "A.b:c-9")] == [3, 6, 3]
    assert [shard_of(d, 16) for d in ("iot-sensor-001", "d1", "A.b:c-9")] == [11, 6, 3]
