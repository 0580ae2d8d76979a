"""API Gateway stages and custom-domain base paths: every route answers whatever the prefix.

With a named stage called through the API's own endpoint, ``rawPath`` is ``/<stage>/v1/...``;
through a custom domain with an API mapping key it is ``/<key>/v1/...`` (the stage is not in
it). Only the ``$default`` stage has no prefix. The handlers are driven with such events,
against moto, and a query parameter a device adds to its URL does not cost it its readings.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from iotpipe.adapters.aws import create_table
from iotpipe.entrypoints.aws import api, bootstrap, clients, ingest, settings
from iotpipe.entrypoints.aws.apigw import route_path
from tests.aws.apigw import answer, http_event
from tests.aws_support import REGION, MotoServer

KEY = "stage-test-key-123"
STREAM, TABLE = "stage-readings", "stage-windows"
READING = {"device_id": "stage-dev", "timestamp": "2025-08-31T10:00:00Z", "temperature": 20.5}
CUSTOM = "iot.example.com"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("stage", "domain", "prefix", "base_path"),
    [
        ("$default", "abc123.execute-api.us-east-1.amazonaws.com", "", ""),
        ("prod", "abc123.execute-api.us-east-1.amazonaws.com", "/prod", ""),
        ("v1", "abc123.execute-api.us-east-1.amazonaws.com", "/v1", ""),  # a stage named v1
        ("prod", CUSTOM, "", ""),  # a custom domain mapped at its root: no prefix at all
        ("prod", CUSTOM, "/iot", "iot"),  # ... and with the API mapping key "iot"
        ("$default", CUSTOM, "/iot/api", "/iot/api/"),  # a two-segment key, given with slashes
    ],
)
@pytest.mark.parametrize("path", ["/v1/readings", "/v1/devices/d-1/hourly", "/"])
def test_the_routed_path_has_no_stage_or_base_path(
    stage: str, domain: str, prefix: str, base_path: str, path: str
) -> None:
    event = http_event("GET", path, stage=stage, domain=domain, prefix=prefix)
    assert route_path(event, base_path) == path


@pytest.mark.unit
def test_only_whole_leading_segments_are_stripped() -> None:
    event = http_event("GET", "/v1/devices", stage="v", prefix="")
    assert route_path(event) == "/v1/devices"  # "/v" is not a segment of "/v1/devices"
    event = http_event("GET", "/v1/devices/prod", stage="prod", domain=CUSTOM)
    assert route_path(event) == "/v1/devices/prod"  # a custom domain never adds the stage


@pytest.fixture
def handlers(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    moto.client("kinesis").create_stream(StreamName=STREAM, ShardCount=1)
    create_table(moto.client("dynamodb"), TABLE)
    for name, value in {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        settings.STREAM_NAME: STREAM,
        settings.TABLE_NAME: TABLE,
        settings.API_KEYS: KEY,
        settings.LATENESS_HORIZON_HOURS: "0",
        settings.API_BASE_PATH: "iot",
    }.items():
        monkeypatch.setenv(name, value)
    _forget()
    yield moto
    _forget()


def _forget() -> None:
    for cached in (
        clients.client,
        bootstrap.ingest_api,
        bootstrap.query_api,
        bootstrap.process_service,
    ):
        cached.cache_clear()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("stage", "domain", "prefix"),
    [
        ("$default", "abc123.execute-api.us-east-1.amazonaws.com", ""),
        ("prod", "abc123.execute-api.us-east-1.amazonaws.com", "/prod"),
        ("prod", CUSTOM, "/iot"),  # the base path comes from IOTPIPE_API_BASE_PATH
    ],
)
def test_every_handler_answers_under_a_stage_or_base_path(
    handlers: MotoServer, stage: str, domain: str, prefix: str
) -> None:
    body = orjson.dumps([READING])
    sent = http_event(
        "POST", "/v1/readings", body, {"v": "2"}, KEY, stage=stage, domain=domain, prefix=prefix
    )
    status, reply = answer(ingest.handler(sent, None))
    assert (status, reply["accepted"]) == (202, 1), reply
    where = {"stage": stage, "domain": domain, "prefix": prefix}
    status, health = answer(api.handler(http_event("GET", "/v1/health", **where), None))
    assert (status, health["status"]) == (200, "ok")
    status, page = answer(
        api.handler(
            http_event("GET", "/v1/devices", key=KEY, stage=stage, domain=domain, prefix=prefix),
            None,
        )
    )
    assert status == 200, page
