"""A hard archive for the replay tests, and its reference: what of it can be read.

:func:`hard_archive` writes, through the real :class:`FileArchive`, a simulated fleet's readings
(with the simulator's resends, disorder, late and malformed readings) in batches, and then what
replays must survive:

- **duplicate objects**: whole batches archived again under other names (same hour, later hour);
- **resends across files**: readings of one batch sent again in a later one;
- **late readings**: batches arriving hours after their readings' time (a later partition);
- **conflicting duplicates across files**: a reading repeated with other values in a batch
  of another partition (which version counts depends on archive order);
- **corrupt files**: one not gzip at all, one cut short after a flush point (so exactly the
  records before it can be read), one with a garbage line among good ones, one empty;
- **stream files** (GCP's Cloud Storage subscription's text files under ``stream/``): one
  resending a batch's readings with a line that is not JSON, one holding readings found
  nowhere else (device ``streamed-1``), one empty, one of compressed messages (base64 zlib
  text, device ``streamed-2``) with a plain line and a corrupt packed one.

The **reference** is a second archive holding, for each corrupt file, exactly the records that
can be read of it (known by construction, not by asking the code under test): a single-process
replay of the reference is what a replay of the hard archive must store.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from iotpipe.adapters.local import FileArchive
from iotpipe.application.codecs import archive as fmt
from iotpipe.application.payloads import pack_text
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.ports import RawBatch, RawRecord
from iotpipe.simulator import Faults, Fleet

START = parse_instant("2025-08-31T00:00:00Z")
HOURS = 6
FROM, TO = "2025-08-30T00:00:00Z", "2025-09-02T00:00:00Z"  # every partition of the archive


@dataclass
class HardArchive:
    """The archive, its reference, and the corrupt objects (name -> why they are bad)."""

    root: Path
    reference: Path
    corrupt: dict[str, str] = field(default_factory=dict)
    batches: list[RawBatch] = field(default_factory=list)


def _records(batch_id: str, lines: list[str], arrived_ms: int) -> RawBatch:
    records = tuple(
        RawRecord(f"{batch_id}-{n}", line.encode(), arrived_ms) for n, line in enumerate(lines)
    )
    return RawBatch(batch_id, records)


def _event_time(line: str) -> int | None:
    try:
        return parse_instant(orjson.loads(line)["timestamp"])
    except Exception:  # a malformed line: no time
        return None


def hard_archive(
    root: Path, *, devices: int = 8, per_batch: int = 40, seed: int = 11
) -> HardArchive:
    """Write the hard archive under ``root / "archive"`` and its reference beside it."""
    made = HardArchive(root / "archive", root / "reference")
    archive, reference = FileArchive(made.root), FileArchive(made.reference)
    faults = Faults(duplicates=0.05, disorder=0.1, malformed=0.02, late=0.03)
    lines = list(Fleet(devices, 60.0, seed).payloads(START, START + HOURS * MS_PER_HOUR, faults))
    for n, start in enumerate(range(0, len(lines), per_batch)):
        chunk = lines[start : start + per_batch]
        times = [t for t in map(_event_time, chunk) if t is not None]
        # Arrival a minute after the chunk's newest reading; every seventh batch is hours late.
        late = 3 * MS_PER_HOUR if n % 7 == 3 else 0
        arrived = (max(times) if times else START) + 60_000 + late
        made.batches.append(_records(f"shard-0_{n:06d}", chunk, arrived))

    def both(batch: RawBatch, partition_ms: int) -> None:
        archive.write(batch, partition_ms)
        reference.write(batch, partition_ms)

    for batch in made.batches:
        both(batch, batch.arrived_ms() or START)
    first, second = made.batches[2], made.batches[5]
    # Duplicate objects: the same batch under two more names, in its hour and two hours later.
    both(RawBatch("copy-a", first.records), first.arrived_ms() or START)
    both(RawBatch("copy-b", first.records), (first.arrived_ms() or START) + 2 * MS_PER_HOUR)
    # Resends across files: half of one batch again in a batch of another hour.
    resent = second.records[: len(second.records) // 2]
    later = START + 5 * MS_PER_HOUR
    both(_records("resend", [r.data.decode() for r in resent], later), later)
    # Conflicting duplicates across files: readings again with other values. In the same hour
    # under a name that sorts first, this version counts and the original is refused; in a
    # later hour, the original counts and this version is refused.
    for name, source, delay in (("a-conflict", 1, 0), ("z-conflict", 4, 2 * MS_PER_HOUR)):
        original = made.batches[source]
        altered = [a for a in (_altered(r.data) for r in original.records[:6]) if a]
        arrived = (original.arrived_ms() or START) + delay
        both(_records(name, altered, arrived), arrived)
    _corrupt(made, archive, reference)
    _stream_files(made)
    return made


def _stream_files(made: HardArchive) -> None:
    """Stream files, in both the archive and the reference (each line is a record as
    delivered, so nothing in them is corrupt: a bad line is quarantined)."""
    resent = [r.data for r in made.batches[-1].records] + [b"not json"]
    streamed = [
        orjson.dumps(
            [{"device_id": "streamed-1", "timestamp": f"2025-08-31T04:{m:02d}:00Z", "humidity": m}]
        )
        for m in range(30)
    ]
    # Compressed messages (GCP ingest's default): packed text lines only a reader that unpacks
    # can count (device streamed-2), a plain one among them, and a corrupt packed line.
    packed = [
        orjson.dumps(
            [
                {
                    "device_id": "streamed-2",
                    "timestamp": f"2025-08-31T05:{m:02d}:{s:02d}Z",
                    "humidity": s,
                }
                for s in range(0, 60, 5)
            ]
        )
        for m in range(10)
    ]
    packed = [pack_text(m) for m in packed[:-1]] + packed[-1:] + [pack_text(packed[0])[:-3]]
    files = {
        "2025-08-31/04_00_10Z_resent": resent,
        "2025-08-31/05_00_00Z_streamed": streamed,
        "2025-08-31/05_01_00Z_empty": [],
        "2025-08-31/05_10_00Z_packed": packed,
    }
    for stem, lines in files.items():
        name = f"{fmt.STREAM_FILENAME_PREFIX}{stem}{fmt.STREAM_FILENAME_SUFFIX}"
        for root in (made.root, made.reference):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(line + b"\n" for line in lines))


def _altered(data: bytes) -> str | None:
    try:
        item = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(item, dict) or not isinstance(item.get("temperature"), int | float):
        return None
    item["temperature"] = round(item["temperature"] + 1.5, 3)
    return orjson.dumps(item).decode()


def _salvageable(i: int) -> str:
    stamp = f"2025-08-31T01:{i:02d}:30Z"
    reading = {"device_id": "salvaged-1", "timestamp": stamp, "humidity": 40 + i}
    return orjson.dumps(reading).decode()


def _corrupt(made: HardArchive, archive: FileArchive, reference: FileArchive) -> None:
    hour = START + MS_PER_HOUR
    # Readings found nowhere else: losing one of them would show in the store.
    donor = _records("donor", [_salvageable(i) for i in range(20)], hour + 60_000)
    keep = len(donor.records) // 2
    lines = [fmt.encode_batch(RawBatch("x", (r,))) for r in donor.records]
    plain = [gzip.decompress(line) for line in lines]

    def put(batch_id: str, body: bytes, why: str) -> None:
        name = fmt.object_name(fmt.RAW, hour, batch_id)
        path = made.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        made.corrupt[name] = why

    put("not-gzip", b"this is not gzip at all\n" * 20, "not a gzip file")
    put("empty", b"", "empty object")
    # Cut short right after a full flush: exactly the first `keep` records can be read.
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    head = deflate.compress(b"".join(plain[:keep])) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(b"".join(plain[keep:])) + deflate.flush()
    put("cut-short", head + tail[: len(tail) // 3], "truncated")
    reference.write(RawBatch("cut-short", donor.records[:keep]), hour)
    # One garbage line among good ones, in a well-formed gzip file.
    garbled = [*plain[:3], b'{"id": "x", "data": \xff\xfe garbage\n', *plain[3:]]
    put("garbled", gzip.compress(b"".join(garbled)), "1 lines are not archive records")
    reference.write(RawBatch("garbled", donor.records), hour)
