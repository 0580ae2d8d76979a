"""Decoding stream payloads into candidate readings, and encoding readings for the stream."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from iotpipe.domain import InvalidReading, Reason

#: Deeper JSON than this is refused before parsing (orjson's own limit is 1024 levels).
MAX_DEPTH = 32


def decode_items(data: bytes | str) -> list[object]:
    """The JSON value of a payload as a list of items: an array's elements, or the one object.

    Raises :class:`InvalidReading` (``malformed_json``) when the bytes are not JSON.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidReading(Reason.MALFORMED_JSON, f"not valid JSON: {exc}") from None
    return value if isinstance(value, list) else [value]


def encode_items(items: Sequence[object]) -> bytes:
    """A JSON array of decoded JSON values (the stream message body)."""
    return orjson.dumps(list(items))


def encode_item(item: object) -> bytes:
    """One decoded JSON value as compact JSON bytes."""
    try:
        return orjson.dumps(item)
    except TypeError:
        return repr(item).encode()
