"""Lambda handler: the API Gateway HTTP API's request authorizer (payload format 2.0, simple
responses).

API Gateway calls it before routing a query request to the api function (and an ingest request,
with deploy/aws's ``ingest_gateway_authorizer``), so a request without a valid key is refused at
the gateway (``403``) and never invokes the function. The keys and the check are the same as the
functions' own (``Authorization: Bearer KEY`` or ``X-API-Key``, the keys of
``IOTPIPE_API_KEYS_SECRET``), which keep checking too: by default ingest's own check is the only
one on ``POST /v1/readings`` (a second, identical one would cost an invocation per request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iotpipe.entrypoints.aws import bootstrap


def handler(event: Mapping[str, Any], context: Any) -> dict[str, bool]:
    """``{"isAuthorized": ...}``: whether the request presents a valid key."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return {"isAuthorized": bootstrap.authorizer_keys().authorize(headers) is True}
