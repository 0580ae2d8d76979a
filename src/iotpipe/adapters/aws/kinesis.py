"""The reading stream on Amazon Kinesis Data Streams (``PutRecords``).

Messages are sent in calls within the service limits: at most 500 records and 5 MiB per call,
1 MiB per record (data plus partition key). The partition key is the message key (the device
id), so one device's messages land on one shard. ``PutRecords`` is not atomic: each record
succeeds or fails on its own (throttling, an internal failure), so the records it reports as
failed are sent again, with exponential backoff and full jitter, a bounded number of times.
Throttling, 5xx and network errors of a whole call are retried the same way. Whatever still
fails, or can never succeed (a record over 1 MiB, a missing stream, access denied), is reported
in :attr:`PublishResult.failed` by its index in the input, with the last error: never dropped.
``publish`` does not raise :class:`~iotpipe.domain.StreamUnavailable` for these: earlier calls
of the same publish may have been accepted, and only a per-message report tells the caller
exactly what to resend.

Each record's data is compressed (:func:`~iotpipe.application.payloads.pack`, zlib) when that
lowers its bill: Kinesis on demand bills each record rounded up to 1 KB (data and partition
key: the size the 1 MiB limit counts), so a record that already fits one unit is sent as it is,
and a device-minute of ~9.1 KB of JSON bills 1 KB instead of 10. The limits above apply to the
bytes sent. The process use case unpacks what it reads
(:func:`~iotpipe.application.payloads.unpack_batch`), and passes plain records as they are.

Retried records may arrive after later ones of the same device. Order does not matter to the
aggregates (they are independent of delivery), and a record that did arrive although its call
failed (a timeout after the service accepted it) is a duplicate the windows absorb once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from iotpipe.adapters.aws.errors import AWS_ERRORS, describe, is_transient
from iotpipe.application.payloads import pack
from iotpipe.ports import PublishResult, RetryPolicy, StreamMessage

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1024 * 1024
#: Kinesis on demand bills each record's size rounded up to this (the pricing page's "1 KB").
BILLING_UNIT = 1024

#: Publishing sits on the request path of ingest: a few retries, a couple of seconds at most.
DEFAULT_RETRY = RetryPolicy(attempts=5, base_delay_s=0.05, max_delay_s=1.0)


class KinesisStream:
    """A :class:`~iotpipe.ports.ReadingStream` over one Kinesis data stream.

    ``client`` is a boto3 Kinesis client (typed ``Any``: the adapters do not depend on
    boto3's type stubs). ``retry`` bounds the attempts per record; ``sleep`` is injectable so
    tests need not wait. ``compress=False`` sends every record's data as it is (for a process
    function that cannot unpack yet: see docs/deployment.md on upgrading).
    """

    def __init__(
        self,
        stream_name: str,
        client: Any,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        compress: bool = True,
    ) -> None:
        self.stream_name = stream_name
        self._client = client
        self._retry = retry
        self._sleep = sleep
        self._compress = compress

    def publish(self, messages: Sequence[StreamMessage]) -> PublishResult:
        """Put every message; report the indexes that still failed after the retries."""
        wire = [StreamMessage(m.key, self._wire(m)) for m in messages]
        return self._publish(wire)

    def _wire(self, message: StreamMessage) -> bytes:
        """The bytes sent for a message: packed when that saves billed kilobytes."""
        data = message.data
        if not self._compress or len(data) + len(message.key.encode()) <= BILLING_UNIT:
            return data
        packed = pack(data)
        return packed if len(packed) < len(data) else data

    def _publish(self, messages: Sequence[StreamMessage]) -> PublishResult:
        sizes = [len(m.data) + len(m.key.encode()) for m in messages]
        given_up = [i for i, size in enumerate(sizes) if size > MAX_BYTES_PER_RECORD]
        pending = [i for i, size in enumerate(sizes) if size <= MAX_BYTES_PER_RECORD]
        errors = [f"{len(given_up)} message(s) over the 1 MiB record limit"] if given_up else []
        last_error = None  # of the records still pending: only the last attempt's matters
        for attempt in range(1, self._retry.attempts + 1):
            if not pending:
                break
            if attempt > 1:
                self._sleep(self._retry.delay(attempt - 1))
            retry: list[int] = []
            for chunk in _chunks(pending, sizes):
                again, failed, error = self._put(chunk, messages)
                retry += again
                given_up += failed
                if failed and error:
                    errors.append(error)
                last_error = error if again else last_error
            pending = retry
        if pending and last_error:
            errors.append(last_error)
        failed = sorted(given_up + pending)
        return PublishResult(tuple(failed), "; ".join(dict.fromkeys(errors)) if failed else None)

    def _put(
        self, chunk: list[int], messages: Sequence[StreamMessage]
    ) -> tuple[list[int], list[int], str | None]:
        """One ``PutRecords`` call: ``(to retry, given up, last error)``."""
        records = [{"Data": messages[i].data, "PartitionKey": messages[i].key} for i in chunk]
        try:
            response = self._client.put_records(StreamName=self.stream_name, Records=records)
        except AWS_ERRORS as exc:
            if is_transient(exc):
                return chunk, [], describe(exc)
            return [], chunk, describe(exc)  # retrying cannot help: report at once
        results = response.get("Records", [])
        retry: list[int] = []
        error = None
        for position, index in enumerate(chunk):
            result = results[position] if position < len(results) else {"ErrorCode": "NoResult"}
            # A record fails alone: throttled on its shard or an internal failure, both transient.
            if "ErrorCode" in result:
                retry.append(index)
                error = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}".rstrip(": ")
        return retry, [], error


def _chunks(indexes: list[int], sizes: list[int]) -> Iterator[list[int]]:
    """Consecutive runs of ``indexes`` within the per-call record and byte limits."""
    chunk: list[int] = []
    total = 0
    for index in indexes:
        if chunk and (
            len(chunk) == MAX_RECORDS_PER_CALL or total + sizes[index] > MAX_BYTES_PER_CALL
        ):
            yield chunk
            chunk, total = [], 0
        chunk.append(index)
        total += sizes[index]
    if chunk:
        yield chunk
