"""The archive as the Beam replay sees it: which objects a time range covers, and reading one
object without ever stopping on a bad one.

Names are those of :mod:`iotpipe.application.codecs.archive` relative to the archive's root
(``raw/dt=2025-08-31/hour=10/<batch>.jsonl.gz``, and GCP's stream files
``stream/2025-08-31/10_00_00Z_<uuid>.jsonl``, each read as one batch); they sort the way
``iotpipe replay`` reads (the raw objects by partition hour, then the stream files by the time
they were opened), which is what makes them the order key of the combine. No Beam
here: plain functions over names and bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from iotpipe.application.codecs import archive as fmt
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, from_ms, hour_start, to_ms
from iotpipe.ports import RawBatch

#: Above this many days, the replay lists the whole ``raw/`` tree once instead of day by day.
MAX_DAY_PATTERNS = 400


def patterns(root: str, start_ms: int, end_ms: int) -> list[str]:
    """Glob patterns (under ``root``, ``/``-separated) matching at least every raw object whose
    partition hour lies in ``[start_ms, end_ms)``, and every stream file opened in it: one per
    day and layout, or each whole tree for a long range. :func:`partition_hour` then keeps
    exactly the right ones."""
    base = root.rstrip("/")
    stream = f"{base}/{fmt.STREAM_FILENAME_PREFIX}"
    first = hour_start(start_ms) - hour_start(start_ms) % MS_PER_DAY
    days = range(first, end_ms, MS_PER_DAY)
    if len(days) > MAX_DAY_PATTERNS:
        return [f"{base}/{fmt.RAW}/dt=*/hour=*/*{fmt.SUFFIX}", f"{stream}*/*{_STREAM}"]
    return [
        *(f"{base}/{fmt.RAW}/dt={from_ms(day):%Y-%m-%d}/hour=*/*{fmt.SUFFIX}" for day in days),
        *(f"{stream}{from_ms(day):%Y-%m-%d}/*{_STREAM}" for day in days),
    ]


_STREAM = fmt.STREAM_FILENAME_SUFFIX


def relative(root: str, path: str) -> str:
    """``path`` (as listed) relative to ``root``, ``/``-separated."""
    base = root.rstrip("/") + "/"
    if not path.startswith(base):
        raise ValueError(f"{path} is not under {root}")
    return path[len(base) :].replace("\\", "/")


def partition_hour(name: str) -> int | None:
    """The partition hour of a raw object's name (a stream file's: the hour it was opened in),
    or ``None`` for a name the archive format does not make (a temporary file, another
    directory, another suffix)."""
    opened = fmt.stream_file_time(name)
    if opened is not None:  # a stream file: the hour it was opened in
        return hour_start(opened)
    directory, _, file = name.rpartition("/")
    if file.startswith(".") or not file.endswith(fmt.SUFFIX):
        return None
    kind, _, partition = directory.partition("/")
    if kind != fmt.RAW:
        return None
    try:
        start = datetime.strptime(partition, "dt=%Y-%m-%d/hour=%H").replace(tzinfo=UTC)
    except ValueError:
        return None
    hour = to_ms(start)
    # strptime is lenient ("hour=7"): only the exact name the format makes counts.
    return hour if fmt.partition_prefix(fmt.RAW, hour) == directory + "/" else None


def in_range(name: str, start_ms: int, end_ms: int) -> bool:
    """Whether ``name`` is a raw object of a partition hour in ``[start_ms, end_ms)``."""
    hour = partition_hour(name)
    return hour is not None and start_ms <= hour < end_ms and hour % MS_PER_HOUR == 0


@dataclass(frozen=True, slots=True)
class BadFile:
    """An archive object that could not be read whole, and what was lost.

    ``unread`` counts the records (archive lines, each one stream record of one or more
    readings) seen but not readable; ``rest_lost`` says the object breaks off, so an unknown
    number of records after the last readable one is lost too.
    """

    name: str
    reason: str
    unread: int = 0
    rest_lost: bool = False

    def describe(self) -> str:
        """One line for a person: the path, why, and what was lost."""
        lost = f"{self.unread} unreadable records"
        if self.rest_lost:
            lost += " and an unknown number after them"
        return f"{self.name}: {self.reason} ({lost})"


def read_batch(name: str, body: bytes) -> tuple[RawBatch, BadFile | None]:
    """The batch in an archive object, and what could not be read of it (``None``: nothing).

    A bad object never raises: every record that can be read of it is still returned (by the
    archive codec's ``salvage_batch``, as ``iotpipe replay`` reads it), so no valid reading is
    lost with the bad ones.
    """
    if fmt.stream_file_time(name) is not None:  # lines as delivered: nothing in it is "bad"
        return RawBatch(f"{name}#c0", tuple(fmt.stream_file_records(name, body))), None
    batch_id = fmt.batch_id_of(name)
    if not body:  # gzip reads no bytes as nothing; the archive never writes an empty object
        return RawBatch(batch_id, ()), BadFile(name, "empty object (0 bytes)", 0, True)
    try:
        return fmt.decode_batch(batch_id, body), None
    except Exception:  # any failure of a whole file: salvage it line by line
        found = fmt.salvage_batch(batch_id, body)
    return found.batch, BadFile(name, _reason(found), found.unread, bool(found.broken))


def _reason(found: fmt.Salvaged) -> str:
    if found.broken == fmt.NOT_GZIP:
        return "not a gzip file"
    if found.broken == fmt.CORRUPT:
        return f"corrupt compressed data ({found.detail})"
    if found.broken == fmt.TRUNCATED:
        return "the file breaks off (truncated gzip)"
    return f"{found.unread} lines are not archive records (first: {found.first_error})"
