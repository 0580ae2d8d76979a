"""Shared fixtures: every store adapter, behind one parametrised fixture.

Later adapters (SQLite, DynamoDB on moto, Firestore on its emulator) join ``STORE_FACTORIES``
and so every store test: the contract suite, the stateful machine and the exactness property.
"""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from iotpipe.adapters.local import SqliteStore
from iotpipe.adapters.memory import MemoryStore
from iotpipe.ports import AggregateStore

StoreFactory = Callable[[], AggregateStore]

# Properties are about results, not speed: a loaded machine (CI, or several suites at once) must
# not fail an example by the clock. Benchmarks measure speed.
settings.register_profile("iotpipe", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("iotpipe")


def pytest_configure(config: pytest.Config) -> None:
    """Let Ctrl-C reach the servers the tests start, however the suite itself was started.

    A suite run as a background job (``cmd &``, ``nohup``) inherits SIGINT ignored, and so
    would every child process: the tests that stop a server or the demo with SIGINT would
    wait for nothing. A handled signal is reset to the default in children, so handling it
    here gives them back Python's usual KeyboardInterrupt.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _memory() -> Iterator[StoreFactory]:
    yield MemoryStore


def _sqlite() -> Iterator[StoreFactory]:
    """Each call opens a fresh database file; all are closed and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="iotpipe-sqlite-") as directory:
        opened: list[SqliteStore] = []

        def fresh() -> SqliteStore:
            store = SqliteStore(Path(directory) / f"store-{len(opened)}.db")
            opened.append(store)
            return store

        try:
            yield fresh
        finally:
            for store in opened:
                store.close()


STORE_FACTORIES: dict[str, Callable[[], Iterator[StoreFactory]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


def _dynamodb() -> Iterator[StoreFactory]:
    # DynamoStore on the session's moto server (tests/aws_support.py): a new table per store.
    # Imported here so that boto3 and moto load only when a DynamoDB test runs.
    from tests.aws_support import dynamodb_stores

    yield from dynamodb_stores()


STORE_FACTORIES["dynamodb"] = _dynamodb


def _firestore() -> Iterator[StoreFactory]:
    # FirestoreStore on the session's Firestore emulator (tests/gcp_support.py): a collection
    # prefix per store. Imported here so that the Google clients load only for Firestore tests.
    from tests.gcp_support import firestore_stores

    yield from firestore_stores()


def _firestore_lanes_off() -> Iterator[StoreFactory]:
    # The same with fleet lanes off (the GCP deployment's default): totals walk the windows.
    from tests.gcp_support import firestore_stores

    yield from firestore_stores(fleet_lanes=0)


STORE_FACTORIES["firestore"] = _firestore
STORE_FACTORIES["firestore-lanes-off"] = _firestore_lanes_off


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store_factory(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """A callable making a fresh, empty store of one adapter kind (one param per adapter)."""
    yield from STORE_FACTORIES[request.param]()
