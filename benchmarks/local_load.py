"""The local runtime under load: 16 clients at full speed, then freshness at a steady rate.

``iotpipe serve`` runs in its own process (as users run it). Clients post 100-reading batches
of a fleet of ``--devices`` devices, one reading per device per second of event time (starting
``--hours-back`` hours ago, so every reading is within the lateness policy), honouring
``503`` + ``Retry-After`` (the same batch again after the pause).

Phase 1, overload (``--clients`` clients, ``--seconds`` s at full speed): readings answered 202
per second while posting; the end-to-end rate, every accepted reading over the time from the
first POST until all of them are queryable (the server's health route reports an empty backlog
and the hourly route counts every distinct reading: checked, device by device); the drain rate
after the burst (the backlog when posting stopped over the time it took to apply); 503 answers;
the peak RSS of the server and its processor (sampled every 0.1 s, summed over the process
tree). Baseline, in the same run: the server's ingest rate alone (the backlog bound set so high
that nothing is refused, processing left for later: what the API accepts when it does nothing
else), and the processor's rate draining it alone.

Phase 2, freshness at ``--steady-rate`` readings/s (``--steady-seconds`` s): a probe device
posts one reading every 0.25 s among the load and polls the hourly route until it is counted;
p50 and p99 of POST-to-visible. Baseline: the round trip of the POST and one query.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from iotpipe.domain.time import MS_PER_HOUR, format_instant, hour_start
from results import json_option, write
from serving import Client, local_server

BATCH = 100


@dataclass
class Fleet:
    """Readings in a fixed order: reading i is device i % devices at second i // devices."""

    devices: int
    start_ms: int
    prefix: str = "load"
    next_batch: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[int, bytes]:
        """The next batch number and its body."""
        with self.lock:
            number = self.next_batch
            self.next_batch += 1
        return number, self.body(number)

    def body(self, number: int) -> bytes:
        """A batch's 100 readings as a JSON array."""
        items = []
        for i in range(number * BATCH, (number + 1) * BATCH):
            device, second = i % self.devices, i // self.devices
            at = self.start_ms + second * 1000 + 17 * (device % 50)
            items.append(
                {
                    "device_id": f"{self.prefix}-{device:05d}",
                    "timestamp": format_instant(at),
                    "temperature": round(15 + (i * 7919 % 1000) / 100, 2),
                    "humidity": round(30 + (i * 104729 % 4000) / 100, 2),
                }
            )
        return orjson.dumps(items)


@dataclass
class Tally:
    """What the clients saw."""

    accepted: int = 0
    refused: int = 0  # 503 answers (backpressure)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, accepted: int = 0, refused: int = 0, errors: int = 0) -> None:
        with self.lock:
            self.accepted += accepted
            self.refused += refused
            self.errors += errors


def post_until(url: str, fleet: Fleet, tally: Tally, stop: threading.Event, pace_s: float) -> None:
    """One client: post batches until ``stop``; resend a refused batch after Retry-After."""
    client = Client(url)
    try:
        next_at = time.monotonic()
        while not stop.is_set():
            if pace_s:
                next_at += pace_s
                stop.wait(max(0.0, next_at - time.monotonic()))
                if stop.is_set():
                    return
            _, body = fleet.take()
            while True:
                status, reply, retry = client.post_with_retry_after("/v1/readings", body)
                if status == 202:
                    tally.add(accepted=int(orjson.loads(reply)["accepted"]))
                    break
                if status == 503:
                    tally.add(refused=1)
                    time.sleep(retry)
                    continue
                tally.add(errors=1)
                break
    finally:
        client.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MB."""
    total = 0
    for each in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{each}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def descendants(pid: int) -> list[int]:
    """Child processes, recursively (from /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = [int(c) for c in children]
    return found + [d for c in found for d in descendants(c)]


@contextmanager
def rss_sampler(pid: int) -> Iterator[dict[str, float]]:
    """Samples the process tree's RSS every 0.1 s; yields a dict whose ``peak_mb`` grows."""
    peak = {"peak_mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak["peak_mb"] = max(peak["peak_mb"], rss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def health(client: Client) -> dict[str, Any]:
    """The server's stream status."""
    status, body = client.request("GET", "/v1/health")
    if status != 200:
        raise SystemExit(f"health answered {status}")
    return dict(orjson.loads(body)["stream"])


def wait_drained(client: Client, timeout_s: float) -> float:
    """Wait until the log's backlog is empty; returns when that was seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = health(client)
        if status["backlog_records"] == 0:
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"the backlog did not drain in {timeout_s:.0f} s")


def counted(client: Client, fleet: Fleet, accepted: int) -> int:
    """Distinct readings the hourly route counts for the fleet's devices."""
    first = hour_start(fleet.start_ms)
    last = fleet.start_ms + (accepted // fleet.devices + 2) * 1000
    total = 0
    for device in range(fleet.devices):
        end = first
        while end <= last:
            end += MS_PER_HOUR
        query = f"from={format_instant(first)}&to={format_instant(end)}&limit=744"
        status, body = client.request("GET", f"/v1/devices/load-{device:05d}/hourly?{query}")
        if status == 200:
            total += sum(int(i["count"]) for i in orjson.loads(body)["items"])
    return total


def overload(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """Phase 1: every client at full speed for ``--seconds``."""
    fleet = Fleet(args.devices, _start_ms(args))
    tally, stop = Tally(), threading.Event()
    probe = Client(url)
    with rss_sampler(pid) as peak:
        began = time.monotonic()
        threads = [
            threading.Thread(target=post_until, args=(url, fleet, tally, stop, 0.0))
            for _ in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        posting_s = time.monotonic() - began
        backlog = health(probe)["backlog_records"]
        stopped = time.monotonic()
        drained = wait_drained(probe, args.drain_timeout)
    total = counted(probe, fleet, tally.accepted)
    probe.close()
    if total != tally.accepted:
        raise SystemExit(f"{tally.accepted:,} readings were accepted but {total:,} are counted")
    drain_s = max(drained - stopped, 1e-9)
    return {
        "clients": args.clients,
        "seconds": round(posting_s, 2),
        "accepted": tally.accepted,
        "refused_503": tally.refused,
        "errors": tally.errors,
        "ingest_rate": tally.accepted / posting_s,
        "end_to_end_rate": tally.accepted / (drained - began),
        "backlog_at_stop_readings": backlog * BATCH,
        "drain_seconds": round(drain_s, 2),
        "drain_rate": backlog * BATCH / drain_s,  # a record is one request's 100 readings
        "peak_rss_mb": round(peak["peak_mb"], 1),
        "counted": total,
    }


def freshness(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Phase 2: the load at ``--steady-rate`` readings/s, and a probe's freshness in it."""
    fleet = Fleet(args.devices, _start_ms(args), prefix="steady")  # not phase 1's devices
    tally, stop = Tally(), threading.Event()
    clients = max(1, min(args.clients, math.ceil(args.steady_rate / 1000)))
    pace = clients * BATCH / args.steady_rate
    threads = [
        threading.Thread(target=post_until, args=(url, fleet, tally, stop, pace))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    poster, reader = Client(url), Client(url)
    fresh, trips = [], []
    first = time.time_ns() // 1_000_000 - 10 * 60_000
    start, end = hour_start(first), hour_start(first) + 2 * MS_PER_HOUR
    query = f"from={format_instant(start)}&to={format_instant(end)}"
    began = time.monotonic()
    n = 0
    try:
        while time.monotonic() - began < args.steady_seconds:
            body = orjson.dumps(
                {"device_id": "probe", "timestamp": format_instant(first + n * 1000), "humidity": 1}
            )
            t0 = time.perf_counter()
            status, _ = poster.request("POST", "/v1/readings", body)
            if status != 202:
                raise SystemExit(f"the probe's POST answered {status}")
            seen = _probe_count(reader, query)
            trips.append(time.perf_counter() - t0)
            while seen < n + 1:
                if time.perf_counter() - t0 > 60:
                    raise SystemExit("a probe reading was not visible after 60 s")
                time.sleep(0.005)
                seen = _probe_count(reader, query)
            fresh.append(time.perf_counter() - t0)
            n += 1
            time.sleep(0.25)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        poster.close()
        reader.close()
    elapsed = time.monotonic() - began
    return {
        "rate": tally.accepted / elapsed,
        "target_rate": args.steady_rate,
        "samples": len(fresh),
        "p50_ms": _percentile(fresh, 50) * 1000,
        "p99_ms": _percentile(fresh, 99) * 1000,
        "round_trip_p50_ms": _percentile(trips, 50) * 1000,
        "round_trip_p99_ms": _percentile(trips, 99) * 1000,
        "refused_503": tally.refused,
    }


def _probe_count(client: Client, query: str) -> int:
    status, body = client.request("GET", f"/v1/devices/probe/hourly?{query}")
    return sum(int(i["count"]) for i in orjson.loads(body)["items"]) if status == 200 else 0


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def _start_ms(args: argparse.Namespace) -> int:
    return hour_start(time.time_ns() // 1_000_000) - args.hours_back * MS_PER_HOUR


def baseline(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest alone (nothing refused, nothing processed meanwhile), then the drain alone."""
    with tempfile.TemporaryDirectory(prefix="iotpipe-load-base-") as tmp:
        data = Path(tmp) / "data"
        extra = ["--max-backlog-records", str(10**9), "--max-backlog-bytes", str(10**12)]
        with local_server(data, extra_args=[*extra, "--processor", "none"]) as url:
            fleet = Fleet(args.devices, _start_ms(args))
            tally, stop = Tally(), threading.Event()
            threads = [
                threading.Thread(target=post_until, args=(url, fleet, tally, stop, 0.0))
                for _ in range(args.clients)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            time.sleep(args.seconds / 2)
            stop.set()
            for thread in threads:
                thread.join()
            ingest_rate = tally.accepted / (time.monotonic() - began)
        with local_server(data, extra_args=extra) as url:
            probe = Client(url)
            began = time.monotonic()
            wait_drained(probe, args.drain_timeout)
            drain_s = time.monotonic() - began
            probe.close()
    return {"ingest_rate": ingest_rate, "drain_rate": tally.accepted / drain_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--hours-back", type=int, default=6)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--steady-rate", type=float, default=5000.0)
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--processor", choices=["process", "thread"], default="process")
    parser.add_argument("--skip-baseline", action="store_true")
    json_option(parser)
    args = parser.parse_args()
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "processor": args.processor}
    if not args.skip_baseline:
        figures["baseline"] = baseline(args)
        print(f"baseline: {figures['baseline']}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="iotpipe-load-") as tmp,
        local_server(Path(tmp) / "data", extra_args=["--processor", args.processor]) as url,
    ):
        pid = _server_pid(Path(tmp) / "data")
        figures["overload"] = overload(url, pid, args)
        print(f"overload: {figures['overload']}", flush=True)
        figures["freshness"] = freshness(url, args)
        print(f"freshness: {figures['freshness']}", flush=True)
    write(args.json, figures)


def _server_pid(data: Path) -> int:
    return int((data / "serve.lock").read_text().strip())


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    main()
