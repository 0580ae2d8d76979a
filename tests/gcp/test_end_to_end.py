"""End to end across processes: three functions-framework servers and the three emulators.

HTTP readings -> the ingest function -> the Pub/Sub emulator -> a push subscription -> the
process function -> the Firestore and storage emulators -> the api function. The process
function's store fails for one device the first times (the emulator redelivers, the result is
exact) and always for another (its message ends on the dead-letter topic).
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotpipe.application.views import stats_json
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.simulator import Faults
from tests.gcp.deployment import (
    KEY,
    T0,
    Deployment,
    acknowledge,
    bodies,
    deploy,
    fleet_lines,
    pull,
    source_dir,
)
from tests.gcp_support import PROJECT, Server, free_port, start_server, unique
from tests.oracle import expected_windows

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

FLAKY, POISON = "iot-sensor-002", "poison-device-1"
MAX_DELIVERY_ATTEMPTS = 5  # Pub/Sub's minimum


@dataclass
class Stack:
    """The deployment, its dead-letter subscription and the three function servers."""

    deployment: Deployment
    dead_letters: str
    ingest: Server
    process: Server
    api: Server


def _serve(target: str, source: Path, env: dict[str, str]) -> Server:
    launcher = Path(sys.executable).parent / "functions-framework"
    port = free_port()
    command = [
        str(launcher),
        f"--target={target}",
        f"--source={source}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    return start_server(f"function-{target}", command, port, env=env, ready=_listening)


def _listening(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v1/health", timeout=2) as response:
            response.read()
        return True
    except urllib.error.HTTPError:
        return True  # it answered: the server is up
    except OSError:
        return False


@pytest.fixture
def stack(
    firestore_server: Server,
    pubsub_server: Server,
    storage_server: Server,
    tmp_path: Path,
) -> Iterator[Stack]:
    from google.cloud import pubsub_v1
    from google.pubsub_v1.types import DeadLetterPolicy, PushConfig

    deployment = deploy(firestore_server, pubsub_server, storage_server)
    source = source_dir(tmp_path / "source", [Path(__file__).with_name("faulty_main.py")])
    env = {
        **deployment.env,
        "IOTPIPE_TEST_FLAKY_DEVICE": FLAKY,
        "IOTPIPE_TEST_FLAKY_FAILURES": "2",
        "IOTPIPE_TEST_POISON_DEVICE": POISON,
    }
    servers: list[Server] = []
    try:
        servers.append(_serve("ingest", source / "main.py", env))
        servers.append(_serve("process", source / "faulty_main.py", env))
        servers.append(_serve("api", source / "main.py", env))
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        dead_topic = publisher.topic_path(PROJECT, unique("dead-letters"))
        publisher.create_topic(name=dead_topic)
        dead_letters = subscriber.subscription_path(PROJECT, unique("dead-letters"))
        subscriber.create_subscription(name=dead_letters, topic=dead_topic)
        endpoint = f"{servers[1].url}/projects/{PROJECT}/topics/{deployment.topic}"
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(PROJECT, unique("push")),
                "topic": deployment.topic_path,
                "push_config": PushConfig(push_endpoint=endpoint),
                "ack_deadline_seconds": 30,
                "dead_letter_policy": DeadLetterPolicy(
                    dead_letter_topic=dead_topic, max_delivery_attempts=MAX_DELIVERY_ATTEMPTS
                ),
            }
        )
        subscriber.close()
        yield Stack(deployment, dead_letters, *servers)
    finally:
        for server in servers:
            server.stop()


def call(server: Server, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        server.url + path,
        data=body,
        method=method,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read() or b"null")


def served_windows(stack: Stack, devices: list[str], hours: int) -> dict[Any, Any]:
    window = f"from={format_instant(T0)}&to={format_instant(T0 + hours * MS_PER_HOUR)}"
    out = {}
    for device in devices:
        status, page = call(stack.api, "GET", f"/v1/devices/{device}/hourly?{window}")
        if status == 200:
            out.update({(device, parse_instant(i["hour"])): i for i in page["items"]})
    return out


def wait_for(condition: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _entries(server: Server) -> list[dict[str, Any]]:
    """The structured log lines a function server wrote."""
    lines = server.log.read_text(errors="replace").splitlines()
    return [orjson.loads(line) for line in lines if line.startswith('{"severity"')]


def summaries(server: Server) -> list[dict[str, Any]]:
    """The per-message summary lines of the process function."""
    return [e for e in _entries(server) if e["message"] == "batch processed"]


def test_readings_flow_through_the_functions_exactly_despite_failures(stack: Stack) -> None:
    lines = fleet_lines(devices=3, hours=2, faults=Faults(duplicates=0.1, disorder=0.2))
    poison = [f'{{"device_id":"{POISON}","timestamp":"2025-08-31T10:00:00Z","temperature":1}}']
    for body in [*bodies(lines, size=80), *bodies(poison)]:
        status, reply = call(stack.ingest, "POST", "/v1/readings", body)
        assert status == 202 and reply["unpublished"] == [], reply
    # An attribute-only message (no data: the emulator pushes "data": "", production omits
    # the field) is quarantined and acknowledged, never retried into the dead-letter topic.
    from google.cloud import pubsub_v1

    empty_id = (
        pubsub_v1.PublisherClient()
        .publish(stack.deployment.topic_path, b"", device_id="attribute-only")
        .result()
    )
    expected = expected_windows(lines)
    devices = sorted({d for d, _ in expected})

    def exact() -> bool:
        got = served_windows(stack, devices, 2)
        return got.keys() == expected.keys() and all(
            {k: v for k, v in got[key].items() if k not in ("device_id", "hour")}
            == stats_json(stats)
            for key, stats in expected.items()
        )

    wait_for(exact, 90, "the api to serve exactly the expected aggregates")
    # The flaky device's messages failed and were redelivered by the emulator before success.
    logged = summaries(stack.process)
    failed = [s for s in logged if s["failed_records"]]
    assert failed and all(
        s["errors"] == ["unavailable: firestore: injected outage"] for s in failed
    )
    assert sum(s["accepted"] for s in logged) == sum(stats.count for stats in expected.values())

    dead = wait_for(lambda: pull(stack.dead_letters, wait_s=2), 90, "the dead-letter topic")
    assert [m.message.data for m in dead] == [b"[" + poison[0].encode() + b"]"]
    attributes = dict(dead[0].message.attributes)
    assert attributes["device_id"] == POISON
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == str(MAX_DELIVERY_ATTEMPTS)
    acknowledge(stack.dead_letters, [m.ack_id for m in dead])
    assert call(stack.api, "GET", f"/v1/devices/{POISON}/latest")[0] == 404

    from google.cloud import storage

    bucket = storage.Client(project=PROJECT).bucket(stack.deployment.bucket)
    archived = [blob.name.rsplit("/", 1)[1] for blob in bucket.list_blobs(prefix="raw/")]
    # One object per message however often it was delivered: its name is the message id.
    published = (
        sum(
            len({orjson.loads(x)["device_id"] for x in lines[i : i + 80]})
            for i in range(0, len(lines), 80)
        )
        + 1
    )
    gave_up = {e["batch_id"] for e in _entries(stack.process) if e["message"] == "batch failed"}
    assert len(gave_up) == 1 and len(archived) == published + 1  # + the attribute-only one
    assert {name.removesuffix(".jsonl.gz") for name in archived} == (
        {s["batch_id"] for s in logged} | gave_up
    )
    quarantined = [b.name for b in bucket.list_blobs(prefix="rejected/")]
    assert [n for n in quarantined if n.endswith(f"/{empty_id}.jsonl.gz")]
    [empty] = [s for s in logged if s["batch_id"] == empty_id]
    assert empty["failed_records"] == 0 and empty["subscription"]  # the push body's own field
