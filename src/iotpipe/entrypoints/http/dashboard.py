"""``GET /``: the dashboard page, or a placeholder that links the API docs until it exists."""

from __future__ import annotations

from importlib.resources import files

from iotpipe.entrypoints.http.messages import HTML, HttpResponse, bytes_response

#: Where the dashboard lives inside the package (package data: ``static/*``).
DASHBOARD = ("static", "dashboard.html")

PLACEHOLDER = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>iotpipe</title></head>
<body>
<h1>iotpipe analytics API</h1>
<p>The dashboard is not installed yet. The API is documented by its
<a href="/v1/openapi.json">OpenAPI document</a>; <a href="/v1/health">health</a>.</p>
</body>
</html>
"""


def dashboard_page() -> bytes:
    """The dashboard's HTML, read on each request (an edited page shows without a restart)."""
    resource = files("iotpipe.entrypoints.http").joinpath(*DASHBOARD)
    try:
        return resource.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return PLACEHOLDER


def dashboard_response() -> HttpResponse:
    """The page, never framed by another site and revalidated on every load."""
    return bytes_response(
        200,
        dashboard_page(),
        content_type=HTML,
        headers={
            "cache-control": "no-cache",
            "content-security-policy": "frame-ancestors 'none'",
        },
    )
