"""Delivering simulated payloads to a running ingest endpoint over HTTP, with a progress bar."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import orjson


@dataclass(slots=True)
class DeliveryReport:
    """What the endpoint said about everything that was sent."""

    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    failed_requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    waits: int = 0  # answers that said to come back later (Retry-After), waited out


def post_payloads(
    lines: Iterable[str],
    url: str,
    api_key: str | None,
    *,
    batch_size: int = 500,
    attempts: int = 5,
    progress: Progress | None = None,
) -> DeliveryReport:
    """POST payload lines to ``url`` as JSON arrays of up to ``batch_size`` readings.

    A line that is not valid JSON cannot ride inside an array without spoiling it, so it is
    sent on its own, as a broken device would. 429/5xx answers and connection errors are
    retried with exponential backoff, ``attempts`` times at most; an answer with
    ``Retry-After`` (the local runtime's full backlog) is retried after that many seconds,
    without counting as an attempt, for up to five minutes per request.
    """
    report = DeliveryReport()
    for body, count in _bodies(lines, batch_size):
        status, answer, waits = _post(url, api_key, body, attempts)
        report.requests += 1
        report.waits += waits
        report.statuses[status] = report.statuses.get(status, 0) + 1
        if status == 202:
            accepted, rejected = answer.get("accepted", 0), answer.get("rejected", [])
            report.accepted += accepted if isinstance(accepted, int) else 0
            report.rejected += len(rejected) if isinstance(rejected, list) else 0
        elif 400 <= status < 500:
            report.rejected += count
        else:
            report.failed_requests += 1
        if progress is not None:
            progress.advance(count)
    return report


def _bodies(lines: Iterable[str], batch_size: int) -> Iterator[tuple[bytes, int]]:
    batch: list[bytes] = []
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            yield line.encode(), 1
            continue
        batch.append(line.encode())
        if len(batch) == batch_size:
            yield b"[" + b",".join(batch) + b"]", len(batch)
            batch = []
    if batch:
        yield b"[" + b",".join(batch) + b"]", len(batch)


def _post(
    url: str, api_key: str | None, body: bytes, attempts: int, max_wait_s: float = 300.0
) -> tuple[int, dict[str, object], int]:
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    status, answer = 0, {}
    attempt = waits = 0
    waited = 0.0
    while attempt < attempts:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, _json(response.read()), waits
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, _json(exc.read())
            if status != 429 and status < 500:
                return status, answer, waits
            pause = _retry_after(exc.headers.get("retry-after"))
            if pause is not None and waited + pause <= max_wait_s:
                # The server said when to come back (backpressure): that is not a failure.
                waits += 1
                waited += pause
                time.sleep(pause)
                continue
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            status, answer = 0, {}
        time.sleep(min(2.0, 0.1 * 2**attempt))
        attempt += 1
    return status, answer, waits


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds; an HTTP date is not honoured)."""
    if value is None or not value.strip().isdigit():
        return None
    return min(60.0, float(value.strip()))


def _json(body: bytes) -> dict[str, object]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal."""

    def __init__(self, total: int | None, label: str, stream: IO[str] | None = None) -> None:
        self._total = total
        self._label = label
        self._stream = stream or sys.stderr
        self._done = 0
        self._shown = 0.0
        self._enabled = self._stream.isatty()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items; redraw at most ten times a second."""
        self._done += n
        now = time.monotonic()
        if self._enabled and now - self._shown >= 0.1:
            self._shown = now
            self._draw()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self) -> None:
        if self._total:
            share = min(1.0, self._done / self._total)
            bar = "#" * int(share * 30)
            text = f"\r{self._label} [{bar:<30}] {share:6.1%} {self._done:,}/{self._total:,}"
        else:
            text = f"\r{self._label} {self._done:,}"
        self._stream.write(text)
        self._stream.flush()
