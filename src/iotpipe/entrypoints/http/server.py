"""The local HTTP server: the standard library's threading server in front of the API.

It only translates: an ``http.server`` request becomes an :class:`HttpRequest`, the API's
:class:`HttpResponse` is written back. What only a server can do happens here too: a body whose
``Content-Length`` exceeds the API's limit is refused without being read, chunked bodies are
refused (411), and each request is logged as one JSON line (method, path, status, duration;
never headers, query strings or bodies).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from iotpipe.entrypoints.http.api import AnalyticsApi
from iotpipe.entrypoints.http.messages import HttpRequest, HttpResponse
from iotpipe.entrypoints.http.params import is_whole
from iotpipe.entrypoints.http.problems import (
    INTERNAL_ERROR,
    LENGTH_REQUIRED,
    PAYLOAD_TOO_LARGE,
    PROTOCOL_ERROR,
    problem_response,
)

ACCESS_LOG = logging.getLogger("iotpipe.http.access")
_log = logging.getLogger("iotpipe.http.server")

#: Seconds a connection may sit idle (or trickle a request) before it is closed.
SOCKET_TIMEOUT_S = 30.0


class LocalServer:
    """A running server: its ``url``, and ``close()`` to stop it (also a context manager)."""

    def __init__(self, httpd: _Server, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        host = str(host)
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        """Stop accepting requests, close the socket and wait for the serving thread."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def wait(self) -> None:
        """Block until the server stops."""
        self._thread.join()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    api: AnalyticsApi,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    access_log: logging.Logger = ACCESS_LOG,
) -> LocalServer:
    """Start serving ``api`` on ``host:port`` (0: any free port) in a daemon thread."""
    server_class = _Server6 if ":" in host else _Server
    httpd = server_class((host, port), _Handler)
    httpd.api = api
    httpd.access_log = access_log
    # A short poll interval makes close() prompt (shutdown waits for the loop to notice).
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"iotpipe-http-{port}",
        daemon=True,
    )
    thread.start()
    return LocalServer(httpd, thread)


def serve_forever(api: AnalyticsApi, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until interrupted (Ctrl-C), logging each request to stderr; for the CLI."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    server = serve(api, host, port)
    print(
        f"iotpipe: serving on {server.url} (API docs: {server.url}/v1/openapi.json)",
        file=sys.stderr,
    )
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: AnalyticsApi
    access_log: logging.Logger


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    server_version = "iotpipe"
    sys_version = ""  # the Python version is nobody's business
    # Headers and body leave in two writes; with Nagle's algorithm on, a keep-alive client's
    # delayed ACK held the body back about 40 ms on every response (TCP_NODELAY).
    disable_nagle_algorithm = True

    # Every standard method goes through the API, which answers 405 where it must; others
    # get http.server's 501 (as a problem document, see send_error).
    def do_GET(self) -> None:
        """Answer through the API."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """Answer through the API (headers only)."""
        self._dispatch()

    def do_POST(self) -> None:
        """Answer through the API."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Answer through the API."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Answer through the API."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Answer through the API."""
        self._dispatch()

    def do_OPTIONS(self) -> None:
        """Answer through the API."""
        self._dispatch()

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it, instead of inviting it."""
        refusal = self._refusal()
        if refusal is None:
            return super().handle_expect_100()
        self._respond(refusal, time.perf_counter())
        return False

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            response = self._refusal() or self._answer()
        except OSError:
            raise  # the connection broke (or timed out): http.server closes it
        except Exception:
            # The API never raises; this guards the translation itself.
            _log.exception("unexpected error translating %.32r", self.command)
            self.close_connection = True
            response = problem_response(INTERNAL_ERROR, "an unexpected error occurred")
        self._respond(response, started)

    def _respond(self, response: HttpResponse, started: float) -> None:
        self._write(response)
        self._log_access(response.status, started)

    def _refusal(self) -> HttpResponse | None:
        """A response to send without reading the body, or ``None`` to go on."""
        if "transfer-encoding" in self.headers:
            self.close_connection = True
            return problem_response(LENGTH_REQUIRED, "send the body with a Content-Length")
        length = self.headers.get("content-length")
        if length is None:
            return None
        if not is_whole(length.strip()):
            self.close_connection = True
            return problem_response(
                PROTOCOL_ERROR, "Content-Length is not a whole number", status=400
            )
        limit = self.server.api.max_body
        if int(length) > limit:
            # The body stays unread: the connection cannot be reused after it.
            self.close_connection = True
            return problem_response(PAYLOAD_TOO_LARGE, f"the body may be at most {limit} bytes")
        return None

    def _answer(self) -> HttpResponse:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return problem_response(PROTOCOL_ERROR, "the body ended early", status=400)
        target = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            path=target.path,
            query=_query(target.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        return self.server.api.handle(request)

    def _write(self, response: HttpResponse) -> None:
        self.send_response_only(response.status)
        self.send_header("date", self.date_time_string())
        headers = dict(response.headers)
        headers.setdefault("content-length", str(len(response.body)))
        if self.close_connection:
            headers["connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.status >= 200 and response.status not in (204, 304):
            self.wfile.write(response.body)

    def _log_access(self, status: int, started: float) -> None:
        record: dict[str, Any] = {
            "method": self.command,
            "path": urlsplit(getattr(self, "path", "")).path[:512],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "remote": self.client_address[0],
        }
        self.server.access_log.info(orjson.dumps(record).decode())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, headers too long...) as problem documents."""
        self.close_connection = True
        response = problem_response(
            PROTOCOL_ERROR, message or "the request is not valid HTTP", status=code
        )
        self.command = self.command or ""  # unset when the request line could not be read
        self._respond(response, time.perf_counter())

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: :meth:`_log_access` writes the structured access log instead."""


def _query(text: str) -> Mapping[str, str]:
    # Repeated parameters are joined with commas, as API Gateway does, so every runtime hands
    # the API the same mapping (and "limit=1&limit=2" fails to parse rather than picking one).
    joined: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined
