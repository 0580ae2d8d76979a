"""The archive's layout and file format, shared by every archive and quarantine adapter.

Objects are gzip-compressed JSON lines under Hive-style partitions of the batch's arrival hour::

    raw/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz        one line per raw record
    rejected/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz   one line per rejected payload

The name comes from the batch id, which comes from the source (shard and sequence numbers,
message id), so a retried batch overwrites its own object. Raw lines keep the payload exactly
as delivered (``data``, or ``data_b64`` for bytes that are not UTF-8), with the record id and
arrival time, so a replay sees the very records the stream delivered.
"""

from __future__ import annotations

import base64
import gzip
import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from iotpipe.domain import Reason
from iotpipe.domain.time import MS_PER_HOUR, format_instant, from_ms, hour_start
from iotpipe.ports import RawBatch, RawRecord, Rejection

RAW = "raw"
REJECTED = "rejected"
SUFFIX = ".jsonl.gz"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


def partition_prefix(kind: str, hour_ms: int) -> str:
    """``<kind>/dt=YYYY-MM-DD/hour=HH/`` for the hour containing ``hour_ms``."""
    start = from_ms(hour_start(hour_ms))
    return f"{kind}/dt={start:%Y-%m-%d}/hour={start:%H}/"


def object_name(kind: str, hour_ms: int, batch_id: str) -> str:
    """The object name of a batch: deterministic, so a retry overwrites."""
    return f"{partition_prefix(kind, hour_ms)}{_UNSAFE.sub('_', batch_id)}{SUFFIX}"


def partition_hours(start_ms: int, end_ms: int) -> list[int]:
    """Every hour start in ``[start_ms, end_ms)``."""
    first = (
        hour_start(start_ms) if start_ms % MS_PER_HOUR == 0 else hour_start(start_ms) + MS_PER_HOUR
    )
    return list(range(first, end_ms, MS_PER_HOUR))


def encode_batch(batch: RawBatch) -> bytes:
    """A raw batch as gzip JSON lines (byte-identical for the same batch)."""
    return _gzip(_raw_line(record) for record in batch.records)


def decode_batch(batch_id: str, body: bytes) -> RawBatch:
    """The raw batch encoded by :func:`encode_batch`."""
    lines = gzip.decompress(body).splitlines()
    return RawBatch(batch_id, tuple(decode_record(line) for line in lines if line.strip()))


def decode_record(line: bytes) -> RawRecord:
    """One raw line of an archived batch (see :func:`encode_batch`); raises ``ValueError``,
    ``KeyError`` or ``TypeError`` for a line that is not one."""
    fields = orjson.loads(line)
    data = (
        base64.b64decode(fields["data_b64"])
        if "data_b64" in fields
        else str(fields["data"]).encode()
    )
    return RawRecord(str(fields["id"]), data, fields.get("arrived_ms"))


def batch_id_of(name: str) -> str:
    """The (sanitised) batch id in an object name."""
    return name.rsplit("/", 1)[-1].removesuffix(SUFFIX)


def encode_rejections(rejections: Sequence[Rejection]) -> bytes:
    """Rejections as gzip JSON lines: record, index, reason, message and the payload."""
    return _gzip(_rejection_line(r) for r in rejections)


def decode_rejections(body: bytes) -> list[Rejection]:
    """The rejections encoded by :func:`encode_rejections`."""
    out = []
    for line in gzip.decompress(body).splitlines():
        f = orjson.loads(line)
        out.append(
            Rejection(
                f["record_id"], f["index"], Reason(f["reason"]), f["message"], f["payload"].encode()
            )
        )
    return out


def _raw_line(record: RawRecord) -> dict[str, Any]:
    line: dict[str, Any] = {"id": record.record_id}
    if record.arrived_ms is not None:
        line["arrived_ms"] = record.arrived_ms
        line["arrived"] = format_instant(record.arrived_ms)
    try:
        line["data"] = record.data.decode()
    except UnicodeDecodeError:
        line["data_b64"] = base64.b64encode(record.data).decode()
    return line


def _rejection_line(rejection: Rejection) -> dict[str, Any]:
    return {
        "record_id": rejection.record_id,
        "index": rejection.index,
        "reason": rejection.reason.value,
        "message": rejection.message,
        "payload": rejection.payload.decode(errors="replace"),
    }


def _gzip(lines: Iterable[dict[str, Any]]) -> bytes:
    body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    return gzip.compress(body, compresslevel=6, mtime=0)
