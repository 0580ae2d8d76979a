"""``iotpipe serve`` in a child process, and a keep-alive HTTP client for it.

The local runtime is run as users run it (the real command line, in its own process), so the
benchmark's client threads do not share its interpreter lock.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

KEY = "benchmark-key-0123456789"


@contextmanager
def local_server(data_dir: Path, key: str = KEY, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """Run ``iotpipe serve --data DATA_DIR --port 0``; yields its base URL, stops it after."""
    log = data_dir.with_suffix(".serve.log")
    command = [str(Path(sys.executable).parent / "iotpipe"), "serve", "--data", str(data_dir)]
    command += ["--port", "0", "--api-key", key, *extra_args]
    with log.open("wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield _wait_for_url(child, log)
    finally:
        child.send_signal(signal.SIGINT)  # lets it process what is still on its stream
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_for_url(child: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("iotpipe serve: http"):
                return line.split()[2].rstrip("/")
        if child.poll() is not None:
            raise SystemExit(f"iotpipe serve exited: {log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise SystemExit(f"iotpipe serve did not start in {timeout_s:.0f} s")


class Client:
    """One persistent HTTP/1.1 connection to ``base_url``, sending the API key."""

    def __init__(self, base_url: str, key: str = KEY) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self._connection = http.client.HTTPConnection(self._host, self._port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send one request; returns the status and body (reconnecting once if dropped)."""
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=body, headers=self._headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post_with_retry_after(self, path: str, body: bytes) -> tuple[int, bytes, float]:
        """POST ``body``; the status, the body and the ``Retry-After`` seconds (0 if none)."""
        for attempt in (1, 2):
            try:
                self._connection.request("POST", path, body=body, headers=self._headers)
                response = self._connection.getresponse()
                retry = float(response.getheader("retry-after") or 0)
                return response.status, response.read(), retry
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()
