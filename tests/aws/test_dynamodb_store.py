"""DynamoStore against DynamoDB on the moto server: layout, exactness, faults, concurrency, cost.

The store also runs the shared contract suite, the stateful machine and the exactly-once
property (it is in ``STORE_FACTORIES``); these tests cover what is particular to DynamoDB.
"""

from __future__ import annotations

import random
import threading
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from iotpipe.adapters.aws import DEVICE_INDEX, TABLE_DEFINITION, DynamoStore
from iotpipe.adapters.aws.dynamodb_items import item_size
from iotpipe.application.codecs.heads import decode_head
from iotpipe.domain import (
    MAX_READINGS_PER_WINDOW,
    Location,
    Reading,
    Stats,
    StoreUnavailable,
)
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import Contribution, RetryPolicy
from tests.aws.faults import Intercepted, client_error, fail_first
from tests.aws_support import MotoServer, fresh_table
from tests.strategies import BASE_MS

pytestmark = pytest.mark.integration

H0, H1 = BASE_MS, BASE_MS + MS_PER_HOUR
NO_WAIT = RetryPolicy(attempts=4, base_delay_s=0.0, max_delay_s=0.0)


def reading(device: str, ts: int, temperature: int = 20_000, humidity: int | None = 50_000):
    return Reading(device, ts, (temperature, humidity), Location(34.0522, -118.2437))


def contributions(readings: list[Reading]) -> list[Contribution]:
    groups: dict[tuple[str, int], list[Reading]] = {}
    for r in readings:
        groups.setdefault((r.device_id, r.hour_ms), []).append(r)
    return [Contribution(d, h, tuple(rs)) for (d, h), rs in groups.items()]


def make_store(moto: MotoServer, client: Any = None, **options: Any) -> DynamoStore:
    streams = moto.client("dynamodbstreams")  # fleet totals fold the table's stream first
    return DynamoStore(
        fresh_table(moto), client or moto.client("dynamodb"), stream=streams, **options
    )


def raw_item(moto: MotoServer, store: DynamoStore, pk: str, sk: str) -> dict[str, Any]:
    key = {"PK": {"S": pk}, "SK": {"S": sk}}
    return moto.client("dynamodb").get_item(TableName=store.table_name, Key=key)["Item"]


def head_of(moto: MotoServer, store: DynamoStore, device: str, hour: int) -> dict[str, Any]:
    shard = zlib.crc32(device.encode()) % store.fleet_shards
    return raw_item(moto, store, f"W#{hour}#{shard}", device)


def every_item(moto: MotoServer, store: DynamoStore) -> list[dict[str, Any]]:
    return moto.client("dynamodb").scan(TableName=store.table_name)["Items"]


# --- the table and the item layout -------------------------------------------------------------


def test_the_table_is_created_exactly_as_defined(moto: MotoServer) -> None:
    name = fresh_table(moto)
    client = moto.client("dynamodb")
    table = client.describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        TABLE_DEFINITION["AttributeDefinitions"], key=str
    )
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    [index] = table["GlobalSecondaryIndexes"]
    [expected] = TABLE_DEFINITION["GlobalSecondaryIndexes"]
    assert index["IndexName"] == DEVICE_INDEX == expected["IndexName"]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert index["KeySchema"] == expected["KeySchema"]
    assert index["Projection"] == expected["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")


def test_window_and_registry_items_follow_the_documented_layout(moto: MotoServer) -> None:
    store = make_store(moto, fleet_shards=4, ttl_days=30)
    store.apply(contributions([reading("dev-1", H0 + 5), reading("dev-1", H0 + 6)]))
    shard = zlib.crc32(b"dev-1") % 4
    item = raw_item(moto, store, f"W#{H0}#{shard}", "dev-1")
    assert set(item) == {"PK", "SK", "D", "H", "v", "w", "ttl"}
    assert (item["D"], item["H"], item["v"]) == ({"S": "dev-1"}, {"N": str(H0)}, {"N": "1"})
    head = decode_head("dev-1", H0, item["w"]["B"])
    assert head.window.stats == Stats.of([reading("dev-1", H0 + 5), reading("dev-1", H0 + 6)])
    assert len(head.tail) == 2 and head.horizon == -1 and head.sealed == 0
    assert head.window.latest == reading("dev-1", H0 + 6)
    assert item["ttl"] == {"N": str((H0 + MS_PER_HOUR) // 1000 + 30 * 86_400)}
    assert item_size(item) < 400  # two readings: keys, statistics, latest, two identities
    assert raw_item(moto, store, f"DEVICES#{shard}", "dev-1")["SK"] == {"S": "dev-1"}
    store.apply(contributions([reading("dev-1", H0 + 7)]))
    assert raw_item(moto, store, f"W#{H0}#{shard}", "dev-1")["v"] == {"N": "2"}


def test_without_ttl_days_windows_never_expire(moto: MotoServer) -> None:
    store = make_store(moto)
    store.apply(contributions([reading("d", H0)]))
    assert "ttl" not in head_of(moto, store, "d", H0)


def test_integers_beyond_float_precision_stay_exact(moto: MotoServer) -> None:
    # 10,001 readings at the metric maximum: the sum of squares needs 57 bits.
    store = make_store(moto)
    readings = [reading("hot", H0 + i * 350, temperature=999_999) for i in range(10_001)]
    assert not store.apply(contributions(readings)).failed
    squares = 10_001 * 999_999**2
    assert int(float(squares)) != squares  # a float on the way would have rounded it
    stored = decode_head("hot", H0, head_of(moto, store, "hot", H0)["w"]["B"])
    assert stored.window.stats.metric("temperature").squares == squares
    [window] = store.hourly("hot", H0, H1, limit=1).items
    assert window.stats == Stats.of(readings)
    assert store.fleet_total(H0).stats.metric("temperature").squares == squares


def test_a_full_window_fits_the_item_limit_and_its_next_write_seals_it(moto: MotoServer) -> None:
    # The worst case for the identities: the most readings a window takes, at random instants
    # with random values (incompressible fingerprints), all in one write: the tail cannot be
    # sealed before it exists, so the head holds them, under the 400 KB item limit; the next
    # write seals them into a segment and the head is small again.
    rng = random.Random(7)
    offsets = rng.sample(range(1, MS_PER_HOUR), MAX_READINGS_PER_WINDOW - 1)
    readings = [reading("busy", H0 + o, temperature=rng.randint(-50_000, 50_000)) for o in offsets]
    store = make_store(moto)
    assert not store.apply(contributions(readings)).failed
    assert 200_000 < item_size(head_of(moto, store, "busy", H0)) < 400 * 1024
    assert not store.apply(contributions([reading("busy", H0)])).failed
    assert item_size(head_of(moto, store, "busy", H0)) < 1024
    [window] = store.hourly("busy", H0, H1, limit=1).items
    assert window.stats == Stats.of([*readings, reading("busy", H0)])
    full = store.apply(contributions([reading("busy", H0 + 1)]))  # the window is full now
    assert full.absorbed[("busy", H0)].overflow == (0,)
    again = store.apply(contributions(readings[:50]))  # resent: found in the segment
    assert len(again.absorbed[("busy", H0)].duplicates) == 50 and not again.written


def test_hourly_lists_a_devices_hours_through_the_device_index_page_by_page(
    moto: MotoServer,
) -> None:
    store = make_store(moto)
    hours = [H0 + k * MS_PER_HOUR for k in range(30)]
    store.apply(contributions([reading("d", h + 9) for h in hours] + [reading("e", H0)]))
    spy = Intercepted(moto.client("dynamodb"))
    reader = DynamoStore(store.table_name, spy, fleet_shards=store.fleet_shards)
    got, cursor = [], None
    while True:
        page = reader.hourly("d", H0, hours[-1] + 1, limit=7, cursor=cursor)
        got += page.items
        if page.cursor is None:
            break
        cursor = page.cursor
    assert [w.hour_ms for w in got] == hours
    assert all(w.stats.count == 1 for w in got)
    indexed = [kw for name, kw in spy.requests if name == "query"]
    assert all(kw["IndexName"] == DEVICE_INDEX for kw in indexed)


# --- the fleet index: sharded partitions, merged in device order ------------------------------


def test_a_busy_hour_is_spread_over_the_fleet_shards_and_merged_in_order(moto: MotoServer) -> None:
    store = make_store(moto, fleet_shards=4)
    devices = [f"sensor-{i:03d}" for i in range(40)]
    store.apply(contributions([reading(d, H0 + i) for i, d in enumerate(reversed(devices))]))
    client = moto.client("dynamodb")
    per_shard = {}
    for shard in range(4):
        found = client.query(
            TableName=store.table_name,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": f"W#{H0}#{shard}"}},
        )["Items"]
        per_shard[shard] = [i["SK"]["S"] for i in found]
        assert all(zlib.crc32(d.encode()) % 4 == shard for d in per_shard[shard])
    assert sum(map(len, per_shard.values())) == 40
    assert max(map(len, per_shard.values())) < 40  # not one hot partition
    got, cursor = [], None
    while True:
        page = store.fleet_hour(H0, limit=7, cursor=cursor)
        got += page.items
        if page.cursor is None:
            break
        cursor = page.cursor
    assert [w.device_id for w in got] == devices
    assert all(w.stats.count == 1 for w in got)


def test_fleet_cursors_skip_shards_that_are_already_exhausted(moto: MotoServer) -> None:
    store = make_store(moto, fleet_shards=4)
    # 25 devices anywhere, then 5 that sort last and all live in shard 0: the first page of
    # 25 exhausts the other shards, so the second page need not query them again.
    early = [f"a-{i:03d}" for i in range(25)]
    late = [d for d in (f"z-{i:03d}" for i in range(100)) if zlib.crc32(d.encode()) % 4 == 0][:5]
    store.apply(contributions([reading(d, H0) for d in early + late]))
    spy = Intercepted(moto.client("dynamodb"))
    reader = DynamoStore(store.table_name, spy, fleet_shards=4)
    first = reader.fleet_hour(H0, limit=25)
    assert [w.device_id for w in first.items] == early
    assert first.cursor is not None
    exhausted = int(first.cursor.split("|")[0], 16).bit_count()
    assert exhausted >= 2  # shards 1-3, but the one holding the 25th device may not know yet
    queried = spy.calls["query"]
    second = reader.fleet_hour(H0, limit=25, cursor=first.cursor)
    assert [w.device_id for w in second.items] == late
    assert second.cursor is None
    assert spy.calls["query"] - queried == 4 - exhausted  # one query per live shard


def test_pages_end_only_when_the_last_live_shard_is_exhausted(moto: MotoServer) -> None:
    # Every device in one shard: once the other shards are done, each page must still look
    # one item ahead in the remaining shard to know whether another page exists.
    store = make_store(moto, fleet_shards=4)
    devices = [d for d in (f"one-{i:03d}" for i in range(200)) if zlib.crc32(d.encode()) % 4 == 2]
    devices = devices[:9]
    store.apply(contributions([reading(d, H0) for d in devices]))
    for limit in (1, 2, 4, 9):
        fleet, devs, cursors = [], [], [None, None]
        while True:
            fleet_page = store.fleet_hour(H0, limit=limit, cursor=cursors[0])
            fleet += [w.device_id for w in fleet_page.items]
            cursors[0] = fleet_page.cursor
            if cursors[0] is None:
                break
        while True:
            devices_page = store.devices(limit=limit, cursor=cursors[1])
            devs += [d.device_id for d in devices_page.items]
            cursors[1] = devices_page.cursor
            if cursors[1] is None:
                break
        assert fleet == devs == devices


def test_a_cursor_from_elsewhere_is_refused(moto: MotoServer) -> None:
    store = make_store(moto)
    for bad in ("nonsense", "zz|d1", "3|"):
        with pytest.raises(ValueError):
            store.fleet_hour(H0, limit=5, cursor=bad)
    with pytest.raises(ValueError):
        store.hourly("d", H0, H1, limit=5, cursor="not-an-hour")


# --- reads: BatchGetItem limits, unprocessed keys, throttling ---------------------------------


def test_loading_many_windows_uses_batches_of_100_keys(moto: MotoServer) -> None:
    spy = Intercepted(moto.client("dynamodb"))
    store = make_store(moto, spy)
    readings = [reading(f"dev-{i:03d}", H0 + i) for i in range(250)]
    assert not store.apply(contributions(readings)).failed
    batch_gets = [kw for name, kw in spy.requests if name == "batch_get_item"]
    # The heads, then the format 1 items of the windows without one (none here: all new).
    assert [len(next(iter(kw["RequestItems"].values()))["Keys"]) for kw in batch_gets] == [
        100,
        100,
        50,
    ] * 2
    again = store.apply(contributions(readings))
    assert again.written == frozenset()
    assert sum(len(a.duplicates) for a in again.absorbed.values()) == 250


def _leave_unprocessed(count: int):
    """An override that sends all but ``count`` keys on the first call and reports them
    unprocessed, as DynamoDB does when a response would exceed its limits or a partition is
    throttled."""
    state = {"first": True}

    def batch_get_item(real, *, RequestItems, **kwargs):  # noqa: N803 - boto3's name
        if not state["first"]:
            return real(RequestItems=RequestItems, **kwargs)
        state["first"] = False
        [(table, request)] = RequestItems.items()
        sent, held = request["Keys"][count:], request["Keys"][:count]
        response = real(RequestItems={table: {**request, "Keys": sent}}, **kwargs)
        response["UnprocessedKeys"] = {table: {**request, "Keys": held}}
        return response

    return batch_get_item


def test_unprocessed_keys_are_fetched_again_after_a_backoff(moto: MotoServer) -> None:
    store = make_store(moto)
    first = [reading(f"dev-{i}", H0 + i) for i in range(6)]
    store.apply(contributions(first))
    sleeps: list[float] = []
    spy = Intercepted(moto.client("dynamodb"), batch_get_item=_leave_unprocessed(4))
    flaky = DynamoStore(store.table_name, spy, retry=RetryPolicy(attempts=4), sleep=sleeps.append)
    more = [reading(f"dev-{i}", H0 + 100 + i) for i in range(6)]
    result = flaky.apply(contributions(more))
    assert not result.failed
    assert spy.calls["batch_get_item"] == 2
    # Had the 4 unprocessed windows been taken as missing, they would have been overwritten
    # with one reading each instead of merged.
    for i in range(6):
        [window] = flaky.hourly(f"dev-{i}", H0, H1, limit=1).items
        assert window.stats == Stats.of([first[i], more[i]])
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= RetryPolicy().base_delay_s * 2
    # Taken as missing, they would also have been merged in the end, but only after failed
    # conditional writes (the version check is the safety net, not the mechanism).
    assert flaky.ops().extra.get("conflicts", 0) == 0
    assert flaky.ops().extra["puts"] == 6


def test_throttled_reads_are_retried_then_reported_as_unavailable(moto: MotoServer) -> None:
    throttled = client_error("ProvisionedThroughputExceededException", "BatchGetItem")
    spy = Intercepted(moto.client("dynamodb"), batch_get_item=fail_first(2, throttled))
    sleeps: list[float] = []
    store = make_store(moto, spy, retry=RetryPolicy(attempts=4), sleep=sleeps.append)
    assert not store.apply(contributions([reading("d", H0)])).failed
    # Three tries of the head, then the format 1 lookup of the (new) window.
    assert spy.calls["batch_get_item"] == 4 and len(sleeps) == 2

    always = Intercepted(moto.client("dynamodb"), batch_get_item=fail_first(99, throttled))
    doomed = DynamoStore(store.table_name, always, retry=NO_WAIT, sleep=lambda _: None)
    result = doomed.apply(contributions([reading("d", H0 + 1)]))
    assert list(result.failed) == [("d", H0)]
    assert "unavailable" in result.failed[("d", H0)]
    assert "ProvisionedThroughputExceededException" in result.failed[("d", H0)]
    assert always.calls["batch_get_item"] == NO_WAIT.attempts
    with pytest.raises(StoreUnavailable) as raised:
        doomed._load([("d", H0)])
    assert isinstance(raised.value.__cause__, ClientError)


# --- writes: conditions, conflicts, transient and permanent failures --------------------------


def test_a_concurrent_writer_between_read_and_write_is_a_conflict_then_a_retry(
    moto: MotoServer,
) -> None:
    table = fresh_table(moto)
    rival = DynamoStore(table, moto.client("dynamodb"))
    rival_reading = reading("d", H0 + 1, temperature=11_000)
    state = {"raced": False}

    def put_item(real, **kwargs):
        if not state["raced"] and kwargs["Item"]["SK"]["S"] == "d":
            state["raced"] = True  # another processor writes the window first
            assert not rival.apply(contributions([rival_reading])).failed
        return real(**kwargs)

    spy = Intercepted(moto.client("dynamodb"), put_item=put_item)
    store = DynamoStore(table, spy, sleep=lambda _: None)
    mine = [reading("d", H0 + 2, temperature=12_000), reading("d", H0 + 3)]
    result = store.apply(contributions(mine))
    assert not result.failed
    assert store.ops().extra["conflicts"] == 1
    [window] = store.hourly("d", H0, H1, limit=1).items
    assert window.stats == Stats.of([rival_reading, *mine])
    assert head_of(moto, store, "d", H0)["v"] == {"N": "2"}


def test_a_throttled_write_fails_only_its_window_and_a_redelivery_repairs_it(
    moto: MotoServer,
) -> None:
    throttled = client_error("ThrottlingException", "PutItem")
    table = fresh_table(moto)
    state = {"calls": 0}

    def put_item(real, **kwargs):
        if kwargs["Item"]["SK"]["S"] == "b" and state["calls"] == 0:
            state["calls"] += 1
            raise throttled
        return real(**kwargs)

    store = DynamoStore(table, Intercepted(moto.client("dynamodb"), put_item=put_item))
    batch = [reading("a", H0), reading("b", H0), reading("c", H0)]
    result = store.apply(contributions(batch))
    assert list(result.failed) == [("b", H0)]
    assert result.written == {("a", H0), ("c", H0)}
    retry = store.apply(contributions(batch))  # the stream delivers the batch again
    assert not retry.failed and retry.written == {("b", H0)}
    for r in batch:
        [window] = store.hourly(r.device_id, H0, H1, limit=1).items
        assert window.stats == Stats.of([r])


def test_network_errors_are_unavailable_and_other_errors_propagate(moto: MotoServer) -> None:
    down = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    spy = Intercepted(moto.client("dynamodb"), put_item=fail_first(99, down))
    store = make_store(moto, spy)
    result = store.apply(contributions([reading("d", H0)]))
    assert "EndpointConnectionError" in result.failed[("d", H0)]

    missing = DynamoStore("no-such-table", moto.client("dynamodb"))
    with pytest.raises(ClientError) as raised:
        missing.apply(contributions([reading("d", H0)]))
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


# --- concurrency -------------------------------------------------------------------------------


def test_eight_threads_applying_overlapping_batches_end_exact(moto: MotoServer) -> None:
    table = fresh_table(moto)
    client = moto.client("dynamodb")
    rng = random.Random(11)
    readings = [
        reading(f"d{i % 4}", H0 + (i // 4) * 3_011 + (i % 2) * MS_PER_HOUR // 2, 1_000 * (i % 37))
        for i in range(800)
    ]
    stores = [DynamoStore(table, client, fleet_shards=3) for _ in range(8)]
    errors: list[BaseException] = []

    def worker(store: DynamoStore, seed: int) -> None:
        try:
            mine = readings[:]
            random.Random(seed).shuffle(mine)  # every thread sends everything, in its order
            for start in range(0, len(mine), 60):
                pending = contributions(mine[start : start + 60])
                for _ in range(20):  # what failed is delivered again, as the stream would
                    result = store.apply(pending)
                    pending = [c for c in pending if c.key in result.failed]
                    if not pending:
                        break
                assert not pending
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s, rng.random())) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected: dict[tuple[str, int], list[Reading]] = {}
    for r in readings:
        expected.setdefault((r.device_id, r.hour_ms), []).append(r)
    reader = stores[0]
    for (device, hour), rs in expected.items():
        [window] = reader.hourly(device, hour, hour + 1, limit=1).items
        assert window.stats == Stats.of(rs)
    assert sum(s.ops().extra.get("conflicts", 0) for s in stores) > 0  # they did collide


# --- billed capacity ---------------------------------------------------------------------------


def test_capacity_units_follow_dynamodb_billing_rules(moto: MotoServer) -> None:
    store = make_store(moto)
    store.apply(contributions([reading("d1", H0)]))
    ops = store.ops()
    # Read: the missing head (0.5 RCU, eventually consistent), its format 1 key (1 RCU) and
    # the registry GetItem (0.5 RCU), in half units.
    assert ops.extra["read_half_units"] == 4
    # Write: registry entry (1 WCU) + a small head (1 WCU) + its device index entry (1 WCU).
    assert ops.extra["write_units"] == 3
    assert (ops.reads, ops.writes) == (3, 2)

    # An hour at one reading a second, posted a minute at a time: every head write costs one
    # unit (the head never passes 1 KB), every sealed segment one more, nothing for the index.
    before = store.ops().extra
    for minute in range(60):
        batch = [reading("d1", H0 + (minute * 60 + s) * 1000 + 1) for s in range(60)]
        assert not store.apply(contributions(batch)).failed
    after = store.ops().extra
    segments = [i for i in every_item(moto, store) if i["PK"]["S"].startswith("S#")]
    assert all(item_size(i) <= 1024 for i in segments) and len(segments) >= 15
    assert after["segment_puts"] == len(segments)
    assert after["write_units"] - before["write_units"] == 60 + len(segments)
    assert after["index_write_units"] == 1  # the window's creation only
    assert item_size(head_of(moto, store, "d1", H0)) <= 1024
    # Heads are read eventually consistent: half a unit each.
    assert after["read_half_units"] - before["read_half_units"] == 60

    # A query page is billed on the sum of the item sizes, rounded up to 4 KB.
    half_before = store.ops().extra["read_half_units"]
    store.fleet_hour(H0, limit=5)
    assert store.ops().extra["read_half_units"] - half_before == store.fleet_shards
