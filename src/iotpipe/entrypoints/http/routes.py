"""Route declarations: what dispatch, parameter parsing and the OpenAPI document all read.

A :class:`Route` names its method, path template, parameters, success response, the problems
its handler may raise and whether it needs a key. :class:`AnalyticsApi` dispatches from the
same tuple of routes that :mod:`~iotpipe.entrypoints.http.openapi` documents, so the document
cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from iotpipe.entrypoints.http.messages import JSON, HttpRequest, HttpResponse
from iotpipe.entrypoints.http.params import Param
from iotpipe.entrypoints.http.problems import (
    INTERNAL_ERROR,
    INVALID_PARAMETER,
    UNAUTHORIZED,
    ProblemType,
)


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler receives: the request and its parsed parameters."""

    request: HttpRequest
    params: Mapping[str, object]

    def integer(self, name: str) -> int:
        """An integer parameter (instants are epoch milliseconds)."""
        value = self.params[name]
        assert isinstance(value, int)
        return value

    def text(self, name: str) -> str:
        """A required string parameter."""
        value = self.params[name]
        assert isinstance(value, str)
        return value

    def optional_text(self, name: str) -> str | None:
        """An optional string parameter."""
        value = self.params.get(name)
        assert value is None or isinstance(value, str)
        return value


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's JSON answer: status and body (serialised by the API)."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Reply | HttpResponse]


@dataclass(frozen=True, slots=True)
class Success:
    """A route's success response: status, description and the body's schema.

    ``model`` names a pydantic model of :mod:`~iotpipe.entrypoints.http.schemas`; ``schema``
    is an inline JSON schema for bodies that are not JSON data of ours (HTML, the document).
    """

    status: int
    description: str
    model: str | None = None
    content_type: str = JSON
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: method and path template, parameters, responses, handler."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    handler: Handler
    success: Success
    params: tuple[Param, ...] = ()
    problems: tuple[ProblemType, ...] = ()
    body_model: str | None = None
    body_example: Any = None
    public: bool = False
    tag: str = "analytics"
    ignore_unknown_query: bool = False
    """Unknown query parameters are ignored (ingest) instead of refused (the queries)."""

    @property
    def segments(self) -> tuple[str, ...]:
        """The template split at ``/``."""
        return tuple(self.path.split("/"))

    def all_problems(self) -> tuple[ProblemType, ...]:
        """Every problem this operation may answer with, the common ones included."""
        common = [] if self.public else [UNAUTHORIZED]
        if self.params:
            common.append(INVALID_PARAMETER)
        merged = dict.fromkeys([*common, *self.problems, INTERNAL_ERROR])
        return tuple(merged)


class Router:
    """Finds the routes of a path (any method) and the path's raw parameter segments."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self._templates = [(r, r.segments) for r in routes]

    def match(self, path: str) -> tuple[list[Route], dict[str, str]]:
        """Routes whose template matches ``path``, and the template's path parameters."""
        segments = path.split("/")
        found: list[Route] = []
        captured: dict[str, str] = {}
        for route, template in self._templates:
            params = _match(template, segments)
            if params is not None:
                found.append(route)
                captured = params
        return found, captured


def _match(template: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    params: dict[str, str] = {}
    for expected, actual in zip(template, segments, strict=True):
        if expected.startswith("{"):
            if not actual:
                return None
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params
