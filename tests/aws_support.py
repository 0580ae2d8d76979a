"""A moto server for the AWS adapter tests: started once per test session, reset between tests.

moto runs in server mode (a real HTTP endpoint, in a thread of this process) and boto3 clients
talk to it over HTTP exactly as they would to AWS: no hand-written fakes of boto3. The server
starts on first use, on a port the OS picks (so no two runs collide), and stops when the test
session ends.

``STORE_FACTORIES`` entries take no fixtures (``store_factory`` calls them without arguments),
so the ``dynamodb`` entry and the ``moto_server`` fixture share one lazily started server.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from iotpipe.adapters.aws import DynamoStore, create_table

REGION = "us-east-1"
#: Small enough that a handful of devices spread over several shards and pages get merged.
TEST_FLEET_SHARDS = 3


class MotoServer:
    """One moto server on 127.0.0.1, with boto3 clients pointed at it."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on this server (one per service; clients are
        thread-safe), with dummy credentials and few client-side retries."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(
                    service,
                    endpoint_url=self.endpoint,
                    region_name=REGION,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 2},
                        max_pool_connections=32,
                    ),
                )
            return self._clients[service]

    def reset(self) -> None:
        """Forget every table, stream and bucket."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        """Shut the server down."""
        self._server.stop()


_shared: MotoServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> MotoServer:
    """The session's moto server, started on first use and stopped when the session ends."""
    global _shared  # noqa: PLW0603 - one server per test process, by design
    with _shared_lock:
        if _shared is None:
            _shared = MotoServer()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture(scope="session")
def moto_server() -> MotoServer:
    """The session's moto server (see :func:`shared_server`)."""
    return shared_server()


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The moto server, emptied for this test."""
    moto_server.reset()
    return moto_server


def fresh_table(server: MotoServer) -> str:
    """Create a new, empty store table on the server; returns its name."""
    name = f"windows-{next(_table_numbers)}"
    create_table(server.client("dynamodb"), name)
    return name


_table_numbers = itertools.count()


def dynamodb_stores() -> Iterator[Callable[[], DynamoStore]]:
    """A ``STORE_FACTORIES`` entry: each call makes a store on a new table of the moto server."""
    server = shared_server()
    server.reset()

    def make() -> DynamoStore:
        # The store folds the table's stream itself before a fleet total (the deployment's
        # fold function does it on AWS): the same FleetFold over moto's real stream records.
        return DynamoStore(
            fresh_table(server),
            server.client("dynamodb"),
            fleet_shards=TEST_FLEET_SHARDS,
            stream=server.client("dynamodbstreams"),
        )

    yield make
