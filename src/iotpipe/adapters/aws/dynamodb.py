"""The aggregate store on Amazon DynamoDB: one table, window heads by hour, on-demand capacity.

Single-table design, format 2 (:data:`TABLE_DEFINITION`, created by :func:`create_table`)::

    item              PK                      SK                  other attributes
    window head       W#<hour_ms>#<shard>     <device_id>         D, H, v, w, ttl (optional)
    identity segment  S#<hour_ms>#<device_id> <base version:010d> i, ttl
    fleet lane        F#<hour_ms>             <stream shard id>   t, q, ttl
    registry entry    DEVICES#<shard>         <device_id>         (none)
    format 1 window   DEV#<device_id>         H#<hour_ms:015d>    (read only: converted on use)

    index "device"    D = <device_id>, sort key H (window heads only: a sparse, keys-only index)

- A **head** (``w``, bytes of :func:`~iotpipe.application.codecs.heads.encode_head`) holds the
  window's exact statistics, its latest reading, the identities counted since the last seal
  (the tail), the horizon and the seal count; ``v`` is its version (1 on creation, +1 per
  write). Its tail is sealed into a **segment** before the item would pass 1 KB
  (:data:`~iotpipe.adapters.aws.dynamodb_items.HEAD_BUDGET`), so a window write costs one
  write unit whatever the window holds (format 1 rewrote the whole identity set: ~9 units a
  write at one reading a second). Segments are written once; they are read only for windows
  offered a reading at or below the horizon (late, out of order, resent).
- Heads are keyed by **hour and fleet shard** (``shard = crc32(device_id) mod fleet_shards``):
  a fleet page is a merge of ``fleet_shards`` sorted ``Query`` results that reads the windows
  themselves (format 1 read an index entry and then the item: two reads per window). A
  device's windows are found through the keys-only ``device`` index, written once per window
  (keys never change, so updates do not touch it). ``fleet_shards`` is part of the table's
  layout: every store on a table must use the same.
- **Fleet lanes** hold each hour's fleet total, folded from the table's stream
  (``NEW_AND_OLD_IMAGES``) by :class:`~iotpipe.adapters.aws.dynamodb_fleet.FleetFold`: one lane
  per hour and stream shard, holding the last sequence number it folded, so redelivered and
  bisected stream batches fold nothing twice. The process function's write stays a single
  1-unit ``PutItem`` (a transaction would bill it twice); :meth:`DynamoStore.fleet_total`
  merges the hour's few lanes with one ``Query``. The lanes lag the windows by the stream's
  delay (seconds).

Operations:

- ``_load``: ``BatchGetItem`` of the heads (100 keys per call), eventually consistent (half the
  read units: a stale head only costs a conflict, since every write is conditional) except in
  a round that retries conflicted windows; ``UnprocessedKeys`` and throttling are retried with
  full-jitter backoff, a bounded number of times, and never once the deadline of the ``apply``
  in progress has passed. Keys without a head are looked up in the format 1 layout (once per
  new window): a window the previous release wrote is converted by its next write.
- ``_complete``: one ``Query`` of the window's segments.
- ``_save``: the sealed segment (if any, unconditional: any writer sealing from a version writes
  the same bytes), then ``PutItem`` of the head conditional on ``attribute_not_exists(PK)`` (a
  new window) or ``v = :expected``; a failed condition is a
  :class:`~iotpipe.domain.WindowConflict` (the shared ``apply`` re-reads and retries).
- ``_register``: ``GetItem`` on the registry (cached per store), then ``PutItem`` with
  ``attribute_not_exists`` only for a device never seen: a write once per device, ever.
- Queries page with ``Query`` (the device index then ``BatchGetItem`` for hourly and latest, the
  shards' head partitions merged for the fleet, the lanes for the fleet total), following
  ``LastEvaluatedKey`` past DynamoDB's 1 MB page limit.

Errors: a failed condition is a conflict; throttling, 5xx and network errors raise
:class:`~iotpipe.domain.StoreUnavailable` (``from`` the botocore error; the batch is retried).
Other errors (a missing table, access denied, a malformed request) are bugs or misconfiguration
that retrying cannot fix: they propagate unchanged.

Capacity: :meth:`DynamoStore.ops` counts items read and written (``reads``/``writes``, as the
store port defines them) and, in ``extra``, the capacity units the service bills, computed from
item sizes by DynamoDB's rules (:mod:`iotpipe.adapters.aws.dynamodb_items`): a write is
``ceil(max(size before, size after) / 1 KB)`` WCU, plus ``ceil(index entry / 1 KB)`` for the
device index when the window is new; a failed conditional write still costs its WCU;
``BatchGetItem`` costs ``ceil(size / 4 KB)`` RCU per item (1 for a missing one); a ``Query``
costs ``ceil(sum of sizes / 4 KB)`` per page (at least 1); eventually consistent reads cost
half. They are computed, not taken from ``ReturnConsumedCapacity``: moto's figures ignore item
sizes (1.0 for a 3 KB put, nothing for a failed condition), so tests could not check them.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from iotpipe.adapters.aws import dynamodb_items as items
from iotpipe.adapters.aws.dynamodb_schema import DynamoSchemaRecords
from iotpipe.adapters.aws.errors import ClientError, call_table, describe, error_code
from iotpipe.adapters.window_store import Meter, Save, Stored, WindowStoreBase, check_limit
from iotpipe.application.codecs import heads
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    FleetTotal,
    HourlyWindow,
    IdentitySet,
    Reading,
    StoreUnavailable,
    TelemetrySchema,
    WindowConflict,
)
from iotpipe.ports import (
    DeviceSummary,
    Page,
    RetryPolicy,
    StoreOps,
    Version,
    WindowKey,
)

DEVICE_INDEX = "device"
#: The fleet index of format 1 (the release before): no longer part of the table.
FLEET_INDEX = "fleet"
TTL_ATTRIBUTE = "ttl"
DEFAULT_FLEET_SHARDS = 8
KEYS_PER_BATCH_GET = 100

#: The table, in the exact shape ``CreateTable`` takes (without ``TableName``). The one source
#: of the table's definition: :func:`create_table` and the tests use it, Terraform mirrors it.
TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
        {"AttributeName": "D", "AttributeType": "S"},
        {"AttributeName": "H", "AttributeType": "N"},
    ],
    "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": DEVICE_INDEX,
            "KeySchema": [
                {"AttributeName": "D", "KeyType": "HASH"},
                {"AttributeName": "H", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
}

#: Time to live, set after creation (``UpdateTimeToLive``); items without ``ttl`` never expire.
TIME_TO_LIVE: dict[str, Any] = {"Enabled": True, "AttributeName": TTL_ATTRIBUTE}


def create_table(client: Any, name: str) -> None:
    """Create the store's table (:data:`TABLE_DEFINITION`), wait until active, enable TTL."""
    client.create_table(TableName=name, **TABLE_DEFINITION)
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
    )
    client.update_time_to_live(TableName=name, TimeToLiveSpecification=TIME_TO_LIVE)


class _Read(NamedTuple):
    """What a store keeps of a head it read: the decoded head and the item's billed size."""

    head: heads.Head | None
    size: int
    legacy: IdentitySet | None = None  # a format 1 window's identities, converted on write


class DynamoStore(WindowStoreBase):
    """Hourly windows, fleet lanes and the device registry in one DynamoDB table (see the
    module docstring).

    ``client`` is a low-level boto3 DynamoDB client (typed ``Any``: the adapters do not depend
    on boto3's type stubs), shared safely between threads. ``ttl_days`` lets DynamoDB expire a
    window that many days after its hour ended; keep it well beyond the lateness horizon (7
    days by default), or a late reading would start an expired window afresh. ``stream`` (a
    ``dynamodbstreams`` client) makes :meth:`fleet_total` fold the table's stream itself
    before answering, for a table no fold function serves (moto, DynamoDB Local, tests).
    Windows and fleet totals are encoded and decoded by ``schema``, the telemetry schema (the
    default payload's unless one is given).
    """

    def __init__(
        self,
        table_name: str,
        client: Any,
        *,
        fleet_shards: int = DEFAULT_FLEET_SHARDS,
        ttl_days: int | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stream: Any = None,
        legacy_reads: bool = True,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        if fleet_shards < 1:
            raise ValueError("fleet_shards must be at least 1")
        if ttl_days is not None and ttl_days < 1:
            raise ValueError("ttl_days must be at least 1 (or None: keep windows forever)")
        super().__init__(retry, sleep)
        self.table_name = table_name
        self.fleet_shards = fleet_shards
        self.ttl_days = ttl_days
        self.legacy_reads = legacy_reads
        self._client = client
        self._meter = Meter()
        self._registered: set[str] = set()
        self._stream = stream
        self._folder: Any = None
        self.schema = schema

    def schema_records(self) -> DynamoSchemaRecords:
        """Where this store keeps its schema record (:func:`~iotpipe.application.settle_schema`)."""
        return DynamoSchemaRecords(self.table_name, self._client)

    # --- hooks -----------------------------------------------------------------------------

    def _load(self, keys: Sequence[WindowKey], *, strong: bool = False) -> dict[WindowKey, Stored]:
        unique = list(dict.fromkeys(keys))  # BatchGetItem refuses duplicate keys
        found: dict[WindowKey, Stored] = {}
        heads_ = [items.head_key(d, h, self.fleet_shards) for d, h in unique]
        for item in self._batch_get_all(heads_, consistent=strong):
            stored = _stored(item, self.schema)
            found[stored.window.key] = stored
        missing = [key for key in unique if key not in found]
        if missing and self.legacy_reads:
            legacy = [items.window_key(d, h) for d, h in missing]
            for item in self._batch_get_all(legacy, consistent=True):
                window = items.window_from_item(item, self.schema)
                found[window.key] = Stored(window, None, None, _Read(None, 0, window.seen))
        return found

    def _complete(self, windows: dict[WindowKey, Stored]) -> dict[WindowKey, Stored]:
        """The windows with their sealed identities read back (one ``Query`` each)."""
        completed: dict[WindowKey, Stored] = {}
        for (device, hour), stored in windows.items():
            pk = items.segment_pk(device, hour)
            found = self._query(
                {
                    "KeyConditionExpression": "PK = :pk",
                    "ExpressionAttributeValues": {":pk": {"S": pk}},
                    "ConsistentRead": True,
                },
                want=1_000_000,
            )
            parts = [
                stored.window.seen,
                *(heads.unpack_identities(items.binary(i["i"])) for i in found),
            ]
            window = stored.window._replace(seen=heads.merged_identities(parts))
            completed[(device, hour)] = stored._replace(window=window, horizon=None)
        return completed

    def _batch_get_all(self, keys: Sequence[items.Item], consistent: bool) -> list[dict[str, Any]]:
        """The stored items among ``keys`` (in no particular order)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), KEYS_PER_BATCH_GET):
            found += self._batch_get(keys[start : start + KEYS_PER_BATCH_GET], consistent)
        return found

    def _batch_get(self, keys: Sequence[items.Item], consistent: bool) -> Iterator[dict[str, Any]]:
        """Every stored item among ``keys``, retrying unprocessed keys and throttling."""
        request: dict[str, Any] = {
            self.table_name: {"Keys": list(keys), "ConsistentRead": consistent}
        }
        failure: BaseException | None = None
        attempts = 0
        for attempt in range(1, self._retry.attempts + 1):
            if attempt > 1:
                if self._out_of_time():  # the caller's deadline: no retry may start now
                    break
                self._sleep(self._retry.delay(attempt - 1))
            attempts = attempt
            asked = len(request[self.table_name]["Keys"])
            try:
                response = self._call("batch_get_item", RequestItems=request)
            except StoreUnavailable as exc:
                failure = exc.__cause__ or exc  # the botocore error, for the chain below
                continue
            got = response.get("Responses", {}).get(self.table_name, [])
            left = response.get("UnprocessedKeys") or {}
            done = asked - len(left.get(self.table_name, {}).get("Keys", []))
            self._meter_batch_read(got, done, consistent)
            yield from got
            if not left:
                return
            request, failure = left, None
        detail = describe(failure) if failure else "keys left unprocessed"
        raise StoreUnavailable(
            f"dynamodb {self.table_name}: reading windows failed after "
            f"{attempts} attempts ({detail})"
        ) from failure

    def _meter_batch_read(
        self, got: list[dict[str, Any]], processed: int, consistent: bool
    ) -> None:
        missing = max(0, processed - len(got))  # a key not found still costs the minimum
        units = sum(-(-items.item_size(i) // 4096) for i in got) + missing
        half_units = 2 * units if consistent else units
        self._meter.add(items_read=processed, read_half_units=half_units, batch_gets=1)

    def _save(self, window: HourlyWindow, expected: Version) -> None:
        before = None if expected is None else self._load([window.key], strong=True).get(window.key)
        self._write(Save(window, expected, before))

    def _save_all(self, windows: Sequence[Save]) -> list[Any]:
        outcomes: list[Any] = []
        for save in windows:
            try:
                if save.expected is None:  # a new window: make sure its device is listed
                    self._register(save.window.device_id)
                self._write(save)
            except (StoreUnavailable, WindowConflict) as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    def _write(self, save: Save) -> None:
        """The window's sealed segment (if any), then its head, conditional on its version."""
        window, expected, before = save
        read = None if before is None else before.head
        encoded = self._encode(save)
        for base, identities in encoded.segments:
            segment = items.segment_item(*window.key, base, identities, self.ttl_days)
            self._call("put_item", TableName=self.table_name, Item=segment)
            self._meter.add(items_written=1, write_units=_units(segment), segment_puts=1, puts=1)
        version = 1 if expected is None else int(expected) + 1
        item = items.head_item(*window.key, encoded.head, version, self.fleet_shards, self.ttl_days)
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if expected is None
            else {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "v"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
            }
        )
        # Billed on the larger of the item before and after the write.
        size = max(items.item_size(item), 0 if read is None else read.size)
        table_units = -(-size // 1024)
        try:
            self._call("put_item", TableName=self.table_name, Item=item, **condition)
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
            self._meter.add(write_units=table_units, conflicts=1, puts=1)
            raise WindowConflict(f"window {window.key} changed since it was read") from exc
        # The device index entry (keys only) is written when the head is created, never updated.
        index_units = -(-_index_entry_size(item) // 1024) if expected is None else 0
        self._meter.add(
            items_written=1,
            write_units=table_units + index_units,
            index_write_units=index_units,
            puts=1,
        )

    def _encode(self, save: Save) -> heads.Written:
        """What to write for one window: its head kept within :data:`items.HEAD_BUDGET`."""
        window, expected, before = save
        device, hour = window.key
        version = 0 if expected is None else int(expected)

        def fits(head: bytes) -> bool:
            item = items.head_item(
                device, hour, head, version + 1, self.fleet_shards, self.ttl_days
            )
            return items.item_size(item) <= items.HEAD_BUDGET

        read = None if before is None else before.head
        if read is not None and read.legacy is not None:
            return heads.written(None, 0, window, fits, legacy=read.legacy, schema=self.schema)
        head = None if read is None else read.head
        loaded = None if before is None else before.window.seen
        return heads.written(head, version, window, fits, loaded=loaded, schema=self.schema)

    def _register(self, device_id: str) -> None:
        if device_id in self._registered:
            return
        key = items.registry_key(device_id, self.fleet_shards)
        # Reading first costs 0.5 RCU where a conditional put would cost 1 WCU (5x the price).
        found = self._call("get_item", TableName=self.table_name, Key=key)
        self._meter.add(items_read=1, read_half_units=1, gets=1)
        if "Item" not in found:
            try:
                self._call(
                    "put_item",
                    TableName=self.table_name,
                    Item=key,
                    ConditionExpression="attribute_not_exists(PK)",
                )
                self._meter.add(items_written=1, write_units=1, puts=1)
            except ClientError as exc:
                if not _failed_condition(exc):
                    raise
                self._meter.add(write_units=1, puts=1)  # another writer was first: just as good
        self._registered.add(device_id)

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One client call; transient failures become :class:`StoreUnavailable`, the rest
        (a failed condition included) propagate as they are (see the module docstring)."""
        return call_table(self._client, self.table_name, operation, **params)

    # --- queries -----------------------------------------------------------------------------

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's windows in ``[start_ms, end_ms)``; the cursor is the last hour returned.

        The device index lists the hours, then one ``BatchGetItem`` reads their heads."""
        check_limit(limit)
        low = max(start_ms, 0) if cursor is None else max(start_ms, int(cursor) + 1)
        high = min(end_ms - 1, items.MAX_HOUR_MS)
        if low > high:
            return Page([])
        entries = self._query(
            {
                "IndexName": DEVICE_INDEX,
                "KeyConditionExpression": "D = :d AND H BETWEEN :low AND :high",
                "ExpressionAttributeValues": {
                    ":d": {"S": device_id},
                    ":low": {"N": str(low)},
                    ":high": {"N": str(high)},
                },
            },
            want=limit + 1,  # one more than a page: tells whether another page exists
        )
        keys = [(device_id, int(e["H"]["N"])) for e in entries[:limit]]
        found = self._windows(keys)
        windows = [found[key] for key in keys if key in found]
        more = len(entries) > limit
        return Page(windows, str(keys[-1][1]) if more and keys else None)

    def _windows(self, keys: Sequence[WindowKey]) -> dict[WindowKey, HourlyWindow]:
        """The heads of these windows, as queries return them (eventually consistent, like the
        index that listed them)."""
        wanted = [items.head_key(d, h, self.fleet_shards) for d, h in keys]
        found = self._batch_get_all(wanted, consistent=False)
        return {w.key: w for w in (_query_window(item, self.schema) for item in found)}

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """Every device's window for the hour, merged from the shards' head partitions in
        device order (each window read once, by the ``Query`` of its shard)."""
        check_limit(limit)

        def shard_query(shard: int) -> dict[str, Any]:
            return {
                "KeyConditionExpression": "PK = :pk",
                "ExpressionAttributeValues": {":pk": {"S": items.head_pk(hour_ms, shard)}},
            }

        found, next_cursor = self._merged(shard_query, "SK", limit, cursor)
        return Page([_query_window(item, self.schema) for item in found], next_cursor)

    def fleet_total(self, hour_ms: int) -> FleetTotal:
        """The hour's fleet total: its lanes merged (one ``Query``; see the module docstring).

        With ``stream`` (see the class), the table's stream is folded first."""
        if self._stream is not None:
            self.fold_stream()
        lanes = self._query(
            {
                "KeyConditionExpression": "PK = :pk",
                "ExpressionAttributeValues": {":pk": {"S": items.lane_pk(hour_ms)}},
            },
            want=1_000_000,
        )
        total = FleetTotal()
        for lane in lanes:
            total = total.merge(heads.decode_total(items.binary(lane["t"]), self.schema))
        return total

    def migrate_format1(self, delete: bool = False) -> int:
        """Convert every window the previous release wrote (format 1) that has no head yet;
        the number converted. Safe to run while processing goes on: a window converted (or
        created) meanwhile by a write is skipped, and the conversion is an ordinary head
        creation, so the fold adds the window to its hour's lanes exactly once. ``delete``
        removes each old item once it is converted or found converted."""
        converted = 0
        for item in self._scan_format1():
            window = items.window_from_item(item, self.schema)
            legacy = Stored(window, None, None, _Read(None, 0, window.seen))
            try:
                self._register(window.device_id)
                self._write(Save(window, None, legacy))
                converted += 1
            except WindowConflict:
                pass  # its head exists already: converted by a write, or by an earlier run
            if delete:
                key = {"PK": item["PK"], "SK": item["SK"]}
                self._call("delete_item", TableName=self.table_name, Key=key)
        return converted

    def _scan_format1(self) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "begins_with(PK, :dev) AND begins_with(SK, :hour)",
            "ExpressionAttributeValues": {
                ":dev": {"S": "DEV#"},
                ":hour": {"S": items.WINDOW_PREFIX},
            },
        }
        while True:
            response = self._call("scan", **params)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def fold_stream(self) -> None:
        """Fold what the table's stream holds that the lanes do not (needs ``stream``)."""
        from iotpipe.adapters.aws.dynamodb_fleet import FleetFold, StreamReader

        if self._folder is None:
            fold = FleetFold(
                self.table_name, self._client, ttl_days=self.ttl_days, schema=self.schema
            )
            self._folder = StreamReader(self._stream, self._client, self.table_name, fold)
        self._folder.fold.schema = self.schema  # the schema settled last (use_schema sets it)
        self._folder.catch_up()

    def latest(self, device_id: str) -> Reading | None:
        """The device's latest reading: the newest reading of its newest window."""
        newest = self._newest(device_id)
        return None if newest is None else newest.latest

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """Devices in id order, merged from the registry shards, with their last event time.

        The last event time comes from each device's newest window (the device index, then
        its head): the registry does not keep it, so that a new reading costs no extra write.
        """
        check_limit(limit)

        def shard_query(shard: int) -> dict[str, Any]:
            return {
                "KeyConditionExpression": "PK = :pk",
                "ExpressionAttributeValues": {":pk": {"S": items.registry_pk(shard)}},
                "ConsistentRead": True,
            }

        found, next_cursor = self._merged(shard_query, "SK", limit, cursor)
        summaries = []
        for entry in found:
            device_id = entry["SK"]["S"]
            newest = self._newest(device_id)
            latest = None if newest is None else newest.latest
            summaries.append(
                DeviceSummary(device_id, None if latest is None else latest.timestamp_ms)
            )
        return Page(summaries, next_cursor)

    def ops(self) -> StoreOps:
        """Items read and written, and in ``extra``: requests (``batch_gets``, ``puts``,
        ``gets``, ``queries``; ``segment_puts`` of the puts), ``conflicts`` (failed conditional
        writes), and the capacity billed (``write_units``, of which ``index_write_units``;
        ``read_units`` rounded up, and exactly as ``read_half_units``). See the module
        docstring for how they are counted."""
        ops = self._meter.ops(reads="items_read", writes="items_written")
        ops.extra["read_units"] = -(-ops.extra.get("read_half_units", 0) // 2)  # rounded up
        ops.extra.setdefault("write_units", 0)
        if self._folder is not None:  # the lanes this store folded itself
            folded = self._folder.fold.ops()
            for name in ("write_units", "read_half_units", "lane_puts", "conflicts"):
                ops.extra[f"fold_{name}"] = folded.extra.get(name, 0)
        return ops

    def _newest(self, device_id: str) -> HourlyWindow | None:
        entries = self._query(
            {
                "IndexName": DEVICE_INDEX,
                "KeyConditionExpression": "D = :d",
                "ExpressionAttributeValues": {":d": {"S": device_id}},
                "ScanIndexForward": False,
            },
            want=1,
        )
        if not entries:
            return None
        key = (device_id, int(entries[0]["H"]["N"]))
        return self._windows([key]).get(key)

    def _query(self, params: dict[str, Any], want: int) -> list[dict[str, Any]]:
        """Up to ``want`` items of a query, following ``LastEvaluatedKey`` (1 MB pages)."""
        found, _ = self._query_page(params, want, start=None)
        return found

    def _query_page(
        self, params: dict[str, Any], want: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Up to ``want`` items from ``start``, and where the query would go on (``None``: done)."""
        found: list[dict[str, Any]] = []
        while True:
            request = {**params, "TableName": self.table_name, "Limit": want - len(found)}
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = self._call("query", **request)
            page = response.get("Items", [])
            self._meter_query(page, consistent=bool(params.get("ConsistentRead")))
            found += page
            start = response.get("LastEvaluatedKey")
            if start is None or len(found) >= want:
                return found, start

    def _meter_query(self, page: list[dict[str, Any]], consistent: bool) -> None:
        units = max(1, -(-sum(items.item_size(i) for i in page) // 4096))
        half_units = 2 * units if consistent else units
        self._meter.add(items_read=len(page), read_half_units=half_units, queries=1)

    def _merged(
        self,
        shard_query: Callable[[int], dict[str, Any]],
        sort_attr: str,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page merged from every shard's partition in ``sort_attr`` order, and its cursor.

        Each shard is asked for its expected share of the page at first, then for small
        refills as the merge drains it, so a page reads little more than it returns."""
        after, done = _decode_merge_cursor(cursor, self.fleet_shards)
        active = [s for s in range(self.fleet_shards) if s not in done]
        share = -(-limit // max(1, len(active)))
        readers = {
            s: _ShardReader(self, shard_query(s), sort_attr, after, share, max(2, share // 3))
            for s in active
        }
        heap: list[tuple[str, int]] = []
        for shard, reader in readers.items():
            self._push(heap, shard, reader, done)
        out: list[dict[str, Any]] = []
        while heap:
            _, shard = heapq.heappop(heap)
            out.append(readers[shard].pop())
            if len(out) == limit:
                # Another page exists if any shard has a head left; else look one item ahead.
                if not heap:
                    self._push(heap, shard, readers[shard], done, lookahead=True)
                break
            self._push(heap, shard, readers[shard], done)
        last = out[-1][sort_attr]["S"] if out else None
        return out, _encode_merge_cursor(last, done) if heap and last is not None else None

    @staticmethod
    def _push(
        heap: list[tuple[str, int]],
        shard: int,
        reader: _ShardReader,
        done: set[int],
        lookahead: bool = False,
    ) -> None:
        head = reader.peek(1 if lookahead else None)
        if head is None:
            done.add(shard)  # the next page need not query this shard again
        else:
            heapq.heappush(heap, (head, shard))


class _ShardReader:
    """Items of one shard's partition after the cursor, fetched a page at a time as needed:
    ``first`` items at first, ``refill`` at a time after that."""

    def __init__(
        self,
        store: DynamoStore,
        params: dict[str, Any],
        sort_attr: str,
        after: str | None,
        first: int,
        refill: int,
    ) -> None:
        self._store = store
        self._sort_attr = sort_attr
        self._page_size = first
        self._refill = refill
        self._buffer: deque[dict[str, Any]] = deque()
        self._start: dict[str, Any] | None = None
        self._exhausted = False
        self._params = params
        if after is not None:  # resume strictly after the last item of the previous page
            self._params = {
                **params,
                "KeyConditionExpression": f"{params['KeyConditionExpression']} AND #s > :after",
                "ExpressionAttributeNames": {"#s": sort_attr},
                "ExpressionAttributeValues": {
                    **params["ExpressionAttributeValues"],
                    ":after": {"S": after},
                },
            }

    def peek(self, page_size: int | None = None) -> str | None:
        """The sort key of the next item (fetching a page if needed), ``None`` when exhausted."""
        while not self._buffer and not self._exhausted:
            page, self._start = self._store._query_page(
                self._params, page_size or self._page_size, self._start
            )
            self._page_size = self._refill
            self._buffer.extend(page)
            self._exhausted = self._start is None
        return str(self._buffer[0][self._sort_attr]["S"]) if self._buffer else None

    def pop(self) -> dict[str, Any]:
        """Take the next item (after :meth:`peek` found one)."""
        return self._buffer.popleft()


def _stored(item: dict[str, Any], schema: TelemetrySchema) -> Stored:
    """A head item as the store base reads it."""
    device, hour = item["SK"]["S"], int(item["H"]["N"])
    head = heads.decode_head(device, hour, items.binary(item["w"]), schema)
    horizon = None if head.horizon == heads.NO_HORIZON else head.horizon
    return Stored(head.window, int(item["v"]["N"]), horizon, _Read(head, items.item_size(item)))


def _query_window(item: dict[str, Any], schema: TelemetrySchema) -> HourlyWindow:
    """A head item as queries return it: statistics and latest reading, no identities."""
    device, hour = item["SK"]["S"], int(item["H"]["N"])
    window = heads.decode_head(device, hour, items.binary(item["w"]), schema).window
    return window._replace(seen=IdentitySet())


def _units(item: items.Item) -> int:
    return -(-items.item_size(item) // 1024)


def _index_entry_size(item: items.Item) -> int:
    """The size of a head's entry in the device index (keys only: its own and the table's)."""
    return items.item_size({k: v for k, v in item.items() if k in {"PK", "SK", "D", "H"}})


def _encode_merge_cursor(after: str, done: set[int]) -> str:
    """``<hex bitmask of exhausted shards>|<last sort key returned>`` (ids never hold ``|``)."""
    mask = sum(1 << shard for shard in done)
    return f"{mask:x}|{after}"


def _decode_merge_cursor(cursor: str | None, shards: int) -> tuple[str | None, set[int]]:
    if cursor is None:
        return None, set()
    mask, bar, after = cursor.partition("|")
    if not bar or not after:
        raise ValueError(f"not a cursor of this store: {cursor!r}")
    bits = int(mask, 16)
    return after, {s for s in range(shards) if bits >> s & 1}


def _failed_condition(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"
