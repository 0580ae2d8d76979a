"""Schemathesis against the running local server, from the server's own /v1/openapi.json.

Cases are generated from the document (valid and invalid), sent over HTTP with a key, and
each response must not be a server error and must conform to the document: status code,
media type, headers and body schema. The server checks its own responses too
(``check_responses=True``), so a drift it catches shows up here as a 500.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from iotpipe import LatenessPolicy, in_memory_pipeline
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys
from iotpipe.entrypoints.http.server import LocalServer, serve
from tests.http.conftest import KEY, fill

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_server() -> Iterator[LocalServer]:
    """One server over a filled pipeline for the whole module (cases share it)."""
    # Any event time is accepted, so generated readings that match the document are ingested
    # (and the 202 response is exercised), not refused as too late.
    filled = fill(lateness=LatenessPolicy.unbounded())
    api = AnalyticsApi.for_pipeline(filled.pipeline, ApiKeys([KEY]), check_responses=True)
    with serve(api, port=0) as server:
        yield server


@pytest.fixture(scope="module")
def document(live_server: LocalServer) -> OpenApiSchema:
    """The document as the running server serves it, loaded once."""
    loaded = schemathesis.openapi.from_url(live_server.url + "/v1/openapi.json", timeout=10)
    loaded.config.update(base_url=live_server.url)
    return loaded


# The operations are enumerated from the route table (no server is needed to collect them).
# Schemathesis' own lazy pytest loader (from_fixture) fails on pytest 9 ("Function object has
# no attribute _nodeid"), so its strategies are driven with Hypothesis directly.
_ROUTES = AnalyticsApi.for_pipeline(in_memory_pipeline(), ApiKeys()).routes
OPERATIONS = [r.operation_id for r in _ROUTES]
# Negative cases exist only where there is input to break (parameters or a body).
WITH_INPUT = [r.operation_id for r in _ROUTES if r.params or r.body_model]


def _run(strategy: SearchStrategy[Case[Any]], examples: int) -> Counter[int]:
    statuses: Counter[int] = Counter()

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure reproduces
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        response = case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=10)
        statuses[response.status_code] += 1

    run()
    assert statuses, "no case was generated"
    return statuses


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_generated_valid_requests(document: OpenApiSchema, operation_id: str) -> None:
    operation = document.find_operation_by_id(operation_id)
    _run(operation.as_strategy(generation_mode=GenerationMode.POSITIVE), 30)


@pytest.mark.parametrize("operation_id", WITH_INPUT)
def test_generated_invalid_requests(document: OpenApiSchema, operation_id: str) -> None:
    operation = document.find_operation_by_id(operation_id)
    # A batch that breaks the schema in one item is still partly accepted (202), by design:
    # the checks hold every answer to the document, and none may be a server error.
    _run(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), 30)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_documented_examples_succeed(document: OpenApiSchema, operation_id: str) -> None:
    operation = document.find_operation_by_id(operation_id)
    success = next(r.success.status for r in _ROUTES if r.operation_id == operation_id)
    strategies = operation.get_strategies_from_examples()
    statuses: Counter[int] = Counter()
    for strategy in strategies or [operation.as_strategy()]:
        statuses += _run(strategy, 5)
    # The examples name data the fleet has: each operation answers its success at least once.
    assert success in statuses, statuses
