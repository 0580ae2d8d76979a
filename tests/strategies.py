"""Hypothesis strategies for readings and payloads, shared by the property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from iotpipe.domain import Location, Reading
from iotpipe.domain.metrics import METRICS, to_fixed
from iotpipe.domain.time import MS_PER_HOUR, format_instant

BASE_MS = 1_756_634_400_000  # 2025-08-31T10:00:00Z

device_ids = st.sampled_from(["d1", "d2", "iot-sensor-001", "A.b:c-9"])
# Few hours and coarse-ish times so that batches share windows and identities collide.
timestamps_ms = st.integers(min_value=0, max_value=3 * MS_PER_HOUR - 1).map(lambda x: BASE_MS + x)


def metric_values(metric_index: int) -> st.SearchStrategy[int | None]:
    metric = METRICS[metric_index]
    return st.none() | st.floats(metric.minimum, metric.maximum, allow_nan=False).map(to_fixed)


@st.composite
def readings(draw: st.DrawFn, devices: st.SearchStrategy[str] = device_ids) -> Reading:
    values = tuple(draw(metric_values(i)) for i in range(len(METRICS)))
    if all(v is None for v in values):
        values = (to_fixed(draw(st.floats(-50, 50))), *values[1:])
    location = draw(
        st.none()
        | st.builds(
            Location,
            st.floats(-90, 90, allow_nan=False),
            st.floats(-180, 180, allow_nan=False),
        )
    )
    return Reading(draw(devices), draw(timestamps_ms), values, location)


def distinct_by_identity(items: list[Reading]) -> list[Reading]:
    """The first reading of each identity (what 'each distinct reading once' means)."""
    seen: dict[tuple[str, int], Reading] = {}
    for r in items:
        seen.setdefault(r.identity, r)
    return list(seen.values())


def payload(reading: Reading) -> dict[str, Any]:
    """The reading as the JSON object a device would send."""
    body = reading.to_json()
    body["timestamp"] = format_instant(reading.timestamp_ms)
    return body
