"""Decoding stream payloads into candidate readings, and encoding readings for the stream.

A stream record may carry its payload compressed (:func:`pack`: zlib, RFC 1950), because a
stream that bills bytes (Kinesis on demand) bills a device-minute of JSON ~9x less so. The
edge that reads such a stream calls :func:`unpack`, which tells a compressed record from a
plain one by its two header bytes (a zlib header is never the start of JSON), so plain records
(in flight during an upgrade, or from another producer) pass through unchanged.
"""

from __future__ import annotations

import gc
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import orjson

from iotpipe.domain import InvalidReading, Reason

#: Deeper JSON than this is refused before parsing (orjson's own limit is 1024 levels).
MAX_DEPTH = 32

#: zlib's best compression: a device-minute (~9.1 KB of JSON) packs to ~950 bytes at ~90 us,
#: level 6 to ~980 (closer to Kinesis' 1 KB billing unit) at ~80 us (benchmarks/kinesis_bytes.py).
PACK_LEVEL = 9

#: A packed record that would expand past this is refused as corrupt (a bounded buffer: the
#: largest ingest request, 500 readings, is well under it).
MAX_UNPACKED = 16 * 1024 * 1024

_DEFLATE_32K = 0x78  # a zlib header's first byte: deflate, 32 KB window (what zlib writes)


def pack(data: bytes) -> bytes:
    """``data`` compressed for the stream (read back by :func:`unpack`)."""
    return zlib.compress(data, PACK_LEVEL)


def is_packed(data: bytes) -> bool:
    """Whether ``data`` starts with a zlib header without a preset dictionary (what
    :func:`pack` writes); JSON text never does (``x`` then a byte that makes the pair a
    multiple of 31)."""
    return (
        len(data) >= 2
        and data[0] == _DEFLATE_32K
        and not data[1] & 0x20
        and (data[0] << 8 | data[1]) % 31 == 0
    )


def unpack(data: bytes) -> bytes:
    """The payload of a stream record: decompressed if :func:`is_packed`, else ``data``.

    Raises :class:`InvalidReading` (``corrupt_record``) for a record with a zlib header
    that does not decompress whole, or would expand past :data:`MAX_UNPACKED`.
    """
    if not is_packed(data):
        return data
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(data, MAX_UNPACKED)
    except zlib.error as exc:
        raise InvalidReading(Reason.CORRUPT_RECORD, _corrupt(str(exc))) from None
    if inflater.unconsumed_tail:
        raise InvalidReading(Reason.CORRUPT_RECORD, _corrupt(f"expands past {MAX_UNPACKED} bytes"))
    if not inflater.eof or inflater.unused_data:
        raise InvalidReading(Reason.CORRUPT_RECORD, _corrupt("truncated or trailing bytes"))
    return plain


def _corrupt(why: str) -> str:
    return f"the record is marked zlib-compressed but does not decompress: {why}"


def decode_items(data: bytes | str) -> list[object]:
    """The JSON value of a payload as a list of items: an array's elements, or the one object.

    A packed record (:func:`is_packed`) is unpacked first: edges unpack what they read, so
    one that reaches here is one they could not, and :func:`unpack` says why
    (``corrupt_record``). Raises :class:`InvalidReading` (``malformed_json``) when the bytes
    are not JSON.
    """
    if isinstance(data, bytes) and is_packed(data):
        data = unpack(data)
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
