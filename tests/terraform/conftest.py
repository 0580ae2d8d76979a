"""Tools of the Terraform checks: terraform offline, a private moto server, the Lambda zips.

Terraform runs without network: ``terraform init`` installs hashicorp/aws from a local
filesystem mirror through a CLI configuration written here (``TF_CLI_CONFIG_FILE`` is set for
every terraform subprocess, overriding whatever the environment names). The configuration is
copied to a temporary directory first, so nothing (``.terraform/``, lock file, state) is
written into the repository.

Missing tools skip these tests with a reason, except under ``IOTPIPE_REQUIRE_EMULATORS=1``
(CI), where they fail.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "aws"
#: The GCP configuration: checked statically only (no google provider can be installed here).
DEPLOY_GCP = REPO / "deploy" / "gcp"

#: Where a hashicorp/aws filesystem mirror may be (each holds registry.terraform.io/...).
#: ``IOTPIPE_TF_PROVIDER_MIRROR`` names another.
MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)


def require(reason: str) -> None:
    """Skip for a missing tool, or fail when ``IOTPIPE_REQUIRE_EMULATORS=1`` (CI)."""
    if os.environ.get("IOTPIPE_REQUIRE_EMULATORS") == "1":
        pytest.fail(f"{reason}; IOTPIPE_REQUIRE_EMULATORS=1 forbids skipping")
    pytest.skip(reason)


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    system = {"win32": "windows"}.get(sys.platform, sys.platform)
    return f"{system}_{arch.get(machine, machine)}"


def find_provider_mirror() -> Path | None:
    """A filesystem mirror holding hashicorp/aws 5.x for this platform, or None."""
    named = os.environ.get("IOTPIPE_TF_PROVIDER_MIRROR")
    candidates = [named] if named else list(MIRROR_CANDIDATES)
    for candidate in candidates:
        root = Path(candidate).expanduser()
        aws = root / "registry.terraform.io" / "hashicorp" / "aws"
        unpacked = list(aws.glob(f"5.*/{_platform()}"))
        packed = list(aws.glob(f"terraform-provider-aws_5.*_{_platform()}.zip"))
        if unpacked or packed:
            return root
    return None


@dataclass(frozen=True)
class Terraform:
    """The terraform binary with an offline CLI configuration, run in a given directory."""

    binary: str
    env: dict[str, str]

    def run(
        self, *args: str, cwd: Path, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``terraform ARGS`` in ``cwd``; fails the test with terraform's output on an error."""
        command = [self.binary, *args]
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        print(f"terraform {args[0]}: {time.monotonic() - started:.1f} s (exit {done.returncode})")
        if check and done.returncode != 0:
            pytest.fail(_failure(command, done), pytrace=False)
        return done


def _failure(command: Sequence[str], done: subprocess.CompletedProcess[str]) -> str:
    output = "\n".join((done.stdout + "\n" + done.stderr).strip().splitlines()[-60:])
    return f"{' '.join(command[:2])} exited {done.returncode}:\n{output}"


@pytest.fixture(scope="session")
def terraform_binary() -> str:
    """The terraform executable (only ``fmt`` needs nothing else)."""
    binary = shutil.which("terraform")
    if binary is None:
        require("terraform is not installed (https://developer.hashicorp.com/terraform/install)")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def terraform(terraform_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """Terraform set up to install the aws provider from the local mirror only."""
    mirror = find_provider_mirror()
    if mirror is None:
        named = os.environ.get("IOTPIPE_TF_PROVIDER_MIRROR")
        where = f"IOTPIPE_TF_PROVIDER_MIRROR={named}" if named else ", ".join(MIRROR_CANDIDATES)
        require(
            f"no filesystem mirror of the hashicorp/aws provider 5.x for {_platform()} in "
            f"{where} (terraform providers mirror DIR makes one; name it with "
            "IOTPIPE_TF_PROVIDER_MIRROR)"
        )
    assert mirror is not None
    config = tmp_path_factory.mktemp("terraform-cli") / "offline.tfrc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n'
        "}\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    for name in ("TF_DATA_DIR", "TF_WORKSPACE", "TF_CLI_ARGS", "TF_PLUGIN_CACHE_DIR"):
        env.pop(name, None)
    return Terraform(terraform_binary, env)


@pytest.fixture(scope="session")
def lambda_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Lambda zips, built once per session with ``iotpipe package aws``."""
    out = tmp_path_factory.mktemp("lambda-zips")
    cli = Path(sys.executable).with_name("iotpipe")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "iotpipe.entrypoints.cli"]
    done = subprocess.run(
        [*command, "package", "aws", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"iotpipe package aws failed:\n{done.stderr or done.stdout}", pytrace=False)
    zips = {"code": out / "iotpipe-code.zip", "layer": out / "iotpipe-deps-layer.zip"}
    assert all(z.is_file() for z in zips.values()), sorted(p.name for p in out.iterdir())
    return zips


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def private_moto() -> Iterator[str]:
    """A moto server of its own (a subprocess: its state is shared with no other test)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(endpoint, process)
        yield endpoint
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited with {process.returncode}", pytrace=False)
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2) as response:
                response.read()
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("moto_server did not answer within 30 s", pytrace=False)
