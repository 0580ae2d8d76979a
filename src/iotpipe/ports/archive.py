"""The raw archive and the quarantine: where raw data and rejected payloads are kept, and the
object bucket that every archive backend provides."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

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
