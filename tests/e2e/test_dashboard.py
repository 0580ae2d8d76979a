"""The dashboard in headless Chromium, against the real local server over a simulated fleet.

The server runs in this process over an in-memory pipeline; Chromium runs as a subprocess with
``--dump-dom`` (the DOM once the page has settled: ``--virtual-time-budget`` lets timers run and
waits for pending fetches) or ``--screenshot``. The URL fragment carries the key and the device
to preselect, so no clicks are needed. Every number the page draws is checked against what the
API answers for the same range.

Needs Debian's ``chromium`` (``apt-get install -y chromium``): without it these tests skip, or
fail when ``IOTPIPE_REQUIRE_EMULATORS=1`` (as in CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from iotpipe import LatenessPolicy, Pipeline, in_memory_pipeline
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.entrypoints.http.api import AnalyticsApi
from iotpipe.entrypoints.http.auth import ApiKeys
from iotpipe.entrypoints.http.server import LocalServer, serve
from iotpipe.simulator import Fleet

pytestmark = pytest.mark.e2e

API_KEY = "e2e-dashboard-key"
DEVICES = 4
HOURS = 30
INTERVAL_S = 300.0
SELECTED = "iot-sensor-002"
METRICS = ("temperature", "humidity")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOT_SIZE = (1280, 1600)

CHROMIUM = "/usr/bin/chromium"  # Debian's package; CI installs it
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# Virtual time: timers run instantly and the clock stops while a fetch is in flight, so the
# budget covers loading (and one 10 s auto-refresh) whatever the machine's speed.
VIRTUAL_TIME_BUDGET_MS = 12_000
# Not UTC on purpose: the page must label everything in UTC whatever the browser's zone.
BROWSER_TZ = "Asia/Kolkata"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary: skip without it, or fail when CI requires it."""
    binary = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if binary is None:
        reason = "Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("IOTPIPE_REQUIRE_EMULATORS") == "1":
            pytest.fail(f"{reason}; IOTPIPE_REQUIRE_EMULATORS=1 forbids skipping")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(devices=DEVICES, interval_s=INTERVAL_S, seed=11)


@pytest.fixture(scope="module")
def span() -> tuple[int, int]:
    """The event times the fleet's readings cover: the last ``HOURS`` hours, ``[start, now)``."""
    now = int(time.time() * 1000)
    return now - HOURS * MS_PER_HOUR, now


@pytest.fixture(scope="module")
def pipeline(fleet: Fleet, span: tuple[int, int]) -> Pipeline:
    """Every device's readings over the last ``HOURS`` hours, ingested and processed."""
    pipeline = in_memory_pipeline(lateness=LatenessPolicy.unbounded())
    readings: list[object] = list(fleet.readings(*span))
    result = pipeline.ingest(readings)
    assert result.accepted == len(readings) == DEVICES * HOURS * 3600 // int(INTERVAL_S)
    reports = list(pipeline.drain())
    assert sum(r.accepted for r in reports) == len(readings)
    return pipeline


@pytest.fixture(scope="module")
def server(pipeline: Pipeline) -> Iterator[LocalServer]:
    api = AnalyticsApi.for_pipeline(pipeline, ApiKeys([API_KEY]))
    running = serve(api, host="127.0.0.1", port=0)
    try:
        yield running
    finally:
        running.close()


# --- talking to the API and to Chromium ---------------------------------------------------------


def _get(server: LocalServer, path: str, **params: str) -> dict[str, Any]:
    url = f"{server.url}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"x-api-key": API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def _walk(server: LocalServer, path: str, **params: str) -> list[dict[str, Any]]:
    """Every item of a paginated route."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = _get(server, path, **params, **({"cursor": cursor} if cursor else {}))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _chromium(binary: str, url: str, *extra: str) -> str:
    """Run headless Chromium on ``url`` with a fresh profile; its stdout."""
    with tempfile.TemporaryDirectory(prefix="iotpipe-chromium-") as profile:
        command = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            *extra,
            url,
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TZ": BROWSER_TZ},
            check=False,
        )
    assert done.returncode == 0, f"chromium exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def _page_url(server: LocalServer, **fragment: str) -> str:
    return f"{server.url}/#{urllib.parse.urlencode(fragment)}"


# --- reading the dumped DOM -----------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """An element carrying ``data-testid``, its attributes and its text."""

    tag: str
    attrs: dict[str, str]
    parent: Node | None
    parts: list[str] = field(default_factory=list)

    @property
    def hidden(self) -> bool:
        return "hidden" in self.attrs

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())

    def __getitem__(self, name: str) -> str:
        return self.attrs[name]


class Dom(HTMLParser):
    """The ``data-testid`` elements of a page, in document order."""

    _VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    )

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[Node] = []
        self._open: list[tuple[str, Node | None]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        node = None
        if "data-testid" in values:
            parent = next((n for _, n in reversed(self._open) if n is not None), None)
            node = Node(tag, values, parent)
            self.nodes.append(node)
        if tag not in self._VOID:
            self._open.append((tag, node))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self._VOID:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for _, node in self._open:
            if node is not None:
                node.parts.append(data)

    def all(self, testid: str) -> list[Node]:
        return [n for n in self.nodes if n.attrs["data-testid"] == testid]

    def one(self, testid: str) -> Node:
        found = self.all(testid)
        assert len(found) == 1, f"expected one {testid!r}, found {len(found)}"
        return found[0]


def _render(binary: str, url: str) -> Dom:
    return Dom(_chromium(binary, url, "--dump-dom"))


def _subpaths(d: str) -> list[list[tuple[float, float]]]:
    """The absolute ``M x,y L x,y ... [Z]`` subpaths of an SVG path."""
    number = r"-?\d+(?:\.\d+)?"
    assert re.fullmatch(rf"(?:[ML]{number},{number}|Z)+", d), f"unexpected path data {d[:80]!r}"
    paths: list[list[tuple[float, float]]] = []
    for command, x, y in re.findall(rf"([MLZ])(?:({number}),({number}))?", d):
        if command == "M":
            paths.append([])
        if command != "Z":
            paths[-1].append((float(x), float(y)))
    return paths


def _assert_linear(values: list[float], coords: list[float], *, increasing: bool) -> None:
    """``coords`` are one affine map of ``values`` (to the page's 0.1 px rounding)."""
    slope, intercept = statistics.linear_regression(values, coords)
    assert slope > 0 if increasing else slope < 0
    worst = max(abs(slope * v + intercept - c) for v, c in zip(values, coords, strict=True))
    assert worst <= 0.2, f"points off their scale by {worst:.2f} px"


def _js_fixed(value: float, digits: int = 1) -> str:
    """JavaScript's ``value.toFixed(digits)``: the exact double, ties away from zero."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


# --- the tests --------------------------------------------------------------------------------


def test_the_device_table_lists_the_fleet_with_latest_readings(
    chromium: str, server: LocalServer, fleet: Fleet
) -> None:
    dom = _render(chromium, _page_url(server, key=API_KEY))

    assert dom.one("key-prompt").hidden
    assert not dom.one("dashboard").hidden
    assert not dom.one("data-loaded").hidden, dom.one("status").text
    assert dom.one("status")["data-state"] == "ready"
    assert dom.one("error").hidden

    rows = dom.all("device-row")
    expected = sorted(d.device_id for d in fleet.devices)
    assert [row["data-device-id"] for row in rows] == expected
    for metric in METRICS:
        cells = {
            cell.parent["data-device-id"]: cell.text
            for cell in dom.all(f"latest-{metric}")
            if cell.parent is not None
        }
        for device in expected:
            latest = _get(server, f"/v1/devices/{device}/latest")
            assert cells[device] == _js_fixed(latest[metric]), (device, metric)
    # No device chosen yet: the detail panel says how to choose one.
    assert dom.one("device-detail")["data-state"] == "none"
    assert not dom.one("detail-empty").hidden


def test_the_fleet_summary_shows_the_last_full_hour(chromium: str, server: LocalServer) -> None:
    dom = _render(chromium, _page_url(server, key=API_KEY))

    summary = dom.one("fleet-summary")
    hour = parse_instant(summary["data-hour"])
    assert hour % MS_PER_HOUR == 0
    assert abs(time.time() * 1000 - (hour + MS_PER_HOUR)) < 2 * MS_PER_HOUR
    answer = _get(server, "/v1/fleet/hourly", hour=format_instant(hour))
    windows = _walk(server, "/v1/fleet/hourly", hour=format_instant(hour))
    assert answer["fleet"]["count"] > 0
    assert dom.one("fleet-readings").text == f"{answer['fleet']['count']:,}"
    assert dom.one("fleet-devices").text == str(len(windows)) == str(DEVICES)
    for metric in METRICS:
        assert dom.one(f"fleet-{metric}").text.startswith(
            _js_fixed(answer["fleet"][metric]["mean"])
        )


@pytest.mark.parametrize(("range_", "hours"), [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24)])
def test_charts_draw_every_hourly_window_of_the_range(
    chromium: str, server: LocalServer, span: tuple[int, int], range_: str, hours: int
) -> None:
    fragment = {"key": API_KEY, "device": SELECTED} | ({} if range_ == "24h" else {"range": range_})
    dom = _render(chromium, _page_url(server, **fragment))

    assert not dom.one("data-loaded").hidden, dom.one("status").text
    selected = [
        row["data-device-id"] for row in dom.all("device-row") if "aria-current" in row.attrs
    ]
    assert selected == [SELECTED]
    assert dom.one(f"range-{range_}")["aria-pressed"] == "true"
    detail = dom.one("device-detail")
    assert detail["data-state"] == "ready"
    assert detail["data-device"] == SELECTED
    start, end = detail["data-from"], detail["data-to"]
    start_ms, end_ms = parse_instant(start), parse_instant(end)
    assert end_ms - start_ms == hours * MS_PER_HOUR
    assert start_ms % MS_PER_HOUR == 0
    # The range is labelled in UTC although the browser runs in another time zone.
    assert f"{start[11:16]} to" in dom.one("detail-sub").text, dom.one("detail-sub").text
    assert dom.one("detail-sub").text.endswith(f"{end[11:16]} UTC")

    # What the API answers for the very same range, page by page.
    windows = _walk(server, f"/v1/devices/{SELECTED}/hourly", **{"from": start, "to": end})
    # Every hour the data covers whole within the range has its window. (Counted from the
    # data's span, not the clock: the page may be drawn after the hour the data ends in.)
    first_full = -(-span[0] // MS_PER_HOUR) * MS_PER_HOUR
    full_hours = range(
        max(start_ms, first_full), min(end_ms, span[1]) - MS_PER_HOUR + 1, MS_PER_HOUR
    )
    assert len(windows) >= len(full_hours) >= min(hours, HOURS) - 2
    assert detail["data-windows"] == str(len(windows))

    for metric in METRICS:
        svg = dom.one(f"chart-{metric}")
        assert svg.tag == "svg"
        assert svg["role"] == "img"
        assert svg["aria-labelledby"]
        charted = [w for w in windows if w[metric]["mean"] is not None]
        series = dom.one(f"series-{metric}")
        assert series.parent is svg
        assert series["data-points"] == str(len(charted))
        runs = _subpaths(series["d"])
        points = [p for run in runs for p in run]
        assert len(points) == len(charted), metric

        # x follows the hour, y the hourly mean, on one affine scale each.
        xs = [x for x, _ in points]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)
        _assert_linear([parse_instant(w["hour"]) for w in charted], xs, increasing=True)

        # The band: each run's maxima left to right, then its minima back, on the same y scale.
        band = dom.one(f"band-{metric}")
        assert band.parent is svg
        band_runs = _subpaths(band["d"])
        assert [len(r) for r in band_runs] == [2 * len(r) for r in runs]
        tops = [p for run in band_runs for p in run[: len(run) // 2]]
        bottoms = [p for run in band_runs for p in reversed(run[len(run) // 2 :])]
        assert [x for x, _ in tops] == xs == [x for x, _ in bottoms]
        values = [w[metric][k] for k in ("mean", "max", "min") for w in charted]
        coords = [y for part in (points, tops, bottoms) for _, y in part]
        _assert_linear(values, coords, increasing=False)
        assert all(t[1] <= p[1] <= b[1] for t, p, b in zip(tops, points, bottoms, strict=True))


def test_an_unknown_device_is_reported_in_place(chromium: str, server: LocalServer) -> None:
    dom = _render(chromium, _page_url(server, key=API_KEY, device="no-such-device"))

    assert dom.one("device-detail")["data-state"] == "unknown"
    assert "no-such-device" in dom.one("detail-empty").text
    assert dom.one("error").hidden
    assert not dom.one("data-loaded").hidden
    assert len(dom.all("device-row")) == DEVICES


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"key": "not-the-key", "device": SELECTED}, "The API key was refused"),
        ({}, "Enter an API key"),
    ],
    ids=["wrong-key", "no-key"],
)
def test_without_a_valid_key_the_page_asks_for_one(
    chromium: str, server: LocalServer, fragment: dict[str, str], message: str
) -> None:
    dom = _render(chromium, _page_url(server, **fragment) if fragment else f"{server.url}/")

    assert not dom.one("key-prompt").hidden
    assert dom.one("key-form").tag == "form"
    assert message in dom.one("key-message").text
    assert dom.one("dashboard").hidden
    assert dom.one("data-loaded").hidden
    assert dom.all("device-row") == []
    assert dom.all("series-temperature") == []


def test_screenshot_of_the_dashboard(chromium: str, server: LocalServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    width, height = SCREENSHOT_SIZE
    _chromium(
        chromium,
        _page_url(server, key=API_KEY, device=SELECTED),
        f"--screenshot={shot}",
        f"--window-size={width},{height}",
    )

    data = shot.read_bytes()
    assert len(data) > 30_000, f"{shot} is only {len(data)} bytes"
    size, pixels = _png_pixels(data)
    assert size == SCREENSHOT_SIZE
    colours = Counter(pixels)
    [(background, most)] = colours.most_common(1)
    assert most / len(pixels) < 0.9, f"{most / len(pixels):.0%} of the image is {background}"
    assert len(colours) > 50, f"only {len(colours)} colours"
    # Both series show in their colours (#d9480f and #1971c2 in the light theme).
    for colour in ((0xD9, 0x48, 0x0F), (0x19, 0x71, 0xC2)):
        near = sum(
            n
            for c, n in colours.items()
            if max(abs(a - b) for a, b in zip(c, colour, strict=True)) < 24
        )
        assert near > 20, f"colour {colour} is nearly absent"


# --- PNG decoding (enough for Chromium's screenshots: 8-bit RGB or RGBA, not interlaced) --------


def _png_pixels(data: bytes, every: int = 3) -> tuple[tuple[int, int], list[tuple[int, ...]]]:
    """The image size, and the RGB colour of every ``every``-th pixel of every ``every``-th row."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, compressed, header = 8, bytearray(), b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(bytes(compressed))
    assert len(raw) == height * (stride + 1)
    sample: list[tuple[int, ...]] = []
    above = bytes(stride)
    for row in range(height):
        start = row * (stride + 1)
        line = _unfilter(
            raw[start], bytearray(raw[start + 1 : start + 1 + stride]), above, channels
        )
        if row % every == 0:
            step = every * channels
            sample.extend(tuple(line[i : i + 3]) for i in range(0, stride, step))
        above = line
    return (width, height), sample


def _unfilter(kind: int, line: bytearray, above: bytes, bpp: int) -> bytes:
    """Undo one scanline's PNG filter, given the unfiltered line above."""
    if kind == 1:  # Sub
        for i in range(bpp, len(line)):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:  # Up
        line = bytearray((a + b) & 0xFF for a, b in zip(line, above, strict=True))
    elif kind == 3:  # Average
        for i in range(len(line)):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + above[i]) >> 1)) & 0xFF
    elif kind == 4:  # Paeth
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = above[i]
            c = above[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    else:
        assert kind == 0, f"unknown PNG filter {kind}"
    return bytes(line)


# --- a fleet with its own telemetry schema ------------------------------------------------------


@pytest.fixture(scope="module")
def declared_server(span: tuple[int, int]) -> Iterator[tuple[LocalServer, Any]]:
    """The API over an industrial fleet (nested paths, epoch-ms times, three metrics)."""
    from iotpipe.adapters.schema_file import load_schema

    schema = load_schema(Path(__file__).parents[2] / "examples" / "schemas" / "industrial.toml")
    pipeline = in_memory_pipeline(lateness=LatenessPolicy.unbounded(), schema=schema)
    fleet = Fleet(devices=2, interval_s=INTERVAL_S, seed=3, schema=schema)
    assert pipeline.ingest(list(fleet.readings(*span))).rejected == ()
    list(pipeline.drain())
    running = serve(AnalyticsApi.for_pipeline(pipeline, ApiKeys([API_KEY])), port=0)
    try:
        yield running, schema
    finally:
        running.close()


def test_the_dashboard_draws_a_chart_and_a_fleet_tile_per_declared_metric(
    chromium: str, declared_server: tuple[LocalServer, Any]
) -> None:
    server, schema = declared_server
    dom = _render(chromium, _page_url(server, key=API_KEY, device=SELECTED))
    assert not dom.one("data-loaded").hidden, dom.one("status").text
    detail = dom.one("device-detail")
    assert detail["data-state"] == "ready"
    windows = _walk(
        server,
        f"/v1/devices/{SELECTED}/hourly",
        **{"from": detail["data-from"], "to": detail["data-to"]},
    )
    for metric in schema.metrics:
        charted = [w for w in windows if w[metric.name]["mean"] is not None]
        assert charted
        assert dom.one(f"chart-{metric.name}").tag == "svg"
        assert dom.one(f"series-{metric.name}")["data-points"] == str(len(charted))
        assert dom.one(f"fleet-{metric.name}").text.endswith(metric.unit)
        [cell] = [c for c in dom.all(f"latest-{metric.name}") if c.parent is not None][:1]
        assert cell.text != "—"
    for name in METRICS:  # the default payload's metrics are not this fleet's
        assert dom.all(f"chart-{name}") == [] and dom.all(f"fleet-{name}") == []
