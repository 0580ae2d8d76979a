"""The main job end to end: ``iotpipe demo`` starts, serves, and answers with aggregates."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

KEY = "demo-test-key-0123456789"


def _get(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def _demo(*options: str) -> subprocess.Popen[str]:
    """``iotpipe demo`` on two hours of history, started with ``options``."""
    command = [sys.executable, "-m", "iotpipe.entrypoints.cli", "demo", "--hours", "2"]
    command += ["--port", "0", "--duration", "120", "--api-key", KEY, *options]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _backfilled(demo: subprocess.Popen[str]) -> tuple[str, str]:
    """The demo's output up to its live phase, and its base URL, once the history was sent
    twice and nothing changed."""
    output: list[str] = []
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
    return text, base.group(1)


def _stopped(demo: subprocess.Popen[str]) -> int:
    demo.send_signal(signal.SIGINT)
    try:
        return demo.wait(30)
    finally:
        demo.kill()


def test_the_demo_serves_exact_aggregates_of_the_simulated_fleet() -> None:
    demo = _demo("--devices", "3")
    try:
        text, url = _backfilled(demo)

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
        code = _stopped(demo)
    assert code == 0


SCHEMA = Path(__file__).parents[2] / "examples" / "schemas" / "agricultural.toml"
METRICS = ("soil_moisture", "soil_temperature", "battery_voltage")


def test_the_demo_on_a_declared_schema_serves_its_metrics(tmp_path: Path) -> None:
    demo = _demo("--devices", "2", "--schema", str(SCHEMA), "--data", str(tmp_path / "data"))
    try:
        text, url = _backfilled(demo)
        _, declared = _get(f"{url}/v1/schema")
        assert [m["name"] for m in declared["metrics"]] == list(METRICS), declared
        _, devices = _get(f"{url}/v1/devices")
        device = devices["items"][0]["device_id"]
        start = re.search(r"history from (\S+Z)", text)
        assert start, text
        end = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() + 7200))
        _, hourly = _get(f"{url}/v1/devices/{device}/hourly?from={start.group(1)}&to={end}")
        windows = hourly["items"]
        # One reading a minute: a full hour holds 60 distinct readings, whatever was resent.
        assert any(w["count"] == 60 for w in windows[:-1]), windows
        for window in windows:
            assert "temperature" not in window and "humidity" not in window, window
            for name in METRICS:
                stats = window[name]
                assert stats["count"] == window["count"], window
                assert stats["min"] <= stats["mean"] <= stats["max"], window
    finally:
        code = _stopped(demo)
    assert code == 0
