"""The analytics HTTP API: one definition, served by every runtime.

:class:`AnalyticsApi` turns an :class:`HttpRequest` into an :class:`HttpResponse` and never
raises. The local server (:mod:`~iotpipe.entrypoints.http.server`), and later a Lambda handler
and a Cloud Function, only translate their platform's request and response to these. It uses
the standard library, orjson and (for the OpenAPI document only) pydantic: no web framework, so
cold starts stay short.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from iotpipe import __version__
from iotpipe.application import QueryService
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    StoreUnavailable,
    StreamFull,
    StreamUnavailable,
    TelemetrySchema,
)
from iotpipe.entrypoints.http.auth import ApiKeys
from iotpipe.entrypoints.http.endpoints import (
    IngestEndpoints,
    Ingestor,
    Limits,
    QueryEndpoints,
    service_routes,
)
from iotpipe.entrypoints.http.messages import HttpRequest, HttpResponse, json_response
from iotpipe.entrypoints.http.params import parse_params
from iotpipe.entrypoints.http.problems import (
    INGEST_UNAVAILABLE,
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    STORE_UNAVAILABLE,
    UNAUTHORIZED,
    ApiProblem,
    problem_response,
)
from iotpipe.entrypoints.http.routes import Call, Reply, Route, Router

if TYPE_CHECKING:
    from iotpipe.application import Pipeline

_log = logging.getLogger("iotpipe.http")

TITLE = "iotpipe analytics API"
DESCRIPTION = (
    "Exact, delivery-independent hourly aggregates of IoT readings. Send readings with "
    "`POST /v1/readings`; read devices, hourly aggregates, daily rollups, latest readings and "
    "fleet hours. Aggregates are rendered exactly as `iotpipe process` writes them. Every route "
    "but `/`, `/v1/health` and `/v1/openapi.json` needs an API key. Paginated routes return "
    "`next_cursor` (`null` on the last page): pass it back as `cursor` with the same other "
    "parameters."
)
_UNAUTHORIZED_HEADERS = {"www-authenticate": 'Bearer realm="iotpipe"'}


class AnalyticsApi:
    """The API over a query service and, optionally, an ingest service.

    ``ingest=None`` serves a read-only API (``POST /v1/readings`` is not routed or documented);
    ``query=None`` serves only ingest (the AWS ingest function, which may not read the store).
    ``check_responses=True`` validates every response against the route's declared model and
    problems before returning it (tests run so; a violation answers 500 and is logged).
    ``stream_status`` adds the stream's backlog to ``GET /v1/health`` (the local runtime's log).
    """

    def __init__(
        self,
        query: QueryService | None,
        ingest: Ingestor | None,
        keys: ApiKeys,
        *,
        max_body: int = 1 << 20,
        max_items: int = 500,
        max_range_days: int = 31,
        max_daily_range_days: int = 366,
        check_responses: bool = False,
        stream_status: Callable[[], Mapping[str, object]] | None = None,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        self.schema = schema
        self.limits = Limits(max_body, max_items, max_range_days, max_daily_range_days)
        self._keys = keys
        self._check = check_responses
        routes = service_routes(self.openapi_bytes, __version__, stream_status, schema)
        if ingest is not None:
            routes += IngestEndpoints(ingest, self.limits).routes()
        if query is not None:
            routes += QueryEndpoints(query, self.limits, schema).routes()
        self.routes: tuple[Route, ...] = routes
        self._router = Router(self.routes)
        self._document: bytes | None = None
        self._document_lock = threading.Lock()

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline, keys: ApiKeys, **options: Any) -> AnalyticsApi:
        """The API over a pipeline's query service, and its ingest if it has a stream."""
        ingest = pipeline if pipeline.stream is not None else None
        return cls(pipeline.query, ingest, keys, schema=pipeline.schema, **options)

    def route_of(self, path: str) -> str | None:
        """The template of the route ``path`` matches, or ``None`` (logs name routes, not ids)."""
        candidates, _ = self._router.match(path)
        return candidates[0].path if candidates else None

    @property
    def max_body(self) -> int:
        """The largest body accepted, in bytes (runtimes refuse larger ones unread)."""
        return self.limits.max_body

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request. Never raises: an unexpected failure is a logged 500 problem."""
        try:
            return self._handle(request)
        except Exception:
            # Only a bounded repr of the method and path is logged (no control characters can
            # forge log lines); headers, and so keys, never are.
            _log.exception("unexpected error answering %.32r %.200r", request.method, request.path)
            return problem_response(INTERNAL_ERROR, "an unexpected error occurred; it is logged")

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document, generated from the routes and the pydantic models."""
        from iotpipe.entrypoints.http.openapi import build_document

        return build_document(
            self.routes,
            title=TITLE,
            version=__version__,
            description=DESCRIPTION,
            max_items=self.limits.max_items,
            schema=self.schema,
        )

    def openapi_bytes(self) -> bytes:
        """The document as JSON, generated on first use and kept."""
        with self._document_lock:
            if self._document is None:
                self._document = orjson.dumps(self.openapi())
            return self._document

    # --- dispatch ------------------------------------------------------------------------------

    def _handle(self, request: HttpRequest) -> HttpResponse:
        candidates, path_params = self._router.match(request.path)
        if not candidates:
            return ApiProblem(NOT_FOUND, "no route has this path; see /v1/openapi.json").response()
        route = _for_method(candidates, request.method.upper())
        if route is None:
            return _not_allowed(candidates)
        response = self._answer(route, request, path_params)
        if self._check:
            response = self._checked(route, response)
        return response

    def _answer(
        self, route: Route, request: HttpRequest, path_params: Mapping[str, str]
    ) -> HttpResponse:
        try:
            if not route.public:
                self._authenticate(request.headers)
            params = parse_params(
                route.params,
                path_params,
                request.query,
                ignore_unknown=route.ignore_unknown_query,
            )
            reply = route.handler(Call(request, params))
        except ApiProblem as problem:
            return problem.response()
        except StoreUnavailable:
            _log.warning("store unavailable answering %s", route.operation_id, exc_info=True)
            return problem_response(STORE_UNAVAILABLE, "the aggregate store is unavailable")
        except StreamFull as full:
            # Backpressure, not an outage: say when to come back.
            retry = {"retry-after": str(full.retry_after_s)}
            return problem_response(INGEST_UNAVAILABLE, str(full), headers=retry)
        except StreamUnavailable:
            _log.warning("stream unavailable answering %s", route.operation_id, exc_info=True)
            return problem_response(INGEST_UNAVAILABLE, "the stream is unavailable")
        if isinstance(reply, Reply):
            return json_response(reply.status, reply.body, headers=reply.headers)
        return reply

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        verdict = self._keys.authorize(headers)
        if verdict is None:
            raise ApiProblem(
                UNAUTHORIZED,
                "an API key is required (Authorization: Bearer <key>, or X-API-Key)",
                headers=_UNAUTHORIZED_HEADERS,
            )
        if not verdict:
            raise ApiProblem(
                UNAUTHORIZED, "the API key is not valid", headers=_UNAUTHORIZED_HEADERS
            )

    def _checked(self, route: Route, response: HttpResponse) -> HttpResponse:
        from iotpipe.entrypoints.http.conformance import violation

        problem = violation(route, response, self.schema)
        if problem is None:
            return response
        _log.error("response of %s breaks its declaration: %s", route.operation_id, problem)
        return problem_response(INTERNAL_ERROR, f"response breaks its declaration: {problem}")


def _for_method(candidates: list[Route], method: str) -> Route | None:
    # HEAD is GET without the body (the runtime drops the body).
    wanted = "GET" if method == "HEAD" else method
    return next((r for r in candidates if r.method == wanted), None)


def _not_allowed(candidates: list[Route]) -> HttpResponse:
    methods = {r.method for r in candidates}
    if "GET" in methods:
        methods.add("HEAD")
    allow = ", ".join(sorted(methods))
    return ApiProblem(
        METHOD_NOT_ALLOWED, f"this path allows {allow}", headers={"allow": allow}
    ).response()
