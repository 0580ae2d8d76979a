"""The official GCP emulators for the tests: started once per test session, on free ports.

- Firestore (Native mode) and Pub/Sub: the Google Cloud SDK's emulators (Java), found under
  ``$(gcloud info --format='value(installation.sdk_root)')/platform`` and run through their
  launchers directly (no gcloud configuration needed).
- Cloud Storage: ``gcp-storage-emulator`` (PyPI), in memory.

Each server runs in its own process group (``start_new_session=True``) and is stopped with
``os.killpg``: killing only a launcher script would leave its JVM running. A server is ready
when ``GET /`` answers ``Ok``. The Google clients find the servers through the
``*_EMULATOR_HOST`` variables, which are set in this process when a server starts.

Where an emulator or Java is missing the tests skip with the reason, except under
``IOTPIPE_REQUIRE_EMULATORS=1`` (CI), where they fail. ``STORE_FACTORIES`` entries take no
fixtures, so the ``firestore`` entry and the fixtures share lazily started servers.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT = "iotpipe-test"
REQUIRE = os.environ.get("IOTPIPE_REQUIRE_EMULATORS") == "1"
READY_TIMEOUT_S = 90.0
_LOGS = Path(tempfile.mkdtemp(prefix="iotpipe-emulators-"))
atexit.register(shutil.rmtree, _LOGS, True)  # registered first: runs after the servers stop


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``, or fail it where emulators are required (CI)."""
    if REQUIRE:
        pytest.fail(f"{reason} (IOTPIPE_REQUIRE_EMULATORS=1: emulators are required)", False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A server process started for the tests, in its own process group."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the whole process group: TERM, then KILL if it lingers."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_server(
    name: str,
    command: list[str],
    port: int,
    env: dict[str, str] | None = None,
    ready: Callable[[str], bool] | None = None,
) -> Server:
    """Start ``command`` in a new process group and wait until it is ready: by default, until
    ``GET /`` answers ``Ok`` (the emulators); else until ``ready(url)`` is true."""
    is_ready = ready or _answers_ok
    log = _LOGS / f"{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    server = Server(name, port, process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        if is_ready(server.url):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} was not ready in {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=2) as response:
            return bool(response.read().strip().lower() == b"ok")
    except (urllib.error.URLError, OSError):
        return False


@functools.cache
def sdk_platform() -> Path | None:
    """The Cloud SDK's ``platform/`` directory, if gcloud is installed."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        root = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None
    return Path(root) / "platform" if root else None


def _java_emulator(relative: str, what: str) -> Path:
    platform = sdk_platform()
    if platform is None:
        unavailable(f"the {what} needs the Google Cloud SDK (gcloud is not installed)")
    assert platform is not None
    launcher = platform / relative
    if not launcher.is_file():
        unavailable(f"the {what} is not installed ({launcher} is missing)")
    if shutil.which("java") is None:
        unavailable(f"the {what} needs Java (no java on PATH)")
    return launcher


_servers: dict[str, Server] = {}
_servers_lock = threading.Lock()


def _shared(name: str, start: Callable[[], Server]) -> Server:
    with _servers_lock:
        if name not in _servers:
            _servers[name] = start()
            atexit.register(_servers[name].stop)
        return _servers[name]


def firestore_emulator() -> Server:
    """The session's Firestore emulator (``FIRESTORE_EMULATOR_HOST`` is set)."""
    launcher = _java_emulator(
        "cloud-firestore-emulator/cloud_firestore_emulator", "Firestore emulator"
    )

    def start() -> Server:
        port = free_port()
        command = [str(launcher), "start", "--host=127.0.0.1", f"--port={port}"]
        server = start_server("firestore", command, port)
        os.environ["FIRESTORE_EMULATOR_HOST"] = server.host
        return server

    return _shared("firestore", start)


def pubsub_emulator() -> Server:
    """The session's Pub/Sub emulator (``PUBSUB_EMULATOR_HOST`` is set)."""
    launcher = _java_emulator("pubsub-emulator/bin/cloud-pubsub-emulator", "Pub/Sub emulator")

    def start() -> Server:
        port = free_port()
        command = [str(launcher), "--host=127.0.0.1", f"--port={port}"]
        server = start_server("pubsub", command, port)
        os.environ["PUBSUB_EMULATOR_HOST"] = server.host
        return server

    return _shared("pubsub", start)


def storage_emulator() -> Server:
    """The session's Cloud Storage emulator (``STORAGE_EMULATOR_HOST`` is set)."""
    launcher = Path(sys.executable).parent / "gcp-storage-emulator"
    if not launcher.is_file():
        unavailable(
            "the Cloud Storage emulator is not installed (pip install gcp-storage-emulator)"
        )

    def start() -> Server:
        port = free_port()
        command = [str(launcher), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"]
        server = start_server("storage", command, port)
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        return server

    return _shared("storage", start)


def reset_firestore(server: Server, project: str = PROJECT) -> None:
    """Delete every document of the project's default database."""
    url = f"{server.url}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@functools.cache
def firestore_client(host: str) -> Any:
    """A Firestore client of the test project on the emulator at ``host`` (one per host)."""
    from google.cloud import firestore

    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    return firestore.Client(project=PROJECT)


def unique(prefix: str) -> str:
    """A resource name no other test uses (Pub/Sub and the storage emulator have no reset)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


_store_numbers = itertools.count()


def firestore_stores(fleet_lanes: int | None = None) -> Iterator[Callable[[], Any]]:
    """A ``STORE_FACTORIES`` entry: each call makes a store under its own collection prefix
    (``fleet_lanes``: the adapter's default if ``None``, 0 for lanes off)."""
    from iotpipe.adapters.gcp import FirestoreStore
    from iotpipe.adapters.gcp.firestore import DEFAULT_FLEET_LANES, EMULATOR_COMMIT_BYTES

    lanes = DEFAULT_FLEET_LANES if fleet_lanes is None else fleet_lanes

    server = firestore_emulator()
    reset_firestore(server)
    client = firestore_client(server.host)

    def make() -> FirestoreStore:
        prefix = f"s{next(_store_numbers)}_"
        return FirestoreStore(
            client,
            prefix=prefix,
            timeout_s=30,
            fleet_lanes=lanes,
            commit_bytes=EMULATOR_COMMIT_BYTES,
        )

    yield make


# --- pytest fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def firestore_server() -> Server:
    """The session's Firestore emulator."""
    return firestore_emulator()


@pytest.fixture
def firestore_db(firestore_server: Server) -> Any:
    """A Firestore client on the emulator, the database emptied for this test."""
    reset_firestore(firestore_server)
    return firestore_client(firestore_server.host)


@pytest.fixture(scope="session")
def pubsub_server() -> Server:
    """The session's Pub/Sub emulator."""
    return pubsub_emulator()


@pytest.fixture(scope="session")
def storage_server() -> Server:
    """The session's Cloud Storage emulator."""
    return storage_emulator()
