"""Fixtures of the HTTP API tests: a pipeline filled with a simulated fleet, and the API over it.

The fleet's payloads are kept, so tests can compute the truth independently of the API: by
running ``iotpipe process`` on them, or by aggregating the parsed readings directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from iotpipe import Pipeline, in_memory_pipeline
from iotpipe.adapters.clock import ManualClock
from iotpipe.domain import LatenessPolicy, Reading
from iotpipe.domain.time import MS_PER_HOUR, parse_instant
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys, HttpRequest, HttpResponse
from iotpipe.simulator import Faults, Fleet
from tests.oracle import distinct_readings

KEY = "test-key-5f1d2c9a7b"
SECOND_KEY = "second-key-0e4b8c"
WRONG_KEY = "test-key-5f1d2c9a7c"  # one character off
T0 = parse_instant("2025-08-31T00:00:00Z")
HOURS = 30
NOW = T0 + HOURS * MS_PER_HOUR
DEVICES = 7


@dataclass
class Filled:
    """A pipeline holding a simulated fleet's readings, and what was fed to it."""

    pipeline: Pipeline
    clock: ManualClock
    payloads: list[str]

    def readings(self) -> list[Reading]:
        """The distinct valid readings fed (resends collapse on identity)."""
        return distinct_readings(self.payloads)


def fill(
    devices: int = DEVICES, hours: int = HOURS, lateness: LatenessPolicy | None = None
) -> Filled:
    """A fresh pipeline with ``devices`` simulated for ``hours`` (with resends and disorder)."""
    clock = ManualClock(T0 + hours * MS_PER_HOUR)
    pipeline = in_memory_pipeline(clock=clock, lateness=lateness)
    fleet = Fleet(devices, interval_s=600, seed=11)
    faults = Faults(duplicates=0.1, disorder=0.1, malformed=0.02)
    payloads = list(fleet.payloads(T0, T0 + hours * MS_PER_HOUR, faults))
    for _ in pipeline.process_payloads([p.encode() for p in payloads], batch_size=97):
        pass
    return Filled(pipeline, clock, payloads)


@pytest.fixture
def filled() -> Filled:
    """A pipeline with the standard simulated fleet."""
    return fill()


@pytest.fixture
def api(filled: Filled) -> AnalyticsApi:
    """The API over the filled pipeline, checking every response against its declaration."""
    return AnalyticsApi.for_pipeline(
        filled.pipeline, ApiKeys([KEY, SECOND_KEY]), check_responses=True
    )


def get(api: AnalyticsApi, path: str, key: str | None = KEY, **query: str) -> HttpResponse:
    """``GET path?query`` with the key as a bearer token (``None``: no key)."""
    return api.handle(HttpRequest("GET", path, query, _auth(key)))


def post(
    api: AnalyticsApi,
    body: bytes | Any,
    key: str | None = KEY,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    """``POST /v1/readings`` with a JSON body (bytes are sent as they are)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"content-type": "application/json", **_auth(key), **(headers or {})}
    return api.handle(HttpRequest("POST", "/v1/readings", {}, sent, data))


def _auth(key: str | None) -> dict[str, str]:
    return {} if key is None else {"authorization": f"Bearer {key}"}
