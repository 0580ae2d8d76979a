"""deploy/aws read statically (python-hcl2): what a plan against moto cannot show.

moto does not run IoT rules, so the rule's partition key is evaluated here, the way IoT Core
substitutes templates, on the message shapes the rule accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.terraform.conftest import DEPLOY, require

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class AwsConfig:
    """Resources by address, and variables by name, of every ``*.tf`` of deploy/aws."""

    resources: dict[str, dict[str, Any]]
    variables: dict[str, dict[str, Any]]
    locals: dict[str, Any]


@pytest.fixture(scope="module")
def tf() -> AwsConfig:
    try:
        import hcl2
        from hcl2.utils import SerializationOptions
    except ImportError:
        require("python-hcl2 is not installed (pip install -e '.[dev]')")
    options = SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    resources: dict[str, dict[str, Any]] = {}
    variables: dict[str, dict[str, Any]] = {}
    local_values: dict[str, Any] = {}
    for path in sorted(DEPLOY.glob("*.tf")):
        document = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options)
        for block in document.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    resources[f"{kind}.{name}"] = body
        for block in document.get("variable", []):
            variables.update(block)
        for block in document.get("locals", []):
            local_values.update(block)
    return AwsConfig(resources, variables, local_values)


# --- the IoT Core rule ----------------------------------------------------------------------------

_TEMPLATE = re.compile(r"\$\{([^}]*)\}")


def iot_substitute(template: str, topic: str, payload: bytes) -> str:
    """An IoT Core substitution template evaluated as the rules engine does: ``topic(n)`` is the
    topic's n-th level (1-based), a name is the payload's top-level attribute, and what does
    not resolve (an attribute of an array payload, say) becomes the empty string."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        level = re.fullmatch(r"topic\((\d+)\)", expression)
        if level:
            levels = topic.split("/")
            index = int(level.group(1)) - 1
            return levels[index] if index < len(levels) else ""
        document = orjson.loads(payload)
        found = document.get(expression) if isinstance(document, dict) else None
        return "" if found is None else str(found)

    return _TEMPLATE.sub(value, template)


def _iot_rule(tf: AwsConfig) -> dict[str, Any]:
    return tf.resources["aws_iot_topic_rule.readings"]


def test_the_iot_rule_selects_whole_messages_from_the_topic_filter(tf: AwsConfig) -> None:
    rule = _iot_rule(tf)
    assert rule["sql"] == "SELECT * FROM '${var.iot_topic_filter}'"
    assert rule["sql_version"] == "2016-03-23"
    assert tf.variables["iot_topic_filter"]["default"] == "iotpipe/+/readings"


@pytest.mark.parametrize(
    "payload",
    [
        {"device_id": "dev-7", "timestamp": "2025-08-31T10:00:00Z", "temperature": 20},
        [
            {"device_id": "dev-7", "timestamp": "2025-08-31T10:00:00Z", "temperature": 20},
            {"device_id": "dev-7", "timestamp": "2025-08-31T10:01:00Z", "temperature": 21},
        ],
    ],
    ids=["one reading", "an array of readings"],
)
def test_the_partition_key_is_the_device_for_every_accepted_payload_shape(
    tf: AwsConfig, payload: Any
) -> None:
    """Kinesis refuses an empty partition key: the key must resolve for arrays too."""
    [kinesis] = _iot_rule(tf)["kinesis"]
    template = kinesis["partition_key"].replace("$${", "${")  # Terraform's escape of ${
    topic = tf.variables["iot_topic_filter"]["default"].replace("+", "dev-7")
    assert iot_substitute(template, topic, orjson.dumps(payload)) == "dev-7"


def test_the_topic_filter_must_keep_the_device_level_the_key_reads(tf: AwsConfig) -> None:
    [kinesis] = _iot_rule(tf)["kinesis"]
    level = re.fullmatch(r"\$\$\{topic\((\d)\)\}", kinesis["partition_key"])
    assert level, kinesis["partition_key"]
    [validation] = tf.variables["iot_topic_filter"]["validation"]
    assert f'[{int(level.group(1)) - 1}] == "+"' in validation["condition"]


# --- tracing: only what is instrumented is claimed ------------------------------------------------

SDK_SERVICES = ("DynamoDB", "S3", "Kinesis")


def _xray_paragraph(text: str) -> str:
    """The bullet of functions.tf's header comment that describes X-Ray."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# - X-Ray"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("#   "))
    return " ".join(line.lstrip("# ").strip() for line in lines[start:end])


def _instruments_boto3() -> bool:
    """Whether any handler module patches botocore for X-Ray (the SDK or Powertools Tracer)."""
    source = DEPLOY.parents[1] / "src" / "iotpipe" / "entrypoints" / "aws"
    text = "\n".join(p.read_text(encoding="utf-8") for p in source.glob("*.py"))
    return any(marker in text for marker in ("aws_xray_sdk", "patch_all", "Tracer("))


def test_tracing_claims_no_sdk_spans_that_nothing_records(tf: AwsConfig) -> None:
    """Active tracing gives Lambda's own segments; DynamoDB, S3 or Kinesis subsegments exist only
    if boto3 is instrumented. The configuration used to claim them without that."""
    functions = [r for a, r in tf.resources.items() if a.startswith("aws_lambda_function.")]
    modes = [f["tracing_config"][0]["mode"] for f in functions]
    assert modes == ['${lookup(var.xray_tracing, each.key, "Active")}']
    paragraph = _xray_paragraph((DEPLOY / "functions.tf").read_text(encoding="utf-8"))
    named = [s for s in SDK_SERVICES if s in paragraph]
    if not _instruments_boto3():
        assert named and "NOT traced" in paragraph, paragraph  # named only to say they are not


# --- the cost defaults (issue #16: docs/scaling.md's AWS monthly cost at 100,000 devices) -------


def _default(tf: AwsConfig, name: str) -> Any:
    return tf.variables[name]["default"]


def test_only_the_low_rate_functions_record_traces_by_default(tf: AwsConfig) -> None:
    """Ingest and the authorizer run once per request (~$2,200 a month of traces at 100,000
    devices if Active); process, api and fleet run per batch or per query."""
    modes = _default(tf, "xray_tracing")
    assert modes == {
        "ingest": "PassThrough",
        "authorizer": "PassThrough",
        "process": "Active",
        "api": "Active",
        "fleet": "Active",
    }
    assert set(modes) == set(tf.locals["handlers"])


def test_only_the_low_rate_functions_write_lambdas_per_invocation_lines(tf: AwsConfig) -> None:
    """START/END/REPORT per invocation: ~$720 a month for ingest and the authorizer alone."""
    assert _default(tf, "platform_log_level") == {"ingest": "WARN", "authorizer": "WARN"}
    [block] = tf.resources["aws_lambda_function.fn"]["dynamic"]
    config = block["logging_config"]
    assert "var.platform_log_level" in config["for_each"]
    assert config["content"] == [
        {
            "log_format": "JSON",
            "system_log_level": "${logging_config.value}",
            "application_log_level": "INFO",
        }
    ]


def test_ingest_checks_the_key_itself_and_the_authorizer_is_not_cached_by_default(
    tf: AwsConfig,
) -> None:
    """POST /v1/readings has no gateway authorizer by default (ingest checks the key itself:
    ~$950 a month less at 100,000 devices), and no cache, so that X-API-Key works on every
    route; both are variables (deploy/aws/README.md)."""
    assert _default(tf, "ingest_gateway_authorizer") is False
    assert tf.locals["routes"]["POST /v1/readings"]["protected"] == (
        "${var.ingest_gateway_authorizer}"
    )
    assert tf.locals["routes"]["GET /v1/{proxy+}"]["protected"] is True
    assert _default(tf, "authorizer_cache_s") == 0
    authorizer = tf.resources["aws_apigatewayv2_authorizer.keys"]
    assert authorizer["authorizer_result_ttl_in_seconds"] == "${var.authorizer_cache_s}"
    # A cache is keyed on the Authorization header; without one, no header is required.
    assert "var.authorizer_cache_s > 0" in authorizer["identity_sources"]
    assert "$request.header.Authorization" in authorizer["identity_sources"]


def test_lambda_batches_wait_up_to_5_s_and_process_has_512_mb(tf: AwsConfig) -> None:
    assert _default(tf, "batching_window_s") == 5
    mapping = tf.resources["aws_lambda_event_source_mapping.process"]
    assert mapping["maximum_batching_window_in_seconds"] == "${var.batching_window_s}"
    assert _default(tf, "functions")["process"]["memory_mb"] == 512


def test_ingest_compresses_stream_records_by_default(tf: AwsConfig) -> None:
    from iotpipe.entrypoints.aws import settings

    assert _default(tf, "stream_compression") == "zlib"
    ingest = tf.locals["environment"]["ingest"]
    assert settings.STREAM_COMPRESSION in str(ingest) and "var.stream_compression" in str(ingest)


def test_the_access_log_line_is_short(tf: AwsConfig) -> None:
    """Every request writes one (~1,667/s at 100,000 devices): the fields that say who, what,
    the answer, how long and the integration's error; not the user agent or repeats."""
    stage = tf.resources["aws_apigatewayv2_stage.default"]
    fields = orjson.loads(_jsonencode_body(stage["access_log_settings"][0]["format"]))
    assert set(fields) == {
        "requestId",
        "ip",
        "time",
        "routeKey",
        "path",
        "status",
        "responseLength",
        "responseLatency",
        "integrationError",
    }
    # A representative line: well under half the ~450 bytes of the 15-field line it replaces.
    example = {
        "requestId": "JtQXUg3WoAMEVzQ=",
        "ip": "203.0.113.17",
        "time": "1756634400",
        "routeKey": "POST /v1/readings",
        "path": "/v1/readings",
        "status": "202",
        "responseLength": "44",
        "responseLatency": "23",
        "integrationError": "-",
    }
    assert example.keys() == fields.keys() and len(orjson.dumps(example)) <= 225


def _jsonencode_body(expression: str) -> str:
    """The object inside ``${jsonencode({...})}`` as JSON (python-hcl2 keeps it as text)."""
    body = expression.removeprefix("${jsonencode(").removesuffix(")}")
    pairs = re.findall(r'(\w+)\s*=\s*"([^"]*)"', body)
    assert pairs, expression
    return orjson.dumps(dict(pairs)).decode()
