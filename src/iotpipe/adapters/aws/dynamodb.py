"""The aggregate store on Amazon DynamoDB: one table, one sparse index, on-demand capacity.

Single-table design (:data:`TABLE_DEFINITION`, created by :func:`create_table`)::

    item              PK                 SK                      other attributes
    hourly window     DEV#<device_id>    H#<hour_ms, 15 digits>  FPK, version, the window
                                                                 record, ttl (optional)
    registry entry    DEVICES#<shard>    <device_id>             (none)

    index "fleet"     FPK = FLEET#<hour_ms>#<shard>, sort key device_id
                      (window items only: registry entries have no FPK, so the index is sparse)

- A window item holds the fields of :func:`~iotpipe.application.codecs.window.window_to_record`:
  ``format``, ``device_id``, ``hour_ms``, ``count``, ``first_ms``, ``last_ms`` (``N``),
  ``metrics`` (``M`` of ``L`` of five ``N``: count, total, squares, min, max, all exact
  integers in fixed point), ``located`` (``L``: ts, and lat, lon as exact decimal text, see
  :mod:`~iotpipe.adapters.aws.dynamodb_items`), ``latest`` (the latest reading
  as JSON text), ``seen`` (``B``: the identity set), plus ``version`` (``N``, 1 on creation,
  +1 per write) and, when ``ttl_days`` is set, ``ttl`` (epoch seconds).
- Item size: ``seen`` is most of it, ~4-5 bytes per reading (see
  :class:`~iotpipe.domain.IdentitySet`), and a window holds at most 72,000 readings, so the
  largest window is ~290 KB of identities plus ~1 KB of statistics: under DynamoDB's 400 KB
  item limit even at the supported maximum rate (a test writes such a window).
- ``shard = crc32(device_id) mod fleet_shards``. One busy hour is spread over ``fleet_shards``
  index partitions instead of one hot partition; :meth:`DynamoStore.fleet_hour` queries every
  shard and merges them in device order, and the registry is sharded and merged the same way.
  ``fleet_shards`` is part of the table's layout: every store on a table must use the same.
- The fleet index projects keys only. Its entry of a window is written once, when the window
  is created: the keys never change, and DynamoDB writes an index entry only when an attribute
  it holds changes. Projecting the statistics would add a write (1 WCU) to every window update,
  a third of the write cost of a busy fleet; instead :meth:`DynamoStore.fleet_hour` reads the
  page's windows by key (``BatchGetItem``, eventually consistent like the index itself), a
  cheaper trade: reads cost a fifth of writes, and a fleet query is rarer than a fleet's writes.

Operations:

- ``_load``: ``BatchGetItem`` (strongly consistent, 100 keys per call); ``UnprocessedKeys``
  and throttling are retried with full-jitter backoff, a bounded number of times, and never
  once the deadline of the ``apply`` in progress has passed.
- ``_save``: ``PutItem`` of the whole window, conditional on ``attribute_not_exists(PK)`` (a
  new window) or ``version = :expected``; a failed condition is a
  :class:`~iotpipe.domain.WindowConflict` (the shared ``apply`` re-reads and retries).
- ``_register``: ``GetItem`` on the registry (cached per store), then ``PutItem`` with
  ``attribute_not_exists`` only for a device never seen: a write once per device, ever.
- Queries page with ``Query`` (``BETWEEN`` on the sort key for hourly, newest-first with
  ``Limit 1`` for latest, ``>`` the cursor for the sharded merges), following
  ``LastEvaluatedKey`` past DynamoDB's 1 MB page limit.

Errors: a failed condition is a conflict; throttling, 5xx and network errors raise
:class:`~iotpipe.domain.StoreUnavailable` (``from`` the botocore error; the batch is retried).
Other errors (a missing table, access denied, a malformed request) are bugs or misconfiguration
that retrying cannot fix: they propagate unchanged.

Capacity: :meth:`DynamoStore.ops` counts items read and written (``reads``/``writes``, as the
store port defines them) and, in ``extra``, the capacity units the service bills, computed from
item sizes by DynamoDB's rules (:mod:`iotpipe.adapters.aws.dynamodb_items`): a write is
``ceil(size / 1 KB)`` WCU for the table, plus ``ceil(index entry size / 1 KB)`` for the fleet
index when the window is new; a failed conditional write still costs its WCU; ``BatchGetItem``
costs ``ceil(size / 4 KB)`` RCU per item (1 for a missing one); a ``Query`` costs
``ceil(sum of sizes / 4 KB)`` per page (at least 1); eventually consistent reads cost half.
They are computed, not taken from ``ReturnConsumedCapacity``: moto's figures ignore item sizes
(1.0 for a 3 KB put, nothing for a failed condition), so tests could not check them.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from typing import Any

from iotpipe.adapters.aws import dynamodb_items as items
from iotpipe.adapters.aws.dynamodb_schema import DynamoSchemaRecords
from iotpipe.adapters.aws.errors import AWS_ERRORS, ClientError, describe, error_code, is_transient
from iotpipe.adapters.window_store import Meter, WindowStoreBase, check_limit
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    HourlyWindow,
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
        {"AttributeName": "FPK", "AttributeType": "S"},
        {"AttributeName": "device_id", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": FLEET_INDEX,
            "KeySchema": [
                {"AttributeName": "FPK", "KeyType": "HASH"},
                {"AttributeName": "device_id", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
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


class DynamoStore(WindowStoreBase):
    """Hourly windows and the device registry in one DynamoDB table (see the module docstring).

    ``client`` is a low-level boto3 DynamoDB client (typed ``Any``: the adapters do not depend
    on boto3's type stubs), shared safely between threads. ``ttl_days`` lets DynamoDB expire a
    window that many days after its hour ended; keep it well beyond the lateness horizon (7
    days by default), or a late reading would start an expired window afresh. Windows are
    encoded and decoded by ``schema``, the telemetry schema (the default payload's unless one
    is given).
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
        self._client = client
        self._meter = Meter()
        self._registered: set[str] = set()
        self.schema = schema

    def schema_records(self) -> DynamoSchemaRecords:
        """Where this store keeps its schema record (:func:`~iotpipe.application.settle_schema`)."""
        return DynamoSchemaRecords(self.table_name, self._client)

    # --- hooks -----------------------------------------------------------------------------

    def _load(self, keys: Sequence[WindowKey]) -> dict[WindowKey, tuple[HourlyWindow, Version]]:
        unique = list(dict.fromkeys(keys))  # BatchGetItem refuses duplicate keys
        found: dict[WindowKey, tuple[HourlyWindow, Version]] = {}
        for item in self._get_windows(unique, consistent=True):
            window = items.window_from_item(item, self.schema)
            found[window.key] = (window, items.version_of(item))
        return found

    def _get_windows(self, keys: Sequence[WindowKey], consistent: bool) -> list[dict[str, Any]]:
        """The stored window items among ``keys`` (in no particular order)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), KEYS_PER_BATCH_GET):
            found += self._batch_get(keys[start : start + KEYS_PER_BATCH_GET], consistent)
        return found

    def _batch_get(self, keys: Sequence[WindowKey], consistent: bool) -> Iterator[dict[str, Any]]:
        """Every stored item among ``keys``, retrying unprocessed keys and throttling."""
        request: dict[str, Any] = {
            self.table_name: {
                "Keys": [items.window_key(*key) for key in keys],
                "ConsistentRead": consistent,
            }
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
        version = 1 if expected is None else int(expected) + 1
        item = items.window_item(window, version, self.fleet_shards, self.ttl_days, self.schema)
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if expected is None
            else {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
            }
        )
        table_units = -(-items.item_size(item) // 1024)
        try:
            self._call("put_item", TableName=self.table_name, Item=item, **condition)
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
            # A failed condition is billed as well, on the stored item's size: estimated with
            # the size of the one we tried to write (a version ahead). The index is not written.
            self._meter.add(write_units=table_units, conflicts=1, puts=1)
            raise WindowConflict(f"window {window.key} changed since it was read") from exc
        # The index entry (keys only) is written when the window is created, never updated.
        index_units = -(-items.index_entry_size(item) // 1024) if expected is None else 0
        self._meter.add(
            items_written=1,
            write_units=table_units + index_units,
            index_write_units=index_units,
            puts=1,
        )

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
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**params)
        except AWS_ERRORS as exc:
            if is_transient(exc):
                raise StoreUnavailable(
                    f"dynamodb {self.table_name} {operation}: {describe(exc)}"
                ) from exc
            raise
        return response

    # --- queries -----------------------------------------------------------------------------

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's windows in ``[start_ms, end_ms)``; the cursor is the last hour returned."""
        check_limit(limit)
        low = max(start_ms, 0) if cursor is None else max(start_ms, int(cursor) + 1)
        high = min(end_ms - 1, items.MAX_HOUR_MS)
        if low > high:
            return Page([])
        found = self._query(
            {
                "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
                "ExpressionAttributeValues": {
                    ":pk": {"S": items.device_pk(device_id)},
                    ":low": {"S": items.hour_sk(low)},
                    ":high": {"S": items.hour_sk(high)},
                },
                "ConsistentRead": True,
            },
            want=limit + 1,  # one more than a page: tells whether another page exists
        )
        windows = [items.window_from_item(i, self.schema) for i in found[:limit]]
        more = len(found) > limit
        return Page(windows, str(windows[-1].hour_ms) if more else None)

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """Every device's window for the hour, merged from the index shards in device order."""
        check_limit(limit)

        def shard_query(shard: int) -> dict[str, Any]:
            return {
                "IndexName": FLEET_INDEX,
                "KeyConditionExpression": "FPK = :pk",
                "ExpressionAttributeValues": {":pk": {"S": items.fleet_pk(hour_ms, shard)}},
            }

        entries, next_cursor = self._merged(shard_query, "device_id", limit, cursor)
        keys = [(e["device_id"]["S"], hour_ms) for e in entries]
        windows = {
            w.device_id: w
            for w in map(
                items.window_from_item,
                self._get_windows(keys, consistent=False),
                repeat(self.schema),
            )
        }
        # A window the index listed but the table no longer holds (expired) is left out.
        return Page([windows[d] for d, _ in keys if d in windows], next_cursor)

    def latest(self, device_id: str) -> Reading | None:
        """The device's latest reading: the newest reading of its newest window."""
        newest = self._newest(device_id)
        return None if newest is None else items.latest_of(newest, self.schema)

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """Devices in id order, merged from the registry shards, with their last event time.

        The last event time comes from each device's newest window (one ``Query`` per device
        listed): the registry does not keep it, so that a new reading costs no extra write.
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
            latest = None if newest is None else items.latest_of(newest, self.schema)
            summaries.append(
                DeviceSummary(device_id, None if latest is None else latest.timestamp_ms)
            )
        return Page(summaries, next_cursor)

    def ops(self) -> StoreOps:
        """Items read and written, and in ``extra``: requests (``batch_gets``, ``puts``,
        ``gets``, ``queries``), ``conflicts`` (failed conditional writes), and the capacity
        billed (``write_units``, of which ``index_write_units``; ``read_units`` rounded up, and
        exactly as ``read_half_units``). See the module docstring for how they are counted."""
        ops = self._meter.ops(reads="items_read", writes="items_written")
        ops.extra["read_units"] = -(-ops.extra.get("read_half_units", 0) // 2)  # rounded up
        ops.extra.setdefault("write_units", 0)
        return ops

    def _newest(self, device_id: str) -> dict[str, Any] | None:
        found = self._query(
            {
                "KeyConditionExpression": "PK = :pk AND begins_with(SK, :windows)",
                "ExpressionAttributeValues": {
                    ":pk": {"S": items.device_pk(device_id)},
                    ":windows": {"S": items.WINDOW_PREFIX},
                },
                "ScanIndexForward": False,
                "ConsistentRead": True,
            },
            want=1,
        )
        return found[0] if found else None

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
        """One page merged from every shard's partition in ``sort_attr`` order, and its cursor."""
        after, done = _decode_merge_cursor(cursor, self.fleet_shards)
        active = [s for s in range(self.fleet_shards) if s not in done]
        per_shard = -(-limit // max(1, len(active))) + 1  # expected share, plus a little slack
        readers = {
            s: _ShardReader(self, shard_query(s), sort_attr, after, per_shard) for s in active
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
    """Items of one shard's partition after the cursor, fetched a page at a time as needed."""

    def __init__(
        self,
        store: DynamoStore,
        params: dict[str, Any],
        sort_attr: str,
        after: str | None,
        page_size: int,
    ) -> None:
        self._store = store
        self._sort_attr = sort_attr
        self._page_size = page_size
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
            self._buffer.extend(page)
            self._exhausted = self._start is None
        return str(self._buffer[0][self._sort_attr]["S"]) if self._buffer else None

    def pop(self) -> dict[str, Any]:
        """Take the next item (after :meth:`peek` found one)."""
        return self._buffer.popleft()


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
