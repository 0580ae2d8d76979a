"""The three Lambda handlers on moto: real-shaped events in, real AWS APIs (moto server) behind.

The local poller below plays Lambda's Kinesis event source mapping: it reads the stream with
GetRecords, shapes real Lambda Kinesis events (base64 data, sequence numbers, arrival times),
honours the batch size, and redelivers from the first failed record as Lambda does with
``ReportBatchItemFailures``.
"""

from __future__ import annotations

import base64
import gzip
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest

from iotpipe.adapters.aws import create_table
from iotpipe.application.codecs.archive import decode_batch, decode_rejections
from iotpipe.application.payloads import is_packed, pack
from iotpipe.application.views import stats_json
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.entrypoints.aws import api, bootstrap, clients, ingest, process, settings
from iotpipe.simulator import Faults, Fleet
from tests.aws import apigw
from tests.aws.apigw import answer
from tests.aws.streams import event_record, read_stream
from tests.aws_support import REGION, MotoServer
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration

KEY = "handler-test-key-123"
STREAM, TABLE, BUCKET = "iotpipe-readings", "iotpipe-windows", "iotpipe-archive"


@pytest.fixture
def deployed(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """The resources the handlers use, on a fresh moto, and the environment Lambda would set."""
    moto.client("kinesis").create_stream(StreamName=STREAM, ShardCount=1)
    create_table(moto.client("dynamodb"), TABLE)
    moto.client("s3").create_bucket(Bucket=BUCKET)
    environment = {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        settings.STREAM_NAME: STREAM,
        settings.TABLE_NAME: TABLE,
        settings.BUCKET: BUCKET,
        settings.API_KEYS: KEY,
        settings.LATENESS_HORIZON_HOURS: "0",  # the tests send old readings
        settings.FLEET_SHARDS: "3",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _forget_composition_roots()
    yield moto
    _forget_composition_roots()


def _forget_composition_roots() -> None:
    for cached in (
        clients.client,
        bootstrap.ingest_api,
        bootstrap.query_api,
        bootstrap.process_service,
    ):
        cached.cache_clear()


def http_event(
    method: str, path: str, body: bytes = b"", query: dict | None = None, key: str | None = KEY
) -> dict[str, Any]:
    """An API Gateway v2 event, with this module's key unless told otherwise."""
    return apigw.http_event(method, path, body, query, key)


class Poller:
    """Lambda's Kinesis event source mapping, in miniature (one shard)."""

    def __init__(self, server: MotoServer, batch_size: int) -> None:
        self.kinesis = server.client("kinesis")
        self.batch_size = batch_size
        shard = self.kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
        self.shard = shard
        self.iterator = self.kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        self.pending: list[dict[str, Any]] = []
        self.failures_seen = 0

    def run(self, max_invocations: int = 200) -> None:
        for _ in range(max_invocations):
            self._fill()
            if not self.pending:
                return
            batch, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
            failed = process.handler({"Records": batch}, None)["batchItemFailures"]
            if failed:
                self.failures_seen += 1
                first = min(
                    int(f["itemIdentifier"]) for f in failed
                )  # numerically: see shared notes
                retry = [r for r in batch if int(r["kinesis"]["sequenceNumber"]) >= first]
                self.pending = retry + self.pending
        raise AssertionError("the stream did not drain")

    def _fill(self) -> None:
        while len(self.pending) < self.batch_size:
            out = self.kinesis.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = out["NextShardIterator"]
            if not out["Records"]:
                return
            self.pending += [self._event_record(r) for r in out["Records"]]

    def _event_record(self, record: dict[str, Any]) -> dict[str, Any]:
        return event_record(self.shard, record, region=REGION)


T0 = parse_instant("2025-08-31T10:00:00Z")


def fleet_lines(devices: int = 4, hours: int = 3, faults: Faults | None = None) -> list[str]:
    return list(Fleet(devices, 120, seed=11).payloads(T0, T0 + hours * MS_PER_HOUR, faults))


def post_all(lines: list[str], size: int = 97) -> int:
    accepted = 0
    for i in range(0, len(lines), size):
        body = b"[" + b",".join(x.encode() for x in lines[i : i + size]) + b"]"
        status, reply = answer(ingest.handler(http_event("POST", "/v1/readings", body), None))
        assert status in (202, 400), reply
        accepted += reply.get("accepted", 0) if status == 202 else 0
    return accepted


def served_windows(devices: list[str], hours: int) -> dict[tuple[str, int], dict[str, Any]]:
    served = {}
    for device in devices:
        query = {"from": format_instant(T0), "to": format_instant(T0 + hours * MS_PER_HOUR)}
        status, page = answer(
            api.handler(http_event("GET", f"/v1/devices/{device}/hourly", query=query), None)
        )
        assert status == 200, page
        for item in page["items"]:
            served[(device, parse_instant(item["hour"]))] = item
    return served


def test_end_to_end_ingest_stream_process_store_and_query(deployed: MotoServer) -> None:
    lines = fleet_lines(faults=Faults(duplicates=0.2, disorder=0.2))
    assert post_all(lines) == len(lines)
    poller = Poller(deployed, batch_size=50)
    poller.run()
    expected = expected_windows(lines)
    served = served_windows(sorted({d for d, _ in expected}), 3)
    assert served.keys() == expected.keys()
    for key, stats in expected.items():
        body = {k: v for k, v in served[key].items() if k not in ("device_id", "hour")}
        assert body == stats_json(stats)
    # Redeliver the whole stream (an at-least-once replay): nothing changes.
    Poller(deployed, batch_size=33).run()
    assert served_windows(sorted({d for d, _ in expected}), 3) == served
    objects = deployed.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="raw/")["Contents"]
    assert objects and all(o["Key"].startswith("raw/dt=") for o in objects)


def test_a_batch_of_garbage_succeeds_with_everything_quarantined(deployed: MotoServer) -> None:
    kinesis = deployed.client("kinesis")
    garbage = [b"{not json", b'{"device_id": "x"}', b"[1, 2]", b"\xff\xfe", b'"just a string"']
    kinesis.put_records(
        StreamName=STREAM, Records=[{"Data": g, "PartitionKey": "k"} for g in garbage]
    )
    poller = Poller(deployed, batch_size=10)
    poller.run()
    assert poller.failures_seen == 0  # poison never blocks the shard
    s3 = deployed.client("s3")
    [obj] = s3.list_objects_v2(Bucket=BUCKET, Prefix="rejected/")["Contents"]
    lines = gzip.decompress(
        s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    ).splitlines()
    reasons = sorted(orjson.loads(x)["reason"] for x in lines)
    assert reasons == [
        "malformed_json",
        "malformed_json",
        "missing_timestamp",
        "not_an_object",
        "not_an_object",
        "not_an_object",
    ]


def test_a_mixed_stream_of_packed_plain_and_corrupt_records(deployed: MotoServer) -> None:
    """Records ingest packed, plain records (a release before, another producer) and corrupt
    packed ones on one shard: the valid readings all count, once; each corrupt record is
    quarantined as corrupt_record; the shard never blocks; the archive holds plain JSON."""
    lines = fleet_lines(devices=4, hours=2)
    ingested, plain = lines[::2], lines[1::2]
    assert post_all(ingested, size=97) == len(ingested)  # 4 devices a request: ~3 KB each
    kinesis = deployed.client("kinesis")
    [(_, first)] = read_stream_head(kinesis)
    assert is_packed(first["Data"])  # what ingest publishes now
    whole = pack(b"[" + b",".join(x.encode() for x in plain[:40]) + b"]")
    corrupt = [whole[: len(whole) // 2], whole[:10] + bytes(b ^ 0x55 for b in whole[10:40])]
    records = [b"[" + x.encode() + b"]" for x in plain] + corrupt
    put = kinesis.put_records(
        StreamName=STREAM, Records=[{"Data": r, "PartitionKey": "other"} for r in records]
    )
    corrupt_ids = {r["SequenceNumber"] for r in put["Records"][-2:]}
    poller = Poller(deployed, batch_size=40)
    poller.run()
    assert poller.failures_seen == 0  # corrupt records never block the shard
    expected = expected_windows(lines)
    served = served_windows(sorted({d for d, _ in expected}), 2)
    assert {k: v["count"] for k, v in served.items()} == {k: s.count for k, s in expected.items()}
    s3 = deployed.client("s3")
    rejected = [
        rejection
        for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="rejected/")["Contents"]
        for rejection in decode_rejections(
            s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        )
    ]
    assert {r.record_id for r in rejected} == corrupt_ids and len(rejected) == 2
    assert {r.reason.value for r in rejected} == {"corrupt_record"}
    assert all("does not decompress" in r.message for r in rejected)
    archived = [
        record.data
        for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="raw/")["Contents"]
        for record in decode_batch(
            "b", s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        ).records
    ]
    assert len(archived) == len(read_stream(kinesis, STREAM))
    assert sorted(d for d in archived if is_packed(d)) == sorted(corrupt)  # kept as they came
    valid = [d for d in archived if d not in corrupt]
    assert valid and all(d.startswith(b"[{") for d in valid)  # as ingest accepted them


def read_stream_head(kinesis: Any) -> list[tuple[str, dict[str, Any]]]:
    """The stream's first record."""
    return read_stream(kinesis, STREAM)[:1]


class FlakyDynamo:
    """The real moto DynamoDB client, refusing writes of one device while ``down`` is set."""

    def __init__(self, real: Any, device: str) -> None:
        self._real, self._device, self.down = real, device, True

    def put_item(self, **kwargs: Any) -> Any:
        keys = (kwargs["Item"]["PK"]["S"], kwargs["Item"]["SK"]["S"])  # the device's items
        if self.down and any(self._device in key for key in keys):
            from botocore.exceptions import ClientError

            error = {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            }
            raise ClientError(error, "PutItem")
        return self._real.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_store_failure_names_exactly_the_unapplied_records_and_redelivery_converges(
    deployed: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = fleet_lines(devices=3, hours=1)
    post_all(lines, size=5)
    flaky = FlakyDynamo(deployed.client("dynamodb"), "iot-sensor-002")
    real_client = clients.client

    def client(service: str) -> Any:
        return flaky if service == "dynamodb" else real_client(service)

    monkeypatch.setattr(bootstrap, "client", client)
    bootstrap.process_service.cache_clear()
    poller = Poller(deployed, batch_size=1000)
    poller._fill()
    batch = poller.pending
    failed = {
        f["itemIdentifier"] for f in process.handler({"Records": batch}, None)["batchItemFailures"]
    }
    carrying = {
        r["kinesis"]["sequenceNumber"]
        for r in batch
        if b"iot-sensor-002" in base64.b64decode(r["kinesis"]["data"])
    }
    assert failed == carrying and failed
    flaky.down = False
    retry = [r for r in batch if r["kinesis"]["sequenceNumber"] in failed]
    assert process.handler({"Records": retry}, None)["batchItemFailures"] == []
    expected = expected_windows(lines)
    served = served_windows(["iot-sensor-001", "iot-sensor-002", "iot-sensor-003"], 1)
    assert {k: v["count"] for k, v in served.items()} == {k: s.count for k, s in expected.items()}


def test_the_http_handlers_translate_api_gateway_events(deployed: MotoServer) -> None:
    # Ingest checks the key itself (no gateway authorizer on its route by default, api.tf).
    for key in (None, "not-a-key", KEY + "x"):
        event = http_event("POST", "/v1/readings", b"[]", key=key)
        assert answer(ingest.handler(event, None))[0] == 401
    now = format_instant(int(time.time() * 1000) - 60_000).encode()
    reading = b'{"device_id":"key-1","timestamp":"' + now + b'","temperature":1}'
    event = http_event("POST", "/v1/readings", reading, key=None)
    event["headers"]["x-api-key"] = KEY  # the other documented header
    status, reply = answer(ingest.handler(event, None))
    assert (status, reply["accepted"]) == (202, 1), reply
    status, problem = answer(ingest.handler(http_event("POST", "/v1/readings", b"{oops"), None))
    assert status == 400 and problem["code"] == "malformed_json"
    status, _ = answer(ingest.handler(http_event("GET", "/v1/devices"), None))
    assert status == 404  # the ingest function serves ingest only
    status, health = answer(api.handler(http_event("GET", "/v1/health", key=None), None))
    assert health["status"] == "ok"
    assert status == 200
    status, _ = answer(api.handler(http_event("POST", "/v1/readings", b"[]"), None))
    assert status in (404, 405)  # the api function is read-only
    status, _ = answer(api.handler(http_event("GET", "/v1/devices/nobody/latest"), None))
    assert status == 404


def test_settings_read_every_documented_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    read = settings.AwsSettings.from_env(
        {
            settings.LATENESS_HORIZON_HOURS: "24",
            settings.MAX_SKEW_SECONDS: "60",
            settings.API_KEYS: "a, b,",
            settings.TTL_DAYS: "30",
        }
    )
    assert read.lateness == LatenessPolicy(
        horizon=timedelta(hours=24),
        max_skew=timedelta(seconds=60),
    )
    assert read.api_keys == ("a", "b") and read.ttl_days == 30
    with pytest.raises(settings.MissingSetting, match=settings.TABLE_NAME):
        read.need("table_name")
    assert read.compress_stream  # zlib unless told otherwise
    assert not settings.AwsSettings.from_env({settings.STREAM_COMPRESSION: "none"}).compress_stream
    with pytest.raises(settings.MissingSetting, match="zlib"):
        settings.AwsSettings.from_env({settings.STREAM_COMPRESSION: "gzip"})


# --- a deployment with its own telemetry schema ---------------------------------------------------


def test_the_functions_read_the_deployments_schema_and_refuse_an_unsafe_one(
    deployed: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from pathlib import Path

    from iotpipe import in_memory_pipeline
    from iotpipe.adapters.schema_file import load_schema
    from iotpipe.application.views import window_json
    from iotpipe.domain import SchemaConflict
    from iotpipe.entrypoints.deployed_schema import SCHEMA_FILE

    path = Path(__file__).parents[2] / "examples" / "schemas" / "industrial.toml"
    schema = load_schema(path)
    monkeypatch.setenv(SCHEMA_FILE, str(path))
    _forget_composition_roots()
    fleet = Fleet(3, 120, seed=5, schema=schema)
    lines = list(fleet.payloads(T0, T0 + 2 * MS_PER_HOUR, Faults(duplicates=0.2, disorder=0.2)))
    assert post_all(lines) == len(lines)
    Poller(deployed, batch_size=50).run()
    # What the API serves is what the in-process pipeline makes of the same payloads.
    local = in_memory_pipeline(schema=schema, lateness=LatenessPolicy.backfill())
    for _ in local.process_payloads([line.encode() for line in lines], batch_size=40):
        pass
    expected = {
        (w.device_id, w.hour_ms): window_json(w, schema) for w in local.query.every_window()
    }
    served = served_windows(sorted({d for d, _ in expected}), 2)
    assert served == expected
    assert all(w["pressure"]["count"] == 30 for w in served.values())
    # The table now remembers the schema: a deployment changing a metric's resolution is
    # refused as the process function starts, and the query function's too.
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("resolution = 0.01", "resolution = 0.1"))
    monkeypatch.setenv(SCHEMA_FILE, str(changed))
    _forget_composition_roots()
    with pytest.raises(SchemaConflict, match=r"'pressure' has resolution 0\.01 in the store"):
        bootstrap.process_service()  # what the handler builds on its first event
    with pytest.raises(SchemaConflict):
        api.handler(http_event("GET", "/v1/devices"), None)
