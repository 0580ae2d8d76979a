"""``iotpipe demo --schema``: the main job on a declared payload, end to end."""

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

KEY = "demo-schema-test-key-0123456789"
SCHEMA = Path(__file__).parents[2] / "examples" / "schemas" / "agricultural.toml"
METRICS = ("soil_moisture", "soil_temperature", "battery_voltage")


def _get(url: str) -> dict:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


def test_the_demo_on_a_declared_schema_serves_its_metrics(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "iotpipe.entrypoints.cli", "demo", "--devices", "2"]
    command += ["--hours", "2", "--port", "0", "--duration", "120", "--api-key", KEY]
    command += ["--schema", str(SCHEMA), "--data", str(tmp_path / "data")]
    log = (tmp_path / "stderr.log").open("w")  # a file: the demo's logs never fill a pipe
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    output: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            output.append(line)
            if "streaming live readings" in line:
                break
        text = "".join(output)
        assert "unchanged: each reading counted exactly once" in text, text
        found = re.search(r"dashboard:\s+(http://127\.0\.0\.1:\d+)/#key=", text)
        assert found, text
        url = found.group(1)

        declared = _get(f"{url}/v1/schema")
        assert [m["name"] for m in declared["metrics"]] == list(METRICS), declared
        device = _get(f"{url}/v1/devices")["items"][0]["device_id"]
        start = re.search(r"history from (\S+Z)", text)
        assert start, text
        end = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() + 7200))
        windows = _get(f"{url}/v1/devices/{device}/hourly?from={start.group(1)}&to={end}")["items"]
        assert windows
        # One reading a minute: a full hour holds 60 distinct readings, whatever was resent.
        assert any(w["count"] == 60 for w in windows[:-1]), windows
        for window in windows:
            assert "temperature" not in window and "humidity" not in window, window
            for name in METRICS:
                stats = window[name]
                assert stats["count"] == window["count"], window
                assert stats["min"] <= stats["mean"] <= stats["max"], window
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(30)
        finally:
            demo.kill()
            log.close()
    assert code == 0, (tmp_path / "stderr.log").read_text()
