"""Lambda event parsing: Kinesis event records into the raw records and batches of the ports.

A Lambda Kinesis event looks like this (one shard per invocation)::

    {"Records": [{"eventID": "shardId-000000000000:4959...", "eventSource": "aws:kinesis",
                  "kinesis": {"sequenceNumber": "4959...", "partitionKey": "iot-sensor-001",
                              "data": "<base64>", "approximateArrivalTimestamp": 1756634400.123,
                              "kinesisSchemaVersion": "1.0"}, ...}]}

The data is kept as it came: ingest compresses the records it publishes
(:mod:`iotpipe.adapters.aws.kinesis`), and the process use case unpacks a batch's packed
records before anything else (:func:`~iotpipe.application.payloads.unpack_batch`, the one place
for every edge and replay), keeping a record that does not decompress as it came for the
quarantine (``corrupt_record``): poison never blocks a shard, and the archive and every later
step see the payload ingest accepted.

The record id is the sequence number (what a partial batch failure response names), the
arrival time is Kinesis' own (so lateness is judged alike on every retry), and the batch id
comes from the source: the shard and the first and last sequence numbers of the batch *as
delivered*. It is stable only for a batch delivered again whole (a function error without
bisection), whose archive object is then overwritten with the same bytes. Lambda redelivers
differently shaped batches too: after a partial failure it retries from the first failed record
(a new first sequence number), and ``bisect_batch_on_function_error`` halves a failing batch
(new last or first numbers). Each such batch has a new id, so the archive gets another object
holding records it already has. That is safe: replay absorbs a reading it has counted as a
duplicate (no write). It costs storage and replay time in proportion to the records redelivered
(normally few: only failures cause it), not correctness. docs/troubleshooting.md says how much.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from iotpipe.ports import RawBatch, RawRecord


class NotAKinesisEvent(ValueError):
    """The event (or one of its records) is not shaped like a Lambda Kinesis event."""


def record_from_kinesis(event_record: Mapping[str, Any]) -> RawRecord:
    """The raw record of one Lambda Kinesis event record."""
    try:
        kinesis = event_record["kinesis"]
        sequence = str(kinesis["sequenceNumber"])
        data = base64.b64decode(kinesis["data"], validate=True)
        arrived = kinesis.get("approximateArrivalTimestamp")
    except (KeyError, TypeError, binascii.Error) as exc:
        raise NotAKinesisEvent(f"not a Kinesis event record: {exc!r}") from exc
    return RawRecord(sequence, data, None if arrived is None else _epoch_ms(arrived))


def shard_of(event_record: Mapping[str, Any]) -> str:
    """The shard id of an event record (the part of ``eventID`` before the colon)."""
    try:
        return str(event_record["eventID"]).partition(":")[0]
    except (KeyError, TypeError) as exc:
        raise NotAKinesisEvent(f"event record without an eventID: {exc!r}") from exc


def batch_id(event_records: Sequence[Mapping[str, Any]]) -> str:
    """``<shard id>-<first sequence number>-<last sequence number>`` of a one-shard batch: the
    same for the same records, another for a partial retry or a bisected half (see above)."""
    if not event_records:
        raise NotAKinesisEvent("a Kinesis event has at least one record")
    shards = {shard_of(r) for r in event_records}
    if len(shards) != 1:
        raise NotAKinesisEvent(f"records of several shards in one batch: {sorted(shards)}")
    first, last = (record_from_kinesis(r).record_id for r in (event_records[0], event_records[-1]))
    return f"{shards.pop()}-{first}-{last}"


def batch_from_kinesis_event(event: Mapping[str, Any]) -> RawBatch:
    """The raw batch of a whole Lambda Kinesis event, in delivery order."""
    try:
        records = event["Records"]
    except (KeyError, TypeError) as exc:
        raise NotAKinesisEvent("a Kinesis event has a 'Records' list") from exc
    return RawBatch(batch_id(records), tuple(record_from_kinesis(r) for r in records))


def _epoch_ms(seconds: object) -> int:
    """Epoch seconds (a JSON number, millisecond precision) as integer milliseconds.

    Goes through the number's decimal text, not float arithmetic, so ``1756634400.123``
    becomes exactly ``1756634400123`` (sub-millisecond digits are cut, as everywhere else).
    """
    try:
        value = Decimal(str(seconds)) * 1000
        return int(value.to_integral_value(rounding=ROUND_FLOOR))
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise NotAKinesisEvent(f"not an arrival timestamp: {seconds!r}") from exc
