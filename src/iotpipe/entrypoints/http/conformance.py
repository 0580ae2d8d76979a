"""Whether a response keeps its route's declaration (``AnalyticsApi(check_responses=True)``).

A success must match the declared status, media type and pydantic model; an error must be a
problem document of one of the problem types the route declares. The OpenAPI document is
generated from the same declarations, so a response that passes here conforms to it.
"""

from __future__ import annotations

from pydantic import ValidationError

from iotpipe.domain import DEFAULT_SCHEMA, TelemetrySchema
from iotpipe.entrypoints.http import schemas
from iotpipe.entrypoints.http.messages import PROBLEM_JSON, HttpResponse
from iotpipe.entrypoints.http.routes import Route


def violation(
    route: Route, response: HttpResponse, schema: TelemetrySchema = DEFAULT_SCHEMA
) -> str | None:
    """What is wrong with ``response`` as an answer of ``route`` in an API serving readings of
    ``schema``, or ``None``."""
    if response.status == route.success.status:
        return _success_violation(route, response, schema)
    return _problem_violation(route, response)


def _success_violation(route: Route, response: HttpResponse, schema: TelemetrySchema) -> str | None:
    success = route.success
    if response.headers.get("content-type") != success.content_type:
        return f"content-type {response.headers.get('content-type')!r} for {success.status}"
    if success.model is None:
        return None
    return _invalid(success.model, response.body, schema)


def _problem_violation(route: Route, response: HttpResponse) -> str | None:
    if response.headers.get("content-type") != PROBLEM_JSON:
        return f"status {response.status} is not a problem document"
    invalid = _invalid("Problem", response.body)
    if invalid is not None:
        return invalid
    code = response.json()["code"]
    declared = {(p.code, p.status) for p in route.all_problems()}
    if (code, response.status) not in declared:
        return f"problem {code!r} with status {response.status} is not declared"
    return None


def _invalid(model: str, body: bytes, schema: TelemetrySchema = DEFAULT_SCHEMA) -> str | None:
    try:
        schemas.models(schema)[model].model_validate_json(body, strict=True)
    except ValidationError as exc:
        return f"body does not match {model}: {exc}"
    return None
