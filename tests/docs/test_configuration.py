"""The configuration reference in docs/deployment.md is every Terraform variable and every
environment setting, with the defaults the code has."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.docs.markdown import section, table_rows
from tests.docs.support import DOCS, REPO, blocks, load_hcl

pytestmark = pytest.mark.unit

GUIDE = DOCS / "deployment.md"
VARIABLES = {
    "AWS Terraform variables": REPO / "deploy" / "aws" / "variables.tf",
    "GCP Terraform variables": REPO / "deploy" / "gcp" / "variables.tf",
}


def _documented(heading: str) -> dict[str, str]:
    rows = table_rows(section(GUIDE, heading))
    return {row[0].strip("`"): row[1] for row in rows}


def _hcl_default(body: dict[str, Any]) -> str | None:
    """How the docs spell a default: HCL literal in backticks; None for a structure (free text)."""
    if "default" not in body:
        return "required"
    value = body["default"]
    if isinstance(value, dict) and value:
        return None
    if isinstance(value, str) and value.startswith("${"):
        return None
    return f"`{json.dumps(value)}`"


@pytest.mark.parametrize("heading", sorted(VARIABLES))
def test_every_variable_is_documented_with_its_default(heading: str) -> None:
    path = VARIABLES[heading]
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing")
    declared = blocks(load_hcl(path), "variable")
    documented = _documented(heading)
    assert set(documented) == set(declared), (
        f"docs/deployment.md '{heading}' differs from {path.relative_to(REPO)}: "
        f"missing {sorted(set(declared) - set(documented))}, "
        f"extra {sorted(set(documented) - set(declared))}"
    )
    wrong = {
        name: (documented[name], expected)
        for name, body in declared.items()
        if (expected := _hcl_default(body)) is not None and documented[name] != expected
    }
    assert not wrong, f"defaults differ (documented, declared): {wrong}"


def test_every_setting_is_documented() -> None:
    from iotpipe.entrypoints.aws import settings as aws
    from iotpipe.entrypoints.gcp import settings as gcp

    rows = table_rows(section(GUIDE, "Environment settings of the functions"))
    documented = {row[0].strip("`"): row[1] for row in rows}
    for name, runtimes in documented.items():
        assert name in aws.ALL or name in gcp.ALL, f"{name} is documented but no handler reads it"
        assert ("AWS" in runtimes) == (name in aws.ALL), f"{name}: AWS or not?"
        assert ("GCP" in runtimes) == (name in gcp.ALL), f"{name}: GCP or not?"
    missing = (set(aws.ALL) | set(gcp.ALL)) - set(documented)
    assert not missing, f"settings not in the configuration reference: {sorted(missing)}"


def test_the_documented_setting_defaults_are_the_codes() -> None:
    from iotpipe.entrypoints.aws.settings import AwsSettings
    from iotpipe.entrypoints.gcp.settings import GcpSettings

    rows = table_rows(section(GUIDE, "Environment settings of the functions"))
    default = {row[0].strip("`"): row[2].strip("`") for row in rows}
    aws, gcp = AwsSettings.from_env({}), GcpSettings.from_env({})
    for settings in (aws, gcp):
        horizon, skew = settings.lateness.horizon, settings.lateness.max_skew
        assert horizon is not None and skew is not None
        assert horizon.total_seconds() == int(default["IOTPIPE_LATENESS_HORIZON_HOURS"]) * 3600
        assert skew.total_seconds() == int(default["IOTPIPE_MAX_SKEW_SECONDS"])
    # Unset, the AWS settings leave the shard count to the store (whose module they must not load).
    from iotpipe.adapters.aws.dynamodb import DEFAULT_FLEET_SHARDS

    assert aws.fleet_shards is None
    assert int(default["IOTPIPE_FLEET_SHARDS"]) == DEFAULT_FLEET_SHARDS
    assert gcp.firestore_database == default["IOTPIPE_FIRESTORE_DATABASE"]
    assert gcp.fleet_lanes == int(default["IOTPIPE_FLEET_LANES"])
