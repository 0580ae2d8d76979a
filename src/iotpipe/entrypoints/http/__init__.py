"""The analytics HTTP API: one platform-neutral definition that every runtime serves.

:class:`AnalyticsApi` answers :class:`HttpRequest` with :class:`HttpResponse`; the local server
lives in :mod:`iotpipe.entrypoints.http.server` (imported on its own: serverless runtimes do not
load ``http.server``).
"""

from iotpipe.entrypoints.http.api import AnalyticsApi
from iotpipe.entrypoints.http.auth import ApiKeys
from iotpipe.entrypoints.http.endpoints import Ingestor, Limits
from iotpipe.entrypoints.http.messages import HttpRequest, HttpResponse

__all__ = ["AnalyticsApi", "ApiKeys", "HttpRequest", "HttpResponse", "Ingestor", "Limits"]
