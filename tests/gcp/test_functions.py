"""The three Cloud Functions served in-process by functions-framework, on the emulators.

Requests go through functions-framework's own flask app (``create_app(...).test_client()``),
loaded from ``main.py`` as Cloud Functions loads it. Pub/Sub messages published by the ingest
function are pulled from the emulator and handed to the process function as the binary-mode
CloudEvents a 2nd gen function receives; a non-2xx answer leaves the message unacknowledged,
so it is delivered again, as Pub/Sub would.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe.application.views import stats_json
from iotpipe.domain import LatenessPolicy, StoreUnavailable
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.entrypoints.gcp import api, bootstrap, clients, ingest, process, settings
from iotpipe.simulator import Faults
from tests.gcp.deployment import (
    KEY,
    T0,
    Deployment,
    acknowledge,
    bodies,
    cloud_event_headers,
    deploy,
    fleet_lines,
    pull,
    push_body,
    source_dir,
)
from tests.gcp_support import PROJECT, Server
from tests.oracle import expected_windows

pytestmark = pytest.mark.integration


def _forget_composition_roots() -> None:
    clients.forget()
    for module in (ingest, api, process):
        module.settings.cache_clear()
    bootstrap.forget()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source_dir(tmp_path_factory.mktemp("gcf-source")) / "main.py"


@pytest.fixture
def deployed(
    firestore_server: Server,
    pubsub_server: Server,
    storage_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deployment]:
    deployment = deploy(firestore_server, pubsub_server, storage_server)
    for name, value in deployment.env.items():
        monkeypatch.setenv(name, value)
    _forget_composition_roots()
    yield deployment
    _forget_composition_roots()


class Functions:
    """Test clients of the three functions, as functions-framework serves them."""

    def __init__(self, source: Path, deployment: Deployment) -> None:
        import functions_framework

        self.deployment = deployment
        self.ingest = functions_framework.create_app("ingest", str(source), "http").test_client()
        self.api = functions_framework.create_app("api", str(source), "http").test_client()
        self.process = functions_framework.create_app("process", str(source), "http").test_client()

    def post(self, body: bytes, key: str | None = KEY, **headers: str) -> Any:
        if key:
            headers["authorization"] = f"Bearer {key}"
        return self.ingest.post(
            "/v1/readings", data=body, headers={"content-type": "application/json", **headers}
        )

    def deliver(self, message: Any) -> int:
        """Push one pulled message to the process function; its HTTP status."""
        response = self.process.post(
            "/",
            data=orjson.dumps(push_body(message, self.deployment.subscription)),
            headers=cloud_event_headers(message.message_id, self.deployment.topic_path),
        )
        return int(response.status_code)

    def drain(self, max_rounds: int = 50) -> int:
        """Deliver until the subscription is empty; acknowledge what succeeded. Returns the
        number of deliveries that failed (and so were left for redelivery)."""
        failures = 0
        for _ in range(max_rounds):
            received = pull(self.deployment.subscription, wait_s=1.5)
            if not received:
                return failures
            done = []
            for item in received:
                if self.deliver(item.message) == 200:
                    done.append(item.ack_id)
                else:
                    failures += 1
            if done:
                acknowledge(self.deployment.subscription, done)
            if len(done) < len(received):
                # The others come back after their ack deadline; hand them back at once.
                _nack(
                    self.deployment.subscription,
                    [i.ack_id for i in received if i.ack_id not in done],
                )
        raise AssertionError("the subscription did not drain")

    def hourly(self, device: str, hours: int) -> dict[tuple[str, int], dict[str, Any]]:
        query = {"from": format_instant(T0), "to": format_instant(T0 + hours * MS_PER_HOUR)}
        response = self.api.get(
            f"/v1/devices/{device}/hourly",
            query_string=query,
            headers={"authorization": f"Bearer {KEY}"},
        )
        assert response.status_code == 200, response.data
        items = orjson.loads(response.data)["items"]
        return {(device, parse_instant(i["hour"])): i for i in items}


def _nack(subscription: str, ack_ids: list[str]) -> None:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=ack_ids, ack_deadline_seconds=0
    )
    subscriber.close()


@pytest.fixture
def functions(source: Path, deployed: Deployment) -> Functions:
    return Functions(source, deployed)


def served(functions: Functions, devices: list[str], hours: int) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for device in devices:
        out.update(functions.hourly(device, hours))
    return out


def assert_exact(functions: Functions, lines: list[str], hours: int) -> dict[Any, Any]:
    expected = expected_windows(lines)
    got = served(functions, sorted({d for d, _ in expected}), hours)
    assert got.keys() == expected.keys()
    for key, stats in expected.items():
        assert {k: v for k, v in got[key].items() if k not in ("device_id", "hour")} == (
            stats_json(stats)
        )
    return got


def test_ingest_pubsub_process_firestore_and_api_end_exact(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = fleet_lines(faults=Faults(duplicates=0.2, disorder=0.2))
    for body in bodies(lines):
        response = functions.post(body)
        assert response.status_code == 202, response.data
        reply = orjson.loads(response.data)
        assert reply["rejected"] == [] and reply["unpublished"] == []
    assert functions.drain() == 0
    before = assert_exact(functions, lines, 2)
    # Everything again (device resends): the stored result does not move.
    for body in bodies(lines, size=61):
        assert functions.post(body).status_code == 202
    functions.drain()
    assert served(functions, sorted({d for d, _ in before}), 2) == before
    summaries = [
        orjson.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"batch processed"' in line
    ]
    assert summaries and all(s["severity"] == "INFO" for s in summaries)
    assert sum(s["accepted"] for s in summaries) == sum(
        stats.count for stats in expected_windows(lines).values()
    )
    assert {"received", "duplicates", "rejected", "windows_updated", "lag_ms"} <= summaries[
        0
    ].keys()
    assert summaries[0]["logging.googleapis.com/labels"] == {"function": "process"}


def test_garbage_is_quarantined_and_acknowledged(functions: Functions) -> None:
    from google.cloud import pubsub_v1, storage

    publisher = pubsub_v1.PublisherClient()
    for data in (b"{not json", b'{"device_id": "x"}', b"[1, 2]", b"\xff\xfe"):
        publisher.publish(functions.deployment.topic_path, data).result()
    assert functions.drain() == 0  # poison never loops
    bucket = storage.Client(project=PROJECT).bucket(functions.deployment.bucket)
    rejected = [b.name for b in bucket.list_blobs(prefix="rejected/")]
    raw = [b.name for b in bucket.list_blobs(prefix="raw/")]
    assert len(rejected) == 4 and len(raw) == 4
    assert all(name.startswith("rejected/dt=") for name in rejected)


def test_a_store_failure_raises_so_the_message_is_redelivered_and_the_end_is_exact(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iotpipe.adapters.gcp.firestore import FirestoreStore

    down = {"iot-sensor-002"}
    real_commit = FirestoreStore._commit

    def flaky_commit(self: FirestoreStore, saves: Any, *records: Any) -> Any:
        if any(save.window.device_id in down for save in saves):
            raise StoreUnavailable("firestore: injected outage")
        return real_commit(self, saves, *records)

    monkeypatch.setattr(FirestoreStore, "_commit", flaky_commit)
    lines = fleet_lines(devices=3, hours=1)
    for body in bodies(lines, size=20):
        assert functions.post(body).status_code == 202
    received = pull(functions.deployment.subscription)
    statuses = {item.message.attributes["device_id"]: set() for item in received}
    for item in received:
        statuses[item.message.attributes["device_id"]].add(functions.deliver(item.message))
    assert statuses["iot-sensor-002"] == {500}  # raised: Pub/Sub will deliver it again
    assert all(codes == {200} for device, codes in statuses.items() if device not in down)
    down.clear()
    for item in received:  # the redelivery
        assert functions.deliver(item.message) == 200
    acknowledge(functions.deployment.subscription, [i.ack_id for i in received])
    functions.drain()
    assert_exact(functions, lines, 1)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"hello": "world"}', cloud_event_headers("1", "projects/p/topics/t")),
        (b'{"hello": "world"}', {"content-type": "application/json"}),
        (b"not json", {"content-type": "application/json"}),
        (b'{"message": {"data": "aGk="}}', {"content-type": "application/json"}),  # no id
        (  # a Cloud Storage notification that names no object
            b'{"message": {"messageId": "7", "attributes": {"eventType": "OBJECT_FINALIZE"}}}',
            {"content-type": "application/json"},
        ),
    ],
)
def test_a_request_that_is_not_a_pubsub_delivery_is_refused(
    functions: Functions, body: bytes, headers: dict[str, str]
) -> None:
    response = functions.process.post("/", data=body, headers=headers)
    assert response.status_code == 400  # not acknowledged: retried, then dead-lettered


# --- the documented push shapes -------------------------------------------------------------------

PUBLISHED = "2025-08-31T12:00:00.123456789Z"


def _message(data: bytes | None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"attributes": {"device_id": "push-dev"}, **fields}
    if data is not None:
        message["data"] = base64.b64encode(data).decode()
    return message


def _reading(minute: int) -> bytes:
    return orjson.dumps(
        [
            {
                "device_id": "push-dev",
                "timestamp": format_instant(T0 + minute * 60_000),
                "temperature": minute,
            }
        ]
    )


def _objects(functions: Functions, prefix: str) -> list[str]:
    from google.cloud import storage

    bucket = storage.Client(project=PROJECT).bucket(functions.deployment.bucket)
    return [b.name for b in bucket.list_blobs(prefix=prefix)]


PUSH_SHAPES = {
    # A push subscription's body (camelCase, with deliveryAttempt under a dead-letter policy).
    "push": lambda m, sub: ({"message": m, "subscription": sub, "deliveryAttempt": 3}, {}),
    # The same from a producer spelling the keys in snake case.
    "push, snake case": lambda m, sub: ({"message": m, "subscription": sub}, {}),
    # An Eventarc trigger: a binary-mode CloudEvent, the data as body.
    "binary CloudEvent": lambda m, sub: (
        {"message": m, "subscription": sub},
        cloud_event_headers("ce-77", "projects/p/topics/t"),
    ),
    # A structured-mode CloudEvent.
    "structured CloudEvent": lambda m, sub: (
        {
            "specversion": "1.0",
            "id": "ce-78",
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/p/topics/t",
            "data": {"message": m, "subscription": sub},
        },
        {"content-type": "application/cloudevents+json"},
    ),
}


@pytest.mark.parametrize("shape", sorted(PUSH_SHAPES))
def test_every_documented_push_shape_is_processed(
    functions: Functions, shape: str, capsys: pytest.CaptureFixture[str]
) -> None:
    snake = shape == "push, snake case"
    ids = {"message_id": "501", "publish_time": PUBLISHED} if snake else {
        "messageId": "501", "publishTime": PUBLISHED}  # fmt: skip
    body, headers = PUSH_SHAPES[shape](_message(_reading(1), **ids), "projects/p/subscriptions/s")
    response = functions.process.post(
        "/", data=orjson.dumps(body), headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 200, response.data
    assert functions.hourly("push-dev", 1)[("push-dev", T0)]["count"] == 1
    assert [n for n in _objects(functions, "raw/") if n.endswith("/501.jsonl.gz")]
    [summary] = [
        orjson.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if '"batch processed"' in line
    ]
    assert summary["batch_id"] == "501" and summary["accepted"] == 1
    if shape == "push":  # the push envelope's own fields reach the summary line
        assert (summary["subscription"], summary["delivery_attempt"]) == (
            "projects/p/subscriptions/s",
            3,
        )


@pytest.mark.parametrize("shape", sorted(PUSH_SHAPES))
def test_an_attribute_only_message_is_quarantined_and_acknowledged(
    functions: Functions, shape: str
) -> None:
    """Pub/Sub omits ``data`` for an empty message; functions-framework's CloudEvent conversion
    answered 400 for it, so it was retried until dead-lettered instead of quarantined."""
    body, headers = PUSH_SHAPES[shape](
        _message(None, messageId="601", publishTime=PUBLISHED), "projects/p/subscriptions/s"
    )
    response = functions.process.post(
        "/", data=orjson.dumps(body), headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 200, response.data  # acknowledged: never redelivered
    [rejected] = _objects(functions, "rejected/")
    assert rejected.endswith("/601.jsonl.gz")


@pytest.mark.parametrize("shape", ["binary CloudEvent", "structured CloudEvent"])
def test_a_message_without_an_id_takes_the_cloud_event_id(functions: Functions, shape: str) -> None:
    body, headers = PUSH_SHAPES[shape](_message(_reading(2)), "projects/p/subscriptions/s")
    response = functions.process.post(
        "/", data=orjson.dumps(body), headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 200, response.data
    event_id = headers.get("ce-id") or body["id"]
    assert [n for n in _objects(functions, "raw/") if n.endswith(f"/{event_id}.jsonl.gz")]


def test_the_http_functions_translate_requests(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    assert functions.post(b"[]", key=None).status_code == 401
    response = functions.post(b"{oops")
    assert response.status_code == 400 and orjson.loads(response.data)["code"] == "malformed_json"
    too_big = b"[" + b" " * (1 << 20) + b"]"
    assert functions.post(too_big).status_code == 413
    headers = {"authorization": f"Bearer {KEY}"}
    assert functions.ingest.get("/v1/devices", headers=headers).status_code == 404
    health = functions.api.get("/v1/health")
    assert health.status_code == 200 and orjson.loads(health.data)["status"] == "ok"
    assert functions.api.head("/v1/health").data == b""
    assert functions.api.post("/v1/readings", data=b"[]", headers=headers).status_code in (
        404,
        405,
    )
    assert functions.api.get("/v1/devices/nobody/latest", headers=headers).status_code == 404
    page = functions.api.get("/v1/devices?limit=1&limit=2", headers=headers)
    assert page.status_code == 400  # repeated parameters arrive joined: "1,2" is no number
    assert functions.api.get("/v1/devices", headers=headers).status_code == 200


def test_api_errors_are_logged_with_the_request_trace(
    functions: Functions, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from iotpipe.adapters.gcp.firestore import FirestoreStore

    def broken(self: FirestoreStore, **_: Any) -> Any:
        raise RuntimeError("a bug")

    # The function started first (its start-up reads the store's schema record, which a store
    # without one answers by asking for a device): the bug is in the request.
    assert functions.api.get("/v1/health").status_code == 200
    monkeypatch.setattr(FirestoreStore, "devices", broken)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = functions.api.get(
        "/v1/devices",
        headers={
            "authorization": f"Bearer {KEY}",
            "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
        },
    )
    assert response.status_code == 500
    [entry] = [
        orjson.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and "unexpected error" in line
    ]
    assert entry["severity"] == "ERROR" and "RuntimeError: a bug" in entry["message"]
    assert entry["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{trace}"
    assert entry["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert entry["logging.googleapis.com/trace_sampled"] is True
    assert entry["logging.googleapis.com/labels"] == {"function": "api"}


def test_settings_read_every_documented_variable() -> None:
    read = settings.GcpSettings.from_env(
        {
            settings.PROJECT: "proj",
            settings.TOPIC: "readings",
            settings.LATENESS_HORIZON_HOURS: "24",
            settings.MAX_SKEW_SECONDS: "60",
            settings.API_KEYS: "a, b,",
            settings.TTL_DAYS: "30",
            settings.FIRESTORE_PREFIX: "p_",
            settings.FLEET_LANES: "8",
        }
    )
    assert read.lateness == LatenessPolicy(
        horizon=timedelta(hours=24), max_skew=timedelta(seconds=60)
    )
    assert read.api_keys == ("a", "b") and read.ttl_days == 30 and read.fleet_lanes == 8
    assert read.topic_path() == "projects/proj/topics/readings"
    assert read.firestore_prefix == "p_" and read.firestore_database == "(default)"
    with pytest.raises(settings.MissingSetting, match=settings.BUCKET):
        read.need_bucket()
    bare = settings.GcpSettings.from_env({settings.TOPIC: "readings"})
    assert bare.fleet_lanes == 0  # lanes off unless the deployment turns them on
    with pytest.raises(settings.MissingSetting, match=settings.PROJECT):
        bare.topic_path()
    full = settings.GcpSettings.from_env({settings.TOPIC: "projects/x/topics/y"})
    assert full.topic_path() == "projects/x/topics/y"


def test_importing_the_entry_module_loads_no_google_client(tmp_path: Path) -> None:
    import subprocess
    import sys

    main = source_dir(tmp_path) / "main.py"
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "print(sorted(m for m in sys.modules if m.startswith(('google.cloud.firestore',"
        "'google.cloud.pubsub', 'google.cloud.storage', 'grpc'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(main)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


# --- a deployment with its own telemetry schema ---------------------------------------------------


def test_the_functions_read_the_deployments_schema_and_refuse_an_unsafe_one(
    functions: Functions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from iotpipe import in_memory_pipeline
    from iotpipe.adapters.schema_file import load_schema
    from iotpipe.application.views import window_json
    from iotpipe.domain import SchemaConflict
    from iotpipe.entrypoints.deployed_schema import SCHEMA_FILE
    from iotpipe.simulator import Fleet

    path = Path(__file__).parents[2] / "examples" / "schemas" / "agricultural.toml"
    schema = load_schema(path)
    monkeypatch.setenv(SCHEMA_FILE, str(path))
    _forget_composition_roots()
    fleet = Fleet(3, 120, seed=5, schema=schema)
    lines = list(fleet.payloads(T0, T0 + 2 * MS_PER_HOUR, Faults(duplicates=0.2, disorder=0.2)))
    for body in bodies(lines):
        assert functions.post(body).status_code == 202
    assert functions.drain() == 0
    local = in_memory_pipeline(schema=schema, lateness=LatenessPolicy.backfill())
    for _ in local.process_payloads([line.encode() for line in lines], batch_size=40):
        pass
    expected = {
        (w.device_id, w.hour_ms): window_json(w, schema) for w in local.query.every_window()
    }
    assert served(functions, sorted({d for d, _ in expected}), 2) == expected
    # Firestore now remembers the schema: a changed unit is refused as the functions start.
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace('unit = "V"', 'unit = "mV"'))
    monkeypatch.setenv(SCHEMA_FILE, str(changed))
    _forget_composition_roots()
    with pytest.raises(SchemaConflict, match="'battery_voltage' has unit 'V' in the store"):
        bootstrap.process_service()
    with pytest.raises(SchemaConflict):
        bootstrap.query_api()


def test_a_notification_of_another_event_or_bucket_is_acknowledged_and_ignored(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a new file in the archive bucket is processed; any other notification is
    acknowledged (200) and logged, never retried into the dead-letter topic."""
    from tests.gcp.stream_files import notification, stream_name, write_file

    bucket = functions.deployment.bucket
    file = write_file(bucket, stream_name(T0, "u"), [b'[{"device_id": "d", "timestamp": 1}]'])
    for name_bucket, event in ((bucket, "OBJECT_DELETE"), ("another-bucket", "OBJECT_FINALIZE")):
        data, attributes = notification(name_bucket, file.name, file.generation, 10)
        body = {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": {**attributes, "eventType": event},
                "messageId": "n1",
            },
            "subscription": "projects/p/subscriptions/process-files",
        }
        response = functions.process.post(
            "/", data=orjson.dumps(body), headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.data
    lines = [orjson.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    reasons = [x["reason"] for x in lines if x.get("message") == "notification ignored"]
    assert reasons == ["event OBJECT_DELETE", "bucket another-bucket is not the archive bucket"]
    assert _objects(functions, "rejected/") == []  # nothing was read as readings
