"""The raw archive and the quarantine: where raw data and rejected payloads are kept, and the
object bucket that every archive backend provides."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from iotpipe.ports.records import RawBatch, Rejection


class RawArchive(Protocol):
    """Raw batches kept as delivered, under Hive-style UTC ``dt=``/``hour=`` partitions.

    Writing the same ``batch_id`` again overwrites it, so a retried batch is archived once.
    """

    def write(self, batch: RawBatch, partition_ms: int) -> None:
        """Archive a batch in the partition of the hour containing ``partition_ms``."""
        ...

    def read(self, start_ms: int, end_ms: int) -> Iterator[RawBatch]:
        """Every archived batch whose partition hour lies in ``[start_ms, end_ms)``."""
        ...


@dataclass(frozen=True, slots=True)
class UnreadableObject:
    """An archived object that could not be read whole: its name, why, and how many of its
    records were lost (``None``: unknown, e.g. the rest of a truncated file)."""

    name: str
    reason: str
    records_lost: int | None


@runtime_checkable
class CheckedArchive(RawArchive, Protocol):
    """An archive that reports damaged objects instead of failing on the first one."""

    def scan(self, start_ms: int, end_ms: int) -> Iterator[RawBatch | UnreadableObject]:
        """As :meth:`read`, and, for each object that cannot be read whole, what could be
        read of it (a batch) followed by an :class:`UnreadableObject`."""
        ...


class ArchiveFiles(Protocol):
    """Whole files of the archive, read by name (the stream files a Cloud Storage
    subscription writes, announced one by one by the bucket's notifications)."""

    def read_file(self, name: str, generation: int | None = None) -> bytes | None:
        """The file's bytes (``generation``: that version of it), or ``None`` if it no longer
        exists; raises :class:`~iotpipe.domain.ArchiveUnavailable` if it cannot be read now."""
        ...


class Quarantine(Protocol):
    """Rejected payloads with their reasons, for inspection and redrive."""

    def put(self, batch_id: str, partition_ms: int, rejections: Sequence[Rejection]) -> None:
        """Keep a batch's rejections (idempotent per ``batch_id``)."""
        ...


class Bucket(Protocol):
    """The three object operations an archive needs (memory, S3, Cloud Storage provide them;
    :mod:`iotpipe.adapters.buckets` builds the archive and quarantine over any of them)."""

    def put(self, name: str, body: bytes) -> None:
        """Store ``body`` under ``name``, replacing any object of that name."""
        ...

    def get(self, name: str) -> bytes:
        """The body of the object ``name``."""
        ...

    def names(self, under: str) -> Iterable[str]:
        """Names of the objects whose names start with ``under``, in name order."""
        ...
