"""``iotpipe demo``: a simulated fleet flowing through the local runtime, served live."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from iotpipe.application.views import window_json
from iotpipe.domain import LatenessPolicy, TelemetrySchema
from iotpipe.domain.time import MS_PER_HOUR, format_instant, hour_start
from iotpipe.entrypoints.delivery import Progress, post_payloads
from iotpipe.entrypoints.local_runtime import LocalRuntime, LocalSettings
from iotpipe.simulator import Faults, Fleet

#: Faults for the demo's history: resends, reordering, late and malformed payloads, and a
#: device whose clock runs ahead (some of its readings arrive "from the future").
DEMO_FAULTS = Faults(duplicates=0.03, disorder=0.03, malformed=0.005, late=0.01, skewed=0.1)


@dataclass(frozen=True)
class DemoOptions:
    """What ``iotpipe demo`` was asked for."""

    devices: int = 20
    hours: int = 24
    interval_s: float = 60.0
    seed: int = 42
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path | None = None
    duration_s: float | None = None
    api_key: str | None = None
    schema: TelemetrySchema | None = None
    """The readings' schema (``None``: the one kept in ``data_dir``, else the default)."""


def run_demo(
    options: DemoOptions,
    out: TextIO,
    *,
    start: Callable[[Path, LocalSettings], LocalRuntime] = LocalRuntime.start,
) -> int:
    """Backfill the fleet's history, then stream live readings until interrupted or timed out.

    ``start`` starts the runtime (the CLI passes one that turns start-up failures into one
    line).
    """
    with tempfile.TemporaryDirectory(prefix="iotpipe-demo-") as scratch:
        data_dir = options.data_dir or Path(scratch)
        settings = LocalSettings(
            host=options.host,
            port=options.port,
            keys=[options.api_key] if options.api_key else (),
            lateness=LatenessPolicy(),
            processor_log_level="WARNING",  # the demo's output is its story, not batch lines
            schema=options.schema,
        )
        runtime = start(data_dir, settings)
        try:
            return _demo(runtime, options, data_dir, out)
        except KeyboardInterrupt:
            out.write("\nstopping\n")
            return 0
        finally:
            runtime.close()


def _demo(runtime: LocalRuntime, options: DemoOptions, data_dir: Path, out: TextIO) -> int:
    fleet = Fleet(options.devices, options.interval_s, options.seed, runtime.pipeline.schema)
    started = time.monotonic()
    now = _now_ms()
    first = hour_start(now) - options.hours * MS_PER_HOUR
    ingest = f"{runtime.url}/v1/readings"
    out.write(
        f"iotpipe demo: {options.devices} simulated devices, one reading every "
        f"{options.interval_s:g} s, history from {format_instant(first)}\n"
        f"data directory: {data_dir}\n\n"
    )
    expected = options.devices * round((now - first) / (options.interval_s * 1000))
    progress = Progress(expected, "backfilling", out)
    sent = post_payloads(
        fleet.payloads(first, now, DEMO_FAULTS), ingest, runtime.api_key, progress=progress
    )
    progress.close()
    runtime.wait_idle(120)
    _print_summary(runtime, sent.accepted, sent.rejected, out)
    if not _redelivery_changes_nothing(runtime, fleet.payloads(first, now, DEMO_FAULTS), out):
        return 1
    last = now
    while options.duration_s is None or time.monotonic() - started < options.duration_s:
        time.sleep(min(options.interval_s, 2.0))
        now = _now_ms()
        live = post_payloads(fleet.payloads(last, now), ingest, runtime.api_key)
        last = now
        if live.accepted:
            out.write(f"{format_instant(now)}  live: {live.accepted} readings accepted\n")
            out.flush()
    return 0


def _redelivery_changes_nothing(runtime: LocalRuntime, history: Iterator[str], out: TextIO) -> bool:
    """Send the whole history again, as retrying devices would: no aggregate may change."""
    schema = runtime.pipeline.schema
    before = [window_json(w, schema) for w in runtime.pipeline.query.every_window()]
    again = post_payloads(history, f"{runtime.url}/v1/readings", runtime.api_key)
    runtime.wait_idle(120)
    after = [window_json(w, schema) for w in runtime.pipeline.query.every_window()]
    verdict = "unchanged: each reading counted exactly once" if before == after else "CHANGED"
    out.write(
        f"redelivered the whole history ({again.accepted} readings again): "
        f"{len(after)} hourly aggregates {verdict}\n\n"
        "streaming live readings; Ctrl-C stops the demo\n"
    )
    out.flush()
    return before == after


def _print_summary(runtime: LocalRuntime, accepted: int, rejected: int, out: TextIO) -> None:
    devices = runtime.pipeline.query.devices(limit=1000).items
    example = devices[0].device_id if devices else "iot-sensor-001"
    url, key = runtime.url, runtime.api_key
    out.write(
        f"\nhistory delivered: {accepted} readings accepted, {rejected} rejected at the edge; "
        f"{len(devices)} devices in the store\n\n"
        f"dashboard:  {url}/#key={key}\n"
        f"API:        {url}/v1/   (OpenAPI: {url}/v1/openapi.json)\n"
        f"API key:    {key}\n\n"
        "try:\n"
        f"  curl -H 'Authorization: Bearer {key}' {url}/v1/devices\n"
        f"  curl -H 'Authorization: Bearer {key}' {url}/v1/devices/{example}/latest\n"
        f"  curl -H 'Authorization: Bearer {key}' '{url}/v1/devices/{example}/hourly"
        f"?from={_day_ago()}&to={_hour_ahead()}'\n\n"
    )
    out.flush()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _day_ago() -> str:
    return format_instant(hour_start(_now_ms()) - 24 * MS_PER_HOUR)


def _hour_ahead() -> str:
    return format_instant(hour_start(_now_ms()) + MS_PER_HOUR)
