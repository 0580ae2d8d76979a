"""Decoding stream payloads into candidate readings, and encoding readings for the stream."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector for a bounded piece of work.

    Processing a batch allocates many small acyclic objects (parsed payloads, readings); the
    generational collector would scan them again and again for cycles they cannot have, which
    costs about a fifth of the processing time. Reference counting still frees everything.
    Nested and concurrent use is safe: the collector resumes when the last user leaves, and
    only if it was enabled before the first one came.
    """
    global _gc_pausers, _gc_was_enabled  # noqa: PLW0603 - process-wide by nature
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()
