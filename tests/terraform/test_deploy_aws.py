"""deploy/aws on moto: fmt, validate, the plan's wiring, apply, no drift, the pipeline, destroy.

The tests run in file order and share one deployment (module-scoped fixtures): a fresh moto
server of this module's own, a copy of deploy/aws initialised offline, ``terraform apply``.
Between apply and destroy the handlers are driven against the deployed resources by the names
Terraform reports (``terraform output``) and with the environment Terraform gave each function
(read back from the deployed functions): readings through the ingest handler onto the
deployed stream, a poller playing the deployed event source mapping (its batch size) into the
process handler, and the aggregates read back through the api handler.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from iotpipe.adapters.aws import dynamodb_items as items
from iotpipe.adapters.aws.dynamodb import TABLE_DEFINITION, TIME_TO_LIVE
from iotpipe.application.views import stats_json
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.entrypoints.aws import api, bootstrap, clients, ingest, packaging, process, settings
from iotpipe.entrypoints.aws import authorizer as authorizer_handler
from iotpipe.entrypoints.http import AnalyticsApi
from iotpipe.simulator import Faults, Fleet
from tests.aws.apigw import answer, http_event
from tests.aws.streams import event_record
from tests.oracle import expected_windows
from tests.terraform.conftest import DEPLOY, Terraform

pytestmark = pytest.mark.integration

REGION = "us-east-1"
PREFIX = "iotpipe-tf"
API_KEY = "terraform-test-key-0123456789"

#: What each function reads (iotpipe.entrypoints.aws.*): exactly what Terraform must set.
LATENESS = {settings.LATENESS_HORIZON_HOURS, settings.MAX_SKEW_SECONDS}
NEEDS = {
    "ingest": {
        settings.STREAM_NAME,
        settings.API_KEYS_SECRET,
        settings.STREAM_COMPRESSION,
        *LATENESS,
    },
    "process": {
        settings.TABLE_NAME,
        settings.BUCKET,
        settings.FLEET_SHARDS,
        settings.TTL_DAYS,  # set because the test deployment sets ttl_days
        *LATENESS,
    },
    "api": {settings.TABLE_NAME, settings.FLEET_SHARDS, settings.API_KEYS_SECRET},
    "authorizer": {settings.API_KEYS_SECRET},
    "fleet": {settings.TABLE_NAME, settings.TTL_DAYS},  # TTL: the test deployment sets ttl_days
}

#: X-Ray tracing per function (var.xray_tracing): none on the once-per-request functions.
TRACING = {
    "ingest": "PassThrough",
    "authorizer": "PassThrough",
    "process": "Active",
    "api": "Active",
    "fleet": "Active",
}

#: Plan differences right after apply that are moto's, not the configuration's: moto ignores
#: the Tags of Kinesis CreateStream (real AWS applies them), so the provider's default tags
#: show up once as an in-place update of the stream's tags, and converge with a second apply.
MOTO_DIVERGENCES = {("aws_kinesis_stream.readings", ("update",), frozenset({"tags_all"}))}
#: What moto does not implement at all, so every plan shows it again: the table's
#: OnDemandThroughput (moto neither stores nor returns it; real DynamoDB does). Its planned
#: value is checked on the plan instead (test_the_table_caps_on_demand_throughput).
MOTO_UNSUPPORTED = {
    ("aws_dynamodb_table.windows", ("update",), frozenset({"on_demand_throughput"})),
    # Nor a function's LoggingConfig (the JSON, system level WARN logs of ingest and the
    # authorizer: var.platform_log_level); checked on the plan (test_platform_logs_...).
    *(
        (f'aws_lambda_function.fn["{name}"]', ("update",), frozenset({"logging_config"}))
        for name in ("ingest", "authorizer")
    ),
}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(
    terraform: Terraform,
    private_moto: str,
    lambda_zips: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """deploy/aws copied to a temporary directory, initialised offline, variables for moto."""
    directory = tmp_path_factory.mktemp("deploy-aws")
    for source in DEPLOY.glob("*.tf"):
        shutil.copy2(source, directory / source.name)
    variables = {
        "aws_endpoint_url": private_moto,
        "region": REGION,
        "name_prefix": PREFIX,
        "code_zip": str(lambda_zips["code"]),
        "layer_zip": str(lambda_zips["layer"]),
        "protect_data": False,  # so that destroy can delete the table and the full bucket
        "api_keys": [API_KEY],
        "ttl_days": 400,
        "secret_recovery_days": 0,
        "kms_deletion_window_days": 7,
    }
    (directory / "terraform.tfvars.json").write_text(json.dumps(variables), encoding="utf-8")
    terraform.run("init", "-input=false", "-no-color", cwd=directory)
    return directory


@pytest.fixture(scope="module")
def plan(terraform: Terraform, workdir: Path) -> dict[str, Any]:
    """The plan of a first deployment with the optional IoT rule on, as ``terraform show -json``
    gives it. (The deployment applied below leaves IoT off: moto cannot tag IoT rules, and the
    provider retries its error 500 forever.)"""
    terraform.run(
        *("plan", "-input=false", "-no-color", "-var", "enable_iot=true", "-out=first.tfplan"),
        cwd=workdir,
    )
    shown = terraform.run("show", "-json", "first.tfplan", cwd=workdir)
    return dict(json.loads(shown.stdout))


@pytest.fixture(scope="module")
def deployed(terraform: Terraform, workdir: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """``terraform apply`` done (after the first plan, which must see an empty account); the
    outputs (name -> value)."""
    terraform.run("apply", "-input=false", "-no-color", "-auto-approve", cwd=workdir)
    shown = terraform.run("output", "-json", cwd=workdir)
    return {name: out["value"] for name, out in json.loads(shown.stdout).items()}


@pytest.fixture(scope="module")
def aws(private_moto: str) -> Any:
    """A boto3 client factory on the module's moto server."""

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=private_moto,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


# --- static checks ------------------------------------------------------------------------------


def test_terraform_fmt_is_clean(terraform_binary: str) -> None:
    """``terraform fmt -check`` (reads only: nothing is rewritten)."""
    done = subprocess.run(
        [terraform_binary, "fmt", "-check", "-recursive", "-diff", "-no-color", str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"terraform fmt would change:\n{done.stdout}{done.stderr}"


def test_terraform_validate(terraform: Terraform, workdir: Path) -> None:
    done = terraform.run("validate", "-json", cwd=workdir)
    report = json.loads(done.stdout)
    assert report["valid"], report
    assert report["warning_count"] == 0, report["diagnostics"]


def _changes(plan: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Each resource of ``kind`` in the plan -> its planned values (known and unknown)."""
    found = {}
    for change in plan["resource_changes"]:
        if change["type"] == kind and change["mode"] == "managed":
            found[str(change.get("index", change["name"]))] = change["change"]
    return found


def test_code_packaged_with_another_telemetry_schema_is_refused(
    terraform: Terraform, workdir: Path, plan: dict[str, Any]
) -> None:
    # The zips were packaged without --schema: naming a schema file must stop the plan, before
    # any function could run code that reads another payload than the deployment declares.
    schema = DEPLOY.parents[1] / "examples" / "schemas" / "industrial.toml"
    done = terraform.run(
        *("plan", "-input=false", "-no-color", "-var", f"telemetry_schema_file={schema}"),
        cwd=workdir,
        check=False,
    )
    assert done.returncode != 0
    assert "packaged with another telemetry schema" in done.stderr + done.stdout


def test_the_table_mirrors_the_store_table_definition(plan: dict[str, Any]) -> None:
    [table] = _changes(plan, "aws_dynamodb_table").values()
    after = table["after"]
    definition = TABLE_DEFINITION
    assert {(a["name"], a["type"]) for a in after["attribute"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in definition["AttributeDefinitions"]
    }
    assert _keys(after) == _schema(definition["KeySchema"])
    assert after["billing_mode"] == definition["BillingMode"]
    planned = {i["name"]: _index(i) for i in after["global_secondary_index"]}
    assert planned == {
        i["IndexName"]: (
            _schema(i["KeySchema"]),
            i["Projection"]["ProjectionType"],
            sorted(i["Projection"].get("NonKeyAttributes", [])),
        )
        for i in definition.get("GlobalSecondaryIndexes", [])
    }
    assert not after.get("local_secondary_index") and not definition.get("LocalSecondaryIndexes")
    assert after["ttl"] == [
        {"attribute_name": TIME_TO_LIVE["AttributeName"], "enabled": TIME_TO_LIVE["Enabled"]}
    ]
    assert after["point_in_time_recovery"][0]["enabled"] is True
    assert after["server_side_encryption"][0]["enabled"] is True
    stream = definition["StreamSpecification"]
    assert (after["stream_enabled"], after["stream_view_type"]) == (
        stream["StreamEnabled"],
        stream["StreamViewType"],
    )


def test_the_fleet_function_folds_the_table_stream_in_order_and_never_skips(
    plan: dict[str, Any],
) -> None:
    """The fold's exactness needs the shard named (a tumbling window), one batch per shard at a
    time, and every record folded (retried until it leaves the stream, never dropped)."""
    mappings = _changes(plan, "aws_lambda_event_source_mapping")
    after = mappings["fleet"]["after"]
    assert after["tumbling_window_in_seconds"] > 0
    assert after["parallelization_factor"] == 1
    assert after["maximum_retry_attempts"] == -1
    assert after["starting_position"] == "TRIM_HORIZON"
    [criteria] = after["filter_criteria"]
    [pattern] = [json.loads(f["pattern"]) for f in criteria["filter"]]
    assert pattern == {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"Keys": {"PK": {"S": [{"prefix": items.HEAD_PREFIX}]}}},
    }
    # Falling behind is announced: records older than 24 h leave the stream unfolded.
    alarm = _changes(plan, "aws_cloudwatch_metric_alarm")["fleet-iterator-age"]["after"]
    assert (alarm["namespace"], alarm["metric_name"]) == ("AWS/Lambda", "IteratorAge")
    assert alarm["dimensions"]["FunctionName"].endswith("-fleet")


def test_the_table_caps_on_demand_throughput(plan: dict[str, Any]) -> None:
    [table] = _changes(plan, "aws_dynamodb_table").values()
    [cap] = table["after"]["on_demand_throughput"]
    assert cap == {"max_read_request_units": 20000, "max_write_request_units": 20000}


def test_platform_logs_are_quiet_only_for_the_once_per_request_functions(
    plan: dict[str, Any],
) -> None:
    functions = _changes(plan, "aws_lambda_function")
    for address, change in functions.items():
        quiet = address in ("ingest", "authorizer")
        expected = (
            [{"log_format": "JSON", "system_log_level": "WARN", "application_log_level": "INFO"}]
            if quiet
            else []
        )
        found = [
            {k: c.get(k) for k in ("log_format", "system_log_level", "application_log_level")}
            for c in change["after"].get("logging_config") or []
        ]
        assert found == expected, address


def test_reserved_concurrency_is_a_variable_of_every_function(plan: dict[str, Any]) -> None:
    functions = _changes(plan, "aws_lambda_function")
    assert set(functions) == set(packaging.HANDLERS)
    # -1: no reservation unless var.functions says so (new accounts have a low quota).
    assert {f["after"]["reserved_concurrent_executions"] for f in functions.values()} == {-1}


def _route_authorization(plan: dict[str, Any]) -> dict[str, str]:
    """Each planned route's key -> its authorization type."""
    return {
        r["after"]["route_key"]: r["after"]["authorization_type"]
        for r in _changes(plan, "aws_apigatewayv2_route").values()
    }


def test_only_the_query_routes_have_the_authorizer_by_default(plan: dict[str, Any]) -> None:
    # POST /v1/readings: the ingest function checks the key itself (ingest_gateway_authorizer
    # false by default: ~$950 a month less at 100,000 devices, deploy/aws/README.md).
    assert _route_authorization(plan) == {
        "GET /": "NONE",
        "GET /v1/health": "NONE",
        "GET /v1/openapi.json": "NONE",
        "POST /v1/readings": "NONE",
        "GET /v1/{proxy+}": "CUSTOM",
    }
    [authorizer] = _changes(plan, "aws_apigatewayv2_authorizer").values()
    after = authorizer["after"]
    assert (after["authorizer_type"], after["authorizer_payload_format_version"]) == (
        "REQUEST",
        "2.0",
    )
    assert after["enable_simple_responses"] is True
    # No cache by default, hence no required header: X-API-Key works as on every runtime.
    assert after["authorizer_result_ttl_in_seconds"] == 0
    assert not after.get("identity_sources")


def test_the_ingest_authorizer_and_its_cache_are_variables(
    terraform: Terraform, workdir: Path, plan: dict[str, Any]
) -> None:
    variables = ("-var", "ingest_gateway_authorizer=true", "-var", "authorizer_cache_s=300")
    terraform.run(
        *("plan", "-input=false", "-no-color", *variables, "-out=levers.tfplan"), cwd=workdir
    )
    shown = json.loads(terraform.run("show", "-json", "levers.tfplan", cwd=workdir).stdout)
    routes = _route_authorization(shown)
    assert routes["POST /v1/readings"] == routes["GET /v1/{proxy+}"] == "CUSTOM"
    [authorizer] = _changes(shown, "aws_apigatewayv2_authorizer").values()
    assert authorizer["after"]["authorizer_result_ttl_in_seconds"] == 300
    assert authorizer["after"]["identity_sources"] == ["$request.header.Authorization"]


def test_the_optional_iot_rule_puts_mqtt_readings_on_the_stream(plan: dict[str, Any]) -> None:
    [rule] = _changes(plan, "aws_iot_topic_rule").values()
    after = rule["after"]
    assert after["sql"] == "SELECT * FROM 'iotpipe/+/readings'"
    [kinesis] = after["kinesis"]
    assert kinesis["stream_name"] == f"{PREFIX}-readings"
    assert kinesis["partition_key"] == "${topic(2)}"  # the device level: arrays have no device_id
    assert after["error_action"][0]["cloudwatch_logs"]


def _keys(block: dict[str, Any]) -> tuple[str, str | None]:
    return block["hash_key"], block.get("range_key") or None


def _index(block: dict[str, Any]) -> tuple[tuple[str, str | None], str, list[str]]:
    return _keys(block), block["projection_type"], sorted(block.get("non_key_attributes") or [])


def _schema(schema: list[dict[str, str]]) -> tuple[str, str | None]:
    kinds = {k["KeyType"]: k["AttributeName"] for k in schema}
    return kinds["HASH"], kinds.get("RANGE")


# --- apply, no drift ----------------------------------------------------------------------------


def test_apply_then_plan_shows_no_changes(
    terraform: Terraform, workdir: Path, deployed: dict[str, Any]
) -> None:
    changes = _planned_changes(terraform, workdir)
    allowed = MOTO_DIVERGENCES | MOTO_UNSUPPORTED
    assert changes <= allowed, f"drift right after apply: {sorted(changes)}"
    if changes - MOTO_UNSUPPORTED:  # converge moto's divergence, then nothing else may remain
        terraform.run("apply", "-input=false", "-no-color", "-auto-approve", cwd=workdir)
    remaining = _planned_changes(terraform, workdir)
    assert remaining <= MOTO_UNSUPPORTED, f"drift after converging: {sorted(remaining)}"


def _planned_changes(
    terraform: Terraform, workdir: Path
) -> set[tuple[str, tuple[str, ...], frozenset[str]]]:
    terraform.run("plan", "-input=false", "-no-color", "-out=after.tfplan", cwd=workdir)
    shown = json.loads(terraform.run("show", "-json", "after.tfplan", cwd=workdir).stdout)
    return {
        (c["address"], tuple(c["change"]["actions"]), _changed(c["change"]))
        for c in shown.get("resource_changes", [])
        if c["change"]["actions"] != ["no-op"]
    }


def _changed(change: dict[str, Any]) -> frozenset[str]:
    before, after = change.get("before") or {}, change.get("after") or {}
    unknown = change.get("after_unknown") or {}
    keys = set(before) | set(after)
    return frozenset(k for k in keys if before.get(k) != after.get(k) or unknown.get(k) is True)


def _state_resources(terraform: Terraform, workdir: Path, kind: str) -> dict[str, Any]:
    """Each resource of ``kind`` in the state (``terraform show -json``) -> its values."""
    state = json.loads(terraform.run("show", "-json", cwd=workdir).stdout)
    resources = state["values"]["root_module"]["resources"]
    return {str(r.get("index", r["name"])): r["values"] for r in resources if r["type"] == kind}


def test_each_function_gets_exactly_the_settings_it_reads(
    terraform: Terraform, workdir: Path, deployed: dict[str, Any]
) -> None:
    """Read from Terraform's state (the plan leaves maps holding unknown ARNs wholly unknown)."""
    functions = _state_resources(terraform, workdir, "aws_lambda_function")
    assert set(functions) == set(NEEDS) == set(packaging.HANDLERS)
    for name, values in functions.items():
        variables = set(values["environment"][0]["variables"])
        assert variables <= set(settings.ALL), (name, variables - set(settings.ALL))
        assert variables == NEEDS[name], name
        assert values["handler"] == packaging.HANDLERS[name]
        assert values["runtime"] == f"python{packaging.DEFAULT_PYTHON}"
        assert values["architectures"] == [packaging.DEFAULT_ARCH]
        assert values["tracing_config"] == [{"mode": TRACING[name]}], name
    # Keys live in Secrets Manager only: no function carries IOTPIPE_API_KEYS.
    assert all(settings.API_KEYS not in NEEDS[name] for name in NEEDS)


def test_deployed_resources_are_configured_as_declared(deployed: dict[str, Any], aws: Any) -> None:
    table = aws("dynamodb").describe_table(TableName=deployed["table_name"])["Table"]
    assert table["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        TABLE_DEFINITION["AttributeDefinitions"], key=str
    )
    declared = {i["IndexName"]: i for i in TABLE_DEFINITION["GlobalSecondaryIndexes"]}
    for index in table["GlobalSecondaryIndexes"]:
        assert index["KeySchema"] == declared[index["IndexName"]]["KeySchema"]
        assert index["Projection"] == declared[index["IndexName"]]["Projection"]
    ttl = aws("dynamodb").describe_time_to_live(TableName=deployed["table_name"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == TIME_TO_LIVE["AttributeName"]

    assert table["StreamSpecification"] == TABLE_DEFINITION["StreamSpecification"]
    [fold] = aws("lambda").list_event_source_mappings(EventSourceArn=table["LatestStreamArn"])[
        "EventSourceMappings"
    ]
    assert fold["FunctionArn"].endswith(":function:" + deployed["function_names"]["fleet"])
    assert fold["TumblingWindowInSeconds"] == 60

    mapping = _mapping(deployed, aws)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    bucket = deployed["failure_destination"].removeprefix("s3://").split("/")[0]
    assert bucket == deployed["bucket"]
    # An S3 destination: Lambda puts the failed batch itself there (SQS would get metadata only).
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == f"arn:aws:s3:::{bucket}"
    summary = aws("kinesis").describe_stream_summary(StreamName=deployed["stream_name"])
    assert summary["StreamDescriptionSummary"]["RetentionPeriodHours"] == 72
    assert mapping["BatchSize"] == 500 and mapping["ParallelizationFactor"] == 8
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["MaximumRecordAgeInSeconds"] == 21600
    assert mapping["MaximumBatchingWindowInSeconds"] == 5  # the cost defaults (issue #16)
    process_config = aws("lambda").get_function_configuration(
        FunctionName=deployed["function_names"]["process"]
    )
    assert process_config["MemorySize"] == 512
    ingest_config = aws("lambda").get_function_configuration(
        FunctionName=deployed["function_names"]["ingest"]
    )
    assert ingest_config["Environment"]["Variables"][settings.STREAM_COMPRESSION] == "zlib"

    lam = aws("lambda")
    for name, function in deployed["function_names"].items():
        config = lam.get_function_configuration(FunctionName=function)
        assert config["Handler"] == packaging.HANDLERS[name]
        assert config["Architectures"] == [packaging.DEFAULT_ARCH]
        assert config["TracingConfig"]["Mode"] == TRACING[name]
        assert len(config["Layers"]) == 1
        variables = config["Environment"]["Variables"]
        assert set(variables) == NEEDS[name]
        if settings.API_KEYS_SECRET in variables:
            assert variables[settings.API_KEYS_SECRET] == deployed["api_keys_secret_arn"]


def _mapping(deployed: dict[str, Any], aws: Any) -> dict[str, Any]:
    """The deployed event source mapping of the stream (there must be exactly one)."""
    found = aws("lambda").list_event_source_mappings(EventSourceArn=deployed["stream_arn"])
    [mapping] = found["EventSourceMappings"]
    assert mapping["FunctionArn"].endswith(":function:" + deployed["function_names"]["process"])
    return dict(mapping)


# --- the pipeline on the deployed resources -----------------------------------------------------


class StreamPoller:
    """The deployed event source mapping in miniature: every shard, its batch size, redelivery
    from the lowest sequence number the handler reports failed (``ReportBatchItemFailures``)."""

    def __init__(self, kinesis: Any, stream: str, batch_size: int) -> None:
        self.kinesis, self.stream, self.batch_size = kinesis, stream, batch_size
        self.invocations = 0

    def run(self) -> None:
        for shard in self.kinesis.list_shards(StreamName=self.stream)["Shards"]:
            records = self._read(shard["ShardId"])
            while records:
                batch, records = records[: self.batch_size], records[self.batch_size :]
                self.invocations += 1
                assert self.invocations < 500, "the stream did not drain"
                failed = process.handler({"Records": batch}, None)["batchItemFailures"]
                if failed:
                    first = min(int(f["itemIdentifier"]) for f in failed)  # numerically
                    again = [r for r in batch if int(r["kinesis"]["sequenceNumber"]) >= first]
                    records = again + records

    def _read(self, shard: str) -> list[dict[str, Any]]:
        iterator = self.kinesis.get_shard_iterator(
            StreamName=self.stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while True:
            out = self.kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records += [event_record(shard, r, region=REGION) for r in out["Records"]]
            iterator = out.get("NextShardIterator")
            if not out["Records"] or not iterator:
                return records


@pytest.fixture
def as_function(
    deployed: dict[str, Any], aws: Any, private_moto: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """``as_function(name)`` gives the process exactly the environment Terraform gave that
    function (read from the deployed function), pointed at moto, with fresh composition roots."""
    for name, value in {
        "AWS_ENDPOINT_URL": private_moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    lam = aws("lambda")

    def use(name: str) -> None:
        function = deployed["function_names"][name]
        variables = lam.get_function_configuration(FunctionName=function)["Environment"]
        for variable in settings.ALL:
            monkeypatch.delenv(variable, raising=False)
        for variable, value in variables["Variables"].items():
            monkeypatch.setenv(variable, value)
        _forget_composition_roots()

    yield use
    _forget_composition_roots()


def _forget_composition_roots() -> None:
    for cached in (
        clients.client,
        bootstrap.ingest_api,
        bootstrap.query_api,
        bootstrap.process_service,
        bootstrap.authorizer_keys,
    ):
        cached.cache_clear()


def test_readings_flow_through_the_deployed_stream_table_and_bucket(
    deployed: dict[str, Any], aws: Any, as_function: Any
) -> None:
    # Recent readings (the deployment refuses those older than 168 h), 4 devices, 3 full hours,
    # with resends and disorder.
    start = (int(time.time() * 1000) // MS_PER_HOUR - 3) * MS_PER_HOUR
    lines = list(
        Fleet(4, 120, seed=5).payloads(
            start, start + 3 * MS_PER_HOUR - 1, Faults(duplicates=0.2, disorder=0.2)
        )
    )

    as_function("ingest")
    status, _ = answer(ingest.handler(http_event("POST", "/v1/readings", b"[]", key="x"), None))
    assert status == 401  # the keys come from the deployed secret
    accepted = 0
    for i in range(0, len(lines), 200):
        body = b"[" + b",".join(line.encode() for line in lines[i : i + 200]) + b"]"
        event = http_event("POST", "/v1/readings", body, key=API_KEY)
        status, reply = answer(ingest.handler(event, None))
        assert status == 202, reply
        accepted += reply["accepted"]
        assert not reply["unpublished"], reply
    assert accepted == len(lines)
    garbage = [b"{not json", b'{"device_id": "x"}']
    aws("kinesis").put_records(
        StreamName=deployed["stream_name"],
        Records=[{"Data": g, "PartitionKey": "garbage"} for g in garbage],
    )

    as_function("process")
    batch_size = _mapping(deployed, aws)["BatchSize"]
    with _bucket_policy_lifted(aws("s3"), deployed["bucket"]):
        StreamPoller(aws("kinesis"), deployed["stream_name"], batch_size).run()

    s3 = aws("s3")
    raw = s3.list_objects_v2(Bucket=deployed["bucket"], Prefix="raw/").get("Contents", [])
    rejected = s3.list_objects_v2(Bucket=deployed["bucket"], Prefix="rejected/").get("Contents", [])
    assert raw and all(o["Key"].startswith("raw/dt=") for o in raw)
    assert rejected and all(o["Key"].startswith("rejected/dt=") for o in rejected)
    items = aws("dynamodb").scan(TableName=deployed["table_name"], Select="COUNT")["Count"]
    assert items > 0

    as_function("api")
    status, health = answer(api.handler(http_event("GET", "/v1/health"), None))
    assert (status, health["status"]) == (200, "ok")
    expected = expected_windows(lines)
    devices = sorted({device for device, _ in expected})
    served = {}
    for device in devices:
        query = {"from": format_instant(start), "to": format_instant(start + 3 * MS_PER_HOUR)}
        event = http_event("GET", f"/v1/devices/{device}/hourly", query=query, key=API_KEY)
        status, page = answer(api.handler(event, None))
        assert status == 200, page
        for item in page["items"]:
            served[(device, parse_instant(item["hour"]))] = item
    assert served.keys() == expected.keys()
    for key, stats in expected.items():
        body = {k: v for k, v in served[key].items() if k not in ("device_id", "hour")}
        assert body == stats_json(stats)
    event = http_event(
        "GET", "/v1/fleet/hourly", query={"hour": format_instant(start)}, key=API_KEY
    )
    status, fleet = answer(api.handler(event, None))
    assert status == 200, fleet
    assert sorted(w["device_id"] for w in fleet["items"]) == devices


@contextlib.contextmanager
def _bucket_policy_lifted(s3: Any, bucket: str) -> Iterator[None]:
    """The deployed bucket policy, taken off while the handlers write, then put back as it was.

    The policy denies requests without TLS (``aws:SecureTransport`` false). moto cannot
    evaluate that condition on object requests and treats the Deny as unconditional, refusing
    every PutObject (real S3 allows them over TLS, which boto3 always uses).
    """
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert "aws:SecureTransport" in policy
    s3.delete_bucket_policy(Bucket=bucket)
    try:
        yield
    finally:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)


class Gateway:
    """API Gateway's routing of a request, read from the deployed API (routes, their
    authorization type and authorizer, the integrations' functions) and run with the handlers
    in-process: moto stores the configuration but executes neither authorizers nor functions."""

    def __init__(self, deployed: dict[str, Any], aws: Any, as_function: Any) -> None:
        self.as_function = as_function  # each function runs with its own deployed environment
        v2 = aws("apigatewayv2")
        api_id = deployed["api_id"]
        targets = {
            i["IntegrationId"]: i["IntegrationUri"]
            for i in v2.get_integrations(ApiId=api_id)["Items"]
        }
        self.routes = {r["RouteKey"]: r for r in v2.get_routes(ApiId=api_id)["Items"]}
        self.integration = {
            key: targets[r["Target"].removeprefix("integrations/")]
            for key, r in self.routes.items()
        }
        self.authorizers = {  # moto has GetAuthorizer, not GetAuthorizers
            r["AuthorizerId"]: v2.get_authorizer(ApiId=api_id, AuthorizerId=r["AuthorizerId"])
            for r in self.routes.values()
            if r.get("AuthorizerId")
        }
        self.functions = {v: k for k, v in deployed["function_names"].items()}

    def function_of(self, arn: str) -> str:
        """The role (ingest, api, authorizer) of a function named by an ARN or invoke URI."""
        found = [role for name, role in self.functions.items() if f":function:{name}" in arn]
        assert len(found) == 1, arn
        return found[0]

    def send(self, route_key: str, event: dict[str, Any]) -> tuple[int, Any]:
        """The gateway's answer: 403 if the route's authorizer refuses, else the function's."""
        route = self.routes[route_key]
        if route["AuthorizationType"] == "CUSTOM":
            authorizer = self.authorizers[route["AuthorizerId"]]
            assert self.function_of(authorizer["AuthorizerUri"]) == "authorizer"
            if _missing_identity(authorizer, event):  # API Gateway answers without a call
                return 401, {"message": "Unauthorized"}
            self.as_function("authorizer")
            if not authorizer_handler.handler(event, None)["isAuthorized"]:
                return 403, {"message": "Forbidden"}
        role = self.function_of(self.integration[route_key])
        self.as_function(role)
        handler = {"ingest": ingest.handler, "api": api.handler}[role]
        return answer(handler(event, None))


def _missing_identity(authorizer: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether a request lacks one of the authorizer's identity sources (headers)."""
    headers = {name.lower() for name in event["headers"]}
    sources = authorizer.get("IdentitySource") or []
    wanted = [s.removeprefix("$request.header.").lower() for s in sources]
    return any(name not in headers for name in wanted)


def test_requests_without_a_valid_key_never_reach_the_pipeline(
    deployed: dict[str, Any], aws: Any, as_function: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = Gateway(deployed, aws, as_function)
    reached: list[str] = []
    real_handle = AnalyticsApi.handle

    def handle(self: AnalyticsApi, request: Any) -> Any:
        reached.append(request.path)
        return real_handle(self, request)

    monkeypatch.setattr(AnalyticsApi, "handle", handle)
    stream = deployed["stream_name"]
    before = _stream_records(aws("kinesis"), stream)
    now = format_instant(int(time.time() * 1000) - 60_000)
    body = b'{"device_id":"gw-1","timestamp":"' + now.encode() + b'","temperature":1}'
    for key in (None, "not-a-key", API_KEY + "x"):
        # The query route: refused by the gateway's authorizer, api never invoked.
        event = http_event("GET", "/v1/devices", key=key)
        assert gateway.send("GET /v1/{proxy+}", event)[0] == 403
        # The ingest route (no gateway authorizer by default): ingest itself answers 401.
        event = http_event("POST", "/v1/readings", body, key=key)
        status, problem = gateway.send("POST /v1/readings", event)
        assert status == 401, problem
    assert reached == ["/v1/readings"] * 3  # ingest's code ran, api's never did
    assert _stream_records(aws("kinesis"), stream) == before  # and nothing reached the stream
    # Public routes stay public; a valid key goes through, in Authorization or X-API-Key.
    assert gateway.send("GET /v1/health", http_event("GET", "/v1/health"))[0] == 200
    event = http_event("POST", "/v1/readings", body, key=API_KEY)
    status, reply = gateway.send("POST /v1/readings", event)
    assert (status, reply["accepted"]) == (202, 1), reply
    event = http_event("POST", "/v1/readings", body)
    event["headers"]["x-api-key"] = API_KEY
    status, reply = gateway.send("POST /v1/readings", event)
    assert (status, reply["accepted"]) == (202, 1), reply
    event = http_event("GET", "/v1/devices")
    event["headers"]["x-api-key"] = API_KEY
    assert gateway.send("GET /v1/{proxy+}", event)[0] == 200
    assert len(_stream_records(aws("kinesis"), stream)) == len(before) + 2


def _stream_records(kinesis: Any, stream: str) -> list[bytes]:
    """Every record's data on the stream, from the start of each shard."""
    found = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            found.extend(r["Data"] for r in page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return found


# --- destroy ------------------------------------------------------------------------------------


def test_destroy_removes_everything(
    terraform: Terraform, workdir: Path, deployed: dict[str, Any], aws: Any
) -> None:
    terraform.run("destroy", "-input=false", "-no-color", "-auto-approve", cwd=workdir)
    state = terraform.run("state", "list", cwd=workdir, check=False)
    assert state.stdout.strip() == ""
    assert deployed["table_name"] not in aws("dynamodb").list_tables()["TableNames"]
    assert deployed["stream_name"] not in aws("kinesis").list_streams()["StreamNames"]
    functions = {f["FunctionName"] for f in aws("lambda").list_functions()["Functions"]}
    assert not functions & set(deployed["function_names"].values())
