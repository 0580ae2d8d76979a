"""Golden items of DynamoDB store format 2: what a deployed table holds, pinned by digest.

The SQLite store's format 2 rows are pinned in ``tests/unit/test_golden.py``; this holds the
DynamoDB items the same way. The golden input (the simulated hours with every fault, then a
dense hour that seals segments) goes through the real adapter against moto, the table's stream
is folded into the fleet lanes, and every item of the table is digested in a canonical form:
items sorted by key, attributes by name, binary values as hex, and only what a run can change
left out (the stream's shard id and sequence number in a lane). A change to the stored bytes of
heads, segments, lanes, the device registry or the device index's keys fails here until the
format version (``application/codecs/window.py``, ``heads.py``) and this digest are changed on
purpose.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import orjson
import pytest

from iotpipe import LatenessPolicy, in_memory_pipeline
from iotpipe.adapters.aws import DynamoStore
from tests.aws_support import MotoServer, fresh_table
from tests.unit.test_golden import _dense, _simulated

pytestmark = pytest.mark.integration

#: The table's items after the golden input (heads, segments, registry, fleet lanes). Computed
#: on this repository's format 2 (the commit that added this test) with 3 fleet shards.
DYNAMODB_ITEMS_SHA256 = "73db8f2658c4d293ea8d59dd592f7258214654802d7ee996aa921c1a2c4ea3a0"

#: Items per kind (the partition key's prefix): sealing, the fold and the schema record are
#: exercised.
EXPECTED_KINDS = {"W": 26, "S": 9, "F": 6, "DEVICES": 7, "META": 1}


def _canonical(item: dict[str, Any]) -> dict[str, Any]:
    """The item with what a run can change replaced: a lane's stream shard and position."""
    if item["PK"]["S"].startswith("F#"):
        return {**item, "SK": {"S": "<stream shard>"}, "q": {"S": "<sequence number>"}}
    return item


def _value(value: dict[str, Any]) -> object:
    """A DynamoDB attribute value as JSON-ready data (binary as hex, sets sorted)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": bytes(inner).hex()}
    if kind == "M":
        return {"M": {k: _value(v) for k, v in sorted(inner.items())}}
    if kind == "L":
        return {"L": [_value(v) for v in inner]}
    if kind in ("SS", "NS"):
        return {kind: sorted(inner)}
    if kind == "BS":
        return {"BS": sorted(bytes(v).hex() for v in inner)}
    return {kind: inner}


def _table_items(moto: MotoServer, table: str) -> list[dict[str, Any]]:
    client, items, params = moto.client("dynamodb"), [], {"TableName": table}
    while True:
        page = client.scan(**params)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _format2_items(moto: MotoServer) -> tuple[str, dict[str, int]]:
    """The digest of the table's canonical items after the golden input, and items per kind."""
    table = fresh_table(moto)
    store = DynamoStore(
        table, moto.client("dynamodb"), fleet_shards=3, stream=moto.client("dynamodbstreams")
    )
    pipeline = in_memory_pipeline(lateness=LatenessPolicy.backfill(), archive=False, store=store)
    for data in (_simulated(), _dense()):
        for _ in pipeline.process_payloads(data.splitlines(), batch_size=101):
            pass
    store.fold_stream()  # the table's stream into each hour's fleet lanes, as the fold function
    items = sorted(
        (_canonical(item) for item in _table_items(moto, table)),
        key=lambda item: (item["PK"]["S"], item["SK"]["S"]),
    )
    digest = hashlib.sha256()
    for item in items:
        fields = {name: _value(value) for name, value in sorted(item.items())}
        digest.update(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE))
    kinds = Counter(item["PK"]["S"].split("#")[0] for item in items)
    return digest.hexdigest(), dict(kinds)


def test_stored_format2_items_are_the_same(moto: MotoServer) -> None:
    digest, kinds = _format2_items(moto)
    assert kinds == EXPECTED_KINDS
    assert digest == DYNAMODB_ITEMS_SHA256
