"""The Kinesis event source mapping's S3 on-failure destination, read back as raw batches.

When Lambda gives up on a batch (``maximum_retry_attempts`` or ``maximum_record_age_in_seconds``
reached), an S3 destination receives one JSON object per batch, under
``aws/lambda/<mapping id>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>``: the invocation
record's metadata (``requestContext``, ``responseContext``, ``KinesisBatchInfo``, ``version``,
``timestamp``) and, unlike an SQS or SNS destination, the invocation's own event in
``payload`` (the ``{"Records": [...]}`` the function was given; read whether it arrives as an
object or as JSON text). :class:`S3FailureDestination` lists those objects and turns each into
the :class:`~iotpipe.ports.RawBatch` the function failed on, with the records' own sequence
numbers and arrival times, so processing it again judges lateness exactly as the first time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from iotpipe.adapters.aws.errors import AWS_ERRORS, describe
from iotpipe.adapters.aws.events import NotAKinesisEvent, batch_from_kinesis_event
from iotpipe.domain import ArchiveUnavailable
from iotpipe.ports import RawBatch

#: Where Lambda writes the invocation records in the destination bucket.
DEFAULT_PREFIX = "aws/lambda/"


class NotAFailureRecord(ValueError):
    """An object that is not a Kinesis invocation record with its payload."""


@dataclass(frozen=True, slots=True)
class FailedBatch:
    """One batch the event source mapping gave up on: where it is, why, and its records."""

    key: str
    condition: str
    batch: RawBatch


def batch_from_failure_record(record: Mapping[str, Any]) -> tuple[str, RawBatch]:
    """``(condition, batch)`` of an S3 destination's invocation record."""
    if "KinesisBatchInfo" not in record:
        raise NotAFailureRecord("not a Kinesis invocation record: no KinesisBatchInfo")
    payload = record.get("payload")
    if payload is None:
        raise NotAFailureRecord(
            "the invocation record holds no payload (only an S3 destination keeps the records; "
            "read the range in KinesisBatchInfo back from the stream instead)"
        )
    try:
        event = orjson.loads(payload) if isinstance(payload, str | bytes) else payload
        batch = batch_from_kinesis_event(event)
    except (orjson.JSONDecodeError, NotAKinesisEvent) as exc:
        raise NotAFailureRecord(f"the payload is not a Kinesis event: {exc}") from exc
    condition = str((record.get("requestContext") or {}).get("condition", "unknown"))
    return condition, batch


class S3FailureDestination:
    """The invocation records in one bucket under ``prefix`` (boto3 S3 client injected)."""

    def __init__(self, bucket: str, client: Any, prefix: str = DEFAULT_PREFIX) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    def object_keys(self) -> Iterator[str]:
        """Every object key under the prefix, in key order (so by mapping, shard and time)."""
        params = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            try:
                page = self._client.list_objects_v2(**params)
            except AWS_ERRORS as exc:
                where = f"s3://{self.bucket}/{self.prefix}"
                raise ArchiveUnavailable(f"listing {where}: {describe(exc)}") from exc
            yield from (entry["Key"] for entry in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def read(self, key: str) -> FailedBatch:
        """The failed batch an object holds (:class:`NotAFailureRecord` if it holds none)."""
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except AWS_ERRORS as exc:
            raise ArchiveUnavailable(f"s3://{self.bucket}/{key}: {describe(exc)}") from exc
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise NotAFailureRecord(f"not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise NotAFailureRecord("not a JSON object")
        condition, batch = batch_from_failure_record(record)
        return FailedBatch(key, condition, batch)

    def remove(self, key: str) -> None:
        """Delete one object (once its batch is applied)."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except AWS_ERRORS as exc:
            raise ArchiveUnavailable(f"s3://{self.bucket}/{key}: {describe(exc)}") from exc
