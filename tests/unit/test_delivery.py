"""Posting simulated payloads: batching, retries on 5xx, per-item accounting, progress."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from iotpipe.entrypoints.delivery import Progress, _bodies, post_payloads

pytestmark = pytest.mark.unit


def test_valid_lines_travel_in_arrays_and_broken_ones_alone() -> None:
    lines = ['{"a": 1}', '{"a": 2}', "{broken", '{"a": 3}']
    bodies = list(_bodies(lines, batch_size=2))
    assert bodies == [(b'[{"a": 1},{"a": 2}]', 2), (b"{broken", 1), (b'[{"a": 3}]', 1)]


class _Endpoint(BaseHTTPRequestHandler):
    """Answers like the ingest route; the first request of each body gets a 503."""

    seen: dict[bytes, int]
    auth: list[str | None]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.auth.append(self.headers.get("authorization"))
        tries = self.seen[body] = self.seen.get(body, 0) + 1
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._answer(400, {"code": "malformed_json"})
        if tries == 1:
            return self._answer(503, {"code": "unavailable"})
        rejected = [{"index": i, "reason": "x"} for i, item in enumerate(items) if "bad" in item]
        self._answer(202, {"accepted": len(items) - len(rejected), "rejected": rejected})

    def _answer(self, status: int, body: dict) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_post_payloads_retries_unavailable_and_counts_each_item() -> None:
    _Endpoint.seen, _Endpoint.auth = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/readings"
        lines = ['{"ok": 1}', '{"bad": 1}', "not json", '{"ok": 2}', '{"ok": 3}']
        report = post_payloads(lines, url, "k3y", batch_size=2)
    finally:
        server.shutdown()
    assert report.accepted == 3 and report.rejected == 2 and report.failed_requests == 0
    assert report.statuses == {202: 2, 400: 1}
    assert set(_Endpoint.auth) == {"Bearer k3y"}
    assert all(n == 2 for body, n in _Endpoint.seen.items() if body.startswith(b"["))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_stays_silent_elsewhere() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = Progress(10, "sending", stream)
        bar.advance(10)
        bar.close()
    assert "100.0% 10/10" in terminal.getvalue() and terminal.getvalue().endswith("\n")
    assert pipe.getvalue() == ""


class _Busy(BaseHTTPRequestHandler):
    """A full backlog: 503 with ``Retry-After`` for the first ``refusals`` requests."""

    refusals: list[str]  # the Retry-After values still to answer, in order
    accepted: list[float]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.refusals:
            self._answer(503, {"code": "ingest_unavailable"}, self.refusals.pop(0))
            return
        self.accepted.append(time.monotonic())
        self._answer(202, {"accepted": len(orjson.loads(body)), "rejected": []}, None)

    def _answer(self, status: int, body: dict, retry_after: str | None) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        if retry_after is not None:
            self.send_header("retry-after", retry_after)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_a_full_backlog_is_waited_out_as_retry_after_says_not_given_up_on() -> None:
    # Seven refusals: more than the five attempts a failing server gets, so only honouring
    # Retry-After (which is not a failure) delivers the batch; the last pause is one second.
    _Busy.refusals, _Busy.accepted = ["0"] * 6 + ["1"], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/readings"
        began = time.monotonic()
        report = post_payloads(['{"ok": 1}', '{"ok": 2}'], url, None, attempts=5)
    finally:
        server.shutdown()
    assert report.accepted == 2 and report.failed_requests == 0
    assert report.statuses == {202: 1}
    assert _Busy.accepted[0] - began >= 1.0
