"""Shared fixtures: every store adapter, behind one parametrised fixture.

Later adapters (SQLite, DynamoDB on moto, Firestore on its emulator) join ``STORE_FACTORIES``
and so every store test: the contract suite, the stateful machine and the exactness property.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from iotpipe.adapters.memory import MemoryStore
from iotpipe.ports import AggregateStore

StoreFactory = Callable[[], AggregateStore]


def _memory() -> Iterator[StoreFactory]:
    yield MemoryStore


STORE_FACTORIES: dict[str, Callable[[], Iterator[StoreFactory]]] = {"memory": _memory}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store_factory(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """A callable making a fresh, empty store of one adapter kind (one param per adapter)."""
    yield from STORE_FACTORIES[request.param]()
