"""Golden documents of the Firestore store: what a deployed database holds, pinned by digest.

The SQLite rows (``tests/unit/test_golden.py``) and the DynamoDB items
(``tests/aws/test_golden_format2.py``) are pinned; this holds Firestore's documents the same way.
The golden input (the simulated hours with every fault, then a dense hour) goes through the real
adapter against the Firestore emulator, and every document under the store's prefix (devices,
their window documents, each hour's fleet lanes, the schema record) is digested in a canonical
form: documents sorted by path, fields by name, bytes as hex, times by type only (the server
sets them), and each hour's lanes (a commit
picks its lane at random) as one document holding their merged total, re-encoded by the same
codec. A change to what the store writes fails here until the format version and this digest
are changed on purpose.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest

from iotpipe import LatenessPolicy, in_memory_pipeline
from iotpipe.adapters.gcp import FirestoreStore
from iotpipe.adapters.gcp.firestore import LANES
from iotpipe.application.codecs.heads import decode_total, encode_total
from iotpipe.domain import FleetTotal
from tests.gcp_support import Server, firestore_client, reset_firestore
from tests.unit.test_golden import _dense, _simulated

pytestmark = pytest.mark.integration

#: The database's documents after the golden input, with the store's default fleet lanes.
#: Computed on this repository's code (the commit that added this test).
FIRESTORE_DOCUMENTS_SHA256 = "52c7f8a79adc0bc506a5f2f3861eeac1f44645339e94ad58ebf158cac52d6ae0"

#: Documents per collection path (ids replaced by ``*``): the fold into lanes is exercised.
EXPECTED_COLLECTIONS = {
    "golden_devices/*": 7,
    "golden_devices/*/golden_hours/*": 26,
    "golden_fleet/*/golden_lanes/*": 6,  # each hour's lanes, merged
    "golden_schema/*": 1,
}

PREFIX = "golden_"


def _canonical(value: object) -> object:
    """A Firestore value as JSON-ready data (bytes as hex, maps sorted); a time is the run's
    (a device's ``registered_at`` is the server's clock), so only its type is kept."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, datetime):
        return {"time": "<the run's>"}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _documents(collections: Iterator[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, fields) of every document under these collections, subcollections included."""
    for collection in collections:
        for ref in collection.list_documents():
            snapshot = ref.get()
            if snapshot.exists:
                yield ref.path, snapshot.to_dict()
            yield from _documents(ref.collections())


def _merged_lanes(documents: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The documents with each hour's lanes replaced by one, ``<hour>/lanes/*``, whose total is
    theirs merged (their other fields must agree)."""
    kept, lanes = [], defaultdict(list)
    for path, fields in documents:
        hour, _, lane = path.rpartition("/")
        if hour.endswith(PREFIX + LANES):
            lanes[hour].append(fields)
        else:
            kept.append((path, fields))
    for hour, fields in lanes.items():
        total = FleetTotal()
        for lane in fields:
            total = total.merge(decode_total(lane["total"]))
        rest = [{k: v for k, v in lane.items() if k != "total"} for lane in fields]
        assert all(r == rest[0] for r in rest), rest
        kept.append((f"{hour}/*", {**rest[0], "total": encode_total(total)}))
    return sorted(kept)


def _golden_documents(client: Any) -> tuple[str, dict[str, int]]:
    """The digest of the store's canonical documents after the golden input, and documents
    per collection path."""
    store = FirestoreStore(client, prefix=PREFIX, timeout_s=30)
    pipeline = in_memory_pipeline(lateness=LatenessPolicy.backfill(), archive=False, store=store)
    for data in (_simulated(), _dense()):
        for _ in pipeline.process_payloads(data.splitlines(), batch_size=101):
            pass
    ours = (c for c in client.collections() if c.id.startswith(PREFIX))
    documents = _merged_lanes(sorted(_documents(ours)))
    digest = hashlib.sha256()
    for path, fields in documents:
        digest.update(orjson.dumps([path, _canonical(fields)], option=orjson.OPT_APPEND_NEWLINE))
    shapes = Counter(_shape(path) for path, _ in documents)
    return digest.hexdigest(), dict(shapes)


def _shape(path: str) -> str:
    """The path with document ids replaced by ``*``."""
    return "/".join("*" if i % 2 else part for i, part in enumerate(path.split("/")))


def test_stored_documents_are_the_same(firestore_server: Server) -> None:
    reset_firestore(firestore_server)
    digest, collections = _golden_documents(firestore_client(firestore_server.host))
    assert collections == EXPECTED_COLLECTIONS
    assert digest == FIRESTORE_DOCUMENTS_SHA256
