"""Fleet lanes folded from the DynamoDB table's stream: each hour's fleet total, exactly once.

The process function writes a window head with one conditional ``PutItem``; DynamoDB puts
every successful write on the table's stream, exactly once and in order per item, with the
item before and after (``NEW_AND_OLD_IMAGES``). :class:`FleetFold` adds each head write's
growth (:meth:`FleetTotal.grown <iotpipe.domain.FleetTotal.grown>`: the window's sums after
less before, its new extremes) to a **lane** of the window's hour: one lane per hour and
stream shard, ``F#<hour_ms>`` / ``<shard id>``, holding the total and the sequence number of
the last record folded into it (``q``). A shard's records are first delivered in order, so a
lane folds only records past its ``q``: a batch delivered again, bisected or retried after a
crash part-way (some lanes written, others not) folds nothing twice and skips nothing. The lane
write is conditional on the ``q`` it read, so two folders racing on one lane (a retried
invocation, or several :class:`StreamReader` on a test table) cannot both apply a record.

Stream shards are the table's partitions; an hour's heads live under ``fleet_shards`` partition
keys, so an hour has about that many lanes (twice as many across a shard rollover, a few more
for late readings written after the hour, when newer shards carry them).

The Lambda function (:mod:`iotpipe.entrypoints.aws.fleet`) gets the shard id from the event
source mapping's tumbling window properties (``shardId``); :class:`StreamReader` reads a stream
itself (moto, DynamoDB Local, tests) and feeds the same :meth:`FleetFold.fold`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from iotpipe.adapters.aws import dynamodb_items as items
from iotpipe.adapters.aws.errors import ClientError, call_table, error_code
from iotpipe.adapters.window_store import Meter
from iotpipe.application.codecs import heads
from iotpipe.domain import DEFAULT_SCHEMA, FleetTotal, Stats, StoreUnavailable, TelemetrySchema
from iotpipe.ports import RetryPolicy, StoreOps

#: ``(sequence number, stats before or None for a new window, stats after)``.
Change = tuple[int, Stats | None, Stats]


class FleetFold:
    """Folds stream records of window heads into the hour lanes of one table.

    Heads and lanes are decoded and encoded by ``schema``, the telemetry schema the process
    function writes by (the deployment's): metrics are stored by its names.
    """

    def __init__(
        self,
        table_name: str,
        client: Any,
        *,
        ttl_days: int | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        self.table_name = table_name
        self.schema = schema
        self.ttl_days = ttl_days
        self._client = client
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._meter = Meter()

    def fold(self, shard_id: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Fold one shard's records (in stream order, Lambda's event shape); the number of
        head writes folded into lanes now (records folded before are skipped)."""
        by_hour: dict[int, list[Change]] = {}
        for record in records:
            change = head_change(record, self.schema)
            if change is not None:
                hour, folded = change
                by_hour.setdefault(hour, []).append(folded)
        return sum(self._fold_lane(hour, shard_id, changes) for hour, changes in by_hour.items())

    def ops(self) -> StoreOps:
        """Lane reads and writes, and the capacity they cost (as :class:`DynamoStore` counts)."""
        return self._meter.ops(reads="items_read", writes="items_written")

    def _fold_lane(self, hour: int, shard_id: str, changes: Sequence[Change]) -> int:
        key = {"PK": {"S": items.lane_pk(hour)}, "SK": {"S": shard_id}}
        for attempt in range(1, self._retry.attempts + 1):
            found = self._call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True)
            lane = found.get("Item")
            self._meter.add(items_read=1, read_half_units=2 * _read_units(lane), gets=1)
            total, folded = _lane(lane, self.schema)
            fresh = [c for c in changes if c[0] > folded]
            if not fresh:
                return 0
            for _, before, after in fresh:
                total = total.grown(before, after)
            item = items.lane_item(
                hour, shard_id, heads.encode_total(total, self.schema), fresh[-1][0], self.ttl_days
            )
            condition: dict[str, Any] = (
                {"ConditionExpression": "attribute_not_exists(PK)"}
                if lane is None
                else {
                    "ConditionExpression": "q = :q",
                    "ExpressionAttributeValues": {":q": lane["q"]},
                }
            )
            units = -(-max(items.item_size(item), items.item_size(lane or {})) // 1024)
            try:
                self._call("put_item", TableName=self.table_name, Item=item, **condition)
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                self._meter.add(write_units=units, conflicts=1, lane_puts=1)
                self._sleep(self._retry.delay(attempt))
                continue
            self._meter.add(items_written=1, write_units=units, lane_puts=1)
            return len(fresh)
        raise StoreUnavailable(f"dynamodb {self.table_name}: lane {hour}/{shard_id} kept changing")

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return call_table(self._client, self.table_name, operation, **params)


def head_change(
    record: Mapping[str, Any], schema: TelemetrySchema = DEFAULT_SCHEMA
) -> tuple[int, Change] | None:
    """A stream record of a head write as ``(hour, change)``, its heads read by ``schema``;
    ``None`` for anything else (segments, lanes, the registry, format 1 items, deletions by
    TTL)."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    body = record["dynamodb"]
    new = body.get("NewImage") or {}
    if not str(new.get("PK", {}).get("S", "")).startswith(items.HEAD_PREFIX):
        return None
    device, hour = new["SK"]["S"], int(new["H"]["N"])
    after = heads.decode_head(device, hour, items.binary(new["w"]), schema).window.stats
    old = body.get("OldImage")
    before = (
        None
        if not old
        else heads.decode_head(device, hour, items.binary(old["w"]), schema).window.stats
    )
    return hour, (int(body["SequenceNumber"]), before, after)


def _lane(item: Mapping[str, Any] | None, schema: TelemetrySchema) -> tuple[FleetTotal, int]:
    if item is None:
        return FleetTotal(), -1
    return heads.decode_total(items.binary(item["t"]), schema), int(item["q"]["S"])


def _read_units(item: Mapping[str, Any] | None) -> int:
    return 1 if item is None else -(-items.item_size(item) // 4096)


class StreamReader:
    """Reads a table's stream from its beginning and folds what it has not folded yet.

    For tables no fold function serves (moto, DynamoDB Local, tests). Positions are kept per
    shard in this object; another reader starting from the beginning folds nothing twice (the
    lanes remember what they hold).
    """

    def __init__(self, streams: Any, client: Any, table_name: str, fold: FleetFold) -> None:
        self.fold = fold
        self._streams = streams
        self._client = client
        self._table = table_name
        self._iterators: dict[str, str | None] = {}

    def catch_up(self) -> int:
        """Fold every record on the stream so far; the number of head writes folded now."""
        arn = self._client.describe_table(TableName=self._table)["Table"]["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        folded = 0
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = (
                self._iterators.get(shard_id)
                or self._streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while iterator:
                response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                records = response.get("Records", [])
                folded += self.fold.fold(shard_id, records)
                iterator = response.get("NextShardIterator")
                self._iterators[shard_id] = iterator
                if not records:
                    break
        return folded
