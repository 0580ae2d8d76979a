"""The raw archive and the quarantine on Cloud Storage, in the same layout as on S3.

Objects follow :mod:`iotpipe.application.codecs.archive` (the layout every archive shares),
under an optional name prefix::

    <prefix>raw/dt=2025-08-31/hour=10/<message-id>.jsonl.gz
    <prefix>rejected/dt=2025-08-31/hour=10/<message-id>.jsonl.gz

On GCP a batch is one Pub/Sub message and its id is the message id (see
:mod:`iotpipe.adapters.gcp.events`), so a redelivered message overwrites its own object (Cloud
Storage replaces an object whole; the body is byte-identical for the same message), and the
partition is the message's publish hour, the same on every delivery.

The stream files a Pub/Sub Cloud Storage subscription writes (``stream/...``, see the codec)
are read by :meth:`GcsArchive.read_file`, pinned to the generation a bucket notification
names, and listed by :meth:`GcsArchive.read` with the ``raw/`` objects of each hour.

Objects are stored as ``application/gzip`` without ``Content-Encoding``, so Cloud Storage never
transcodes them and the bytes read back are the bytes written. Uploads are retried by the
client on transient errors even without a generation precondition (the library's default does
not retry unconditional uploads): writing the same name with the same bytes twice is harmless.
Every failure (the network, a missing bucket, access denied) raises
:class:`~iotpipe.domain.ArchiveUnavailable`: processing then leaves the batch unapplied and the
message is delivered again.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from iotpipe.adapters.buckets import BucketArchive, BucketQuarantine
from iotpipe.adapters.gcp.errors import GOOGLE_ERRORS, describe
from iotpipe.domain import ArchiveUnavailable

CONTENT_TYPE = "application/gzip"


def _storage_errors() -> tuple[type[BaseException], ...]:
    """Google errors plus those of the HTTP stack under the storage client (requests)."""
    import requests

    return (*GOOGLE_ERRORS, requests.RequestException, ConnectionError, TimeoutError)


class _Bucket:
    """Upload, download and paginated listing of one bucket under a name prefix."""

    def __init__(self, bucket: str, client: Any, prefix: str, timeout_s: float) -> None:
        # google-cloud-storage ships no type information: imported by name (Any here).
        default_retry = importlib.import_module("google.cloud.storage.retry").DEFAULT_RETRY
        self.name = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client = client
        self._bucket = client.bucket(bucket)
        self._call = {"retry": default_retry.with_timeout(timeout_s), "timeout": timeout_s}
        self._errors = _storage_errors()
        self._not_found = importlib.import_module("google.api_core.exceptions").NotFound

    def put(self, name: str, body: bytes) -> None:
        blob = self._bucket.blob(self.prefix + name)
        try:
            blob.upload_from_string(body, content_type=CONTENT_TYPE, **self._call)
        except self._errors as exc:
            raise ArchiveUnavailable(f"{self._where(name)}: {describe(exc)}") from exc

    def get(self, name: str) -> bytes:
        blob = self._bucket.blob(self.prefix + name)
        try:
            return bytes(blob.download_as_bytes(**self._call))
        except self._errors as exc:
            raise ArchiveUnavailable(f"{self._where(name)}: {describe(exc)}") from exc

    def get_version(self, name: str, generation: int | None) -> bytes | None:
        """The object's bytes (that generation of it), or ``None`` if it does not exist."""
        blob = self._bucket.blob(self.prefix + name, generation=generation)
        try:
            return bytes(blob.download_as_bytes(**self._call))
        except self._not_found:
            return None
        except self._errors as exc:
            raise ArchiveUnavailable(f"{self._where(name)}: {describe(exc)}") from exc

    def names(self, under: str) -> Iterator[str]:
        """Object names (without the prefix) under ``under``, in name order, page by page."""
        try:
            blobs = self._client.list_blobs(self.name, prefix=self.prefix + under, **self._call)
            for blob in blobs:
                yield str(blob.name)[len(self.prefix) :]
        except self._errors as exc:
            raise ArchiveUnavailable(f"listing {self._where(under)}: {describe(exc)}") from exc

    def _where(self, name: str) -> str:
        return f"gs://{self.name}/{self.prefix}{name}"


class GcsArchive(BucketArchive):
    """A :class:`~iotpipe.ports.RawArchive` in a Cloud Storage bucket (gzip JSON lines).

    ``client`` is a ``google.cloud.storage.Client`` (typed ``Any``); it honours
    ``STORAGE_EMULATOR_HOST``. ``timeout_s`` bounds each call, the client's retries included.
    Object names come from the batch (message) id, so a redelivered message overwrites its own.
    """

    def __init__(self, bucket: str, client: Any, prefix: str = "", timeout_s: float = 30.0):
        self._objects = _Bucket(bucket, client, prefix, timeout_s)
        super().__init__(self._objects, streams=True)

    def read_file(self, name: str, generation: int | None = None) -> bytes | None:
        """The object ``name`` (its ``generation``, as a bucket notification names it), or
        ``None`` once it is deleted (or that generation replaced)."""
        return self._objects.get_version(name, generation)


class GcsQuarantine(BucketQuarantine):
    """A :class:`~iotpipe.ports.Quarantine` in a Cloud Storage bucket, under ``rejected/``."""

    def __init__(self, bucket: str, client: Any, prefix: str = "", timeout_s: float = 30.0):
        super().__init__(_Bucket(bucket, client, prefix, timeout_s))
