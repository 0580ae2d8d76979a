"""The OpenAPI 3.1 document, generated from the route declarations and the pydantic models.

Nothing here is written by hand about a particular route: paths, parameters, bodies,
responses, problems and security all come from the :class:`Route` tuple the API dispatches
from and the models of :mod:`~iotpipe.entrypoints.http.schemas`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from iotpipe.domain import DEFAULT_SCHEMA, TelemetrySchema
from iotpipe.entrypoints.http.messages import PROBLEM_JSON
from iotpipe.entrypoints.http.params import Param
from iotpipe.entrypoints.http.problems import CATALOGUE, ProblemType
from iotpipe.entrypoints.http.routes import Route

_REF = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
_PROBLEM_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication scheme to use (`Bearer`).",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def build_document(
    routes: Iterable[Route],
    *,
    title: str,
    version: str,
    description: str,
    max_items: int,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``, serving readings of ``schema``."""
    from pydantic.json_schema import models_json_schema

    from iotpipe.entrypoints.http import schemas

    routes = tuple(routes)
    _, defs = models_json_schema(
        [(model, "validation") for model in schemas.models(schema).values()], ref_template=_REF
    )
    components: dict[str, Any] = dict(defs.get("$defs", {}))
    reading_name, reading_schema = schemas.reading_payload_schema(schema)
    components[reading_name] = reading_schema
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for route in routes:
        paths[route.path][route.method.lower()] = _operation(route, reading_name, max_items)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": description + "\n\n" + _problem_table(),
        },
        "paths": dict(paths),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <API key>`.",
                },
                "apiKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "The API key in `X-API-Key` (same keys as the bearer scheme).",
                },
            },
        },
        "tags": [
            {"name": "ingest", "description": "Send readings."},
            {"name": "analytics", "description": "Stored aggregates and readings."},
            {"name": "service", "description": "Health, this document and the dashboard."},
        ],
    }


def _operation(route: Route, reading_name: str, max_items: int) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": route.description,
        "tags": [route.tag],
        "security": [] if route.public else _SECURITY,
        "responses": {str(route.success.status): _success(route), **_problems(route)},
    }
    if route.params:
        operation["parameters"] = [_parameter(p) for p in route.params]
    # OpenAPI has no keyword for "other query parameters": say it in an extension as well.
    operation["x-unknown-query-parameters"] = "ignored" if route.ignore_unknown_query else "refused"
    if route.body_model is not None:
        operation["requestBody"] = _reading_body(reading_name, max_items, route.body_example)
    return operation


def _parameter(param: Param) -> dict[str, Any]:
    schema = dict(param.schema)
    spec: dict[str, Any] = {
        "name": param.name,
        "in": param.location,
        "required": param.required,
        "description": param.description,
        "schema": schema,
    }
    if param.example is not None:
        spec["example"] = param.example
    return spec


def _reading_body(reading_name: str, max_items: int, example: Any) -> dict[str, Any]:
    ref = {"$ref": _REF.format(model=reading_name)}
    media: dict[str, Any] = {
        "schema": {
            "oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": max_items}]
        }
    }
    if example is not None:
        media["example"] = example
    return {
        "required": True,
        "description": f"One reading, or an array of 1 to {max_items} readings.",
        "content": {"application/json": media},
    }


def _success(route: Route) -> dict[str, Any]:
    success = route.success
    if success.model is not None:
        schema: dict[str, Any] = {"$ref": _REF.format(model=success.model)}
    else:
        schema = dict(success.schema or {})
    content_type = success.content_type.split(";")[0]
    response: dict[str, Any] = {
        "description": success.description,
        "content": {content_type: {"schema": schema}},
    }
    if success.headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in success.headers.items()
        }
    return response


def _problems(route: Route) -> dict[str, Any]:
    by_status: dict[int, list[ProblemType]] = defaultdict(list)
    for problem in route.all_problems():
        by_status[problem.status].append(problem)
    return {str(status): _problem_response(status, kinds) for status, kinds in by_status.items()}


def _problem_response(status: int, kinds: list[ProblemType]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": " ".join(f"`{k.code}`: {k.description}" for k in kinds),
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": _REF.format(model="Problem")},
                "examples": {k.code: {"summary": k.title, "value": _example(k)} for k in kinds},
            }
        },
    }
    if status in _PROBLEM_HEADERS:
        response["headers"] = _PROBLEM_HEADERS[status]
    return response


def _example(kind: ProblemType) -> dict[str, Any]:
    return {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": kind.description,
        "code": kind.code,
    }


def _problem_table() -> str:
    rows = "\n".join(
        f"| `{p.code}` | {p.status} | {p.title} | {p.description} |" for p in CATALOGUE
    )
    return (
        "Errors are RFC 9457 `application/problem+json` documents whose `type` is "
        "`https://iotpipe.dev/problems/<code>`:\n\n| code | status | title | when |\n"
        "| --- | --- | --- | --- |\n" + rows
    )
