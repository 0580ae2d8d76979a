"""The analytics HTTP API: one platform-neutral definition that every runtime serves.

:class:`AnalyticsApi` answers :class:`HttpRequest` with :class:`HttpResponse`; the local server
lives in :mod:`iotpipe.entrypoints.http.server` (imported on its own: serverless runtimes do not
load uvicorn, which is imported only when serving).
"""

from typing import TYPE_CHECKING

from iotpipe._exports import lazy_exports

if TYPE_CHECKING:
    from iotpipe.entrypoints.http.api import AnalyticsApi
    from iotpipe.entrypoints.http.auth import ApiKeys
    from iotpipe.entrypoints.http.endpoints import Ingestor, Limits
    from iotpipe.entrypoints.http.messages import HttpRequest, HttpResponse

__all__ = ["AnalyticsApi", "ApiKeys", "HttpRequest", "HttpResponse", "Ingestor", "Limits"]

if not TYPE_CHECKING:  # type checkers read the imports above instead
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "AnalyticsApi": "iotpipe.entrypoints.http.api",
            "ApiKeys": "iotpipe.entrypoints.http.auth",
            "Ingestor": "iotpipe.entrypoints.http.endpoints",
            "Limits": "iotpipe.entrypoints.http.endpoints",
            "HttpRequest": "iotpipe.entrypoints.http.messages",
            "HttpResponse": "iotpipe.entrypoints.http.messages",
        },
    )
