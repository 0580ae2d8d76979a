"""Raw archive and quarantine on the local filesystem, in the layout and format of the cloud.

Files are named exactly like the objects of :mod:`iotpipe.application.codecs.archive` under a
root directory (``<root>/raw/dt=2025-08-31/hour=10/<batch>.jsonl.gz``), so an archive directory
can be synced to or from a bucket as it is. Every file is written to a temporary file in its
own directory, flushed to disk and renamed over its final name. A retried batch therefore
replaces its file in one step, and a crash leaves either the old file or the new one, never a
torn one. Temporary names start with a dot and are never listed.
"""

from __future__ import annotations

import os
import secrets
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from iotpipe.application.codecs import archive as fmt
from iotpipe.domain import ArchiveUnavailable
from iotpipe.domain.time import hour_start, to_ms
from iotpipe.ports import RawBatch, Rejection, UnreadableObject

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


class _Directory:
    """Objects as files under a root: a bucket on the local filesystem.

    ``OSError`` becomes :class:`ArchiveUnavailable`; a file that cannot be decoded is not an
    outage and is left to the caller's decoder to report.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def put(self, name: str, body: bytes) -> None:
        """Write the object atomically (see the module docstring)."""
        path = self.root / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _replace_atomically(path, body)
        except OSError as exc:
            raise ArchiveUnavailable(f"cannot write {path}: {exc}") from exc

    def get(self, name: str) -> bytes:
        """The object's bytes."""
        path = self.root / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ArchiveUnavailable(f"cannot read {path}: {exc}") from exc

    def subdirs(self, prefix: str, depth: int) -> list[str]:
        """Names of the directories ``depth`` levels below ``prefix`` (none if it is absent)."""
        found = [prefix.rstrip("/")]
        try:
            for _ in range(depth):
                found = [
                    f"{parent}/{child.name}"
                    for parent in found
                    if (self.root / parent).is_dir()
                    for child in (self.root / parent).iterdir()
                    if child.is_dir()
                ]
        except OSError as exc:
            raise ArchiveUnavailable(f"cannot list {self.root / prefix}: {exc}") from exc
        return found

    def names(self, prefix: str, suffix: str = fmt.SUFFIX) -> list[str]:
        """Names of the objects under the ``prefix/`` directory, sorted (none if it is absent)."""
        top = self.root / prefix
        try:
            if not top.is_dir():
                return []
            found = [
                path.relative_to(self.root).as_posix()
                for path in top.rglob("*" + suffix)
                if not path.name.startswith(".") and path.is_file()
            ]
        except OSError as exc:
            raise ArchiveUnavailable(f"cannot list {top}: {exc}") from exc
        return sorted(found)


def _partition_hour(path: str) -> int | None:
    """The hour of a partition directory (``raw/dt=2025-08-31/hour=10``), ``None`` if the
    name is not one the archive format makes."""
    kind, _, partition = path.partition("/")
    try:
        start = datetime.strptime(partition, "dt=%Y-%m-%d/hour=%H").replace(tzinfo=UTC)
    except ValueError:
        return None
    hour = to_ms(start)
    # strptime is lenient ("hour=7"): only the exact name the format makes counts.
    return hour if fmt.partition_prefix(kind, hour) == path + "/" else None


def _replace_atomically(path: Path, body: bytes) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Not mkstemp: its files are private (0600); archive files get the usual umask.
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
            out.flush()
            # On disk before the rename: otherwise a power cut could leave an empty file
            # under the final name.
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class FileArchive:
    """The raw archive in a directory (gzip JSON lines under ``raw/dt=../hour=../``); it also
    reads the ``stream/`` files of a GCP archive bucket synced into it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._files = _Directory(root)

    @property
    def root(self) -> Path:
        """The archive's root directory."""
        return self._files.root

    def write(self, batch: RawBatch, partition_ms: int) -> None:
        """Archive the batch; the same batch id replaces its own file."""
        name = fmt.object_name(fmt.RAW, partition_ms, batch.batch_id)
        self._files.put(name, fmt.encode_batch(batch))

    def read(self, start_ms: int, end_ms: int) -> Iterator[RawBatch]:
        """Archived batches of the partitions in ``[start_ms, end_ms)``, hour by hour, each
        hour in name order."""
        for hour in self._partitions(start_ms, end_ms):
            for name in self._files.names(fmt.partition_prefix(fmt.RAW, hour)):
                yield fmt.decode_batch(fmt.batch_id_of(name), self._files.get(name))
        yield from self._stream_batches(start_ms, end_ms)

    def scan(self, start_ms: int, end_ms: int) -> Iterator[RawBatch | UnreadableObject]:
        """As :meth:`read`, but a damaged file (not gzip, truncated, a line that is not a
        record, empty) does not end the scan: what can be read of it is yielded as a batch,
        then an :class:`UnreadableObject` with its path, the reason and the records lost."""
        for hour in self._partitions(start_ms, end_ms):
            for name in self._files.names(fmt.partition_prefix(fmt.RAW, hour)):
                batch_id = fmt.batch_id_of(name)
                body = self._files.get(name)
                try:
                    if body:  # gzip reads an empty file as empty: it is a damaged one
                        yield fmt.decode_batch(batch_id, body)
                        continue
                except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError):
                    pass  # damaged: recover what can be read, below
                batch, damage = _recover(batch_id, body)
                if batch.records:
                    yield batch
                yield UnreadableObject(str(self.root / name), *damage)
        yield from self._stream_batches(start_ms, end_ms)

    def _stream_batches(self, start_ms: int, end_ms: int) -> Iterator[RawBatch]:
        """The stream files (a Cloud Storage subscription's, synced from a bucket) opened in
        the hours of ``[start_ms, end_ms)``, in name order, in chunks. Their lines are records
        as delivered: a bad line is a record to quarantine, never a damaged file."""
        for name in self._files.names(fmt.STREAM_FILENAME_PREFIX, fmt.STREAM_FILENAME_SUFFIX):
            opened = fmt.stream_file_time(name)
            if opened is not None and start_ms <= hour_start(opened) < end_ms:
                yield from fmt.decode_stream_file(name, self._files.get(name))

    def _partitions(self, start_ms: int, end_ms: int) -> list[int]:
        # The partitions that exist, not every hour of the range: "from 1970 to 9999" costs
        # what the archive holds, not 70 million probes.
        hours = (_partition_hour(path) for path in self._files.subdirs(fmt.RAW, depth=2))
        return sorted(h for h in hours if h is not None and start_ms <= h < end_ms)


def _recover(batch_id: str, body: bytes) -> tuple[RawBatch, tuple[str, int | None]]:
    """The readable records of a damaged file (the archive codec's ``salvage_batch``), and
    (why, how many records were lost)."""
    if not body:
        return RawBatch(batch_id, ()), ("empty file (0 bytes)", None)
    found = fmt.salvage_batch(batch_id, body)
    if found.broken == fmt.NOT_GZIP:
        return found.batch, (f"not a gzip file ({found.detail})", None)
    reasons = [f"{found.unread} line(s) are not archive records"] if found.unread else []
    if found.broken:
        why = "truncated"
        if found.broken == fmt.CORRUPT:
            why = f"corrupt compressed data ({found.detail})"
        read = len(found.batch.records) + found.unread
        reasons.append(f"{why} after {read} line(s); the rest is lost")
    return found.batch, ("; ".join(reasons), None if found.broken else found.unread)


class FileQuarantine:
    """Rejected payloads in a directory (gzip JSON lines under ``rejected/dt=../hour=../``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._files = _Directory(root)

    @property
    def root(self) -> Path:
        """The quarantine's root directory."""
        return self._files.root

    def put(self, batch_id: str, partition_ms: int, rejections: Sequence[Rejection]) -> None:
        """Keep the batch's rejections; the same batch id replaces its own file."""
        name = fmt.object_name(fmt.REJECTED, partition_ms, batch_id)
        self._files.put(name, fmt.encode_rejections(rejections))

    def rejections(self) -> list[Rejection]:
        """Every rejection held, in file-name order."""
        names = self._files.names(fmt.REJECTED + "/")
        return [r for name in names for r in fmt.decode_rejections(self._files.get(name))]
