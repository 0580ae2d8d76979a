"""Lambda handler: a Kinesis batch -> the process use case -> DynamoDB, S3 archive and quarantine.

The response names the records to retry (``batchItemFailures``, with the event source mapping's
``ReportBatchItemFailures``): only those a transient failure left unapplied. Bad data is
quarantined and reported as success, so a poison record can never block its shard. Lambda
retries from the lowest sequence number named; records after it that were applied already are
absorbed again as duplicates, which changes nothing.

The use case gets a deadline from the invocation's time left
(``context.get_remaining_time_in_millis()``) less :data:`RESERVE_S`: once it passes, no
DynamoDB read or write starts, and the records of the windows not written are reported in
``batchItemFailures`` like any transient failure. So under throttling the function answers in
time with exactly what it did not apply, instead of timing out (Lambda would then retry, and
bisect, the whole batch, and after ``max_retry_attempts`` send it to the failure destination).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from iotpipe.adapters.aws.events import batch_from_kinesis_event
from iotpipe.entrypoints.aws import bootstrap
from iotpipe.entrypoints.aws import observability as obs
from iotpipe.entrypoints.aws.clients import CLIENTS
from iotpipe.ports import Deadline

if TYPE_CHECKING:  # the use case's module loads with the composition root, on the first batch
    from iotpipe.application import ProcessReport

_FUNCTION = "process"

#: Seconds of the invocation kept back from the use case's deadline: the last DynamoDB call
#: started before it may take a throttled call's worst case, the quarantine put after it
#: another (S3's), then the response and the log lines (~8 s with :data:`CLIENTS`).
RESERVE_S = CLIENTS["dynamodb"].throttled_bound_s() + CLIENTS["s3"].throttled_bound_s() + 0.5


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process one Kinesis batch; answer with the sequence numbers to retry."""
    started = time.perf_counter()
    deadline = _deadline(context)
    batch = batch_from_kinesis_event(event)
    report = bootstrap.process_service().process(batch, deadline)
    _observe(report, time.perf_counter() - started, getattr(context, "aws_request_id", None))
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in report.failed_records]}


def _deadline(context: Any) -> Deadline | None:
    """When the use case must stop starting store calls (``None``: no Lambda context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return Deadline.after(remaining() / 1000 - RESERVE_S)


def _observe(report: ProcessReport, seconds: float, request_id: str | None) -> None:
    lag_ms = None if report.newest_ms is None else time.time_ns() // 1_000_000 - report.newest_ms
    obs.log(
        "WARNING" if report.failed_records else "INFO",
        "batch processed",
        request_id=request_id,
        **report.counts(),
        duration_ms=round(seconds * 1000, 1),
        lag_ms=lag_ms,
    )
    values: dict[str, float] = {
        "Received": report.received,
        "Accepted": report.accepted,
        "Duplicates": report.duplicates,
        "Rejected": sum(report.rejected.values()),
        "WindowsUpdated": report.windows_updated,
        "Unapplied": report.unapplied,
        "StoreRetries": report.store_retries,
        "BatchDuration": seconds * 1000,
    }
    if lag_ms is not None:
        values["ProcessingLag"] = lag_ms
    obs.metrics(
        _FUNCTION, values, {"BatchDuration": "Milliseconds", "ProcessingLag": "Milliseconds"}
    )
    for reason, count in report.rejected.items():
        obs.metrics(_FUNCTION, {"RejectedByReason": count}, {}, Reason=reason)
