"""DynamoDB items of the store: keys, items, attribute values and billed sizes.

Format 2 (this release) writes window heads, identity segments and fleet lanes (the functions
at the end of this module); format 1 (``window_item``/``window_from_item``, the release before)
is still read, to convert a table written by it.

Values go through the low-level client as typed attribute values. Every integer is sent as an
``N`` string of its exact digits (DynamoDB numbers hold 38 significant digits; the largest
value stored, a sum of squares, has at most 17), so nothing is ever rounded through a float.
The only non-integers are latitude and longitude: they are kept as text (``S``, the shortest
decimal that round-trips), because a float may be smaller in magnitude than the ``1e-130``
that a DynamoDB number can hold (``5e-324`` is a valid latitude).
The window's latest reading is kept as its JSON text (``S``): it round-trips exactly, and
:meth:`DynamoStore.latest` reads it without decoding the rest of the window.

Sizes follow DynamoDB's rules for item size (what capacity is billed on): attribute names
count as UTF-8 bytes; ``S`` is its UTF-8 length, ``B`` its byte length, ``N`` one byte per
two significant digits plus one, ``NULL``/``BOOL`` one byte, and ``L``/``M`` three bytes plus
one byte per element plus the elements (and, for ``M``, their names).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import orjson

from iotpipe.application.codecs.window import RECORD_FIELDS, window_from_record, window_to_record
from iotpipe.domain import DEFAULT_SCHEMA, HourlyWindow, Reading, TelemetrySchema, parse_reading
from iotpipe.domain.time import MS_PER_HOUR

Item = dict[str, Any]
"""An item in the low-level client's typed form, e.g. ``{"PK": {"S": "DEV#d1"}}``."""


WINDOW_PREFIX = "H#"
_HOUR_DIGITS = 15  # every supported hour (< year 10000) in epoch ms has at most 15 digits
MAX_HOUR_MS = 10**_HOUR_DIGITS - 1


def shard_of(device_id: str, shards: int) -> int:
    """A device's shard: CRC-32 of its id mod ``shards`` (stable across processes and runs)."""
    return zlib.crc32(device_id.encode()) % shards


def window_key(device_id: str, hour_ms: int) -> Item:
    """``PK = DEV#<device>``, ``SK = H#<hour_ms, 15 digits>``: a device's windows in hour order."""
    return {"PK": {"S": device_pk(device_id)}, "SK": {"S": hour_sk(hour_ms)}}


def device_pk(device_id: str) -> str:
    """The partition of a device's windows."""
    return f"DEV#{device_id}"


def hour_sk(hour_ms: int) -> str:
    """The sort key of a window: zero-padded so that text order is hour order."""
    return f"{WINDOW_PREFIX}{hour_ms:0{_HOUR_DIGITS}d}"


def fleet_pk(hour_ms: int, shard: int) -> str:
    """The fleet index partition of one hour's windows of one shard of devices."""
    return f"FLEET#{hour_ms}#{shard}"


def registry_key(device_id: str, shards: int) -> Item:
    """``PK = DEVICES#<shard>``, ``SK = <device>``: the registry, sharded like the fleet index."""
    return {
        "PK": {"S": f"DEVICES#{shard_of(device_id, shards)}"},
        "SK": {"S": device_id},
    }


def registry_pk(shard: int) -> str:
    """The partition of one shard of the device registry."""
    return f"DEVICES#{shard}"


def window_item(
    window: HourlyWindow,
    version: int,
    shards: int,
    ttl_days: int | None,
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> Item:
    """The stored item of a window at ``version`` (see :mod:`iotpipe.adapters.aws.dynamodb`)."""
    record = window_to_record(window, schema)
    latest = record.pop("latest")
    item = window_key(window.device_id, window.hour_ms)
    item["FPK"] = {"S": fleet_pk(window.hour_ms, shard_of(window.device_id, shards))}
    item["version"] = {"N": str(version)}
    item.update({name: to_attr(value) for name, value in record.items()})
    item["latest"] = {"NULL": True} if latest is None else {"S": orjson.dumps(latest).decode()}
    if ttl_days is not None:  # expiry counts from the end of the window's hour (event time)
        expires_s = (window.hour_ms + MS_PER_HOUR) // 1000 + ttl_days * 86_400
        item["ttl"] = {"N": str(expires_s)}
    return item


def window_from_item(
    item: Mapping[str, Any], schema: TelemetrySchema = DEFAULT_SCHEMA
) -> HourlyWindow:
    """The window a stored item holds (its metrics read by the schema's names)."""
    record = {name: from_attr(item[name]) for name in RECORD_FIELDS if name in item}
    latest = record.get("latest")
    record["latest"] = None if latest is None else orjson.loads(latest)
    return window_from_record(record, schema)


def version_of(item: Mapping[str, Any]) -> int:
    """The concurrency token of a stored window."""
    return int(item["version"]["N"])


def latest_of(item: Mapping[str, Any], schema: TelemetrySchema = DEFAULT_SCHEMA) -> Reading | None:
    """The latest reading of a window item, without decoding the rest of it."""
    text = from_attr(item.get("latest", {"NULL": True}))
    return None if text is None else parse_reading(orjson.loads(text), schema.canonical())


def to_attr(value: object) -> dict[str, Any]:
    """A Python value as a typed attribute value (integers stay exact ``N`` strings)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, list | tuple):
        return {"L": [to_attr(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    for kind, encode in _SCALARS:
        if isinstance(value, kind):
            return encode(value)
    raise TypeError(f"no DynamoDB attribute type for {type(value).__name__}")


_SCALARS: tuple[tuple[type, Callable[[Any], dict[str, Any]]], ...] = (
    (bool, lambda v: {"BOOL": v}),  # before int: bool is an int
    (int, lambda v: {"N": str(v)}),
    (float, lambda v: {"S": repr(v)}),  # see the module docstring
    (str, lambda v: {"S": v}),
    (bytes, lambda v: {"B": v}),
    (bytearray, lambda v: {"B": bytes(v)}),
)


def from_attr(attr: Mapping[str, Any]) -> Any:
    """The Python value of a typed attribute value (``N`` as ``int`` when integral)."""
    (kind, value), *_ = attr.items()
    if kind == "N":
        return _number(value)
    if kind in {"S", "BOOL"}:
        return value
    if kind == "B":
        return bytes(value)
    if kind == "NULL":
        return None
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    raise TypeError(f"unsupported DynamoDB attribute type {kind}")


def _number(text: str) -> int | float:
    # DynamoDB returns numbers in its own canonical text (real AWS drops "1.0" to "1"; moto
    # keeps the text as sent), so the type is decided by value, not by spelling.
    number = Decimal(text)
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def item_size(item: Mapping[str, Any]) -> int:
    """The item's size in bytes as DynamoDB bills it (see the module docstring)."""
    return sum(len(name.encode()) + _value_size(attr) for name, attr in item.items())


def _value_size(attr: Mapping[str, Any]) -> int:
    (kind, value), *_ = attr.items()
    if kind == "S":
        return len(value.encode())
    if kind == "B":
        return len(value)
    if kind == "N":
        digits = value.lstrip("+-").replace(".", "").split("e")[0].split("E")[0]
        significant = digits.strip("0") or "0"
        return (len(significant) + 1) // 2 + 1
    if kind in {"NULL", "BOOL"}:
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in value)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in value.items())
    raise TypeError(f"unsupported DynamoDB attribute type {kind}")


def index_entry_size(item: Mapping[str, Any]) -> int:
    """The size of a window's entry in the fleet index (keys only: its own and the table's)."""
    return item_size({k: v for k, v in item.items() if k in {"PK", "SK", "FPK", "device_id"}})


# --- format 2: heads, segments, fleet lanes (see iotpipe.application.codecs.heads) -----------

HEAD_PREFIX = "W#"
SEGMENT_PREFIX = "S#"
LANE_PREFIX = "F#"
#: A head is kept within one write capacity unit: its tail is sealed before it would pass.
HEAD_BUDGET = 1024


def head_pk(hour_ms: int, shard: int) -> str:
    """The partition of one hour's window heads of one shard of devices (sort key: device)."""
    return f"{HEAD_PREFIX}{hour_ms}#{shard}"


def head_key(device_id: str, hour_ms: int, shards: int) -> Item:
    """``PK = W#<hour_ms>#<shard>``, ``SK = <device>``: an hour's windows in device order."""
    return {"PK": {"S": head_pk(hour_ms, shard_of(device_id, shards))}, "SK": {"S": device_id}}


def head_item(
    device_id: str, hour_ms: int, head: bytes, version: int, shards: int, ttl_days: int | None
) -> Item:
    """A window's head item: keys, the device index's keys (``D``, ``H``), version ``v`` and
    the head ``w`` (bytes of :func:`~iotpipe.application.codecs.heads.encode_head`)."""
    item = head_key(device_id, hour_ms, shards)
    item["D"] = {"S": device_id}
    item["H"] = {"N": str(hour_ms)}
    item["v"] = {"N": str(version)}
    item["w"] = {"B": head}
    _expire(item, hour_ms, ttl_days)
    return item


def segment_pk(device_id: str, hour_ms: int) -> str:
    """The partition of one window's identity segments (sort key: base version)."""
    return f"{SEGMENT_PREFIX}{hour_ms}#{device_id}"


def segment_item(
    device_id: str, hour_ms: int, base: int, identities: bytes, ttl_days: int | None
) -> Item:
    """One sealed segment: the tail as committed at head version ``base``."""
    item: Item = {
        "PK": {"S": segment_pk(device_id, hour_ms)},
        "SK": {"S": f"{base:010d}"},
        "i": {"B": identities},
    }
    _expire(item, hour_ms, ttl_days)
    return item


def lane_pk(hour_ms: int) -> str:
    """The partition of one hour's fleet lanes (one per stream shard that carried its heads)."""
    return f"{LANE_PREFIX}{hour_ms}"


def lane_item(
    hour_ms: int, shard_id: str, total: bytes, sequence: int, ttl_days: int | None
) -> Item:
    """A fleet lane: the total ``t`` folded from one stream shard up to sequence ``q``."""
    item: Item = {
        "PK": {"S": lane_pk(hour_ms)},
        "SK": {"S": shard_id},
        "t": {"B": total},
        "q": {"S": str(sequence)},
    }
    _expire(item, hour_ms, ttl_days)
    return item


def binary(attr: Mapping[str, Any]) -> bytes:
    """A ``B`` value: bytes from boto3, base64 text in a Lambda stream event."""
    value = attr["B"]
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def _expire(item: Item, hour_ms: int, ttl_days: int | None) -> None:
    if ttl_days is not None:  # expiry counts from the end of the window's hour (event time)
        item["ttl"] = {"N": str((hour_ms + MS_PER_HOUR) // 1000 + ttl_days * 86_400)}
