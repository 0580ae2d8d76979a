"""The local server over real sockets: translation, body limits, HTTP/1.1 conformance (the RFC
9112 cases raw, byte by byte), the access log, shutdown."""

from __future__ import annotations

import http.client
import logging
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from iotpipe.domain.time import format_instant
from iotpipe.entrypoints.http import AnalyticsApi
from iotpipe.entrypoints.http.server import LocalServer, serve
from tests.http.conftest import KEY, NOW, Filled

pytestmark = pytest.mark.integration

TIMEOUT_S = 10


@pytest.fixture
def server(api: AnalyticsApi) -> Iterator[LocalServer]:
    with serve(api, port=0) as running:
        yield running


def _address(server: LocalServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def request(
    server: LocalServer,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request over a fresh connection: status, lower-case headers, body."""
    connection = http.client.HTTPConnection(*_address(server), timeout=TIMEOUT_S)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def raw_exchange(server: LocalServer, data: bytes) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection(_address(server), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status_and_code(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(body)["code"]


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_serves_on_a_free_port_and_answers_health(server: LocalServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(server.url + "/v1/health", timeout=TIMEOUT_S) as response:
        assert response.status == 200
        assert orjson.loads(response.read())["status"] == "ok"


def test_queries_travel_with_their_parameters_and_keys(server: LocalServer) -> None:
    status, headers, body = request(server, "GET", "/v1/devices?limit=2", headers=AUTH)
    assert status == 200 and len(orjson.loads(body)["items"]) == 2
    assert headers["content-type"] == "application/json"
    status, _, body = request(server, "GET", "/v1/devices", headers={"X-API-Key": "nope"})
    assert status == 401 and orjson.loads(body)["code"] == "unauthorized"


def test_an_unencoded_plus_offset_survives_the_query_string(server: LocalServer) -> None:
    target = (
        "/v1/devices/iot-sensor-001/hourly?from=2025-08-31T04:00:00+02:00"
        "&to=2025-08-31T07:00:00%2B02:00"
    )
    status, _, body = request(server, "GET", target, headers=AUTH)
    assert status == 200, body
    assert [i["hour"] for i in orjson.loads(body)["items"]] == [
        "2025-08-31T02:00:00Z",
        "2025-08-31T03:00:00Z",
        "2025-08-31T04:00:00Z",
    ]


def test_repeated_parameters_are_joined_and_refused(server: LocalServer) -> None:
    status, _, body = request(server, "GET", "/v1/devices?limit=1&limit=2", headers=AUTH)
    assert status == 400 and orjson.loads(body)["errors"][0]["parameter"] == "limit"


def test_posted_readings_reach_the_store(server: LocalServer, filled: Filled) -> None:
    readings = [
        {"device_id": "over-http", "timestamp": format_instant(NOW - i * 1000), "humidity": 40}
        for i in range(3)
    ]
    status, _, body = request(
        server,
        "POST",
        "/v1/readings",
        orjson.dumps([*readings, readings[0]]),
        {**AUTH, "Content-Type": "application/json"},
    )
    assert status == 202 and orjson.loads(body)["accepted"] == 4
    for _ in filled.pipeline.drain():
        pass
    status, _, body = request(server, "GET", "/v1/devices/over-http/latest", headers=AUTH)
    assert status == 200 and orjson.loads(body) == {**readings[0], "humidity": 40.0}


def test_an_oversized_body_is_refused_from_its_length_without_being_read(
    server: LocalServer,
) -> None:
    # Only the headers are sent: a server that waited for the body would never answer.
    raw = raw_exchange(
        server,
        b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1048577\r\n\r\n",
    )
    assert _status_and_code(raw) == (413, "payload_too_large")
    assert b"connection: close" in raw.lower()


def test_an_oversized_body_announced_with_expect_gets_no_invitation(server: LocalServer) -> None:
    raw = raw_exchange(
        server,
        b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 99999999\r\n\r\n",
    )
    assert not raw.startswith(b"HTTP/1.1 100")
    assert _status_and_code(raw) == (413, "payload_too_large")


def test_a_body_within_the_limit_announced_with_expect_is_invited(server: LocalServer) -> None:
    body = orjson.dumps({"device_id": "e", "timestamp": format_instant(NOW), "humidity": 1})
    head = (
        b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
        b"Authorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(_address(server), timeout=TIMEOUT_S) as sock:
        sock.sendall(head)
        assert sock.recv(64).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 202")


def test_chunked_bodies_are_refused(server: LocalServer) -> None:
    raw = raw_exchange(
        server,
        b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n[]\r\n0\r\n\r\n",
    )
    assert _status_and_code(raw) == (411, "length_required")


def _status_line(raw: bytes) -> tuple[bytes, int]:
    line = raw.split(b"\r\n", 1)[0]
    version, status = line.split(b" ")[:2]
    return version, int(status)


@pytest.mark.parametrize("length", [b"-1", b"abc", b"1e3", b"\xb2", b"0x10"])
def test_a_malformed_content_length_is_refused(server: LocalServer, length: bytes) -> None:
    raw = raw_exchange(
        server, b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
    )
    assert _status_line(raw) == (b"HTTP/1.1", 400)
    assert b"connection: close" in raw.lower()


def test_conflicting_content_lengths_are_refused_not_one_of_them_believed(
    server: LocalServer,
) -> None:
    # RFC 9112 section 6.3: a recipient MUST treat this as an unrecoverable error (400);
    # believing one of them is how requests are smuggled past a proxy.
    body = orjson.dumps({"device_id": "smuggled", "timestamp": format_instant(NOW), "humidity": 1})
    raw = raw_exchange(
        server,
        b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nContent-Length: 5\r\n\r\n" + body,
    )
    assert _status_line(raw) == (b"HTTP/1.1", 400)
    assert raw.count(b"HTTP/1.1 ") == 1  # one answer, the connection closed after it
    status, _, _ = request(server, "GET", "/v1/devices/smuggled/latest", headers=AUTH)
    assert status == 404


def test_content_length_with_transfer_encoding_is_refused(server: LocalServer) -> None:
    raw = raw_exchange(
        server,
        b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    assert _status_and_code(raw) == (411, "length_required")
    assert b"connection: close" in raw.lower()


def test_a_body_shorter_than_announced_is_never_processed(server: LocalServer) -> None:
    body = orjson.dumps([{"device_id": "cut", "timestamp": format_instant(NOW), "humidity": 1}])
    with socket.create_connection(_address(server), timeout=TIMEOUT_S) as sock:
        sock.sendall(
            b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + KEY.encode()
            + b"\r\nContent-Length: "
            + str(len(body) + 10).encode()
            + b"\r\n\r\n"
            + body
        )
        sock.shutdown(socket.SHUT_WR)  # the client gives up mid-body
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert not raw.startswith(b"HTTP/1.1 2")  # RFC 9112 8: close, or 400, never process
    status, _, _ = request(server, "GET", "/v1/devices/cut/latest", headers=AUTH)
    assert status == 404


def test_a_malformed_request_line_gets_a_status_line(server: LocalServer) -> None:
    raw = raw_exchange(server, b"GET / extra HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status_line(raw) == (b"HTTP/1.1", 400)
    raw = raw_exchange(server, b"GET /v1/health HTTP/2.0\r\nHost: x\r\n\r\n")
    assert _status_line(raw) == (b"HTTP/1.1", 505)
    assert _status_and_code(raw) == (505, "protocol_error")


@pytest.mark.parametrize("method", [b"TRACE", b"BREW", b"CONNECT"])
def test_trace_and_unknown_methods_are_405_with_allow(server: LocalServer, method: bytes) -> None:
    raw = raw_exchange(
        server, method + b" /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert _status_and_code(raw) == (405, "method_not_allowed")
    assert b"allow: GET, HEAD" in raw.lower().replace(b"allow: get, head", b"allow: GET, HEAD")


def test_wrong_methods_are_answered_by_the_api(server: LocalServer) -> None:
    status, headers, body = request(server, "DELETE", "/v1/devices", headers=AUTH)
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert orjson.loads(body)["code"] == "method_not_allowed"


def test_head_sends_the_headers_of_get_without_the_body(server: LocalServer) -> None:
    _, got_headers, got_body = request(server, "GET", "/v1/openapi.json")
    status, headers, body = request(server, "HEAD", "/v1/openapi.json")
    assert status == 200 and body == b""
    assert headers["content-length"] == got_headers["content-length"] == str(len(got_body))


def test_connections_are_kept_alive_between_requests(server: LocalServer) -> None:
    connection = http.client.HTTPConnection(*_address(server), timeout=TIMEOUT_S)
    try:
        for _ in range(3):
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            assert response.status == 200 and response.read()
    finally:
        connection.close()


def _access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    # The server logs a request after sending its response: give the last line time to land.
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        records = [r for r in caplog.records if r.name == "iotpipe.http.access"]
        if len(records) >= count or time.monotonic() > deadline:
            return [orjson.loads(r.getMessage()) for r in records]
        time.sleep(0.01)


def test_each_request_is_one_json_access_log_line_without_secrets(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="iotpipe.http.access")
    request(server, "GET", "/v1/devices?limit=3&cursor=secret-ish", headers=AUTH)
    # A line is logged after its response is sent: wait for the first before asking again, so
    # that the two lines cannot land in the other order.
    _access_lines(caplog, 1)
    request(server, "GET", "/v1/devices", headers={"X-API-Key": KEY + "-wrong"})
    lines = _access_lines(caplog, 2)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", "/v1/devices", 400),  # the made-up cursor
        ("GET", "/v1/devices", 401),
    ]
    keys = {"method", "route", "path", "status", "duration_ms", "remote"}
    assert all(set(line) == keys for line in lines)
    assert all(line["route"] == "/v1/devices" for line in lines)
    assert all(line["duration_ms"] >= 0 for line in lines)
    assert KEY not in caplog.text and "secret-ish" not in caplog.text


def test_close_stops_the_server(api: AnalyticsApi) -> None:
    running = serve(api, port=0)
    address = _address(running)
    assert request(running, "GET", "/v1/health")[0] == 200
    running.close()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=TIMEOUT_S).close()


def test_unexpected_failures_answer_500_over_http(server: LocalServer) -> None:
    # A path the API cannot route is a 404 problem, not a dropped connection.
    status, headers, body = request(server, "GET", "/%ff%00?%zz=%", headers=AUTH)
    assert status == 404 and headers["content-type"] == "application/problem+json"
    assert orjson.loads(body)["code"] == "not_found"


def test_urlopen_sees_problem_documents_as_http_errors(server: LocalServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(server.url + "/v1/devices", timeout=TIMEOUT_S)
    assert raised.value.code == 401
    assert raised.value.headers["WWW-Authenticate"] == 'Bearer realm="iotpipe"'


SERVE_FOREVER = """
from iotpipe import in_memory_pipeline
from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys
from iotpipe.entrypoints.http.server import serve_forever

serve_forever(AnalyticsApi.for_pipeline(in_memory_pipeline(), ApiKeys(["k"])), port=0)
"""


def test_serve_forever_announces_its_url_logs_requests_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_FOREVER], stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        announced = process.stderr.readline()
        url = announced.split("serving on ")[1].split(" ")[0]
        with urllib.request.urlopen(url + "/v1/health", timeout=TIMEOUT_S) as response:
            assert response.status == 200
        logged = orjson.loads(process.stderr.readline())
        assert (logged["path"], logged["status"]) == ("/v1/health", 200)
        _hang_up_early(url)
        with urllib.request.urlopen(url + "/v1/health", timeout=TIMEOUT_S) as response:
            assert response.status == 200  # still serving
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT_S) == 0
        rest = process.stderr.read()
        assert "Traceback" not in rest and "BrokenPipe" not in rest, rest
    finally:
        process.kill()
        process.wait()


def _hang_up_early(url: str) -> None:
    """Clients that go away: before the body ends, and before reading a large response (with
    a reset, so the server's writes fail)."""
    parts = urlsplit(url)
    address = (parts.hostname or "", parts.port or 80)
    with socket.create_connection(address, timeout=TIMEOUT_S) as sock:
        sock.sendall(b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n[")
    for _ in range(20):
        with socket.create_connection(address, timeout=TIMEOUT_S) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)


class _Exploding:
    """Not an API at all: whatever the server asks of it fails."""

    max_body = 1 << 20

    def handle(self, request: object) -> object:
        raise RuntimeError("translation bug")

    def route_of(self, path: str) -> None:
        return None


def test_a_failure_in_the_server_itself_is_a_500_problem(caplog: pytest.LogCaptureFixture) -> None:
    with serve(_Exploding(), port=0) as running:  # type: ignore[arg-type]
        status, headers, body = request(running, "GET", "/v1/health")
    assert status == 500 and orjson.loads(body)["code"] == "internal_error"
    assert headers["connection"] == "close"
    assert "translation bug" in caplog.text


def test_responses_on_a_kept_alive_connection_do_not_wait_for_a_delayed_ack(
    server: LocalServer,
) -> None:
    # Headers and body leave in two writes: with Nagle's algorithm on, the body waited for the
    # client's delayed ACK, ~40 ms on every response (20 requests took ~900 ms; ~15 ms now).
    connection = http.client.HTTPConnection(*_address(server), timeout=TIMEOUT_S)
    try:
        connection.request("GET", "/v1/health")
        connection.getresponse().read()
        began = time.perf_counter()
        for _ in range(20):
            connection.request("GET", "/v1/health")
            connection.getresponse().read()
        elapsed = time.perf_counter() - began
    finally:
        connection.close()
    assert elapsed < 0.4, f"20 requests took {elapsed * 1000:.0f} ms"
