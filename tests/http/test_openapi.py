"""The OpenAPI document: generated from the routes, complete, and true to the parsers."""

from __future__ import annotations

from typing import Any

import pytest

from iotpipe import __version__, in_memory_pipeline
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys
from iotpipe.entrypoints.http.params import Param, ParamError
from iotpipe.entrypoints.http.problems import CATALOGUE
from tests.http.conftest import get

pytestmark = pytest.mark.unit


@pytest.fixture
def document(api: AnalyticsApi) -> dict[str, Any]:
    response = get(api, "/v1/openapi.json", key=None)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()  # type: ignore[no-any-return]


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/")
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]


def test_the_served_document_is_generated_openapi_3_1(
    api: AnalyticsApi, document: dict[str, Any]
) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == __version__
    assert document == api.openapi()


def test_every_route_and_only_the_routes_are_documented(
    api: AnalyticsApi, document: dict[str, Any]
) -> None:
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in api.routes}
    assert len(documented) == 10
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert sorted(ids) == sorted(r.operation_id for r in api.routes)


def test_keys_are_required_exactly_where_the_api_requires_them(
    api: AnalyticsApi, document: dict[str, Any]
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["apiKeyHeader"]["in"], schemes["apiKeyHeader"]["name"]) == (
        "header",
        "X-API-Key",
    )
    for route in api.routes:
        operation = document["paths"][route.path][route.method.lower()]
        expected: list[dict[str, list[str]]] = (
            [] if route.public else [{"bearerAuth": []}, {"apiKeyHeader": []}]
        )
        assert operation["security"] == expected, route.operation_id
        assert ("401" in operation["responses"]) == (not route.public)


def test_every_parameter_is_documented_with_its_schema(
    api: AnalyticsApi, document: dict[str, Any]
) -> None:
    for route in api.routes:
        operation = document["paths"][route.path][route.method.lower()]
        documented = {(p["name"], p["in"]): p for p in operation.get("parameters", [])}
        assert set(documented) == {(p.name, p.location) for p in route.params}
        for param in route.params:
            spec = documented[(param.name, param.location)]
            assert spec["schema"] == dict(param.schema) and spec["description"]
            assert spec["required"] == param.required
        path_names = {s[1:-1] for s in route.path.split("/") if s.startswith("{")}
        assert path_names == {n for n, where in documented if where == "path"}


def test_every_problem_of_every_route_is_documented(
    api: AnalyticsApi, document: dict[str, Any]
) -> None:
    for route in api.routes:
        responses = document["paths"][route.path][route.method.lower()]["responses"]
        for problem in route.all_problems():
            content = responses[str(problem.status)]["content"]["application/problem+json"]
            example = content["examples"][problem.code]["value"]
            assert example["type"] == problem.uri and example["code"] == problem.code
            assert _resolve(document, content["schema"]["$ref"])["title"] == "Problem"
        assert "500" in responses


def test_the_problem_schema_enumerates_the_whole_catalogue(document: dict[str, Any]) -> None:
    codes = _resolve(document, "#/components/schemas/ProblemCode")["enum"]
    assert sorted(codes) == sorted(p.code for p in CATALOGUE)
    for problem in CATALOGUE:
        assert f"`{problem.code}`" in document["info"]["description"]


def test_success_responses_reference_their_models(
    api: AnalyticsApi, document: dict[str, Any]
) -> None:
    for route in api.routes:
        ok = document["paths"][route.path][route.method.lower()]["responses"][
            str(route.success.status)
        ]
        (media, content), *_ = ok["content"].items()
        assert media == route.success.content_type.split(";")[0]
        if route.success.model:
            assert _resolve(document, content["schema"]["$ref"])["title"] == route.success.model


def test_aggregate_schemas_carry_every_metric_and_forbid_extra_members(
    document: dict[str, Any],
) -> None:
    hourly = _resolve(document, "#/components/schemas/HourlyAggregate")
    assert hourly["additionalProperties"] is False
    assert set(hourly["required"]) == {
        "device_id",
        "hour",
        "count",
        "first",
        "last",
        "location",
        "temperature",
        "humidity",
    }


def test_the_request_body_documents_the_reading_and_the_batch_limit(
    document: dict[str, Any],
) -> None:
    body = document["paths"]["/v1/readings"]["post"]["requestBody"]
    one, many = body["content"]["application/json"]["schema"]["oneOf"]
    assert many["maxItems"] == 500 and many["items"] == one
    reading = _resolve(document, one["$ref"])
    assert reading["required"] == ["device_id", "timestamp"]
    assert reading["properties"]["device_id"]["maxLength"] == 128
    temperature = reading["properties"]["temperature"]["anyOf"][0]
    assert (temperature["minimum"], temperature["maximum"]) == (-273.15, 1000.0)


def _params(api: AnalyticsApi) -> list[Param]:
    return [p for r in api.routes for p in r.params]


def test_each_parser_accepts_its_documented_bounds_and_refuses_beyond(api: AnalyticsApi) -> None:
    for param in _params(api):
        schema = param.schema
        if schema.get("type") == "integer":
            assert param.parse(str(schema["minimum"])) == schema["minimum"]
            assert param.parse(str(schema["maximum"])) == schema["maximum"]
            for outside in (schema["minimum"] - 1, schema["maximum"] + 1):
                with pytest.raises(ParamError):
                    param.parse(str(outside))
        if "maxLength" in schema:
            with pytest.raises(ParamError):
                param.parse("a" * (schema["maxLength"] + 1))
        if param.example is not None:
            param.parse(param.example)


def test_configured_limits_shape_the_document() -> None:
    api = AnalyticsApi.for_pipeline(
        in_memory_pipeline(), ApiKeys(), max_items=10, max_body=4096, max_range_days=2
    )
    document = api.openapi()
    post = document["paths"]["/v1/readings"]["post"]
    assert (
        post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]["maxItems"] == 10
    )
    assert "4096 bytes" in post["description"]
    assert (
        "at most 2 days"
        in document["paths"]["/v1/devices/{device_id}/hourly"]["get"]["description"]
    )


_METRIC_VALUES = {"absent": ..., "null": None, "number": 20.5}


@pytest.mark.parametrize("temperature", sorted(_METRIC_VALUES))
@pytest.mark.parametrize("humidity", sorted(_METRIC_VALUES))
def test_the_reading_schema_accepts_exactly_the_metrics_the_parser_accepts(
    document: dict[str, Any], temperature: str, humidity: str
) -> None:
    import jsonschema

    from iotpipe.domain import InvalidReading, parse_reading

    reading: dict[str, Any] = {"device_id": "d1", "timestamp": "2025-08-31T10:00:00Z"}
    for name, kind in (("temperature", temperature), ("humidity", humidity)):
        if kind != "absent":
            reading[name] = _METRIC_VALUES[kind]
    schema = document["components"]["schemas"]["ReadingPayload"]
    try:
        parse_reading(reading)
        parsed = True
    except InvalidReading:
        parsed = False
    assert jsonschema.Draft202012Validator(schema).is_valid(reading) == parsed
