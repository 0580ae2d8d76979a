"""deploy/gcp's archive files (process_from, archive_files.tf) and request-log exclusion, held
against Google's documented rules and the code that reads the files.

Two kinds of check, as no hashicorp/google provider can be installed here:

- Terraform itself evaluates derived.tf with variables.tf (they read no resource, so no provider
  is needed): the routes and lanes of each ``process_from``, the files' name pattern, the
  exclusion filter, the ``check`` warning, and every variable validation, rejecting values just
  outside Pub/Sub's documented bounds and accepting the bounds themselves.
- The HCL parsed (the ``tf`` fixture of test_gcp_static.py): every resource of the files path is
  wired to the others (the readings topic, the archive bucket, the notification's topic, the
  process function's push subscription with its dead letters) and exists only in files mode.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

# The archive files' name pattern is defined once, in the code that reads the files (the process
# function, replay): the Terraform must write exactly what the code lists and parses.
from iotpipe.application.codecs.archive import (
    STREAM_FILENAME_DATETIME_FORMAT,
    STREAM_FILENAME_PREFIX,
    STREAM_FILENAME_SUFFIX,
)
from tests.terraform.conftest import DEPLOY_GCP
from tests.terraform.test_gcp_static import Config, block, local_value, strings, tf

pytestmark = pytest.mark.integration

__all__ = ["tf"]  # the parsed configuration, a fixture shared with test_gcp_static.py

#: Pub/Sub's bounds (https://cloud.google.com/pubsub/docs/create-cloudstorage-subscription).
MAX_DURATION_S = (60, 600)
MAX_BYTES = (1000, 10 * 1024**3)


# --- Google's documented file-name rules ----------------------------------------------------------

#: Matchers a filename_datetime_format must use exactly once, optional ones at most once, and the
#: separators it may repeat (create-cloudstorage-subscription#file_names).
_REQUIRED = (("YYYY", "YY"), ("MM",), ("DD",), ("hh",), ("mm",), ("ss",))
_OPTIONAL = ("T", "+00:00", "Z")
_SEPARATORS = "-_:/"
_TOKENS = re.compile(r"YYYY|YY|MM|DD|hh|mm|ss|\+00:00|T|Z|[-_:/]|.", re.S)
_STRFTIME = {"YYYY": "%Y", "YY": "%y", "MM": "%m", "DD": "%d", "hh": "%H", "mm": "%M", "ss": "%S"}


def datetime_format_errors(fmt: str) -> list[str]:
    """What Google's documented rules refuse in a filename_datetime_format (empty: valid)."""
    tokens = _TOKENS.findall(fmt)
    errors = [f"{t!r} is not a matcher or separator" for t in tokens if len(t) == 1 and _bad(t)]
    for choices in _REQUIRED:
        used = sum(tokens.count(c) for c in choices)
        if used != 1:
            errors.append(f"{'/'.join(choices)} used {used} times, not once")
    errors += [f"{o} used more than once" for o in _OPTIONAL if tokens.count(o) > 1]
    return errors


def _bad(token: str) -> bool:
    return token not in _SEPARATORS and token not in _OPTIONAL


def object_name(prefix: str, fmt: str, suffix: str, when: datetime, uuid: str) -> str:
    """The name Pub/Sub gives a file: <prefix><UTC-date-time>_<uuid><suffix>; a format ending in
    a separator uses it instead of the '_' (same page)."""
    parts = [_STRFTIME.get(t, t) for t in _TOKENS.findall(fmt)]  # separators, T, Z as they are
    stamp = when.astimezone(UTC).strftime("".join(parts))
    joiner = "" if fmt[-1] in _SEPARATORS else "_"
    return f"{prefix}{stamp}{joiner}{uuid}{suffix}"


def test_the_rule_checker_agrees_with_googles_examples() -> None:
    """The checker is itself held to the page's examples, valid and invalid."""
    assert datetime_format_errors("YYYY-MM-DD/hh_mm_ssZ") == []
    assert datetime_format_errors("YYYY-MM-DDThh_mm_ss-") == []
    assert datetime_format_errors("YY-YYYY-MM-DD/hh_mm_ss")  # "YY-YYYY ... is invalid"
    assert datetime_format_errors("YYYY-MMM-DD/hh_mm_ss")  # "MMM is invalid"
    assert datetime_format_errors("YYYY-MM-DD/hh")  # minutes and seconds are required
    when = datetime(2023, 9, 25, 4, 10, 0, tzinfo=UTC)
    assert object_name("prod_", "YYYY-MM-DD/hh_mm_ssZ", "_archive", when, "uNiQuE") == (
        "prod_2023-09-25/04_10_00Z_uNiQuE_archive"
    )
    assert object_name("prod_", "YYYY-MM-DDThh_mm_ss-", "_archive", when, "uNiQuE") == (
        "prod_2023-09-25T04_10_00-uNiQuE_archive"
    )


def test_the_file_pattern_is_valid_and_puts_each_hour_under_one_prefix() -> None:
    """Replay lists an hour of files by one prefix: the date and the hour, then a separator."""
    fmt = STREAM_FILENAME_DATETIME_FORMAT
    assert datetime_format_errors(fmt) == []
    assert STREAM_FILENAME_PREFIX.endswith("/") and not STREAM_FILENAME_SUFFIX.endswith("/")
    assert fmt.startswith("YYYY-MM-DD/hh") and fmt[len("YYYY-MM-DD/hh")] in _SEPARATORS

    def name(when: datetime, uuid: str = "u-1") -> str:
        return object_name(STREAM_FILENAME_PREFIX, fmt, STREAM_FILENAME_SUFFIX, when, uuid)

    def hour_prefix(when: datetime) -> str:
        return f"{STREAM_FILENAME_PREFIX}{when:%Y-%m-%d}/{when:%H}{fmt[len('YYYY-MM-DD/hh')]}"

    start = datetime(2026, 12, 5, 14, 0, 0, tzinfo=UTC)
    same_hour = [start, start.replace(minute=7, second=31), start.replace(minute=59, second=59)]
    for when in same_hour:
        assert name(when).startswith(hour_prefix(start)), name(when)
        assert name(when).endswith(STREAM_FILENAME_SUFFIX)
    for other in (start.replace(hour=13, minute=59, second=59), start.replace(hour=15)):
        assert not name(other).startswith(hour_prefix(start)), name(other)
    assert sorted([name(start, "u-1"), name(start, "u-0")])[0] == name(start, "u-0")


# --- Terraform itself on derived.tf and variables.tf ------------------------------------------

PROBE = """
output "process_routes" { value = local.process_routes }
output "archive_files_on" { value = local.archive_files_on }
output "fleet_lanes" { value = local.fleet_lanes }
output "archive_files" { value = local.archive_files }
output "request_log_exclusion_on" { value = local.request_log_exclusion_on }
output "request_log_exclusion" { value = local.request_log_exclusion }
"""

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def derived(terraform_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``terraform apply`` of derived.tf + variables.tf (no provider, local state) with -var
    arguments; the completed process, its outputs as JSON in ``.outputs`` when it succeeded."""
    workdir = tmp_path_factory.mktemp("gcp-derived")
    for name in ("variables.tf", "derived.tf"):
        shutil.copy(DEPLOY_GCP / name, workdir / name)
    (workdir / "probe.tf").write_text(PROBE, encoding="utf-8")
    config = workdir / "empty.tfrc"
    config.write_text("", encoding="utf-8")
    env = {"TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    env |= {"CHECKPOINT_DISABLE": "1", "HOME": str(workdir), "PATH": os.environ.get("PATH", "")}

    def terraform(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [terraform_binary, *args, "-no-color"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    init = terraform("init", "-input=false")
    assert init.returncode == 0, init.stdout + init.stderr

    def apply(**variables: Any) -> subprocess.CompletedProcess[str]:
        values = {"project": "p", **variables}
        flags = [f"-var={k}={_hcl(v)}" for k, v in values.items()]
        done = terraform("apply", "-auto-approve", "-input=false", *flags)
        if done.returncode == 0:
            shown = terraform("output", "-json")
            outputs = {k: v["value"] for k, v in json.loads(shown.stdout).items()}
            done.outputs = outputs  # type: ignore[attr-defined]
        return done

    return apply


def _hcl(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def outputs_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(done.outputs)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mode", "routes", "files", "lanes"),
    [
        (None, ["files"], True, 8),  # the default
        ("files", ["files"], True, 8),
        ("messages", ["messages"], False, 0),
        ("both", ["messages", "files"], True, 0),
    ],
)
def test_each_mode_has_its_routes_and_lanes(
    derived: Run, mode: str | None, routes: list[str], files: bool, lanes: int
) -> None:
    done = derived(**({} if mode is None else {"process_from": mode}))
    out = outputs_of(done)
    assert out["process_routes"] == routes
    assert out["archive_files_on"] is files
    assert out["fleet_lanes"] == lanes
    assert "Check block assertion failed" not in done.stdout + done.stderr


def test_lanes_can_be_set_and_warn_on_the_per_message_path(derived: Run) -> None:
    assert outputs_of(derived(process_from="files", fleet_lanes=0))["fleet_lanes"] == 0
    quiet = derived(process_from="files", fleet_lanes=16)
    assert outputs_of(quiet)["fleet_lanes"] == 16
    assert "Check block assertion failed" not in quiet.stdout + quiet.stderr
    for mode in ("messages", "both"):
        loud = derived(process_from=mode, fleet_lanes=8)
        assert outputs_of(loud)["fleet_lanes"] == 8  # a warning, not an error
        said = loud.stdout + loud.stderr
        assert "Check block assertion failed" in said
        assert f'process_from = "{mode}"' in said


def test_the_configured_file_pattern_is_the_codes(derived: Run) -> None:
    pattern = outputs_of(derived())["archive_files"]
    assert pattern == {
        "prefix": STREAM_FILENAME_PREFIX,
        "datetime_format": STREAM_FILENAME_DATETIME_FORMAT,
        "suffix": STREAM_FILENAME_SUFFIX,
    }


def test_the_exclusion_drops_successful_requests_of_ingest_and_process_but_one_percent(
    derived: Run,
) -> None:
    out = outputs_of(derived(name_prefix="tank"))
    assert out["request_log_exclusion_on"] is True
    assert out["request_log_exclusion"] == (
        'logName="projects/p/logs/run.googleapis.com%2Frequests"'
        ' AND resource.type="cloud_run_revision"'
        ' AND resource.labels.service_name=("tank-ingest" OR "tank-process")'
        " AND httpRequest.status<400"
        " AND sample(insertId, 0.99)"
    )
    assert (
        "sample(insertId, 0.9)"
        in outputs_of(derived(request_log_sample=0.1))["request_log_exclusion"]
    )
    assert outputs_of(derived(request_log_sample=1))["request_log_exclusion_on"] is False


#: variable => (values Terraform must refuse, values it must accept: the bounds themselves).
BOUNDS = {
    "process_from": (["file", "Files", ""], ["files", "messages", "both"]),
    "archive_file_max_duration_s": ([59, 601, 90.5], list(MAX_DURATION_S)),
    "archive_file_max_bytes": ([999, MAX_BYTES[1] + 1], list(MAX_BYTES)),
    "fleet_lanes": ([-1, 1.5], [0, 8]),
    "request_log_sample": ([-0.01, 1.01], [0, 1]),
    "stream_compression": (["gzip", "ZLIB", ""], ["zlib", "none"]),
}


@pytest.mark.parametrize("variable", sorted(BOUNDS))
def test_validations_refuse_values_out_of_bounds(derived: Run, variable: str) -> None:
    refused, accepted = BOUNDS[variable]
    for value in refused:
        done = derived(**{variable: value})
        assert done.returncode != 0, f"{variable}={value!r} was accepted"
        assert "Invalid value for variable" in done.stderr, done.stderr
        assert variable in done.stderr
    for value in accepted:
        outputs_of(derived(**{variable: value}))


def test_the_process_timeout_cannot_exceed_the_ack_deadline_limit(derived: Run) -> None:
    base = {"ingest": _fn(30), "api": _fn(30)}
    refused = derived(functions={**base, "process": _fn(601)})
    assert refused.returncode != 0 and "timeout_s must be 10-600" in refused.stderr
    outputs_of(derived(functions={**base, "process": _fn(600)}))


def _fn(timeout_s: int) -> dict[str, Any]:
    return {
        "memory": "512Mi",
        "cpu": "1",
        "timeout_s": timeout_s,
        "min_instances": 0,
        "max_instances": 1,
        "concurrency": 1,
    }


# --- the wiring, parsed ---------------------------------------------------------------------------

FILES_ONLY = "${local.archive_files_on ? 1 : 0}"
FILES_RESOURCES = (
    "google_pubsub_subscription.archive",
    "google_storage_bucket_iam_member.agent_writes_files",
    "google_storage_bucket_iam_member.agent_reads_bucket",
    "google_pubsub_subscription_iam_member.agent_forwards_archive_dead_letters",
    "google_pubsub_topic.archive_files",
    "google_pubsub_topic_iam_member.gcs_agent_publishes_files",
    "google_storage_notification.archive_files",
    "google_storage_bucket_iam_member.process_reads_files",
    "data.google_storage_project_service_account.gcs",
)


def test_the_files_path_exists_only_in_files_mode(tf: Config) -> None:
    for address in FILES_RESOURCES:
        body = tf.data[address] if address.startswith("data.") else tf.resources[address]
        assert body.get("count") == FILES_ONLY, address


def test_the_archive_subscription_writes_the_readings_as_text_files(tf: Config) -> None:
    archive = tf.resources["google_pubsub_subscription.archive"]
    ingest_topic = block(tf.resources["google_cloudfunctions2_function.ingest"], "service_config")
    assert archive["topic"] == ingest_topic["environment_variables"]["IOTPIPE_TOPIC"]
    assert "push_config" not in archive and "bigquery_config" not in archive
    storage = block(archive, "cloud_storage_config")
    assert storage["bucket"] == "${google_storage_bucket.archive.name}"
    assert "avro_config" not in storage  # no Avro: text, each message's data and a newline
    files = tf.locals["archive_files"]
    assert storage["filename_prefix"] == "${local.archive_files.prefix}"
    assert storage["filename_datetime_format"] == "${local.archive_files.datetime_format}"
    assert storage["filename_suffix"] == "${local.archive_files.suffix}"
    assert files == {
        "prefix": STREAM_FILENAME_PREFIX,
        "datetime_format": STREAM_FILENAME_DATETIME_FORMAT,
        "suffix": STREAM_FILENAME_SUFFIX,
    }
    assert storage["max_duration"] == "${var.archive_file_max_duration_s}s"
    assert storage["max_bytes"] == "${var.archive_file_max_bytes}"
    # Pub/Sub: max_duration may not exceed the ack deadline.
    assert archive["ack_deadline_seconds"] >= MAX_DURATION_S[1]
    assert tf.variables["archive_file_max_duration_s"]["default"] == 60
    assert tf.variables["archive_file_max_bytes"]["default"] == 16 * 1024**2
    # Retries and dead letters shared with the push subscriptions (pubsub.tf's locals).
    push = tf.resources["google_pubsub_subscription.process"]
    for name in ("dead_letter_policy", "retry_policy"):
        assert block(archive, name) == block(push, name), name
    assert block(archive, "expiration_policy")["ttl"] == ""
    assert archive["message_retention_duration"] == push["message_retention_duration"]
    # Its state (ACTIVE, PERMISSION_DENIED, NOT_FOUND) is an output: no metric reports it.
    state = tf.outputs["archive_subscription_state"]["value"]
    assert state == (
        "${one([for s in google_pubsub_subscription.archive : s.cloud_storage_config[0].state])}"
    )
    grants = set(archive["depends_on"])
    assert grants == {
        "${google_storage_bucket_iam_member.agent_writes_files}",
        "${google_storage_bucket_iam_member.agent_reads_bucket}",
    }


def test_the_pubsub_agent_may_write_files_and_read_the_bucket(tf: Config) -> None:
    roles = {}
    for name in ("agent_writes_files", "agent_reads_bucket"):
        grant = tf.resources[f"google_storage_bucket_iam_member.{name}"]
        assert grant["bucket"] == "${google_storage_bucket.archive.name}"
        assert grant["member"] == "${local.pubsub_agent}"
        assert "condition" not in grant  # checked on the bucket when the subscription is made
        roles[name] = grant["role"]
    assert set(roles.values()) == {
        "roles/storage.objectCreator",
        "roles/storage.legacyBucketReader",
    }
    forwards = tf.resources[
        "google_pubsub_subscription_iam_member.agent_forwards_archive_dead_letters"
    ]
    assert forwards["subscription"] == "${google_pubsub_subscription.archive[0].id}"


def test_finished_files_are_notified_to_their_own_topic(tf: Config) -> None:
    notification = tf.resources["google_storage_notification.archive_files"]
    assert notification["bucket"] == "${google_storage_bucket.archive.name}"
    assert notification["topic"] == "${google_pubsub_topic.archive_files[0].id}"
    assert notification["payload_format"] == "JSON_API_V1"
    assert notification["event_types"] == ["OBJECT_FINALIZE"]
    assert notification["object_name_prefix"] == "${local.archive_files.prefix}"
    publisher = tf.resources["google_pubsub_topic_iam_member.gcs_agent_publishes_files"]
    assert publisher["topic"] == notification["topic"]
    assert publisher["role"] == "roles/pubsub.publisher"
    assert publisher["member"] == "${local.gcs_agent}"
    assert "data.google_storage_project_service_account.gcs" in tf.locals["gcs_agent"]
    assert notification["depends_on"] == [
        "${google_pubsub_topic_iam_member.gcs_agent_publishes_files}"
    ]


def test_the_files_route_pushes_notifications_to_the_process_function(tf: Config) -> None:
    """The "files" instance of the one push resource: its topic is the notifications' topic,
    its endpoint, OIDC identity, backoff and dead letters those of the "messages" instance."""
    routes = tf.locals["process_subscriptions"]
    assert 'name = route == "messages" ? "${var.name_prefix}-process" : ' in routes
    assert '"${var.name_prefix}-process-files"' in routes
    assert ": one(google_pubsub_topic.archive_files[*].id)" in routes
    push = tf.resources["google_pubsub_subscription.process"]
    dead_letter = {k: local_value(tf, v) for k, v in block(push, "dead_letter_policy").items()}
    assert dead_letter == {
        "dead_letter_topic": "${google_pubsub_topic.dead_letter.id}",
        "max_delivery_attempts": "${var.max_delivery_attempts}",
    }
    forwards = tf.resources["google_pubsub_subscription_iam_member.agent_forwards_dead_letters"]
    assert forwards["for_each"] == "${google_pubsub_subscription.process}"


def test_the_process_function_reads_only_stream_files(tf: Config) -> None:
    grant = tf.resources["google_storage_bucket_iam_member.process_reads_files"]
    assert grant["member"] == 'serviceAccount:${google_service_account.fn["process"].email}'
    assert grant["role"] == "roles/storage.objectViewer"
    expression = block(grant, "condition")["expression"]
    assert expression == (
        'resource.name.startsWith("projects/_/buckets/${google_storage_bucket.archive.name}'
        '/objects/${local.archive_files.prefix}")'
    )
    process = tf.resources["google_cloudfunctions2_function.process"]
    assert "${google_storage_bucket_iam_member.process_reads_files}" in process["depends_on"]


def test_an_existing_per_message_subscription_is_moved_not_replaced() -> None:
    """Before process_from, the push subscription was one resource: its address moves to the
    "messages" instance, so an apply with "messages" or "both" keeps it and its backlog."""
    import hcl2

    moved = hcl2.loads((DEPLOY_GCP / "pubsub.tf").read_text(encoding="utf-8")).get("moved", [])
    pairs = {(m["from"], m["to"]) for m in moved}
    assert (
        "${google_pubsub_subscription.process}",
        '${google_pubsub_subscription.process["messages"]}',
    ) in pairs


def test_stream_files_age_through_the_same_classes_as_raw(tf: Config) -> None:
    bucket = tf.resources["google_storage_bucket.archive"]
    moves = [
        rule
        for rule in bucket["lifecycle_rule"]
        if block(rule, "action").get("type") == "SetStorageClass"
    ]
    assert moves, "no storage class transitions"
    for rule in moves:
        assert "matches_prefix" not in block(rule, "condition"), rule  # stream/ and raw/ alike


def test_the_request_log_exclusion_is_the_derived_filter(tf: Config) -> None:
    exclusion = tf.resources["google_logging_project_exclusion.request_logs"]
    assert exclusion["filter"] == "${local.request_log_exclusion}"
    assert exclusion["count"] == "${local.request_log_exclusion_on ? 1 : 0}"
    assert "disabled" not in exclusion
    assert tf.variables["request_log_sample"]["default"] == 0.01


def test_the_processing_alert_watches_the_archive_and_every_push_subscription(
    tf: Config,
) -> None:
    watched = tf.locals["processing_subscriptions"]
    assert "google_pubsub_subscription.process" in watched
    assert "google_pubsub_subscription.archive[*].name" in watched
    oldest = tf.locals["alerts"]["oldest-unacked"]
    assert "${local.processing_subscription_filter}" in oldest["filter"]
    assert oldest["reducer"] == "REDUCE_MAX"  # the oldest of them, not a sum of ages


def test_no_template_interpolates_what_is_null_without_files(tf: Config) -> None:
    """``"x${one(list)}"`` fails the plan when the list is empty (messages mode), even in a local
    nothing reads: one() of a counted resource may stand alone, never inside a template."""
    everything = [tf.resources, tf.data, tf.locals, tf.outputs]
    inside = [
        text
        for text in (s for part in everything for s in strings(part))
        for match in re.finditer(r"\$\{one\(", text)
        if (match.start(), _closing(text, match.start())) != (0, len(text) - 1)
    ]
    assert not inside, inside


def _closing(text: str, start: int) -> int:
    """Where the interpolation opened at ``text[start:start + 2] == "${"`` closes."""
    depth = 0
    for at in range(start + 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[at], 0)
        if depth == 0:
            return at
    raise AssertionError(f"unclosed interpolation in {text!r}")


def test_derived_reads_no_resource() -> None:
    """What lets Terraform evaluate derived.tf without a provider (the tests above)."""
    text = (DEPLOY_GCP / "derived.tf").read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\b(google_\w+|data)\.\w+", code)
