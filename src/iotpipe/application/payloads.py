"""Decoding stream payloads into candidate readings, and encoding readings for the stream.

A stream record may carry its payload compressed, because a stream that bills bytes bills a
device-minute of JSON several times less so. Two forms:

- **raw** (:func:`pack`: zlib, RFC 1950), on Kinesis: a device-minute of ~9.1 KB of JSON
  packs to ~960 bytes;
- **text** (:func:`pack_text`: the same zlib bytes as standard base64, no newline), on Pub/Sub:
  GCP's Cloud Storage subscription writes the archive as text files of one message a line,
  so a message must hold no newline byte, which raw zlib may. ~1.3 KB per device-minute.

:func:`unpack` reads both and plain JSON alike: raw zlib by its two header bytes, the text
form by its first four characters, which decode to such a header (base64 of ``0x78`` starts
with ``e``; JSON text never does). So plain records (in flight during an upgrade, or from
another producer) pass through unchanged, whatever the edge.
"""

from __future__ import annotations

import base64
import binascii
import gc
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import orjson

from iotpipe.domain import InvalidReading, Reason
from iotpipe.ports import RawBatch, RawRecord

#: Deeper JSON than this is refused before parsing (orjson's own limit is 1024 levels).
MAX_DEPTH = 32

#: zlib's best compression: a device-minute (~9.1 KB of JSON) packs to ~950 bytes at ~90 us,
#: level 6 to ~980 (closer to Kinesis' 1 KB billing unit) at ~80 us (benchmarks/kinesis_bytes.py).
PACK_LEVEL = 9

#: A packed record that would expand past this is refused as corrupt (a bounded buffer: the
#: largest ingest request, 500 readings, is well under it).
MAX_UNPACKED = 16 * 1024 * 1024

_DEFLATE_32K = 0x78  # a zlib header's first byte: deflate, 32 KB window (what zlib writes)
_TEXT_MARK = ord("e")  # the first base64 character of any byte 0x78-0x7B
_MARKS = (b"x", b"e")  # the first byte of either packed form
#: Base64 characters :func:`unpacked_head` decodes (a multiple of 4): ~1 KB of zlib, more than
#: the first 512 bytes of a device's readings take, Huffman tables included.
_HEAD_TEXT = 1024


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


def pack_text(data: bytes) -> bytes:
    """``data`` packed (:func:`pack`) as standard base64 text without newlines: the form a
    message takes where a consumer stores one message per line (read back by :func:`unpack`)."""
    return base64.b64encode(pack(data))


def is_packed_text(data: bytes) -> bool:
    """Whether ``data`` starts as :func:`pack_text` writes: four base64 characters that decode
    to a zlib header (:func:`is_packed`). JSON text never does: it cannot start with ``e``."""
    if len(data) < 4 or data[0] != _TEXT_MARK:
        return False
    try:
        head = base64.b64decode(data[:4], validate=True)
    except binascii.Error:
        return False
    return is_packed(head)


def unpack(data: bytes) -> bytes:
    """The payload of a stream record: decompressed if :func:`is_packed` or
    :func:`is_packed_text`, else ``data`` (plain JSON, or anything else, as it came).

    Raises :class:`InvalidReading` (``corrupt_record``) for a record marked packed that is not
    base64 text (the text form), does not decompress whole, or would expand past
    :data:`MAX_UNPACKED`.
    """
    if is_packed(data):
        return _inflate(data)
    if is_packed_text(data):
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise InvalidReading(Reason.CORRUPT_RECORD, _corrupt(f"not base64: {exc}")) from None
        return _inflate(raw)
    return data


def unpacked_head(data: bytes, size: int = 512) -> bytes:
    """At most the first ``size`` bytes of ``data``'s payload, unpacked if it is packed
    (either form), without unpacking the rest: a cheap look at what a record starts with.
    ``b""`` if a packed record's start does not unpack (:func:`unpack` says why, later)."""
    if data[:1] not in _MARKS:
        return data[:size]
    try:
        if is_packed_text(data):
            data = base64.b64decode(data[:_HEAD_TEXT], validate=True)
        elif not is_packed(data):
            return data[:size]
        return zlib.decompressobj().decompress(data[: _HEAD_TEXT * 3 // 4], size)
    except (binascii.Error, zlib.error):
        return b""


def unpack_batch(batch: RawBatch) -> RawBatch:
    """``batch`` with each packed record's data unpacked (:func:`unpack`), the same object if
    none is packed. A corrupt record is kept as it came: the process use case quarantines it
    (``corrupt_record``, its bytes as stored), so poison never blocks a batch or a file."""
    records = batch.records
    if not any(
        r.data[:1] in _MARKS and (is_packed(r.data) or is_packed_text(r.data)) for r in records
    ):
        return batch
    return RawBatch(batch.batch_id, tuple(_unpacked(r) for r in records))


def _unpacked(record: RawRecord) -> RawRecord:
    try:
        data = unpack(record.data)
    except InvalidReading:
        return record
    return record if data is record.data else RawRecord(record.record_id, data, record.arrived_ms)


def _inflate(data: bytes) -> bytes:
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

    A packed record (either form) is unpacked first: edges unpack what they read, so one that
    reaches here is one they could not, and :func:`unpack` says why (``corrupt_record``).
    Raises :class:`InvalidReading` (``malformed_json``) when the bytes are not JSON.
    """
    if isinstance(data, bytes):
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
