"""The raw archive and the quarantine over any object store: the logic every bucket shares.

Each backend (memory, S3, Cloud Storage) supplies only a :class:`~iotpipe.ports.Bucket` (put,
get and list names under a prefix, its own errors translated to
:class:`~iotpipe.domain.ArchiveUnavailable`); layout and format come from
:mod:`iotpipe.application.codecs.archive`, so every archive holds the same objects and a
retried batch overwrites its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from iotpipe.application.codecs import archive as fmt
from iotpipe.ports import Bucket, RawBatch, Rejection

# Bucket (now in iotpipe.ports) stays importable from here, its former home.
__all__ = ["Bucket", "BucketArchive", "BucketQuarantine"]


class BucketArchive:
    """A :class:`~iotpipe.ports.RawArchive` in a bucket (gzip JSON lines per batch); with
    ``streams``, it also reads the stream files a Pub/Sub Cloud Storage subscription writes
    beside them (only GCP has them: elsewhere, listing their prefixes would be wasted calls)."""

    def __init__(self, bucket: Bucket, streams: bool = False) -> None:
        self._bucket = bucket
        self._streams = streams

    def write(self, batch: RawBatch, partition_ms: int) -> None:
        """Archive the batch; the same batch id overwrites its own object."""
        name = fmt.object_name(fmt.RAW, partition_ms, batch.batch_id)
        self._bucket.put(name, fmt.encode_batch(batch))

    def read(self, start_ms: int, end_ms: int) -> Iterator[RawBatch]:
        """Archived batches of the hours in ``[start_ms, end_ms)`` in name order (the order
        the Beam replay ranks copies by): the ``raw/`` objects hour by hour (one batch each),
        then, with ``streams``, the stream files hour by hour (in chunks)."""
        hours = fmt.partition_hours(start_ms, end_ms)
        for hour in hours:
            for name in self._bucket.names(fmt.partition_prefix(fmt.RAW, hour)):
                if name.endswith(fmt.SUFFIX):
                    yield fmt.decode_batch(fmt.batch_id_of(name), self._bucket.get(name))
        for hour in hours if self._streams else ():
            for name in self._bucket.names(fmt.stream_hour_prefix(hour)):
                if fmt.stream_file_time(name) is not None:
                    yield from fmt.decode_stream_file(name, self._bucket.get(name))

    def read_file(self, name: str, generation: int | None = None) -> bytes | None:
        """The file ``name`` whole, or ``None`` if there is none (any version: a bucket of
        this kind keeps one)."""
        if name not in self._bucket.names(name):
            return None
        return self._bucket.get(name)


class BucketQuarantine:
    """A :class:`~iotpipe.ports.Quarantine` in a bucket, under ``rejected/``."""

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket

    def put(self, batch_id: str, partition_ms: int, rejections: Sequence[Rejection]) -> None:
        """Keep the batch's rejections; the same batch id overwrites."""
        name = fmt.object_name(fmt.REJECTED, partition_ms, batch_id)
        self._bucket.put(name, fmt.encode_rejections(rejections))

    def rejections(self) -> list[Rejection]:
        """Every rejection held, in object-name order (for inspection and redrive)."""
        names = [n for n in self._bucket.names(fmt.REJECTED + "/") if n.endswith(fmt.SUFFIX)]
        return [r for name in names for r in fmt.decode_rejections(self._bucket.get(name))]
