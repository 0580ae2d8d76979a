"""The API of a deployment with its own telemetry schema: the OpenAPI document, the responses
(checked against it) and ``GET /v1/schema`` follow the declared metrics, units and payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe import in_memory_pipeline
from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.schema_file import load_schema
from iotpipe.domain.time import MS_PER_HOUR, format_instant
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys
from iotpipe.simulator import Faults, Fleet
from tests.http.conftest import KEY, T0, get, post

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).parents[2] / "examples" / "schemas"


@pytest.fixture(params=["industrial", "agricultural"])
def declared(request: pytest.FixtureRequest) -> tuple[Any, AnalyticsApi, list[str], Any]:
    schema = load_schema(EXAMPLES / f"{request.param}.toml")
    clock = ManualClock(T0 + 3 * MS_PER_HOUR)
    pipeline = in_memory_pipeline(clock=clock, schema=schema)
    fleet = Fleet(3, interval_s=600, seed=5, schema=schema)
    payloads = list(fleet.payloads(T0, T0 + 2 * MS_PER_HOUR, Faults(duplicates=0.1)))
    api = AnalyticsApi.for_pipeline(pipeline, ApiKeys([KEY]), check_responses=True)
    return schema, api, payloads, pipeline


def test_the_document_declares_the_schemas_payload_and_metrics(declared: Any) -> None:
    schema, api, _, _ = declared
    components = api.openapi()["components"]["schemas"]
    hourly = components["HourlyAggregate"]["properties"]
    for metric in schema.metrics:
        assert hourly[metric.name]["x-unit"] == metric.unit
        assert metric.unit in hourly[metric.name]["description"]
    assert "temperature" not in hourly
    payload = components["ReadingPayload"]
    node = payload
    *outer, last = schema.accepted[0].path.split(".")
    for step in outer:
        node = node["properties"][step]
    assert node["properties"][last]["maximum"] == schema.accepted[0].maximum
    assert schema.device_id.split(".")[0] in payload["required"]


def test_ingest_validates_the_declared_payload_and_the_schema_is_served(declared: Any) -> None:
    schema, api, payloads, _ = declared
    body = b"[" + b",".join(p.encode() for p in payloads[:400]) + b"]"
    accepted = post(api, body)
    assert accepted.status == 202, accepted.body  # validated by the declared payload
    assert accepted.json()["accepted"] == len(payloads[:400])
    wrong = post(api, b'{"device_id": "d", "timestamp": "2025-08-31T00:00:00Z"}')
    assert wrong.status == 400
    [refusal] = wrong.json()["rejected"]
    assert refusal["message"] == f"{schema.device_id} is required"  # the declared path
    served = get(api, "/v1/schema")
    assert served.status == 200  # checked against its model (check_responses)
    assert [m["name"] for m in served.json()["metrics"]] == list(schema.names)
    unauthorised = get(api, "/v1/schema", key=None)
    assert unauthorised.status == 401


def test_hourly_and_fleet_answers_carry_each_metric(declared: Any) -> None:
    schema, api, payloads, pipeline = declared
    for _ in pipeline.process_payloads([p.encode() for p in payloads], batch_size=50):
        pass
    hourly = get(
        api,
        "/v1/devices/iot-sensor-001/hourly",
        **{"from": format_instant(T0), "to": format_instant(T0 + 2 * MS_PER_HOUR)},
    )
    assert hourly.status == 200, hourly.body  # a response off the model would be a 500
    items = hourly.json()["items"]
    assert len(items) == 2
    for item in items:
        for metric in schema.metrics:
            assert item[metric.name]["count"] == 6
    fleet = get(api, "/v1/fleet/hourly", hour=format_instant(T0))
    assert fleet.status == 200
    assert all(fleet.json()["fleet"][m.name]["count"] == 18 for m in schema.metrics)
    latest = get(api, "/v1/devices/iot-sensor-001/latest")
    assert latest.status == 200
    assert set(schema.names) <= set(orjson.loads(latest.body))
