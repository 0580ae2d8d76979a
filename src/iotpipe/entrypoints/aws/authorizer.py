"""Lambda handler: the API Gateway HTTP API's request authorizer (payload format 2.0, simple
responses).

API Gateway calls it before routing a request to the ingest or api function, so a request
without a valid key is refused at the gateway (``403``) and never invokes them: a flood of
unauthenticated requests costs only this small function, not the pipeline's concurrency. The
keys and the check are the same as the functions' own (``Authorization: Bearer KEY`` or
``X-API-Key``, the keys of ``IOTPIPE_API_KEYS_SECRET``), which keep checking too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iotpipe.entrypoints.aws import bootstrap


def handler(event: Mapping[str, Any], context: Any) -> dict[str, bool]:
    """``{"isAuthorized": ...}``: whether the request presents a valid key."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return {"isAuthorized": bootstrap.authorizer_keys().authorize(headers) is True}
