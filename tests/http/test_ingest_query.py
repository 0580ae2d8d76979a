"""Ingest ignores unknown query parameters; the query routes keep refusing them.

A device that adds ``?v=2`` (or a cache-buster) to its URL must still get its readings in: the
rule is held here on the shared API, and through each cloud's request translation.
"""

from __future__ import annotations

import orjson
import pytest

from iotpipe.domain.time import format_instant
from iotpipe.entrypoints.http import AnalyticsApi, HttpRequest
from tests.http.conftest import KEY, NOW, get

pytestmark = pytest.mark.unit

READING = {"device_id": "query-dev", "timestamp": format_instant(NOW - 60_000), "temperature": 1}


def _post(api: AnalyticsApi, query: dict[str, str]) -> tuple[int, dict[str, object]]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    request = HttpRequest("POST", "/v1/readings", query, headers, orjson.dumps([READING]))
    response = api.handle(request)
    return response.status, response.json()


@pytest.mark.parametrize(
    "query", [{"v": "2"}, {"v": "2", "cache": "1717171717"}, {"": ""}, {"limit": "zero"}]
)
def test_ingest_accepts_readings_whatever_query_parameters_come_along(
    api: AnalyticsApi, query: dict[str, str]
) -> None:
    status, body = _post(api, query)
    assert (status, body["accepted"]) == (202, 1), body


def test_the_query_routes_still_refuse_an_unknown_parameter(api: AnalyticsApi) -> None:
    response = get(api, "/v1/devices", v="2")
    assert response.status == 400
    assert [e["parameter"] for e in response.json()["errors"]] == ["v"]


def test_the_openapi_document_says_which_routes_ignore_unknown_parameters(
    api: AnalyticsApi,
) -> None:
    operations = {
        (method, path): operation
        for path, item in api.openapi()["paths"].items()
        for method, operation in item.items()
    }
    ingest = operations[("post", "/v1/readings")]
    assert ingest["x-unknown-query-parameters"] == "ignored"
    assert "Query parameters are ignored" in ingest["description"]
    others = [op for key, op in operations.items() if key != ("post", "/v1/readings")]
    assert others and all(op["x-unknown-query-parameters"] == "refused" for op in others)
