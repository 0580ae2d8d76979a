"""The archive's layout and file format, shared by every archive and quarantine adapter.

Objects are gzip-compressed JSON lines under Hive-style partitions of the batch's arrival hour::

    raw/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz        one line per raw record
    rejected/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz   one line per rejected payload

The name comes from the batch id, which comes from the source (shard and sequence numbers,
message id), so a retried batch overwrites its own object. Raw lines keep the payload exactly
as delivered (``data``, or ``data_b64`` for bytes that are not UTF-8), with the record id and
arrival time, so a replay sees the very records the stream delivered.

On GCP the archive also holds **stream files**, written by a Pub/Sub Cloud Storage
subscription (not by this code), in its text format: each message's data followed by a
newline, so a file is JSON lines, one ingest message (a device's readings, one JSON array)
per line, uncompressed::

    stream/2025-08-31/10_00_00Z_<uuid>.jsonl

The name is ``<STREAM_FILENAME_PREFIX><time in STREAM_FILENAME_DATETIME_FORMAT>_<uuid>
<STREAM_FILENAME_SUFFIX>`` (Pub/Sub's documented file name layout); the Terraform sets the
subscription from these three constants, and :data:`STREAM_FILE_NAME` parses a name back.
The time in the name (when the subscription opened the file, UTC) is the file's partition
hour and the arrival time of each of its records, on the live path and in a replay alike.
A file is processed in chunks (:func:`decode_stream_file`): its lines grouped by device, at
most :data:`STREAM_CHUNK_DEVICES` devices and :data:`STREAM_CHUNK_BYTES` bytes each. The
record id of a line is ``<file name>#<line number>``, so a redelivered or replayed file
repeats its own ids, and its chunks are the same on every delivery.
"""

from __future__ import annotations

import base64
import gzip
import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson

from iotpipe.application.payloads import unpacked_head
from iotpipe.domain import Reason
from iotpipe.domain.time import MS_PER_HOUR, format_instant, from_ms, hour_start, parse_instant
from iotpipe.ports import RawBatch, RawRecord, Rejection

RAW = "raw"
REJECTED = "rejected"
SUFFIX = ".jsonl.gz"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


#: The Cloud Storage subscription's ``filename_prefix``: stream files live under it.
STREAM_FILENAME_PREFIX = "stream/"
#: Its ``filename_datetime_format`` (Pub/Sub's tokens; the documented example format): the
#: day is a "directory" of its own and the hour starts the file's base name, so an hour lists
#: as ``stream/YYYY-MM-DD/hh_``.
STREAM_FILENAME_DATETIME_FORMAT = "YYYY-MM-DD/hh_mm_ssZ"
#: Its ``filename_suffix``.
STREAM_FILENAME_SUFFIX = ".jsonl"
#: A stream file's whole name, as Pub/Sub makes it from the three settings above plus ``_`` and
#: a unique id; the groups are the file's UTC date and time. The ``_`` is optional here: the
#: unique part is not ours to parse, and a name this refuses is never processed.
STREAM_FILE_NAME = re.compile(
    re.escape(STREAM_FILENAME_PREFIX)
    + r"(?P<date>\d{4}-\d{2}-\d{2})/(?P<hour>\d{2})_(?P<minute>\d{2})_(?P<second>\d{2})Z_?"
    + r"(?P<unique>[^/]+)"
    + re.escape(STREAM_FILENAME_SUFFIX)
)
#: Devices per processing chunk: one store round trip each. 400 is the Firestore adapter's
#: windows per batched write, so a chunk is one commit (two across an hour's edge), with one
#: fleet lane write per hour it touches, however many lines each device has in the file.
STREAM_CHUNK_DEVICES = 400
#: Bytes of lines per processing chunk, at most (but always one line): bounds what a chunk
#: holds decoded in memory when devices send many lines per file (400 devices' minutes of
#: readings are ~3.6 MB of JSON).
STREAM_CHUNK_BYTES = 4 * 2**20
#: Where a line names its device: the first ``"device_id"`` member (ingest publishes one
#: device's readings per message), in the first bytes of a packed line. Only for grouping lines
#: into chunks; the process use case reads every line whole, so a line this misreads is still
#: counted right.
_LINE_DEVICE = re.compile(rb'"device_id"\s*:\s*"([^"\\]{1,256})"')


def stream_file_time(name: str) -> int | None:
    """The UTC time in a stream file's name (epoch ms), or ``None`` if ``name`` is not one."""
    found = STREAM_FILE_NAME.fullmatch(name)
    if found is None:
        return None
    text = f"{found['date']}T{found['hour']}:{found['minute']}:{found['second']}Z"
    try:
        return parse_instant(text)
    except ValueError:  # 2025-02-30, hour 25: the shape of a name, not a time
        return None


def stream_hour_prefix(hour_ms: int) -> str:
    """The name prefix every stream file opened in the hour containing ``hour_ms`` has."""
    start = from_ms(hour_start(hour_ms))
    return f"{STREAM_FILENAME_PREFIX}{start:%Y-%m-%d}/{start:%H}_"


def decode_stream_file(
    name: str,
    body: bytes,
    max_devices: int = STREAM_CHUNK_DEVICES,
    max_bytes: int = STREAM_CHUNK_BYTES,
) -> list[RawBatch]:
    """A stream file as batches, one record per non-blank line, grouped by device.

    Each line is kept as delivered, whatever it holds (the process use case quarantines what
    is not readings), with the id ``<name>#<line number>`` and the time in the file's name as
    its arrival. The lines are ordered by the device they name (in file order for one device;
    lines that name none last, each as a device of its own) and cut into batches of at most
    ``max_devices`` devices and ``max_bytes`` bytes of lines, so that a device with many lines
    in the file is one window write per chunk, not one per line. The batch ids are
    ``<name>#c<chunk number>``: the same file always gives the same batches. A blank line (the
    file's final newline) is no record. Raises ``ValueError`` for a name that is not a stream
    file's.
    """
    records = stream_file_records(name, body)
    keyed = sorted(
        ((_line_device(record.data), number) for number, record in enumerate(records)),
        key=lambda pair: (pair[0] is None, pair[0] or b"", pair[1]),
    )
    batches: list[list[RawRecord]] = []
    devices: set[bytes | int] = set()
    size = 0
    for device, number in keyed:
        record, key = records[number], number if device is None else device
        full = key not in devices and len(devices) >= max_devices
        if not batches or full or (size + len(record.data) > max_bytes and size):
            batches.append([])
            devices, size = set(), 0
        batches[-1].append(record)
        devices.add(key)
        size += len(record.data)
    return [RawBatch(f"{name}#c{n}", tuple(batch)) for n, batch in enumerate(batches)]


def stream_file_records(name: str, body: bytes) -> list[RawRecord]:
    """A stream file's records in file order, one per non-blank line (see
    :func:`decode_stream_file`). Raises ``ValueError`` for a name that is not a stream file's."""
    arrived = stream_file_time(name)
    if arrived is None:
        raise ValueError(f"{name} is not a stream file name")
    return [
        RawRecord(f"{name}#{number}", line, arrived)
        for number, line in enumerate(body.split(b"\n"), start=1)
        if line.strip()
    ]


def _line_device(line: bytes) -> bytes | None:
    # A packed line (GCP ingest compresses messages over 1 KB) is looked into at its start.
    found = _LINE_DEVICE.search(unpacked_head(line) if line[:1] == b"e" else line)
    return None if found is None else found[1]


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


class Salvaged(NamedTuple):
    """What :func:`salvage_batch` could read of a damaged object, and what it could not."""

    batch: RawBatch
    """Every record read, in order."""
    unread: int
    """Lines that are not archive records."""
    first_error: str
    """The first of them: ``line N: Error: message`` (``""``: none)."""
    broken: str
    """Why the gzip stream stops early: ``""`` (it does not), :data:`NOT_GZIP`,
    :data:`CORRUPT` or :data:`TRUNCATED`; the records after that point are lost."""
    detail: str
    """The decompressor's error, if any."""


NOT_GZIP = "not gzip"
CORRUPT = "corrupt"
TRUNCATED = "truncated"


def salvage_batch(batch_id: str, body: bytes) -> Salvaged:
    """Every record that can be read of an object :func:`decode_batch` refuses.

    The body is decompressed as far as it goes, up to the byte at which it fails (however far
    into the object that is), then read line by line: a line that is not a record is counted
    and skipped, and the last line is dropped when the stream breaks off inside it. The one
    definition both replays read damaged objects by, so they store the same.
    """
    text, broken, detail = _inflate(body)
    lines = text.split(b"\n")
    if broken:
        lines.pop()  # cut short (or empty): lost with the rest
    records: list[RawRecord] = []
    unread, first_error = 0, ""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(decode_record(line))
        except Exception as exc:  # one bad line, whatever is wrong with it: count it, read on
            unread += 1
            first_error = first_error or f"line {number}: {type(exc).__name__}: {exc}"
    return Salvaged(RawBatch(batch_id, tuple(records)), unread, first_error, broken, detail)


def _inflate(body: bytes) -> tuple[bytes, str, str]:
    """As much of a gzip body as decompresses, why the rest does not, and the error."""
    inflater = zlib.decompressobj(wbits=31)  # gzip framing
    pieces: list[bytes] = []
    for start in range(0, len(body), _CHUNK):
        chunk = body[start : start + _CHUNK]
        before = inflater.copy()
        try:
            pieces.append(inflater.decompress(chunk))
        except zlib.error as exc:
            # zlib gives nothing of a call that fails: the failing chunk again, byte by byte.
            pieces.append(_up_to_fault(before, chunk))
            broken = CORRUPT if body.startswith(_GZIP_MAGIC) else NOT_GZIP
            return b"".join(pieces), broken, str(exc)
    return b"".join(pieces), "" if inflater.eof else TRUNCATED, ""


def _up_to_fault(inflater: Any, chunk: bytes) -> bytes:
    """What ``chunk`` decompresses to before the byte at which decompression fails."""
    out: list[bytes] = []
    for i in range(len(chunk)):
        try:
            out.append(inflater.decompress(chunk[i : i + 1]))
        except zlib.error:
            break
    return b"".join(out)


_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"


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
