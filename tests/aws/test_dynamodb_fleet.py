"""Fleet lanes folded from the table's stream on moto, broken on purpose: a fold that dies
part-way, batches delivered again, folders racing; the fold function's Lambda shape; the
fleet page's read cost; a table written by the previous release."""

from __future__ import annotations

import base64
import json
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest

from iotpipe.adapters.aws import DynamoStore
from iotpipe.adapters.aws.dynamodb_fleet import FleetFold, StreamReader
from iotpipe.adapters.clock import ManualClock
from iotpipe.application import Pipeline
from iotpipe.domain import FleetTotal, LatenessPolicy, Location, Moments, Reading, Stats, merge_all
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import Contribution, RawBatch, RawRecord
from tests.aws.faults import Intercepted
from tests.aws_support import MotoServer, fresh_table
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration

H0, H1 = 1_756_634_400_000, 1_756_634_400_000 + MS_PER_HOUR
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "format1"


def reading(device: str, ts: int, temperature: int = 20_000) -> Reading:
    return Reading(device, ts, (temperature, 50_000), Location(1.5, 2.5))


def apply(store: DynamoStore, readings: list[Reading]) -> None:
    groups: dict[tuple[str, int], list[Reading]] = {}
    for r in readings:
        groups.setdefault((r.device_id, r.hour_ms), []).append(r)
    result = store.apply([Contribution(d, h, tuple(rs)) for (d, h), rs in groups.items()])
    assert not result.failed


def stream_records(moto: MotoServer, table: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every shard's records, as Lambda's event source mapping delivers them (B as base64)."""
    streams, client = moto.client("dynamodbstreams"), moto.client("dynamodb")
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        out.append((shard["ShardId"], [_lambda_shape(r) for r in records]))
    return out


def _lambda_shape(record: dict[str, Any]) -> dict[str, Any]:
    def attr(value: dict[str, Any]) -> dict[str, Any]:
        (kind, inner), *_ = value.items()
        return {"B": base64.b64encode(inner).decode()} if kind == "B" else value

    body = dict(record["dynamodb"])
    for image in ("NewImage", "OldImage", "Keys"):
        if image in body:
            body[image] = {k: attr(v) for k, v in body[image].items()}
    body.pop("ApproximateCreationDateTime", None)
    return {**record, "dynamodb": body}


def expected_total(readings: list[Reading], hour: int) -> FleetTotal:
    """The total of the distinct readings of an hour (resends counted once)."""
    mine = list({r.identity: r for r in readings if r.hour_ms == hour}.values())
    return FleetTotal(Stats.of(mine), len({r.device_id for r in mine}))


def workload() -> list[list[Reading]]:
    """Batches over two hours and five devices, with resends and a late reading."""
    batches = [[reading(f"d{d}", H0 + m * 60_000 + d) for d in range(5)] for m in range(0, 50, 10)]
    batches.append([reading("d1", H1 + 7), reading("d2", H0 + 5)])  # next hour; a late one
    batches.append(batches[0])  # resent: no write, no stream record
    return batches


def test_a_fold_that_dies_part_way_is_finished_by_the_next_delivery(moto: MotoServer) -> None:
    table = fresh_table(moto)
    client = moto.client("dynamodb")
    store = DynamoStore(table, client, fleet_shards=3)
    for batch in workload():
        apply(store, batch)
    [(shard, records)] = stream_records(moto, table)
    calls = {"puts": 0}

    def dies_after_one(real: Any, **kwargs: Any) -> dict[str, Any]:
        calls["puts"] += 1
        if calls["puts"] == 2:
            raise RuntimeError("the function timed out here")
        return real(**kwargs)

    crashing = FleetFold(table, Intercepted(client, put_item=dies_after_one))
    with pytest.raises(RuntimeError):
        crashing.fold(shard, records)  # one hour's lane written, the other not
    retried = FleetFold(table, client)
    retried.fold(shard, records)  # Lambda delivers the same batch again
    retried.fold(shard, records[: len(records) // 2])  # and a bisected half of it
    readings = [r for batch in workload() for r in batch]
    reader = DynamoStore(table, client, fleet_shards=3)
    assert reader.fleet_total(H0) == expected_total(readings, H0)
    assert reader.fleet_total(H1) == expected_total(readings, H1)


def test_folders_racing_on_the_same_stream_fold_each_record_once(moto: MotoServer) -> None:
    table = fresh_table(moto)
    client = moto.client("dynamodb")
    store = DynamoStore(table, client, fleet_shards=3)
    readings = [reading(f"d{i % 7}", H0 + i * 991, i % 50 * 100) for i in range(600)]
    for start in range(0, 600, 40):
        apply(store, readings[start : start + 40])
    streams = moto.client("dynamodbstreams")
    errors: list[BaseException] = []

    def folder() -> None:
        try:
            StreamReader(
                streams, client, table, FleetFold(table, client, sleep=lambda _: None)
            ).catch_up()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=folder) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert DynamoStore(table, client, fleet_shards=3).fleet_total(H0) == expected_total(
        readings, H0
    )


def test_the_fold_function_takes_the_shard_from_the_tumbling_window(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iotpipe.entrypoints.aws import bootstrap, fleet

    table = fresh_table(moto)
    client = moto.client("dynamodb")
    apply(DynamoStore(table, client, fleet_shards=3), [reading("a", H0 + 1), reading("b", H0 + 2)])
    monkeypatch.setenv("IOTPIPE_TABLE_NAME", table)
    monkeypatch.setattr(bootstrap, "client", moto.client)
    bootstrap.fleet_fold.cache_clear()
    [(shard, records)] = stream_records(moto, table)
    event = {
        "Records": records,
        "shardId": shard,
        "window": {"start": "2025-08-31T10:00:00Z", "end": "2025-08-31T10:01:00Z"},
        "state": {},
        "isFinalInvokeForWindow": False,
        "isWindowTerminatedEarly": False,
    }
    assert fleet.handler(event, None) == {"state": {}, "batchItemFailures": []}
    assert fleet.handler(event, None) == {"state": {}, "batchItemFailures": []}  # again
    expected = FleetTotal(Stats.of([reading("a", H0 + 1), reading("b", H0 + 2)]), 2)
    assert DynamoStore(table, client, fleet_shards=3).fleet_total(H0) == expected
    with pytest.raises(ValueError, match="tumbling"):
        fleet.handler({"Records": records}, None)  # no shard: the mapping is misconfigured
    bootstrap.fleet_fold.cache_clear()


@pytest.mark.parametrize("devices", [300, 900])
def test_the_first_fleet_page_reads_a_bounded_number_of_items(
    moto: MotoServer, devices: int
) -> None:
    table = fresh_table(moto)
    client = moto.client("dynamodb")
    store = DynamoStore(table, client, fleet_shards=8, stream=moto.client("dynamodbstreams"))
    apply(store, [reading(f"sensor-{i:05d}", H0 + i) for i in range(devices)])
    store.fold_stream()
    reader = DynamoStore(table, client, fleet_shards=8)
    page = reader.fleet_hour(H0, limit=100)
    total = reader.fleet_total(H0)
    assert [w.device_id for w in page.items] == [f"sensor-{i:05d}" for i in range(100)]
    assert total.devices == devices
    assert reader.ops().reads <= 150, reader.ops()


def test_a_table_of_the_previous_release_keeps_counting_once(moto: MotoServer) -> None:
    """Items written by format 1 (the committed fixture): a window is read from its old item
    until its first write converts it; resending everything counts nothing twice."""
    table = fresh_table(moto)
    client = moto.client("dynamodb")
    for item in json.loads((FIXTURE / "dynamodb.json").read_text(), object_hook=_bytes):
        client.put_item(TableName=table, Item=item)
    lines = (FIXTURE / "readings.jsonl").read_bytes().splitlines()
    store = DynamoStore(table, client, fleet_shards=4, stream=moto.client("dynamodbstreams"))
    pipeline = Pipeline(store=store, clock=ManualClock(H0), lateness=LatenessPolicy.unbounded())
    batch = RawBatch("again", tuple(RawRecord(str(i), line) for i, line in enumerate(lines)))
    report = pipeline.process(batch)
    assert report.accepted == 0 and report.duplicates == len(lines)
    assert report.windows_updated == 0  # nothing new: the old items stay as they are
    migrated = store.migrate_format1()
    expected = expected_windows(lines)
    assert migrated == len(expected)
    assert store.migrate_format1() == 0  # idempotent
    stored = {w.key: w.stats for w in pipeline.query.every_window()}
    assert stored == expected
    for hour in {h for _, h in expected}:
        mine = [s for (_, h), s in expected.items() if h == hour]
        assert store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))
    again = pipeline.process(RawBatch("third", batch.records))
    assert again.accepted == 0 and again.windows_updated == 0


def _bytes(value: dict[str, Any]) -> Any:
    return base64.b64decode(value["__bytes__"]) if set(value) == {"__bytes__"} else value


def test_heads_of_one_hour_spread_over_the_fleet_shards(moto: MotoServer) -> None:
    store = DynamoStore(fresh_table(moto), moto.client("dynamodb"), fleet_shards=8)
    apply(store, [reading(f"dev-{i}", H0) for i in range(64)])
    keys = {
        i["PK"]["S"]
        for i in moto.client("dynamodb").scan(TableName=store.table_name)["Items"]
        if i["PK"]["S"].startswith("W#")
    }
    assert keys == {f"W#{H0}#{zlib.crc32(f'dev-{i}'.encode()) % 8}" for i in range(64)}


def test_the_fold_function_reads_heads_by_the_deployed_schema_and_keeps_retired_metrics(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Heads and lanes keep metrics by the schema's names: the fold function must read them by
    # the deployment's schema, and keep the metrics the table's schema record still holds
    # (retired ones), or it would fold empty metrics and drop the retired metrics' sums.
    from iotpipe.adapters.schema_file import dump_schema
    from iotpipe.application import use_schema
    from iotpipe.domain import Metric, TelemetrySchema
    from iotpipe.entrypoints.aws import bootstrap, fleet

    pressure = Metric("pressure", "kPa", 0, 1000, exponent=-1)
    power = Metric("power", "kW", 0, 100)
    both = TelemetrySchema((pressure, power), location=None)
    only_power = TelemetrySchema((power,), location=None)
    table = fresh_table(moto)
    client = moto.client("dynamodb")
    writer = DynamoStore(table, client, fleet_shards=3)
    use_schema(writer, both)
    first = [Reading("a", H0 + 1, (5005, 12_000)), Reading("b", H0 + 2, (5010, None))]
    apply(writer, first)
    # The deployment drops pressure: the process function runs it as retired.
    running = use_schema(writer, only_power)
    later = [Reading("a", H0 + 3, (13_000, None))]  # power, then (retired) pressure
    apply(writer, later)
    schema_file = tmp_path / "schema.toml"
    schema_file.write_text(dump_schema(only_power))
    monkeypatch.setenv("IOTPIPE_TABLE_NAME", table)
    monkeypatch.setenv("IOTPIPE_SCHEMA_FILE", str(schema_file))
    monkeypatch.setattr(bootstrap, "client", moto.client)
    bootstrap.fleet_fold.cache_clear()
    try:
        for shard, records in stream_records(moto, table):
            event = {"Records": records, "shardId": shard, "state": {}}
            assert fleet.handler(event, None)["batchItemFailures"] == []
    finally:
        bootstrap.fleet_fold.cache_clear()
    reader = DynamoStore(table, client, fleet_shards=3)
    assert use_schema(reader, only_power, write=False) == running
    total = reader.fleet_total(H0)
    assert total.devices == 2
    assert total.stats.metric("power", running) == Moments(2, 25_000, 313_000_000, 12_000, 13_000)
    assert total.stats.metric("pressure", running) == Moments(
        2, 10_015, 5005**2 + 5010**2, 5005, 5010
    )
