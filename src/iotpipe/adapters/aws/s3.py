"""The raw archive and the quarantine on Amazon S3.

Objects follow :mod:`iotpipe.application.archive_format` (the layout every archive shares),
under an optional key prefix::

    <prefix>raw/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz
    <prefix>rejected/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz

The object name comes from the batch id, so a retried batch overwrites its own object (S3
replaces an object whole, and the body is byte-identical for the same batch). Objects are
stored as ``application/gzip`` without ``Content-Encoding``, so no HTTP client unpacks them on
the way and the bytes read back are the bytes written. Every botocore error (throttling, a
missing bucket, access denied, the network) raises :class:`~iotpipe.domain.ArchiveUnavailable`:
the processing use case then leaves the batch unapplied and it is delivered again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from iotpipe.adapters.aws.errors import AWS_ERRORS, describe
from iotpipe.application import archive_format as fmt
from iotpipe.domain import ArchiveUnavailable
from iotpipe.ports import RawBatch, Rejection

CONTENT_TYPE = "application/gzip"


class _Bucket:
    """Put, get and paginated listing of one bucket under a key prefix, errors translated."""

    def __init__(self, bucket: str, client: Any, prefix: str, page_size: int) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client = client
        self._page_size = page_size

    def put(self, name: str, body: bytes) -> None:
        key = self.prefix + name
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=CONTENT_TYPE
            )
        except AWS_ERRORS as exc:
            raise ArchiveUnavailable(f"s3://{self.bucket}/{key}: {describe(exc)}") from exc

    def get(self, name: str) -> bytes:
        key = self.prefix + name
        try:
            body: bytes = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except AWS_ERRORS as exc:
            raise ArchiveUnavailable(f"s3://{self.bucket}/{key}: {describe(exc)}") from exc
        return body

    def names(self, under: str) -> Iterator[str]:
        """Object names (without the prefix) under ``under``, in key order, page by page."""
        params = {"Bucket": self.bucket, "Prefix": self.prefix + under, "MaxKeys": self._page_size}
        while True:
            try:
                page = self._client.list_objects_v2(**params)
            except AWS_ERRORS as exc:
                where = f"s3://{self.bucket}/{self.prefix}{under}"
                raise ArchiveUnavailable(f"listing {where}: {describe(exc)}") from exc
            for entry in page.get("Contents", []):
                yield entry["Key"][len(self.prefix) :]
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]


class S3Archive:
    """A :class:`~iotpipe.ports.RawArchive` in an S3 bucket (gzip JSON lines per batch).

    ``client`` is a boto3 S3 client (typed ``Any``: the adapters do not depend on boto3's
    type stubs). ``page_size`` is the listing page size (S3 returns at most 1,000 keys a page).
    """

    def __init__(self, bucket: str, client: Any, prefix: str = "", page_size: int = 1000) -> None:
        self._bucket = _Bucket(bucket, client, prefix, page_size)

    def write(self, batch: RawBatch, partition_ms: int) -> None:
        """Archive the batch; the same batch id overwrites its own object."""
        name = fmt.object_name(fmt.RAW, partition_ms, batch.batch_id)
        self._bucket.put(name, fmt.encode_batch(batch))

    def read(self, start_ms: int, end_ms: int) -> Iterator[RawBatch]:
        """Archived batches of the partitions in ``[start_ms, end_ms)``, hour by hour."""
        for hour in fmt.partition_hours(start_ms, end_ms):
            for name in self._bucket.names(fmt.partition_prefix(fmt.RAW, hour)):
                if name.endswith(fmt.SUFFIX):
                    yield fmt.decode_batch(fmt.batch_id_of(name), self._bucket.get(name))


class S3Quarantine:
    """A :class:`~iotpipe.ports.Quarantine` in an S3 bucket, under ``rejected/``."""

    def __init__(self, bucket: str, client: Any, prefix: str = "", page_size: int = 1000) -> None:
        self._bucket = _Bucket(bucket, client, prefix, page_size)

    def put(self, batch_id: str, partition_ms: int, rejections: Sequence[Rejection]) -> None:
        """Keep the batch's rejections; the same batch id overwrites."""
        name = fmt.object_name(fmt.REJECTED, partition_ms, batch_id)
        self._bucket.put(name, fmt.encode_rejections(rejections))

    def rejections(self) -> list[Rejection]:
        """Every rejection held, in object-name order (for inspection and redrive)."""
        names = [n for n in self._bucket.names(fmt.REJECTED + "/") if n.endswith(fmt.SUFFIX)]
        return [r for name in names for r in fmt.decode_rejections(self._bucket.get(name))]
