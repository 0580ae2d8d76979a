"""Format 2: a window stored as a small *head* and write-once identity *segments*.

Format 1 (:mod:`iotpipe.application.codecs.window`) keeps a window whole, its identity set
included, so every write rewrites every identity the window ever counted: ~13 KB at the end of
an hour at one reading per second, billed whole on DynamoDB. Format 2 splits it:

- the **head** holds the statistics, the latest reading, a short *tail* of recently counted
  identities, the *horizon* (the greatest offset sealed into a segment, ``-1`` for none) and
  the number of segments sealed. It stays small (under 1 KB on DynamoDB), so a write costs
  what the head weighs, whatever the window holds;
- when the tail would outgrow its budget, the writer *seals* it: segment ``S(window, v)`` is
  the tail exactly as committed in head version ``v``, written before the head moves on to
  ``v + 1`` with the tail emptied. Any writer sealing from ``v`` writes the same bytes, so
  racing writers cannot disagree, and a segment whose head write then fails (an *orphan*)
  holds only identities the window did count: reading it too changes nothing;
- a reading at an offset above the horizon cannot repeat a sealed identity, so only the tail
  is needed to absorb it (on time readings, in order); the segments are read only for windows
  offered a reading at or below the horizon (late, out of order, resent).

Encodings: identities as sorted offsets delta-encoded in LEB128 with their 16-bit fingerprint
(~4 bytes each at one reading a second); the head and a fleet total as MessagePack (msgspec),
metrics by the names the telemetry schema gives them, in units of their resolution (a schema
that changes a resolution is refused at start-up, so stored integers keep their meaning).
Integers too large for MessagePack (a fleet total's sums of squares can pass 2**63) are written
as decimal text, so every number stays exact.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from iotpipe.domain import (
    DEFAULT_SCHEMA,
    FleetTotal,
    HourlyWindow,
    IdentitySet,
    Located,
    Location,
    Moments,
    Reading,
    Stats,
    TelemetrySchema,
)
from iotpipe.domain.errors import IotPipeError

FORMAT = 2
NO_HORIZON = -1

_INT64 = 2**63


@functools.cache
def _msgspec() -> Any:
    """msgspec, imported on first use: importing a handler module stays light (the cold-start
    contract of tests/http/test_cold_start.py); a store loads it with its first window."""
    import msgspec

    return msgspec


@functools.cache
def _codec() -> tuple[Any, Any]:
    """The MessagePack encoder and decoder, built once."""
    msgpack = _msgspec().msgpack
    return msgpack.Encoder(), msgpack.Decoder()


class CorruptHead(IotPipeError):
    """Stored head, segment or fleet total bytes could not be decoded."""


class Head(NamedTuple):
    """A decoded head: the window (its ``seen`` is the tail), the horizon and the seal count."""

    window: HourlyWindow
    horizon: int = NO_HORIZON
    sealed: int = 0

    @property
    def tail(self) -> IdentitySet:
        """The identities counted since the last seal."""
        return self.window.seen


class Written(NamedTuple):
    """What a store writes for one window: segments first (``(base version, bytes)``), then
    the head (its bytes, and the tail it holds)."""

    segments: tuple[tuple[int, bytes], ...]
    head: bytes
    tail: IdentitySet


# --- identities ------------------------------------------------------------------------------


def pack_identities(keys: Iterable[int]) -> bytes:
    """Sorted identity keys (``offset << 16 | fingerprint``) as delta-encoded bytes."""
    out = bytearray()
    previous = 0
    for key in keys:
        offset = key >> 16
        delta, previous = offset - previous, offset
        while delta >= 0x80:
            out.append(delta & 0x7F | 0x80)
            delta >>= 7
        out.append(delta)
        out += (key & 0xFFFF).to_bytes(2, "little")
    return bytes(out)


def unpack_identities(data: bytes) -> IdentitySet:
    """The identity set :func:`pack_identities` wrote."""
    keys: array[int] = array("Q")
    offset = shift = delta = 0
    i, end = 0, len(data)
    try:
        while i < end:
            byte = data[i]
            i += 1
            delta |= (byte & 0x7F) << shift
            if byte & 0x80:
                shift += 7
                continue
            offset += delta
            if i + 2 > end:
                raise CorruptHead("identity bytes end inside a fingerprint")
            keys.append(offset << 16 | int.from_bytes(data[i : i + 2], "little"))
            i += 2
            delta = shift = 0
    except OverflowError as exc:
        raise CorruptHead(f"identity bytes out of range: {exc}") from exc
    if shift:
        raise CorruptHead("identity bytes end inside an offset")
    return IdentitySet(keys)


def merged_identities(parts: Iterable[IdentitySet]) -> IdentitySet:
    """The union of identity sets (orphan segments repeat identities held elsewhere)."""
    keys = sorted({key for part in parts for key in part.keys})
    return IdentitySet(array("Q", keys))


# --- statistics ------------------------------------------------------------------------------


def _exact(value: int) -> int | str:
    return value if -_INT64 <= value < _INT64 else str(value)


def _int(value: Any) -> int:
    return int(value)


def stats_fields(stats: Stats, hour_ms: int, schema: TelemetrySchema = DEFAULT_SCHEMA) -> list[Any]:
    """``[count, first, last, {metric: [count, total, squares, min, max]}, located]``, times
    as offsets from ``hour_ms`` (a fleet total passes 0: its times are absolute), each metric
    by the name ``schema`` gives it, in units of its resolution."""
    metrics = {
        name: [m.count, _exact(m.total), _exact(m.squares), m.minimum, m.maximum]
        for name, m in zip(schema.names, stats.moments(schema), strict=True)
        if m.count
    }
    located = stats.located
    return [
        stats.count,
        None if stats.first_ms is None else stats.first_ms - hour_ms,
        None if stats.last_ms is None else stats.last_ms - hour_ms,
        metrics,
        None if located is None else [located.timestamp_ms - hour_ms, located.lat, located.lon],
    ]


def stats_from_fields(
    fields: Sequence[Any], hour_ms: int, schema: TelemetrySchema = DEFAULT_SCHEMA
) -> Stats:
    """The statistics :func:`stats_fields` wrote, read by ``schema``'s names (a metric added
    to the schema after they were written decodes as empty)."""
    count, first, last, metrics, located = fields
    return Stats(
        int(count),
        tuple(_moments(metrics.get(name)) for name in schema.names),
        None if first is None else hour_ms + int(first),
        None if last is None else hour_ms + int(last),
        None if located is None else Located(hour_ms + int(located[0]), located[1], located[2]),
    )


def _moments(values: Sequence[Any] | None) -> Moments:
    if not values:
        return Moments()
    count, total, squares, low, high = values
    return Moments(int(count), _int(total), _int(squares), int(low), int(high))


def _reading_fields(reading: Reading, hour_ms: int, schema: TelemetrySchema) -> list[Any]:
    values = {n: v for n, v in zip(schema.names, reading.values, strict=True) if v is not None}
    where = reading.location
    return [reading.timestamp_ms - hour_ms, values, None if where is None else list(where)]


def _reading(
    device_id: str, hour_ms: int, fields: Sequence[Any], schema: TelemetrySchema
) -> Reading:
    offset, values, where = fields
    return Reading(
        device_id,
        hour_ms + int(offset),
        tuple(None if values.get(n) is None else int(values[n]) for n in schema.names),
        None if where is None else Location(where[0], where[1]),
    )


# --- heads -----------------------------------------------------------------------------------


def encode_head(
    window: HourlyWindow,
    horizon: int = NO_HORIZON,
    sealed: int = 0,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> bytes:
    """The head of a window whose ``seen`` is its tail (see the module docstring), whose
    readings are of ``schema``."""
    latest, hour_ms = window.latest, window.hour_ms
    encoded: bytes = _codec()[0].encode(
        [
            FORMAT,
            stats_fields(window.stats, hour_ms, schema),
            None if latest is None else _reading_fields(latest, hour_ms, schema),
            horizon,
            sealed,
            pack_identities(window.seen.keys),
        ]
    )
    return encoded


def decode_head(
    device_id: str, hour_ms: int, data: bytes, schema: TelemetrySchema = DEFAULT_SCHEMA
) -> Head:
    """The head :func:`encode_head` wrote, its metrics read by ``schema``'s names; raises
    :class:`CorruptHead` on bad input."""
    try:
        fmt, stats, latest, horizon, sealed, tail = _codec()[1].decode(data)
        if fmt != FORMAT:
            raise CorruptHead(f"unknown head format {fmt!r}")
        window = HourlyWindow(
            device_id,
            hour_ms,
            stats_from_fields(stats, hour_ms, schema),
            unpack_identities(tail),
            None if latest is None else _reading(device_id, hour_ms, latest, schema),
        )
        return Head(window, int(horizon), int(sealed))
    except (_msgspec().DecodeError, TypeError, ValueError, IndexError, KeyError) as exc:
        raise CorruptHead(f"unreadable head of {device_id!r} at {hour_ms}: {exc}") from exc


def written(
    before: Head | None,
    version: int,
    after: HourlyWindow,
    fits: Callable[[bytes], bool],
    loaded: IdentitySet | None = None,
    legacy: IdentitySet | None = None,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> Written:
    """What to write when a window read as ``before`` (at ``version``; ``loaded``: every
    identity read, if more than the tail) was absorbed into ``after``.

    The new identities join the tail. If the head would then not ``fits``, the tail as
    committed at ``version`` is sealed first (segment ``S(version)``) and the head keeps only
    the new identities. ``legacy`` are the identities of a format 1 window being converted
    (``before`` is then ``None``): they become segment ``S(0)``. Deterministic: the same
    arguments give the same bytes, so racing writers write identical segments.
    """
    tail = IdentitySet() if before is None else before.tail
    known = loaded or legacy or tail
    fresh = sorted(set(after.seen.keys).difference(known.keys))
    horizon, sealed = (NO_HORIZON, 0) if before is None else (before.horizon, before.sealed)
    segments: tuple[tuple[int, bytes], ...] = ()
    if legacy is not None and legacy.keys:
        segments = ((0, pack_identities(legacy.keys)),)
        horizon, sealed = max(key >> 16 for key in legacy.keys), 1
    grown = IdentitySet(array("Q", sorted([*tail.keys, *fresh])))
    head = encode_head(after._replace(seen=grown), horizon, sealed, schema)
    if fits(head) or not tail.keys:
        return Written(segments, head, grown)
    kept = IdentitySet(array("Q", fresh))
    horizon = max(horizon, tail.keys[-1] >> 16)
    head = encode_head(after._replace(seen=kept), horizon, sealed + 1, schema)
    return Written(((version, pack_identities(tail.keys)),), head, kept)


# --- fleet totals ----------------------------------------------------------------------------


def encode_total(total: FleetTotal, schema: TelemetrySchema = DEFAULT_SCHEMA) -> bytes:
    """A fleet total (a lane of one hour) as bytes; times absolute, every sum exact, metrics
    by ``schema``'s names."""
    stats = stats_fields(total.stats, 0, schema)
    encoded: bytes = _codec()[0].encode([FORMAT, total.devices, stats])
    return encoded


def decode_total(data: bytes, schema: TelemetrySchema = DEFAULT_SCHEMA) -> FleetTotal:
    """The fleet total :func:`encode_total` wrote, its metrics read by ``schema``'s names."""
    try:
        fmt, devices, stats = _codec()[1].decode(data)
        if fmt != FORMAT:
            raise CorruptHead(f"unknown fleet total format {fmt!r}")
        return FleetTotal(stats_from_fields(stats, 0, schema), int(devices))
    except (_msgspec().DecodeError, TypeError, ValueError, IndexError) as exc:
        raise CorruptHead(f"unreadable fleet total: {exc}") from exc
