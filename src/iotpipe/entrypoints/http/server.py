"""The local HTTP server: uvicorn (HTTP/1.1 by h11) in front of the API, through a small ASGI app.

The protocol is uvicorn's and h11's, not ours: request lines, header syntax, conflicting
``Content-Length`` headers (400, RFC 9112 section 6.3), keep-alive and clients that hang up are
theirs to handle. This module only translates: an ASGI request becomes an :class:`HttpRequest`,
the API's :class:`HttpResponse` is sent back. The API runs on a pool of threads (it is
synchronous, and ingest waits for the log's commit), so the event loop keeps serving.

What only a server can do happens here too, before the body is read: a body whose
``Content-Length`` exceeds the API's limit is refused (413, and a client that sent
``Expect: 100-continue`` is never invited to send it), chunked bodies are refused (411), and a
version other than HTTP/1.0 or 1.1 is answered 505. Each request is logged as one JSON line
(method, route, path, status, duration; never headers, query strings or bodies).

Why uvicorn: a production server that is light (pure Python with h11; ~1 MB with click),
starts in ~0.2 s, serves many slow or idle connections on one event loop, and hands the
application the headers before the body, which the two refusals above need. It is an optional
dependency (``iotpipe[serve]``), never part of the Lambda or Cloud Functions packages.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

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

#: Seconds an idle keep-alive connection stays open.
SOCKET_TIMEOUT_S = 30.0
#: Requests the API may work on at once (the rest wait on the event loop, costing no thread).
API_THREADS = 64

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ServerError(Exception):
    """The server could not start (the address is in use, the port is invalid...)."""


class LocalServer:
    """A running server: its ``url``, and ``close()`` to stop it (also a context manager)."""

    def __init__(self, server: Any, thread: threading.Thread, address: tuple[str, int]) -> None:
        self._server = server
        self._thread = thread
        host, port = address
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        """Stop accepting requests, finish those in flight, close the socket."""
        self._server.should_exit = True
        self._thread.join()

    def wait(self) -> None:
        """Block until the server stops."""
        while self._thread.is_alive():
            self._thread.join(0.5)  # a plain join() would not let Ctrl-C through

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
    """Start serving ``api`` on ``host:port`` (0: any free port) in a daemon thread.

    The socket is bound before this returns: a busy or invalid address raises
    :class:`ServerError` here, with the reason.
    """
    import uvicorn  # the server is needed only when serving (and is an optional dependency)

    sock = _bind(host, port)
    app = AsgiApp(api, access_log)
    config = uvicorn.Config(
        app,
        http="h11",  # the same protocol implementation wherever iotpipe is installed
        lifespan="off",
        log_config=None,  # leave logging to the application
        log_level="warning",  # not uvicorn's start-up banner; its protocol warnings, yes
        access_log=False,  # ours is the JSON line above
        server_header=False,
        timeout_keep_alive=int(SOCKET_TIMEOUT_S),
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=_run, args=(server, sock, app), name=f"iotpipe-http-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        raise ServerError("the HTTP server did not start")
    return LocalServer(server, thread, sock.getsockname()[:2])


def _run(server: Any, sock: socket.socket, app: AsgiApp) -> None:
    try:
        server.run(sockets=[sock])
    finally:
        app.close()
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ServerError(f"port {port} is not a TCP port (0-65535)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say TCP.
    # With it on, a response's headers and body (two writes) met the client's delayed ACK and
    # every response on a kept-alive connection waited ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno in _IN_USE else f"cannot be used: {exc.strerror or exc}"
        raise ServerError(f"address {host}:{port} {reason}") from None
    sock.setblocking(False)
    return sock


_IN_USE = {98, 48, 10048}  # EADDRINUSE on Linux, macOS, Windows


def serve_forever(api: AnalyticsApi, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until interrupted (Ctrl-C), logging each request to stderr; for the CLI."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    server = serve(api, host, port)
    print(
        f"iotpipe: serving on {server.url} (API docs: {server.url}/v1/openapi.json)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


class AsgiApp:
    """The API as an ASGI application (HTTP only)."""

    def __init__(self, api: AnalyticsApi, access_log: logging.Logger = ACCESS_LOG) -> None:
        self._api = api
        self._access_log = access_log
        self._pool = ThreadPoolExecutor(API_THREADS, thread_name_prefix="iotpipe-api")

    def close(self) -> None:
        """Let the API's threads finish."""
        self._pool.shutdown(wait=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request."""
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = _headers(scope)
        response, close = _refusal(scope, headers, self._api.max_body)
        if response is None:
            body = await _body(receive)
            if body is None:  # the client hung up (or sent less than announced): nobody to answer
                return
            response, close = await self._answer(scope, headers, body)
        if close:
            response = HttpResponse(
                response.status, {**response.headers, "connection": "close"}, response.body
            )
        await _send(send, response, bare=scope["method"] == "HEAD")
        self._log_access(scope, response.status, started)

    async def _answer(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[HttpResponse, bool]:
        """The API's answer, and whether to close the connection after it."""
        request = HttpRequest(
            method=scope["method"],
            path=_path(scope),
            query=_query(scope.get("query_string", b"").decode("latin-1")),
            headers=headers,
            body=body,
        )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._api.handle, request), False
        except Exception:
            # The API never raises; this guards the translation itself.
            _log.exception("unexpected error answering %.32r", scope.get("method"))
            return problem_response(INTERNAL_ERROR, "an unexpected error occurred"), True

    def _log_access(self, scope: Scope, status: int, started: float) -> None:
        path = _path(scope)[:512]
        client = scope.get("client") or ("", 0)
        record: dict[str, Any] = {
            "method": scope["method"],
            "route": self._api.route_of(path),
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "remote": client[0],
        }
        self._access_log.info(orjson.dumps(record).decode())


def _refusal(
    scope: Scope, headers: Mapping[str, str], limit: int
) -> tuple[HttpResponse | None, bool]:
    """A response to send without reading the body (and closing), or ``(None, keep)``."""
    if scope.get("http_version") not in ("1.0", "1.1"):
        version = scope.get("http_version")
        detail = f"HTTP/{version} is not supported on this port; use HTTP/1.1"
        return problem_response(PROTOCOL_ERROR, detail, status=505), True
    if "transfer-encoding" in headers:
        return problem_response(LENGTH_REQUIRED, "send the body with a Content-Length"), True
    length = headers.get("content-length")
    if length is None:
        return None, False
    if not is_whole(length.strip()):
        detail = "Content-Length is not a whole number"
        return problem_response(PROTOCOL_ERROR, detail, status=400), True
    if int(length) > limit:
        # The body stays unread: the connection cannot be reused after it.
        detail = f"the body may be at most {limit} bytes"
        return problem_response(PAYLOAD_TOO_LARGE, detail), True
    return None, False


async def _body(receive: Receive) -> bytes | None:
    """The whole body, or ``None`` if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: HttpResponse, *, bare: bool) -> None:
    headers = dict(response.headers)
    headers.setdefault("content-length", str(len(response.body)))
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
    )
    # HEAD, 1xx, 204 and 304 responses carry no body (HEAD keeps GET's Content-Length).
    no_body = bare or response.status < 200 or response.status in (204, 304)
    await send({"type": "http.response.body", "body": b"" if no_body else response.body})


def _headers(scope: Scope) -> dict[str, str]:
    # Names are lower-case already; a repeated header's values are joined, as RFC 9110 allows.
    joined: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _path(scope: Scope) -> str:
    # The raw path keeps its percent-encoding, as HttpRequest documents.
    raw = scope.get("raw_path")
    text = raw.decode("latin-1") if raw else str(scope.get("path", "/"))
    return text.split("?", 1)[0]


def _query(text: str) -> Mapping[str, str]:
    # Repeated parameters are joined with commas, as API Gateway does, so every runtime hands
    # the API the same mapping (and "limit=1&limit=2" fails to parse rather than picking one).
    joined: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined
