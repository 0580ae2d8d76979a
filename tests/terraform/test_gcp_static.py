"""deploy/gcp held against the code, statically: no hashicorp/google provider can be installed
here, so neither ``terraform validate`` nor a plan can run (deploy/gcp/README.md says so).

What runs instead: ``terraform fmt -check``; every reference in the HCL resolves to something
declared; and the HCL, parsed with python-hcl2, against the code it deploys:

- each function's entry point is a function ``main.py`` registers with functions-framework, with
  the signature type the packaging declares, built from the archive ``iotpipe package gcp`` writes;
- each function's environment is exactly the settings its code reads, found by running its
  composition root and request handling with a settings object that records what is read;
- the push subscriptions feeding the process function read the topic ingest publishes to, or
  the archive files' notifications (those are test_gcp_files.py's);
- the Firestore index and field overrides serve every query the adapter issues (recorded from
  the adapter itself, on a fake client) and agree with its constants;
- the log-based metrics read fields the process function's summary line carries;
- every IAM grant is one of deploy/gcp/README.md's table, and every row of the table is granted.

Checkov (test_checkov.py) covers the configuration's security settings.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from iotpipe import application
from iotpipe.adapters.gcp import firestore as adapter
from iotpipe.application import ProcessReport
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.entrypoints.gcp import bootstrap, clients, packaging, settings
from iotpipe.entrypoints.gcp import observability as obs
from tests.terraform.conftest import DEPLOY_GCP, require

pytestmark = pytest.mark.integration

FUNCTIONS = {role: f"google_cloudfunctions2_function.{role}" for role in packaging.ENTRY_POINTS}

#: What each GcpSettings field stands for (its environment variables), and the fields a
#: method reads. A new setting must be added here, or the tests below fail.
FIELD_SETTINGS = {
    "project": {settings.PROJECT},
    "topic": {settings.TOPIC},
    "firestore_database": {settings.FIRESTORE_DATABASE},
    "firestore_prefix": {settings.FIRESTORE_PREFIX},
    "bucket": {settings.BUCKET},
    "api_keys": {settings.API_KEYS},
    "lateness": {settings.LATENESS_HORIZON_HOURS, settings.MAX_SKEW_SECONDS},
    "ttl_days": {settings.TTL_DAYS},
    "fleet_lanes": {settings.FLEET_LANES},
    "compress_stream": {settings.STREAM_COMPRESSION},
}
METHOD_FIELDS = {"topic_path": ("topic", "project"), "need_bucket": ("bucket",)}
#: Read by the code but deliberately left unset by the deployment (deploy/gcp/functions.tf).
NOT_SET = {settings.FIRESTORE_PREFIX: "namespaces test stores in one database; a stack owns its"}
#: Set by the deployment for the platform, not read by iotpipe: gunicorn's threads.
PLATFORM = {"THREADS"}

#: The attribute of each IAM member resource that names what it grants on (None: the project).
SCOPE_ATTRIBUTE = {
    "google_project_iam_member": None,
    "google_pubsub_topic_iam_member": "topic",
    "google_pubsub_subscription_iam_member": "subscription",
    "google_secret_manager_secret_iam_member": "secret_id",
    "google_storage_bucket_iam_member": "bucket",
    "google_cloud_run_service_iam_member": "service",
    "google_artifact_registry_repository_iam_member": "repository",
    "google_service_account_iam_member": "service_account_id",
}
PUBSUB_AGENT = "pubsub-agent"
GCS_AGENT = "gcs-agent"
#: How the README table names each Google service agent, and the local that holds it.
AGENTS = {
    "Pub/Sub service agent": (PUBSUB_AGENT, "${local.pubsub_agent}"),
    "Cloud Storage service agent": (GCS_AGENT, "${local.gcs_agent}"),
}

_ADDRESS = re.compile(r'(?<![\w."])((?:data\.)?google_\w+\.\w+)(?:\["(\w+)"\])?')
_REFERENCE = re.compile(r"(?<![\w.])(data\.google_\w+|google_\w+|var|local)\.(\w+)")


# --- the configuration, parsed --------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """deploy/gcp's blocks: resources and data sources by address, locals, variables."""

    resources: dict[str, dict[str, Any]]
    data: dict[str, dict[str, Any]]
    locals: dict[str, Any]
    variables: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """The resources of one type, by address."""
        return {a: body for a, body in self.resources.items() if a.split(".")[0] == kind}


@pytest.fixture(scope="module")
def tf() -> Config:
    """Every ``*.tf`` of deploy/gcp, parsed (comments dropped, strings unquoted)."""
    try:
        import hcl2
        from hcl2.utils import SerializationOptions
    except ImportError:
        require("python-hcl2 is not installed (pip install -e '.[dev]')")
    options = SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    found: dict[str, dict[str, Any]] = {
        "resource": {},
        "data": {},
        "locals": {},
        "variable": {},
        "output": {},
    }
    for path in sorted(DEPLOY_GCP.glob("*.tf")):
        document = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options)
        for block in document.get("resource", []) + document.get("data", []):
            kind = "resource" if block in document.get("resource", []) else "data"
            for rtype, named in block.items():
                for name, body in named.items():
                    prefix = "" if kind == "resource" else "data."
                    found[kind][f"{prefix}{rtype}.{name}"] = body
        for kind in ("locals", "variable", "output"):
            for block in document.get(kind, []):
                found[kind].update(block)
    assert found["resource"], f"no resource parsed from {DEPLOY_GCP}"
    return Config(
        found["resource"], found["data"], found["locals"], found["variable"], found["output"]
    )


def strings(value: Any) -> Iterator[str]:
    """Every string in a parsed value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The one nested block ``name`` of a resource."""
    blocks = body.get(name, [])
    assert len(blocks) == 1, f"expected one {name} block, found {len(blocks)}"
    return dict(blocks[0])


def instances(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A resource's instances: ``for_each = toset([...])`` expanded (``each.key`` replaced)."""
    if "for_each" not in body:
        return [body]
    match = re.fullmatch(r"\$\{toset\((\[.*\])\)\}", body["for_each"], re.S)
    if match is None:
        return [body]  # a computed for_each: callers handle it
    return [_substitute(body, key) for key in json.loads(match[1])]


def _substitute(value: Any, key: str) -> Any:
    if isinstance(value, str):
        return value.replace("${each.key}", key).replace("[each.key]", f'["{key}"]')
    if isinstance(value, dict):
        return {k: _substitute(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, key) for v in value]
    return value


def address(expression: str) -> str:
    """The first resource address an expression refers to (with its ``["key"]``, if any)."""
    match = _ADDRESS.search(expression)
    assert match, f"no resource reference in {expression!r}"
    return match[1] + (f'["{match[2]}"]' if match[2] else "")


def service_config(tf: Config, role: str) -> dict[str, Any]:
    return block(tf.resources[FUNCTIONS[role]], "service_config")


def environment(tf: Config, role: str) -> dict[str, str]:
    """The variables a function gets: plain ones and those mounted from secrets."""
    service = service_config(tf, role)
    names = dict(service.get("environment_variables", {}))
    for secret in service.get("secret_environment_variables", []):
        names[secret["key"]] = f"secret {secret['secret']}"
    return names


# --- Terraform itself -----------------------------------------------------------------------------


def test_terraform_fmt_is_clean(terraform_binary: str) -> None:
    """``terraform fmt -check`` (needs no provider; rewrites nothing)."""
    done = subprocess.run(
        [terraform_binary, "fmt", "-check", "-recursive", "-diff", "-no-color", str(DEPLOY_GCP)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"terraform fmt would change:\n{done.stdout}{done.stderr}"


def test_every_reference_resolves(tf: Config) -> None:
    """What ``terraform validate`` would catch first: a reference to nothing."""
    declared = {
        "var": set(tf.variables),
        "local": set(tf.locals),
    }
    unresolved = set()
    everything = [tf.resources, tf.data, tf.locals, tf.outputs, tf.variables]
    for text in (s for part in everything for s in strings(part)):
        for kind, name in _REFERENCE.findall(text):
            if kind in declared:
                if name not in declared[kind]:
                    unresolved.add(f"{kind}.{name}")
            elif f"{kind}.{name}" not in tf.resources and f"{kind}.{name}" not in tf.data:
                unresolved.add(f"{kind}.{name}")
    assert not unresolved, sorted(unresolved)
    assert {"project", "region", "name_prefix"} <= declared["var"]
    assert all("description" in v for v in tf.variables.values()), "a variable lacks a description"


# --- the functions --------------------------------------------------------------------------------


def test_the_functions_are_those_the_archive_serves(tf: Config) -> None:
    assert set(tf.of_type("google_cloudfunctions2_function")) == set(FUNCTIONS.values())
    source = tf.resources["google_storage_bucket_object.source"]
    assert source["source"] == "${var.source_zip}"
    default = Path(tf.variables["source_zip"]["default"])
    assert default.name == packaging.SOURCE_ZIP
    assert default.parent.as_posix().endswith(packaging.DEFAULT_OUT.as_posix())
    for role in FUNCTIONS:
        build = block(tf.resources[FUNCTIONS[role]], "build_config")
        storage = block(block(build, "source"), "storage_source")
        assert storage["object"] == "${local.build.object}", role
    assert tf.locals["build"]["object"] == "${google_storage_bucket_object.source.name}"


@pytest.mark.parametrize("role", sorted(FUNCTIONS))
def test_entry_point_is_a_registered_function_of_main(tf: Config, role: str) -> None:
    from functions_framework import _function_registry as registry

    from iotpipe.entrypoints.gcp import main

    entry_point = block(tf.resources[FUNCTIONS[role]], "build_config")["entry_point"]
    declared = packaging.ENTRY_POINTS[role]
    assert entry_point == declared["entry_point"]
    assert callable(getattr(main, entry_point, None)), f"main.py has no function {entry_point}"
    assert registry.REGISTRY_MAP.get(entry_point) == declared["signature_type"]


class RecordingSettings:
    """Real settings that note which fields the code reads."""

    def __init__(self, real: settings.GcpSettings) -> None:
        self._real = real
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        self.read.update(METHOD_FIELDS.get(name, (name,)))
        return value


def test_field_settings_name_every_setting() -> None:
    fields = {f.name for f in dataclasses.fields(settings.GcpSettings)}
    assert set(FIELD_SETTINGS) == fields
    assert set().union(*FIELD_SETTINGS.values()) == set(settings.ALL)


def _reads(role: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The settings a function reads: its composition root built, and one request handled."""
    import flask

    module = importlib.import_module(f"iotpipe.entrypoints.gcp.{role}")
    values = {
        settings.PROJECT: "p",
        settings.TOPIC: "readings",
        settings.FIRESTORE_DATABASE: "db",
        settings.FIRESTORE_PREFIX: "",
        settings.BUCKET: "archive",
        settings.API_KEYS: "key-1234567890",
        settings.LATENESS_HORIZON_HOURS: "168",
        settings.MAX_SKEW_SECONDS: "300",
        settings.TTL_DAYS: "400",
        settings.FLEET_LANES: "8",
        settings.STREAM_COMPRESSION: "zlib",
    }
    recording = RecordingSettings(settings.GcpSettings.from_env(values))
    monkeypatch.setattr(module, "settings", lambda: recording)
    monkeypatch.setattr(bootstrap, "settings", lambda: recording)
    monkeypatch.setattr(obs, "configure_logging", lambda: None)
    for factory in ("firestore", "storage", "publisher"):
        monkeypatch.setattr(clients, factory, lambda *args: mock.MagicMock())
    # The stores are mocks: the schema check at start-up (which reads no setting) is skipped.
    monkeypatch.setattr(application, "use_schema", lambda store, schema, **_: schema)
    if role == "process":
        bootstrap.process_service.__wrapped__()
        with flask.Flask(__name__).test_request_context("/", method="POST", data=b"{}"):
            assert module.handle_request(flask.request).status_code == 400  # not a delivery
    else:
        root = "ingest_api" if role == "ingest" else "query_api"
        built = getattr(bootstrap, root).__wrapped__()
        monkeypatch.setattr(bootstrap, root, lambda: built)
        with flask.Flask(__name__).test_request_context("/v1/health"):
            assert module.handle(flask.request).status_code == 200
    unknown = recording.read - set(FIELD_SETTINGS)
    assert not unknown, f"GcpSettings.{unknown} is read: add it to FIELD_SETTINGS"
    return set().union(*(FIELD_SETTINGS[name] for name in recording.read))


@pytest.mark.parametrize("role", sorted(FUNCTIONS))
def test_environment_is_exactly_what_the_function_reads(
    tf: Config, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _reads(role, monkeypatch) - set(NOT_SET)
    env = environment(tf, role)
    assert set(env) - PLATFORM == expected
    assert set(env) <= set(settings.ALL) | PLATFORM
    # THREADS follows the function's concurrency (both from var.functions).
    concurrency = service_config(tf, role)["max_instance_request_concurrency"]
    assert env["THREADS"] == "${tostring(" + concurrency[2:-1] + ")}"
    if settings.API_KEYS in env:  # the keys come from the secret, never in plain text
        assert env[settings.API_KEYS] == "secret ${google_secret_manager_secret.api_keys.secret_id}"


def test_ingest_compresses_messages_by_default(tf: Config) -> None:
    variable = tf.variables["stream_compression"]
    assert variable["default"] == "zlib"
    assert environment(tf, "ingest")[settings.STREAM_COMPRESSION] == "${var.stream_compression}"
    for role in set(FUNCTIONS) - {"ingest"}:  # only ingest publishes
        assert settings.STREAM_COMPRESSION not in environment(tf, role)


def test_every_setting_is_set_for_some_function_or_documented_as_unset(tf: Config) -> None:
    set_somewhere = set().union(*(environment(tf, role) for role in FUNCTIONS))
    assert set(settings.ALL) == (set_somewhere - PLATFORM) | set(NOT_SET)


# --- the topic and the push subscriptions --------------------------------------------------------


def local_value(tf: Config, expression: str) -> Any:
    """``${local.name.key}`` (or ``${local.name}``) replaced by what the locals block holds."""
    match = re.fullmatch(r"\$\{local\.(\w+)(?:\.(\w+))?\}", expression)
    if match is None:
        return expression
    value = tf.locals[match[1]]
    return value[match[2]] if match[2] else value


def test_process_subscriptions_read_the_topic_ingest_publishes_to_or_its_files(
    tf: Config,
) -> None:
    from functions_framework.event_conversion import _parse_pubsub_topic

    topic_expression = environment(tf, "ingest")[settings.TOPIC]
    topic = address(topic_expression)
    assert topic_expression == "${" + topic + ".id}"  # a full path, as topic_path() takes it
    assert topic in tf.resources

    process_uri = "${google_cloudfunctions2_function.process.service_config[0].uri}"
    pushes = [
        body
        for body in tf.of_type("google_pubsub_subscription").values()
        if "push_config" in body and process_uri in block(body, "push_config")["push_endpoint"]
    ]
    assert len(pushes) == 1, "one resource (one instance per route) pushes to the process function"
    push = pushes[0]
    # One instance per route of derived.tf: the readings topic itself ("messages"), or the
    # notifications of the archive files ("files", test_gcp_files.py).
    assert push["for_each"] == "${local.process_subscriptions}"
    assert push["topic"] == "${each.value.topic}"
    routes = tf.locals["process_subscriptions"]
    assert routes.startswith("${{for route in local.process_routes : route => {")
    assert (
        f'topic = route == "messages" ? {topic_expression[2:-1]} : '
        "one(google_pubsub_topic.archive_files[*].id)"
    ) in routes
    endpoint = block(push, "push_config")["push_endpoint"]
    assert endpoint == f"{process_uri}/${{each.value.topic}}"
    # functions-framework finds the topic in the path of such an endpoint.
    path = endpoint.replace(process_uri, "").replace("${each.value.topic}", "projects/p/topics/t")
    assert _parse_pubsub_topic(path) == "projects/p/topics/t"
    assert "event_trigger" not in tf.resources[FUNCTIONS["process"]]  # the only way in

    # Redelivery and dead letters: never to the readings topic itself; no overlap of deliveries.
    dead_letter = {k: local_value(tf, v) for k, v in block(push, "dead_letter_policy").items()}
    assert address(dead_letter["dead_letter_topic"]) not in (topic, "")
    assert address(dead_letter["dead_letter_topic"]) in tf.resources
    assert push["ack_deadline_seconds"] == service_config(tf, "process")["timeout_seconds"]
    assert block(push, "expiration_policy")["ttl"] == ""
    assert "retry_policy" in push
    assert block(push, "push_config")["oidc_token"][0]["service_account_email"] == (
        '${google_service_account.fn["trigger"].email}'
    )


# --- Firestore ------------------------------------------------------------------------------------


class FakeQuery:
    """Records a query's scope, collection, filters and orders; returns no documents."""

    def __init__(self, log: list[dict[str, Any]], scope: str, collection: str) -> None:
        self.spec: dict[str, Any] = {
            "scope": scope,
            "collection": collection,
            "filters": [],
            "orders": [],
        }
        log.append(self.spec)
        self._log = log

    def where(self, *, filter: Any) -> FakeQuery:
        self.spec["filters"].append((filter.field_path, filter.op_string))
        return self

    def order_by(self, field: str, direction: str = "ASCENDING") -> FakeQuery:
        self.spec["orders"].append((field, direction))
        return self

    def select(self, fields: Any) -> FakeQuery:
        return self

    def start_after(self, document: Any) -> FakeQuery:
        return self

    def limit(self, count: int) -> FakeQuery:
        return self

    def stream(self, **options: Any) -> Iterator[Any]:
        return iter(())

    def document(self, name: str) -> FakeDocument:
        return FakeDocument(self._log)


class FakeDocument:
    def __init__(self, log: list[dict[str, Any]]) -> None:
        self._log = log

    def collection(self, name: str) -> FakeQuery:
        return FakeQuery(self._log, "COLLECTION", name)


class FakeClient:
    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []

    def collection(self, name: str) -> FakeQuery:
        return FakeQuery(self.log, "COLLECTION", name)

    def collection_group(self, name: str) -> FakeQuery:
        return FakeQuery(self.log, "COLLECTION_GROUP", name)


def adapter_queries() -> list[dict[str, Any]]:
    """Every query the store's read methods issue (first pages and later ones)."""
    client = FakeClient()
    store = adapter.FirestoreStore(client)
    store.hourly("d1", 0, 5 * MS_PER_HOUR, limit=10)
    store.hourly("d1", 0, 5 * MS_PER_HOUR, limit=10, cursor="0")
    store.fleet_hour(0, limit=10)
    store.fleet_hour(0, limit=10, cursor="d1")
    store.latest("d1")
    store.devices(limit=10)
    store.devices(limit=10, cursor="d1")
    return [q for q in client.log if q["filters"] or q["orders"]]


def declared_indexes(tf: Config) -> list[dict[str, Any]]:
    return [
        {
            "collection_group": body["collection"],
            "query_scope": body["query_scope"],
            "fields": [(f["field_path"], f["order"]) for f in body["fields"]],
        }
        for body in tf.of_type("google_firestore_index").values()
    ]


def exempted_fields(tf: Config) -> dict[tuple[str, str], dict[str, Any]]:
    """(collection, field) -> its google_firestore_field settings (instances expanded)."""
    found = {}
    for body in tf.of_type("google_firestore_field").values():
        for instance in instances(body):
            found[(instance["collection"], instance["field"])] = instance
    return found


def _served(query: dict[str, Any], tf: Config) -> bool:
    equal = {f for f, op in query["filters"] if op == "=="}
    ranges = [f for f, op in query["filters"] if op != "=="]
    orders = list(query["orders"])
    fields = equal | set(ranges) | {f for f, _ in orders}
    if query["scope"] == "COLLECTION" and len(fields) == 1:
        # The automatic single-field indexes (both directions) serve it, unless exempted.
        exempt = {
            f
            for (c, f), settings_ in exempted_fields(tf).items()
            if c == query["collection"] and settings_.get("index_config") == [{}]
        }
        return not fields & exempt
    ordered = orders + [(f, "ASCENDING") for f in ranges if f not in dict(orders)]
    for index in declared_indexes(tf):
        head = index["fields"][: len(equal)]
        if (
            index["collection_group"] == query["collection"]
            and index["query_scope"] == query["scope"]
            and {f for f, _ in head} == equal
            and index["fields"][len(equal) :] == ordered
        ):
            return True
    return False


def test_declared_indexes_serve_every_query_of_the_adapter(tf: Config) -> None:
    queries = adapter_queries()
    scopes = {(q["scope"], q["collection"]) for q in queries}
    assert ("COLLECTION_GROUP", adapter.HOURS) in scopes  # the fleet query was recorded
    unserved = [q for q in queries if not _served(q, tf)]
    assert not unserved, f"no index serves: {unserved}"


def test_firestore_settings_match_the_adapter_constants(tf: Config) -> None:
    fleet = {**adapter.FLEET_INDEX, "fields": list(adapter.FLEET_INDEX["fields"])}
    assert declared_indexes(tf) == [fleet]
    fields = exempted_fields(tf)
    unindexed = {
        f for (c, f), s in fields.items() if c == adapter.HOURS and s["index_config"] == [{}]
    }
    assert unindexed == set(adapter.UNINDEXED_FIELDS)
    ttl = {f for (c, f), s in fields.items() if c == adapter.HOURS and "ttl_config" in s}
    assert ttl == {adapter.TTL_FIELD}
    assert set(fields) == {(adapter.HOURS, f) for f in adapter.UNINDEXED_FIELDS}
    database = tf.resources["google_firestore_database.store"]
    assert database["type"] == "FIRESTORE_NATIVE"
    assert environment(tf, "process")[settings.FIRESTORE_DATABASE] == (
        "${google_firestore_database.store.name}"
    )


# --- monitoring -----------------------------------------------------------------------------------


#: The process function's summary line per archive file, and its field the per-message line
#: lacks (iotpipe.entrypoints.gcp.process, the files path).
FILE_LINE, FILE_LINE_ONLY = "file processed", {"file_age_ms"}


def test_log_metrics_read_fields_of_the_summary_line(
    tf: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    from iotpipe.adapters.gcp.events import PushDelivery, StorageNotification
    from iotpipe.application.stream_files import FileReport
    from iotpipe.entrypoints.gcp import process

    report = ProcessReport(
        "m1", 1, 4, 1, 1, {"too_late": 1}, 1, windows_touched=1, unapplied=1, newest_ms=0
    )
    process._observe(report, 0.25, PushDelivery({}))
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    numbers = {k for k, v in line.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    fields = set(tf.locals["summary_fields"])
    # The per-file line (files mode) carries the same counts and file_age_ms instead of lag_ms.
    assert fields - FILE_LINE_ONLY <= numbers, f"not in the summary line: {fields - numbers}"
    name = "stream/2026-12-05/14_00_00Z_0.jsonl"
    notice = StorageNotification("OBJECT_FINALIZE", "b", name, 1, 0, 10)
    process._observe_file(FileReport(name, True, (report,)), 0.5, PushDelivery({}), notice)
    file_line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert file_line["message"] == FILE_LINE
    file_numbers = {
        k for k, v in file_line.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    assert fields - {"lag_ms"} <= file_numbers, f"not in the file line: {fields - file_numbers}"
    assert {"received", "accepted", "duplicates", "rejected_total", "unapplied"} <= fields
    summary = tf.locals["summary_logs"]
    assert f'jsonPayload.message=("{line["message"]}" OR "{FILE_LINE}")' in summary
    assert 'resource.labels.service_name="${local.function_names.process}"' in summary
    metric = tf.resources["google_logging_metric.summary"]
    assert metric["for_each"] == "${local.summary_fields}"
    assert metric["value_extractor"] == "EXTRACT(jsonPayload.${each.key})"
    assert line["severity"] in ("INFO", "WARNING")
    batches = tf.resources["google_logging_metric.batches"]
    assert batches["label_extractors"] == {"severity": "EXTRACT(severity)"}


def test_alert_policies_watch_what_the_issue_asks(tf: Config) -> None:
    alerts = tf.locals["alerts"]
    assert set(alerts) == {"function-errors", "dead-letter-backlog", "oldest-unacked", "api-5xx"}
    assert "google_pubsub_subscription.dead_letter.name" in alerts["dead-letter-backlog"]["filter"]
    assert "oldest_unacked_message_age" in alerts["oldest-unacked"]["filter"]
    assert 'response_code_class=\\"5xx\\"' in alerts["api-5xx"]["filter"] or (
        'response_code_class="5xx"' in alerts["api-5xx"]["filter"]
    )
    assert "google_monitoring_dashboard.pipeline" in tf.resources


# --- IAM ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One role granted to one of the stack's principals on one resource."""

    who: str
    role: str
    on: str
    conditioned: bool


def readme_grants() -> tuple[set[Grant], dict[str, list[str]]]:
    """The table of deploy/gcp/README.md, and the permissions it lists for custom roles."""
    text = (DEPLOY_GCP / "README.md").read_text(encoding="utf-8")
    section = text.split("## Service accounts and roles", 1)[1].split("\n## ", 1)[0]
    grants, custom = set(), {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| ---", "| service account")):
            continue
        who, role_cell, on_cell, _why = (c.strip() for c in line.strip().strip("|").split("|"))
        who = AGENTS[who][0] if who in AGENTS else who.strip("`")
        role, *permissions = re.findall(r"`([^`]+)`", role_cell)
        if permissions:
            custom[role] = permissions
        on = "project" if on_cell.startswith("project") else re.findall(r"`([^`]+)`", on_cell)[0]
        grants.add(Grant(who, role, on, "condition" in on_cell))
    assert grants, "no table under '## Service accounts and roles' in deploy/gcp/README.md"
    return grants, custom


def terraform_grants(tf: Config) -> set[Grant]:
    """Every IAM member resource granting to the stack's accounts or a Google service agent."""
    grants = set()
    for addr, body in tf.resources.items():
        kind = addr.split(".")[0]
        if "_iam_" not in kind or kind == "google_project_iam_custom_role":
            continue
        assert kind in SCOPE_ATTRIBUTE, f"{addr}: only non-authoritative *_iam_member grants"
        for instance in instances(body):
            member = instance["member"]
            if "each.value" in member:  # the public invokers (auth.tf)
                assert addr == "google_cloud_run_service_iam_member.public", addr
                assert instance["role"] == "roles/run.invoker"
                continue
            account = re.search(r'google_service_account\.fn\["(\w+)"\]', member)
            agents = {local: who for who, local in AGENTS.values()}
            assert account or member in agents, f"{addr}: unexpected member {member}"
            who = account[1] if account else agents[member]
            role = instance["role"]
            role = address(role) if role.startswith("${") else role
            attribute = SCOPE_ATTRIBUTE[kind]
            target = None if attribute is None else instance[attribute]
            if target is not None and "each.value" in target:  # one grant per resource instance
                target = body["for_each"]
            on = "project" if target is None else address(target)
            grants.add(Grant(who, role, on, "condition" in instance))
    return grants


def test_grants_are_exactly_the_readme_table(tf: Config) -> None:
    documented, custom = readme_grants()
    granted = terraform_grants(tf)
    assert granted - documented == set(), "granted but not in the README table"
    assert documented - granted == set(), "in the README table but not granted"
    for role, permissions in custom.items():
        assert tf.resources[role]["permissions"] == permissions, role


def test_each_function_runs_as_its_own_account(tf: Config) -> None:
    accounts = set(tf.locals["service_accounts"])
    documented = {g.who for g in readme_grants()[0]} - {PUBSUB_AGENT, GCS_AGENT}
    assert documented == accounts
    for role in FUNCTIONS:
        email = service_config(tf, role)["service_account_email"]
        assert email == f'${{google_service_account.fn["{role}"].email}}'
    assert tf.locals["build"]["service_account"] == '${google_service_account.fn["build"].id}'


# --- capacity and retries: an overload delays, never dead-letters ----------------------------

#: The documented scale (docs/scaling.md): 1,667 messages/s, ~50 ms in the process function each.
MESSAGES_PER_S, SECONDS_PER_DELIVERY = 1667, 0.05


def _seconds(text: str) -> float:
    return float(text.removesuffix("s"))


def test_the_process_function_has_room_for_the_documented_scale(tf: Config) -> None:
    """8 x 10 = 80 slots against ~83 needed made the steady state saturate: every push beyond
    the slots is a 429 from Cloud Run, which Pub/Sub counts as a failed delivery."""
    process = tf.variables["functions"]["default"]["process"]
    slots = process["max_instances"] * process["concurrency"]
    needed = MESSAGES_PER_S * SECONDS_PER_DELIVERY
    assert slots >= 2 * needed, (slots, needed)  # room to drain a backlog at twice the rate


def test_continuous_failure_takes_hours_to_dead_letter_and_stays_within_retention(
    tf: Config,
) -> None:
    """A failed delivery (a rate-limited upload, a saturated function) counts as an attempt:
    the attempts and backoff must outlast an overload of hours, and the retention the attempts."""
    attempts = tf.variables["max_delivery_attempts"]["default"]
    backoff = tf.variables["retry_backoff"]["default"]
    low, high = float(backoff["min_s"]), float(backoff["max_s"])
    # Pub/Sub's exponential backoff, doubling from the minimum up to the maximum (the delay
    # between attempts; the deliveries themselves add their own time on top).
    until_dead = sum(min(high, low * 2**n) for n in range(attempts - 1))
    assert until_dead >= 12 * 3600, f"dead-lettered after {until_dead / 3600:.1f} h of failures"
    retention_s = tf.variables["message_retention_days"]["default"] * 86400
    assert until_dead < retention_s
    subscription = tf.resources["google_pubsub_subscription.process"]
    [policy] = subscription["dead_letter_policy"]
    attempts_expression = local_value(tf, policy["max_delivery_attempts"])
    assert attempts_expression == "${var.max_delivery_attempts}"
    [retry] = subscription["retry_policy"]
    minimum = local_value(tf, retry["minimum_backoff"])
    assert _seconds(minimum.replace("${var.retry_backoff.min_s}", str(low))) == low
