"""The shared storage record of a window decodes to exactly the window written."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotpipe.adapters.window_codec import window_from_record, window_to_record
from iotpipe.domain import HourlyWindow
from tests.strategies import readings

pytestmark = pytest.mark.unit


@given(st.lists(readings(st.just("d1")), min_size=1, max_size=25))
def test_a_window_survives_its_record_and_json(items) -> None:
    first = items[0]
    window = HourlyWindow(first.device_id, first.hour_ms)
    window, _ = window.absorb([r for r in items if r.hour_ms == first.hour_ms])
    record = window_to_record(window)
    assert window_from_record(record) == window
    seen = record.pop("seen")
    again = json.loads(json.dumps(record))  # the rest is plain JSON with exact integers
    assert window_from_record({**again, "seen": seen}) == window
