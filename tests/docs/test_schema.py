"""docs/schema/ is what the code defines and writes, and what Terraform deploys."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.docs.support import REPO, SCHEMA, blocks, generator, load_hcl

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(generator().FILES))
def test_the_checked_in_file_is_what_the_generator_writes(name: str) -> None:
    path = SCHEMA / name
    assert path.exists(), f"docs/schema/{name} is missing: run docs/schema/generate.py"
    assert path.read_text() == generator().FILES[name](), (
        f"docs/schema/{name} drifted from the code: run .venv/bin/python docs/schema/generate.py"
    )


def _schema_json(name: str) -> Any:
    return json.loads((SCHEMA / name).read_text())


# --- DynamoDB ------------------------------------------------------------------------------------


def _validate_cli_input(operation: str, params: dict[str, Any]) -> None:
    """What `aws dynamodb <op> --cli-input-json` does with the file: botocore's validation."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("dynamodb")
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_table_file_is_valid_create_table_input() -> None:
    _validate_cli_input("CreateTable", _schema_json("dynamodb-table.json"))
    _validate_cli_input("UpdateTimeToLive", _schema_json("dynamodb-ttl.json"))


def test_the_item_examples_are_what_dynamostore_writes_on_moto() -> None:
    import boto3
    from moto import mock_aws

    from iotpipe.adapters.aws import DynamoStore

    gen = generator()
    expected = {example["type"]: example["item"] for example in _schema_json("dynamodb-items.json")}
    assert set(expected) == {"window head", "window head with ttl", "registry entry"}
    found: dict[str, Any] = {}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for ttl_days in (None, gen.EXAMPLE_TTL_DAYS):
            table = _schema_json("dynamodb-table.json")
            table["TableName"] = f"{table['TableName']}-{ttl_days}"
            client.create_table(**table)
            ttl = _schema_json("dynamodb-ttl.json")
            client.update_time_to_live(**{**ttl, "TableName": table["TableName"]})
            store = DynamoStore(
                table["TableName"],
                client,
                fleet_shards=gen.EXAMPLE_FLEET_SHARDS,
                ttl_days=ttl_days,
            )
            gen.apply_examples(store)
            for item in client.scan(TableName=table["TableName"])["Items"]:
                found.setdefault(gen.item_kind(item, ttl_days), gen.typed_json(item))
    assert found == expected


def test_the_table_file_matches_the_terraform_table() -> None:
    table = _schema_json("dynamodb-table.json")
    ttl = _schema_json("dynamodb-ttl.json")["TimeToLiveSpecification"]
    tf = blocks(load_hcl(REPO / "deploy" / "aws" / "table.tf"), "resource")
    resource = tf["aws_dynamodb_table"]["windows"]
    keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
    assert (resource["hash_key"], resource["range_key"]) == (keys["HASH"], keys["RANGE"])
    assert resource["billing_mode"] == table["BillingMode"]
    assert {(a["name"], a["type"]) for a in resource["attribute"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
    }
    indexes = {
        i["IndexName"]: (
            {k["KeyType"]: k["AttributeName"] for k in i["KeySchema"]},
            i["Projection"]["ProjectionType"],
        )
        for i in table["GlobalSecondaryIndexes"]
    }
    assert {
        g["name"]: ({"HASH": g["hash_key"], "RANGE": g["range_key"]}, g["projection_type"])
        for g in resource["global_secondary_index"]
    } == indexes
    (tf_ttl,) = resource["ttl"]
    assert (tf_ttl["attribute_name"], tf_ttl["enabled"]) == (ttl["AttributeName"], ttl["Enabled"])


# --- Firestore -----------------------------------------------------------------------------------


def test_the_firestore_yaml_is_yaml_of_the_layout() -> None:
    import yaml

    assert yaml.safe_load((SCHEMA / "firestore.yaml").read_text()) == json.loads(
        json.dumps(generator().firestore_layout())
    )


# --- JSON Schemas --------------------------------------------------------------------------------


def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = _schema_json(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _openapi() -> dict[str, Any]:
    from iotpipe.adapters.memory import MemoryStore
    from iotpipe.application import QueryService
    from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys

    return AnalyticsApi(QueryService(MemoryStore()), None, ApiKeys(["k"])).openapi()


def _refs_to_components(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: v.replace("#/$defs/", "#/components/schemas/")
            if k == "$ref"
            else _refs_to_components(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_refs_to_components(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("hourly-aggregate.schema.json", "HourlyAggregate"),
        ("daily-aggregate.schema.json", "DailyAggregate"),
    ],
)
def test_the_aggregate_schemas_are_the_openapi_documents(name: str, model: str) -> None:
    components = _openapi()["components"]["schemas"]
    schema = _refs_to_components(_schema_json(name))
    defs = schema.pop("$defs", {})
    schema.pop("$schema")
    assert schema == components[model]
    for ref, definition in defs.items():
        assert definition == components[ref]


def test_the_reading_schema_is_the_openapi_request_body() -> None:
    schema = _schema_json("reading.schema.json")
    schema.pop("$schema")
    assert schema == _openapi()["components"]["schemas"]["ReadingPayload"]


def test_what_the_pipeline_emits_validates_against_the_schemas() -> None:
    from iotpipe import LatenessPolicy, in_memory_pipeline
    from iotpipe.application.views import daily_json, window_json
    from iotpipe.domain.time import parse_instant

    payloads = [p for batch in generator().EXAMPLE_READINGS for p in batch]
    reading = _validator("reading.schema.json")
    for payload in payloads:
        reading.validate(payload)
    assert not reading.is_valid({"device_id": "d1", "timestamp": "2025-08-31T10:00:00Z"})
    assert not reading.is_valid({"device_id": "", "timestamp": "x", "temperature": 1})

    pipeline = in_memory_pipeline(lateness=LatenessPolicy.backfill())
    pipeline.ingest(
        [*payloads, {"device_id": "d2", "timestamp": "2025-08-31T11:00:00Z", "humidity": 1}]
    )
    list(pipeline.drain())
    day = parse_instant("2025-08-31T00:00:00Z")
    hourly, daily = (
        _validator("hourly-aggregate.schema.json"),
        _validator("daily-aggregate.schema.json"),
    )
    for device in ("iot-sensor-001", "d2"):
        windows = pipeline.query.hourly(device, day, day + 86_400_000, limit=24).items
        assert windows
        for window in windows:
            hourly.validate(window_json(window))
        for rollup in pipeline.query.daily(device, day, day + 86_400_000):
            daily.validate(daily_json(rollup))


def test_every_dynamodb_attribute_is_described_in_the_schema_readme() -> None:
    from tests.docs.markdown import section, table_rows

    described = set()
    for row in table_rows(section(SCHEMA / "README.md", "DynamoDB")):
        described.update(re.findall(r"`([A-Za-z_]+)`", row[0]))
    written = {name for example in _schema_json("dynamodb-items.json") for name in example["item"]}
    assert written <= described, f"not described in docs/schema/README.md: {written - described}"


# --- telemetry schema files ----------------------------------------------------------------------


def _schema_files() -> list[Any]:
    return [SCHEMA / "default.toml", *sorted((REPO / "examples" / "schemas").glob("*.toml"))]


def test_the_default_schema_file_reads_back_as_the_default_schema() -> None:
    from iotpipe.adapters.schema_file import load_schema
    from iotpipe.domain import DEFAULT_SCHEMA

    assert load_schema(SCHEMA / "default.toml") == DEFAULT_SCHEMA
    assert load_schema(SCHEMA / "default.toml").is_default


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_every_shipped_schema_file_keeps_the_published_json_schema(path: Any) -> None:
    import tomllib

    import jsonschema

    from iotpipe.adapters.schema_file import dump_schema, load_schema, parse_schema

    published = _schema_json("telemetry-schema.schema.json")
    jsonschema.Draft202012Validator.check_schema(published)
    data = tomllib.loads(path.read_text())
    jsonschema.validate(data, published)
    schema = load_schema(path)
    assert parse_schema(dump_schema(schema)) == schema  # the writer and the reader agree
    # A typo the reader refuses, the published schema refuses too.
    typo = {**data, "metrics": [{**data["metrics"][0], "units": "x"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, published)
