"""The raw archive and the quarantine on Amazon S3.

Objects follow :mod:`iotpipe.application.codecs.archive` (the layout every archive shares),
under an optional key prefix::

    <prefix>raw/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz
    <prefix>rejected/dt=2025-08-31/hour=10/<batch-id>.jsonl.gz

The object name comes from the batch id, so a batch delivered again whole overwrites its own
object (S3 replaces an object whole, and the body is byte-identical for the same batch); a
partial retry or a bisected half is another batch, with another id and object (see
:mod:`iotpipe.adapters.aws.events`: replay counts its readings once all the same). Objects are
stored as ``application/gzip`` without ``Content-Encoding``, so no HTTP client unpacks them on
the way and the bytes read back are the bytes written. Every botocore error (throttling, a
missing bucket, access denied, the network) raises :class:`~iotpipe.domain.ArchiveUnavailable`:
the processing use case then leaves the batch unapplied and it is delivered again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from iotpipe.adapters.aws.errors import AWS_ERRORS, describe
from iotpipe.adapters.buckets import BucketArchive, BucketQuarantine
from iotpipe.domain import ArchiveUnavailable

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


class S3Archive(BucketArchive):
    """A :class:`~iotpipe.ports.RawArchive` in an S3 bucket (gzip JSON lines per batch).

    ``client`` is a boto3 S3 client (typed ``Any``: the adapters do not depend on boto3's
    type stubs). ``page_size`` is the listing page size (S3 returns at most 1,000 keys a page).
    """

    def __init__(self, bucket: str, client: Any, prefix: str = "", page_size: int = 1000) -> None:
        super().__init__(_Bucket(bucket, client, prefix, page_size))


class S3Quarantine(BucketQuarantine):
    """A :class:`~iotpipe.ports.Quarantine` in an S3 bucket, under ``rejected/``."""

    def __init__(self, bucket: str, client: Any, prefix: str = "", page_size: int = 1000) -> None:
        super().__init__(_Bucket(bucket, client, prefix, page_size))
