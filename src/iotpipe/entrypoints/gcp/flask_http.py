"""functions-framework's flask requests <-> the platform-neutral HTTP messages, and the shared
serving of an HTTP function (translation, trace context, the API)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from iotpipe.entrypoints.gcp import observability as obs
from iotpipe.entrypoints.http.messages import HttpRequest, HttpResponse

if TYPE_CHECKING:
    import flask

    from iotpipe.entrypoints.http.api import AnalyticsApi


def to_request(request: flask.Request, max_body: int) -> HttpRequest:
    """The request as the API sees it (header names lower-case, repeated parameters joined
    with commas). A body declared larger than ``max_body`` is left unread (the API answers 413);
    at most ``max_body + 1`` bytes of any body are read."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    declared = headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > max_body
    body = b"" if too_large else request.stream.read(max_body + 1)
    query = {key: ",".join(request.args.getlist(key)) for key in request.args}
    return HttpRequest(
        method=request.method.upper(),
        path=request.path or "/",
        query=query,
        headers=headers,
        body=body,
    )


def to_response(response: HttpResponse) -> flask.Response:
    """The flask response for an API response (flask drops the body of a HEAD answer)."""
    import flask

    return flask.Response(
        response.body, status=response.status, headers=list(response.headers.items())
    )


def serve(
    function: str, api: AnalyticsApi, request: flask.Request, project: str | None
) -> flask.Response:
    """Answer one request with ``api``, logging under ``function`` and the request's trace."""
    http_request = to_request(request, api.max_body)
    with obs.serving(function, project, obs.trace_from_headers(http_request.headers)):
        return to_response(api.handle(http_request))
