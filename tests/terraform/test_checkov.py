"""checkov on deploy/aws and deploy/gcp: no failed check; every skip is in the Terraform with its
reason.

checkov lives in a virtualenv of its own, ``.venv-checkov`` at the repository root (git-ignored):
it pins old boto3/botocore and ships an ``hcl2`` module of its own, so it must not share the
project's environment. The fixture creates it on first use (pip, from the package index) and
reuses it while it holds the pinned version.
"""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.conftest import DEPLOY, DEPLOY_GCP, REPO, require

pytestmark = pytest.mark.integration

CHECKOV = "checkov==3.3.30"
VENV = REPO / ".venv-checkov"
#: A skip in the Terraform: ``#checkov:skip=CKV_AWS_123: why`` (one line, a reason required).
SKIP = re.compile(r"#\s*checkov:skip=(?P<id>CKV2?_[A-Z0-9]+_\d+)(?P<rest>.*)$")
#: Each configuration, with fewer passed checks than it has meaning checkov did not scan it.
CONFIGURATIONS = pytest.mark.parametrize(
    ("directory", "least"), [(DEPLOY, 100), (DEPLOY_GCP, 25)], ids=["aws", "gcp"]
)
DIRECTORIES = pytest.mark.parametrize("directory", [DEPLOY, DEPLOY_GCP], ids=["aws", "gcp"])


@pytest.fixture(scope="session")
def checkov() -> Path:
    """The checkov executable of ``.venv-checkov``, installed there if needed."""
    version = CHECKOV.partition("==")[2]
    binary = VENV / "bin" / "checkov"
    with (REPO / ".venv-checkov.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time
        if not _has_version(binary, version):
            steps = (
                [sys.executable, "-m", "venv", "--clear", str(VENV)],
                [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", CHECKOV],
            )
            for step in steps:
                done = subprocess.run(
                    step, check=False, capture_output=True, text=True, timeout=900
                )
                if done.returncode != 0:
                    tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
                    require(f"could not install {CHECKOV} into {VENV}:\n{tail}")
            if not _has_version(binary, version):
                require(f"{binary} is not checkov {version} after installing it")
    return binary


def _has_version(binary: Path, version: str) -> bool:
    if not binary.exists():
        return False
    done = subprocess.run(
        [str(binary), "--version"], check=False, capture_output=True, text=True, timeout=60
    )
    return done.returncode == 0 and done.stdout.strip() == version


def _scan(checkov: Path, directory: Path) -> dict[str, Any]:
    command = [str(checkov), "-d", str(directory), "--framework", "terraform", "--skip-download"]
    done = subprocess.run(
        [*command, "--output", "json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: some check failed
    report = json.loads(done.stdout)
    return dict(report[0] if isinstance(report, list) else report)


@CONFIGURATIONS
def test_checkov_finds_no_failed_check(checkov: Path, directory: Path, least: int) -> None:
    report = _scan(checkov, directory)
    results = report["results"]
    assert report["summary"]["parsing_errors"] == 0, results.get("parsing_errors")
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]}): "
        f"{c['check_name']}"
        for c in results["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert len(results["passed_checks"]) > least  # it did scan the configuration
    # Every skip comes from a comment in the Terraform, with its justification.
    for check in results["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "").strip()
        assert len(reason) > 15, (check["check_id"], check["resource"])


@DIRECTORIES
def test_every_skip_in_the_terraform_has_a_one_line_reason(directory: Path) -> None:
    skips = []
    for path in sorted(directory.glob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "checkov:skip" not in line:
                continue
            match = SKIP.search(line)
            assert match, f"{path.name}:{number}: malformed skip: {line.strip()}"
            assert re.match(r":\s+\S.{15,}", match["rest"]), f"{path.name}:{number}: no reason"
            skips.append(match["id"])
    assert skips  # the documented exceptions are where the report says they are
