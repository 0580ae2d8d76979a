"""The main job end to end: ``iotpipe demo`` starts, serves, and answers with aggregates."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e

KEY = "demo-test-key-0123456789"


def _get(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_the_demo_serves_exact_aggregates_of_the_simulated_fleet() -> None:
    command = [sys.executable, "-m", "iotpipe.entrypoints.cli", "demo", "--devices", "3"]
    command += ["--hours", "2", "--port", "0", "--duration", "120", "--api-key", KEY]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 90
        assert demo.stdout is not None
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            output.append(line)
            if "streaming live readings" in line:
                break
        text = "".join(output)
        assert "unchanged: each reading counted exactly once" in text, text
        base = re.search(r"dashboard:\s+(http://127\.0\.0\.1:\d+)/#key=", text)
        assert base, text
        url = base.group(1)

        status, devices = _get(f"{url}/v1/devices")
        names = [d["device_id"] for d in devices["items"]]
        assert status == 200 and names == ["iot-sensor-001", "iot-sensor-002", "iot-sensor-003"]
        start = re.search(r"history from (\S+Z)", text)
        assert start
        first = start.group(1)
        end = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() + 7200))
        status, hourly = _get(f"{url}/v1/devices/iot-sensor-002/hourly?from={first}&to={end}")
        windows = hourly["items"]
        assert status == 200 and len(windows) >= 2
        # One reading a minute: every full hour holds 60 distinct readings, whatever was resent.
        full = [w for w in windows[:-1] if w["count"] == 60]
        assert full, windows
        assert all(w["count"] <= 60 and w["temperature"]["count"] == w["count"] for w in windows)
        status, latest = _get(f"{url}/v1/devices/iot-sensor-002/latest")
        assert status == 200 and latest["device_id"] == "iot-sensor-002"
        with urllib.request.urlopen(f"{url}/v1/health", timeout=10) as health:
            assert health.status == 200
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(30)
        finally:
            demo.kill()
    assert code == 0
