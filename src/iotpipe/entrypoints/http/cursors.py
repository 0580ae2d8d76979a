"""Opaque page cursors, bound to the query that issued them.

A cursor is base64url (unpadded) of ``{"v": 1, "q": <binding>, "c": <store cursor>}``, where
the binding is a digest of the route, its parameters other than the page size, and the store
cursor. A cursor used with other parameters, edited, or made up is refused with
``invalid_cursor`` instead of silently paging through another query. (The digest is a check,
not a secret: a determined client can still forge a cursor, which is why a store cursor the
store cannot read is also answered with ``invalid_cursor``.) The store's own cursor format
stays private to the store and may change without breaking clients, who must treat cursors as
opaque.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

import orjson

from iotpipe.entrypoints.http.problems import INVALID_CURSOR, ApiProblem

_VERSION = 1


def encode_cursor(scope: Sequence[str | int], store_cursor: str | None) -> str | None:
    """The client's cursor for the store's ``store_cursor`` under ``scope`` (``None`` passes)."""
    if store_cursor is None:
        return None
    token = orjson.dumps({"v": _VERSION, "q": _binding(scope, store_cursor), "c": store_cursor})
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def decode_cursor(scope: Sequence[str | int], cursor: str | None) -> str | None:
    """The store cursor inside ``cursor``, if it was issued for ``scope``; else a problem."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        token = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid("the cursor is not one this API issued") from None
    if not isinstance(token, dict) or token.get("v") != _VERSION:
        raise _invalid("the cursor is not one this API issued")
    store_cursor = token.get("c")
    if not isinstance(store_cursor, str) or token.get("q") != _binding(scope, store_cursor):
        raise _invalid(
            "the cursor was issued for other parameters, or edited: page with the same "
            "parameters (only limit may change), or start again without a cursor"
        )
    return store_cursor


def _binding(scope: Sequence[str | int], store_cursor: str) -> str:
    digest = hashlib.sha256(orjson.dumps([*scope, store_cursor])).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _invalid(detail: str) -> ApiProblem:
    return ApiProblem(INVALID_CURSOR, detail)
