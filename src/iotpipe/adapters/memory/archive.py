"""Raw archive and quarantine held in memory, in the same object layout and format as on S3."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from iotpipe.application import archive_format as fmt
from iotpipe.ports import RawBatch, Rejection


class _Objects:
    """A thread-safe name -> bytes map (a bucket)."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, body: bytes) -> None:
        with self._lock:
            self._objects[name] = body

    def get(self, name: str) -> bytes:
        with self._lock:
            return self._objects[name]

    def names(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(n for n in self._objects if n.startswith(prefix))


class MemoryArchive:
    """The raw archive in memory (gzip JSON lines under ``raw/dt=../hour=../``)."""

    def __init__(self) -> None:
        self.objects = _Objects()

    def write(self, batch: RawBatch, partition_ms: int) -> None:
        """Archive the batch; the same batch id overwrites its own object."""
        name = fmt.object_name(fmt.RAW, partition_ms, batch.batch_id)
        self.objects.put(name, fmt.encode_batch(batch))

    def read(self, start_ms: int, end_ms: int) -> Iterator[RawBatch]:
        """Archived batches of the partitions in ``[start_ms, end_ms)``."""
        for hour in fmt.partition_hours(start_ms, end_ms):
            for name in self.objects.names(fmt.partition_prefix(fmt.RAW, hour)):
                yield fmt.decode_batch(fmt.batch_id_of(name), self.objects.get(name))


class MemoryQuarantine:
    """Rejected payloads in memory (gzip JSON lines under ``rejected/dt=../hour=../``)."""

    def __init__(self) -> None:
        self.objects = _Objects()

    def put(self, batch_id: str, partition_ms: int, rejections: Sequence[Rejection]) -> None:
        """Keep the batch's rejections; the same batch id overwrites."""
        name = fmt.object_name(fmt.REJECTED, partition_ms, batch_id)
        self.objects.put(name, fmt.encode_rejections(rejections))

    def rejections(self) -> list[Rejection]:
        """Every rejection held, in object-name order."""
        names = self.objects.names(fmt.REJECTED + "/")
        return [r for name in names for r in fmt.decode_rejections(self.objects.get(name))]
