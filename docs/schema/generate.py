"""Write the files of docs/schema/ from the code that defines them (``--check``: compare only).

    .venv/bin/python docs/schema/generate.py           # rewrite docs/schema/*.json, *.yaml
    .venv/bin/python docs/schema/generate.py --check   # exit 1 if a file differs from the code

Every file is derived, none is written by hand:

- ``dynamodb-table.json``, ``dynamodb-ttl.json``: ``TABLE_DEFINITION`` and ``TIME_TO_LIVE`` of
  :mod:`iotpipe.adapters.aws.dynamodb`, in the shapes ``aws dynamodb create-table`` and
  ``update-time-to-live`` take with ``--cli-input-json``;
- ``dynamodb-items.json``: the items :class:`~iotpipe.adapters.aws.DynamoStore` writes, captured
  by running its ``apply`` over a recording client (tests/docs also runs it against moto and
  compares);
- ``firestore.yaml``: the collections, ids, fields, indexes and TTL of
  :mod:`iotpipe.adapters.gcp.firestore`, with the documents ``FirestoreStore`` creates
  (captured the same way);
- ``reading.schema.json``: the request body's reading as the OpenAPI document declares it
  (:func:`iotpipe.entrypoints.http.schemas.reading_payload_schema`, from the domain's pydantic
  declaration);
- ``hourly-aggregate.schema.json``, ``daily-aggregate.schema.json``: the aggregates the API and
  ``iotpipe process`` emit, from the pydantic models the OpenAPI document is generated from;
- ``default.toml``: the default payload's telemetry schema as a schema file
  (:func:`iotpipe.adapters.schema_file.dump_schema` of ``DEFAULT_SCHEMA``);
- ``telemetry-schema.schema.json``: the JSON Schema of a telemetry schema file
  (:data:`iotpipe.adapters.schema_file.FILE_JSON_SCHEMA`).

The reading and aggregate files are those of the default payload; a deployment with its own
schema serves its own in its OpenAPI document (``GET /v1/openapi.json``).

This is a development tool: it is not part of the package and never loads in a function.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import random
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
EXAMPLE_TABLE = "iotpipe-windows"  # what deploy/aws names it with the default name_prefix

#: The readings every example is made of: one device, one hour, two requests.
EXAMPLE_READINGS: tuple[tuple[dict[str, Any], ...], ...] = (
    (
        {
            "device_id": "iot-sensor-001",
            "timestamp": "2025-08-31T10:00:12Z",
            "temperature": 25.5,
            "humidity": 60.2,
            "location": {"lat": 34.0522, "lon": -118.2437},
        },
        {"device_id": "iot-sensor-001", "timestamp": "2025-08-31T10:01:12Z", "temperature": 25.7},
    ),
    (
        {
            "device_id": "iot-sensor-001",
            "timestamp": "2025-08-31T10:02:12.250Z",
            "temperature": 25.6,
            "humidity": 59.8,
        },
    ),
)
EXAMPLE_TTL_DAYS = 400
EXAMPLE_FLEET_SHARDS = 16  # deploy/aws's default (var.fleet_shards)


# --- DynamoDB ------------------------------------------------------------------------------------


def dynamodb_table() -> dict[str, Any]:
    """``aws dynamodb create-table --cli-input-json`` input: the table with its name."""
    from iotpipe.adapters.aws import TABLE_DEFINITION

    return {"TableName": EXAMPLE_TABLE, **copy.deepcopy(TABLE_DEFINITION)}


def dynamodb_ttl() -> dict[str, Any]:
    """``aws dynamodb update-time-to-live --cli-input-json`` input."""
    from iotpipe.adapters.aws import TIME_TO_LIVE

    return {"TableName": EXAMPLE_TABLE, "TimeToLiveSpecification": dict(TIME_TO_LIVE)}


class RecordingDynamoDB:
    """The four low-level DynamoDB calls ``DynamoStore.apply`` makes, over a dict: a stand-in
    that records the items the real code path writes (tests/docs checks them against moto)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    @staticmethod
    def _key(key: dict[str, Any]) -> tuple[str, str]:
        return key["PK"]["S"], key["SK"]["S"]

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        (table, request), *_ = RequestItems.items()
        keys = [self._key(k) for k in request["Keys"]]
        return {"Responses": {table: [self.items[k] for k in keys if k in self.items]}}

    def get_item(self, TableName: str, Key: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        found = self.items.get(self._key(Key))
        return {} if found is None else {"Item": found}

    def put_item(self, TableName: str, Item: dict[str, Any], **condition: Any) -> dict[str, Any]:  # noqa: N803
        self.items[self._key(Item)] = copy.deepcopy(Item)
        return {}

    def query(self, **request: Any) -> dict[str, Any]:
        return {"Items": []}  # a new table: no identity segments yet


def example_readings() -> list[list[Any]]:
    """The example readings, parsed, one list per batch."""
    from iotpipe.domain import parse_reading

    return [[parse_reading(payload) for payload in batch] for batch in EXAMPLE_READINGS]


def apply_examples(store: Any) -> None:
    """Apply each example batch to ``store`` in turn (the window is created, then updated)."""
    from iotpipe.ports import Contribution

    for batch in example_readings():
        first = batch[0]
        store.apply([Contribution(first.device_id, first.hour_ms, batch)])


def dynamodb_items() -> list[dict[str, Any]]:
    """Every item type the store writes, as ``DynamoStore`` wrote them, in typed JSON."""
    from iotpipe.adapters.aws import DynamoStore

    found: dict[str, dict[str, Any]] = {}
    for ttl_days in (None, EXAMPLE_TTL_DAYS):
        recorder = RecordingDynamoDB()
        store = DynamoStore(
            EXAMPLE_TABLE, recorder, fleet_shards=EXAMPLE_FLEET_SHARDS, ttl_days=ttl_days
        )
        apply_examples(store)
        for item in recorder.items.values():
            found.setdefault(item_kind(item, ttl_days), item)
    return [
        {"type": kind, "description": ITEM_DESCRIPTIONS[kind], "item": typed_json(found[kind])}
        for kind in ITEM_DESCRIPTIONS
    ]


def item_kind(item: dict[str, Any], ttl_days: int | None) -> str:
    """Which example an item is (the ttl variant only for window heads)."""
    if item["PK"]["S"].startswith("DEVICES#"):
        return "registry entry"
    return "window head" + (" with ttl" if ttl_days is not None else "")


ITEM_DESCRIPTIONS = {
    "window head": "One device's hour (format 2): PK W#<hour start in epoch ms>#<crc32(device_id) "
    "mod fleet_shards>, SK <device_id>; D and H feed the keys-only 'device' index; v is the "
    "version (1 on creation, +1 per conditional PutItem); w is the head "
    "(iotpipe.application.codecs.heads: statistics, latest reading, recent identities, horizon). "
    "Identities sealed out of it go to segment items (PK S#<hour>#<device_id>, SK <base "
    "version, 10 digits>, i: the identities), written once; each hour's fleet total is in lane "
    "items (PK F#<hour>, SK <stream shard id>, t: the total, q: the last sequence folded), "
    "written by the fleet function from the table's stream.",
    "window head with ttl": "The same head written by a store with ttl_days set "
    "(IOTPIPE_TTL_DAYS): 'ttl' is the hour's end plus ttl_days, in epoch seconds.",
    "registry entry": "A device the store has seen: PK DEVICES#<crc32(device_id) mod "
    "fleet_shards>, SK <device_id>; written once per device, ever.",
}


def typed_json(value: Any) -> Any:
    """A typed item as the AWS CLI prints it: binary (``B``) values in base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: typed_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed_json(v) for v in value]
    return value


# --- Firestore -----------------------------------------------------------------------------------

#: Every field of the two document kinds, with its type. The generator fails if the code
#: writes a field that is not described here, or describes one it does not write.
DEVICE_FIELDS = {
    "device_id": ("string", "The device id (also the document id)."),
    "registered_at": ("timestamp", "When the store first saw the device (server time)."),
}
WINDOW_FIELDS = {
    "format": (
        "integer",
        "The stored format: 2 (this release: the window is counted in its hour's fleet lanes); "
        "1 (the release before: joins the lanes on its next write, or by iotpipe migrate).",
    ),
    "device_id": ("string", "The device id (the fleet query orders by it)."),
    "hour_ms": ("integer", "Start of the UTC hour in epoch milliseconds."),
    "count": ("integer", "Distinct readings counted."),
    "first_ms": ("integer or null", "Earliest event time counted, epoch ms."),
    "last_ms": ("integer or null", "Latest event time counted, epoch ms."),
    "metrics": (
        "map",
        "Per metric: an array of five integers [count, total, squares, min, max], values in "
        "fixed point (0.001 units), exact.",
    ),
    "located": ("array or null", "The latest located reading: [ts_ms, lat, lon]."),
    "latest": ("map or null", "The window's latest reading, in its JSON payload form."),
    "seen": ("bytes", "The identity set: zlib-compressed sorted offset<<16|fingerprint."),
    "version": ("integer", "1 on creation, +1 per write (for people and audits)."),
    "expire_at": (
        "timestamp",
        "Only with ttl_days (IOTPIPE_TTL_DAYS): the hour's end plus ttl_days; the TTL policy "
        "deletes the document after it.",
    ),
}


LANE_FIELDS = {
    "hour_ms": ("integer", "Start of the UTC hour in epoch milliseconds."),
    "total": (
        "bytes",
        "The lane's part of the hour's fleet total (iotpipe.application.codecs.heads."
        "encode_total: windows merged and their statistics, exact).",
    ),
    "expire_at": ("timestamp", "Only with ttl_days: as the windows'."),
}


class _Snapshot:
    exists = False

    def __init__(self, reference: _Ref | None = None) -> None:
        self.reference = reference


class _Batch:
    def create(self, ref: _Ref, fields: dict[str, Any], **rpc: Any) -> None:
        ref.create(fields)

    def commit(self, **rpc: Any) -> None:
        return None


class _Ref:
    def __init__(self, client: RecordingFirestore, path: str) -> None:
        self._client = client
        self.path = path

    def collection(self, name: str) -> _Ref:
        return _Ref(self._client, f"{self.path}/{name}")

    def document(self, name: str) -> _Ref:
        return _Ref(self._client, f"{self.path}/{name}")

    def get(self, **rpc: Any) -> _Snapshot:
        return _Snapshot()

    def create(self, fields: dict[str, Any], **rpc: Any) -> None:
        self._client.created[self.path] = dict(fields)


class RecordingFirestore:
    """The calls ``FirestoreStore.apply`` makes on a new window and a new device, recording
    the documents it creates."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def collection(self, name: str) -> _Ref:
        return _Ref(self, name)

    def get_all(self, refs: list[Any], **rpc: Any) -> list[_Snapshot]:
        return [_Snapshot(ref) for ref in refs]

    def batch(self) -> _Batch:
        return _Batch()


def firestore_documents() -> dict[str, tuple[str, dict[str, Any]]]:
    """``{"device": (path, fields), "window": (path, fields)}`` as ``FirestoreStore`` creates
    them (with ``ttl_days`` set, so ``expire_at`` is shown)."""
    from iotpipe.adapters.gcp.firestore import FirestoreStore
    from iotpipe.ports import Contribution

    client = RecordingFirestore()
    store = FirestoreStore(client, ttl_days=EXAMPLE_TTL_DAYS)
    random.seed(0)  # the store picks a lane at random: the same example on every run
    readings = [r for batch in example_readings() for r in batch]
    store.apply([Contribution(readings[0].device_id, readings[0].hour_ms, readings)])
    found = {}
    for path, fields in client.created.items():
        kind = "window" if "/hours/" in path else "lane" if "/lanes/" in path else "device"
        found[kind] = (path, fields)
    return found


def firestore_layout() -> dict[str, Any]:
    """The Firestore layout as a plain structure (written as YAML)."""
    from iotpipe.adapters.gcp import firestore as fs
    from iotpipe.entrypoints.gcp import settings

    documents = firestore_documents()
    device_path, device = documents["device"]
    window_path, window = documents["window"]
    lane_path, lane = documents["lane"]
    _same_fields("devices", set(device), set(DEVICE_FIELDS))
    _same_fields("hours", set(window), set(WINDOW_FIELDS))
    _same_fields("lanes", set(lane), set(LANE_FIELDS))
    return {
        "database": {
            "id": "(default)",
            "mode": "Firestore Native",
            "setting": f"{settings.FIRESTORE_DATABASE} (default: '(default)')",
        },
        "collection_prefix": {
            "value": "",
            "setting": f"{settings.FIRESTORE_PREFIX}: prepended to both collection names "
            "(empty in production; tests use one per store)",
        },
        "collections": [
            {
                "path": f"{fs.DEVICES}/{{device_id}}",
                "description": "The device registry: one document per device ever seen.",
                "document_id": "the device_id as it is ([A-Za-z0-9._:-], 1-128 characters, "
                "starting with a letter or digit: always a valid document id)",
                "fields": _fields(DEVICE_FIELDS),
                "example": {"path": device_path, "fields": _plain(device)},
            },
            {
                "path": f"{fs.DEVICES}/{{device_id}}/{fs.HOURS}/{{hour}}",
                "description": "One device's hourly window (its aggregate, latest reading and "
                "the identities counted).",
                "document_id": "the hour's start in epoch milliseconds, zero-padded to 15 "
                "digits (ids sort like hours)",
                "fields": _fields(WINDOW_FIELDS),
                "example": {"path": window_path, "fields": _plain(window)},
            },
            {
                "path": f"{fs.FLEET}/{{hour}}/{fs.LANES}/{{lane}}",
                "description": "One of an hour's fleet lanes: part of the hour's fleet total, "
                "written in the same batched write as the windows it merges.",
                "document_id": f"a lane number, 0 to fleet_lanes - 1 ({fs.DEFAULT_FLEET_LANES})",
                "fields": _fields(LANE_FIELDS),
                "example": {"path": lane_path, "fields": _plain(lane)},
            },
        ],
        "indexes": {
            "composite": [
                {
                    "collection_group": fs.FLEET_INDEX["collection_group"],
                    "query_scope": fs.FLEET_INDEX["query_scope"],
                    "fields": [
                        {"field_path": name, "order": order}
                        for name, order in fs.FLEET_INDEX["fields"]
                    ],
                    "used_by": "the fleet hour (GET /v1/fleet/hourly): hour_ms == H, order by "
                    "device_id",
                }
            ],
            "single_field_exemptions": {
                "collection_group": fs.HOURS,
                "fields": list(fs.UNINDEXED_FIELDS),
                "why": "never queried: indexing them costs write latency and storage",
            },
            "automatic_single_field": {
                "kept_for": ["hour_ms (hourly, latest)", "device_id (devices, registry order)"]
            },
        },
        "ttl": {
            "collection_group": fs.HOURS,
            "field": fs.TTL_FIELD,
            "when": f"the store writes it only when {settings.TTL_DAYS} is set; documents "
            "without it never expire",
        },
    }


def _same_fields(collection: str, written: set[str], described: set[str]) -> None:
    if written != described:
        raise SystemExit(
            f"{collection}: the store writes {sorted(written)}, generate.py describes "
            f"{sorted(described)}: update the descriptions"
        )


def _fields(described: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {name: {"type": kind, "description": text} for name, (kind, text) in described.items()}


def _plain(value: Any) -> Any:
    """A document's fields as YAML-friendly values (bytes in base64, timestamps in RFC 3339)."""
    from google.cloud.firestore_v1 import SERVER_TIMESTAMP

    if value is SERVER_TIMESTAMP:
        return "<server timestamp>"
    if isinstance(value, bytes):
        return "<bytes, base64> " + base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML emitter for dicts, lists and scalars (strings always double-quoted)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = key if _PLAIN_KEY.match(key) else json.dumps(key)
            if _is_scalar(item) or item in ({}, []):
                lines.append(f"{pad}{name}: {_scalar(item)}")
            elif isinstance(item, list) and all(_is_scalar(v) for v in item):
                lines.append(f"{pad}{name}: [{', '.join(_scalar(v) for v in item)}]")
            else:
                lines.append(f"{pad}{name}:")
                lines.append(to_yaml(item, indent + 2))
    else:
        for item in value:
            if _is_scalar(item) or item in ({}, []):
                lines.append(f"{pad}- {_scalar(item)}")
            else:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested.lstrip()}")
    return "\n".join(lines)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _scalar(value: Any) -> str:
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


FIRESTORE_HEADER = """\
# The Firestore layout of iotpipe's aggregate store (iotpipe.adapters.gcp.firestore).
# Generated by docs/schema/generate.py from the adapter's constants and the documents
# FirestoreStore creates: do not edit by hand (tests/docs fails when it drifts).
"""


# --- JSON Schemas --------------------------------------------------------------------------------


def reading_schema() -> dict[str, Any]:
    """One reading of ``POST /v1/readings`` (the OpenAPI document's ``ReadingPayload``)."""
    from iotpipe.entrypoints.http.schemas import reading_payload_schema

    name, schema = reading_payload_schema()
    rest = {k: v for k, v in schema.items() if k != "title"}
    return {"$schema": JSON_SCHEMA, "title": name, **rest}


def aggregate_schema(model_name: str) -> dict[str, Any]:
    """An aggregate model of the OpenAPI document (``HourlyAggregate``, ``DailyAggregate``)."""
    from iotpipe.entrypoints.http import schemas

    model = schemas.MODELS[model_name]
    schema = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    return {"$schema": JSON_SCHEMA, **schema}


def default_schema_file() -> str:
    """The default payload's declaration, as a telemetry schema file."""
    from iotpipe.adapters.schema_file import dump_schema
    from iotpipe.domain import DEFAULT_SCHEMA

    header = (
        "# The default payload's telemetry schema (generated by docs/schema/generate.py from\n"
        "# iotpipe.domain.DEFAULT_SCHEMA): what iotpipe reads when no --schema is given.\n"
    )
    return header + dump_schema(DEFAULT_SCHEMA)


def telemetry_schema_file_schema() -> dict[str, Any]:
    """The JSON Schema of a telemetry schema file (TOML read as JSON)."""
    from iotpipe.adapters.schema_file import FILE_JSON_SCHEMA

    return FILE_JSON_SCHEMA


# --- the files -----------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


FILES: dict[str, Callable[[], str]] = {
    "dynamodb-table.json": lambda: _json(dynamodb_table()),
    "dynamodb-ttl.json": lambda: _json(dynamodb_ttl()),
    "dynamodb-items.json": lambda: _json(dynamodb_items()),
    "firestore.yaml": lambda: FIRESTORE_HEADER + to_yaml(firestore_layout()) + "\n",
    "reading.schema.json": lambda: _json(reading_schema()),
    "hourly-aggregate.schema.json": lambda: _json(aggregate_schema("HourlyAggregate")),
    "daily-aggregate.schema.json": lambda: _json(aggregate_schema("DailyAggregate")),
    "default.toml": default_schema_file,
    "telemetry-schema.schema.json": lambda: _json(telemetry_schema_file_schema()),
}


def render() -> dict[str, str]:
    """Every generated file's name and text."""
    return {name: make() for name, make in FILES.items()}


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with ``--check`` report those that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--out", type=Path, default=HERE, help="directory (default: here)")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    verb = "differ from the code" if args.check else "written"
    print(f"{len(stale)} file(s) {verb}: {', '.join(stale) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
