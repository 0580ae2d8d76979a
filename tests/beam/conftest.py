"""The Beam replay's tests: its own environment, and helpers to compare it with ``iotpipe replay``.

Apache Beam lives in a virtualenv of its own, ``.venv-beam`` at the repository root (built by
``make test``, git-ignored): it pins protobuf, grpcio, numpy and more, so it must not share the
project's environment. These tests run its ``iotpipe replay --runner direct`` as a subprocess
(the command a user runs) and compare what it stores with the single-process replay, run here.
``IOTPIPE_BEAM_VENV`` names another environment. A missing environment skips these tests with
a reason, except under ``IOTPIPE_REQUIRE_EMULATORS=1`` (CI), where it fails them.
"""

from __future__ import annotations

import io
import os
import subprocess
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from iotpipe.adapters.local import SqliteStore
from iotpipe.application import QueryService
from iotpipe.domain import HourlyWindow
from iotpipe.entrypoints.cli import main
from tests.aws_support import moto, moto_server
from tests.beam.archives import FROM, TO

__all__ = ["moto", "moto_server"]  # the moto fixtures, for the S3 and DynamoDB replay

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("IOTPIPE_BEAM_VENV", REPO / ".venv-beam"))


def require(reason: str) -> None:
    """Skip for a missing tool, or fail when ``IOTPIPE_REQUIRE_EMULATORS=1`` (CI)."""
    if os.environ.get("IOTPIPE_REQUIRE_EMULATORS") == "1":
        pytest.fail(f"{reason}; IOTPIPE_REQUIRE_EMULATORS=1 forbids skipping")
    pytest.skip(reason)


@dataclass(frozen=True)
class Done:
    """A finished command: exit status and output."""

    code: int
    out: str
    err: str


@dataclass(frozen=True)
class BeamCli:
    """``iotpipe`` of the Beam environment."""

    binary: Path

    def replay(
        self, archive: str, store: str, *extra: str, env: dict[str, str] | None = None
    ) -> Done:
        """``iotpipe replay --runner direct`` over the whole test archive (two workers)."""
        command = [
            str(self.binary), "replay", "--runner", "direct", "--archive", archive,
            "--store", store, "--from", FROM, "--to", TO, *extra,
        ]  # fmt: skip
        if "--" not in extra:
            command.append("--")
        command += ["--direct_num_workers=2"]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, **(env or {})},
        )
        return Done(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def beam() -> BeamCli:
    """The Beam environment's ``iotpipe`` (see the module docstring)."""
    binary = VENV / "bin" / "iotpipe"
    probe = VENV / "bin" / "python"
    if not binary.exists() or not probe.exists():
        require(f"no Beam environment at {VENV} (make beam-env builds it)")
    found = subprocess.run(
        [str(probe), "-c", "import apache_beam, iotpipe; print(apache_beam.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if found.returncode != 0:
        require(f"{VENV} cannot import apache_beam and iotpipe: {found.stderr[-500:]}")
    return BeamCli(binary)


def single_process_replay(archive: Path, store: Path) -> Done:
    """``iotpipe replay`` (one process, this environment) over the whole test archive."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out):
        code = main(["replay", "--archive", str(archive), "--store", f"sqlite:{store}",
                     "--from", FROM, "--to", TO])  # fmt: skip
    return Done(code, out.getvalue(), err.getvalue())


def process_output(store: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> bytes:
    """What ``iotpipe process`` writes for the store: every window, one JSON line each."""
    capsysbinary.readouterr()
    assert main(["process", os.devnull, "--store", f"sqlite:{store}"]) == 0
    return capsysbinary.readouterr().out


def windows(store: Path) -> list[HourlyWindow]:
    """Every stored window, whole (identities and latest reading included)."""
    with SqliteStore(store) as opened:
        return list(QueryService(opened).every_window())
