"""The local API under load: ``--clients`` concurrent clients for ``--seconds`` on one route.

Fills a SQLite store with 30 days of ``--devices`` simulated devices (one reading every
``--interval`` seconds: every hour of the range has a window) through ``iotpipe process
--store sqlite:PATH``, serves it with ``iotpipe serve`` in its own process, and then runs
``--clients`` threads, each on its own keep-alive connection, for ``--seconds`` per route:

- the hourly query of a 30-day range (720 windows, one page: ``limit=744``), the devices in turn;
- baseline, the same way on the same server: ``GET /v1/health`` (no store access).

Prints requests/s, p50/p99 latency and errors (any status but 200, or a failed connection)
per route. Target (issue #9): zero errors.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from freshness import percentile
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.simulator import Fleet
from results import json_option, write
from serving import Client, local_server

START = "2025-07-01T00:00:00Z"
DAYS = 30


def fill(data_dir: Path, devices: int, interval_s: float) -> int:
    """Process 30 days of the fleet into ``data_dir/iotpipe.db`` (the store ``serve`` opens)."""
    start = parse_instant(START)
    lines = data_dir.with_suffix(".jsonl")
    count = 0
    with lines.open("wb") as out:
        for line in Fleet(devices, interval_s, seed=3).payloads(
            start, start + DAYS * 24 * MS_PER_HOUR
        ):
            out.write(line.encode() + b"\n")
            count += 1
    data_dir.mkdir()
    command = [str(Path(sys.executable).parent / "iotpipe"), "process", str(lines)]
    command += ["--store", f"sqlite:{data_dir / 'iotpipe.db'}", "--output", "/dev/null"]
    subprocess.run(command, check=True, capture_output=True)
    return count


def load(url: str, paths: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads sending GETs of ``paths`` (in turn) for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    turns = itertools.cycle(paths)
    start_line = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client() -> None:
        connection = Client(url)
        mine: list[float] = []
        failed: list[str] = []
        start_line.wait()
        while time.perf_counter() < stop_at[0]:
            with lock:
                path = next(turns)
            began = time.perf_counter()
            try:
                status, _ = connection.request("GET", path)
            except OSError as exc:
                failed.append(f"{type(exc).__name__}: {exc}")
                continue
            mine.append(time.perf_counter() - began)
            if status != 200:
                failed.append(f"status {status}")
        connection.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_line.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0, help="per route")
    parser.add_argument("--devices", type=int, default=4, help="devices with 30 days of data")
    parser.add_argument("--interval", type=float, default=60.0, help="s between readings")
    json_option(parser)
    args = parser.parse_args()
    start = parse_instant(START)
    window = f"from={format_instant(start)}&to={format_instant(start + DAYS * 24 * MS_PER_HOUR)}"
    hourly = [
        f"/v1/devices/iot-sensor-{n:03d}/hourly?{window}&limit=744"
        for n in range(1, args.devices + 1)
    ]
    with tempfile.TemporaryDirectory(prefix="iotpipe-load-") as tmp:
        data = Path(tmp) / "data"
        readings = fill(data, args.devices, args.interval)
        with local_server(data) as url:
            status, body = Client(url).request("GET", hourly[0])
            if status != 200 or body.count(b'"hour"') != DAYS * 24:
                raise SystemExit(f"the 30-day query did not answer 720 windows: {status}")
            routes = {
                "hourly_30_days": load(url, hourly, args.clients, args.seconds),
                "health": load(url, ["/v1/health"], args.clients, args.seconds),
            }
    figures = {
        "clients": args.clients,
        "seconds": args.seconds,
        "devices": args.devices,
        "readings": readings,
        "routes": routes,
    }
    print(
        f"{args.clients} clients x {args.seconds:g} s per route, {args.devices} devices x "
        f"{DAYS} days ({readings:,} readings) in SQLite"
    )
    for name, r in routes.items():
        print(
            f"  {name:16} {r['rps']:8.1f} requests/s  p50 {r['p50_ms']:7.1f} ms  "
            f"p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}"
        )
    verdict = "met" if all(r["errors"] == 0 for r in routes.values()) else "NOT met"
    print(f"zero errors: {verdict}")
    write(args.json, figures)


if __name__ == "__main__":
    main()
