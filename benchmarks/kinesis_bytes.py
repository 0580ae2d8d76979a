"""Kinesis billed bytes per 1,000 readings through the real AWS ingest handler, compressed
records (the default) beside plain JSON records, in the same run; and what unpacking costs the
process path.

The scenario is docs/scaling.md's load: ``--devices`` sensors at one reading a second, each
POSTing its last minute once a minute (60 readings, ~9.1 KB of JSON), for ``--minutes``. Every
request goes through ``iotpipe.entrypoints.aws.ingest.handler`` (a real-shaped API Gateway
event) onto a Kinesis stream on a moto server, once with ``IOTPIPE_STREAM_COMPRESSION=zlib`` and
once with ``none``, each onto its own stream; then both streams are read back (GetRecords).

Billing (Kinesis on demand, docs/scaling.md [P3]): data in is "the number of data records ...
multiplied by the size of each record rounded up to the nearest 1 KB (1,024 bytes)". The
pricing page does not say whether the partition key counts; the API reference defines a
record's size (for its 1 MiB limit) as the data blob plus the partition key, so the billed
figure here counts both, the conservative reading (the data-only figure is printed too).

Prints, per 1,000 readings: records, raw bytes and billed KB for each mode and their ratio; the
compressed records' size distribution (data + key; the share over 1 KB, which bills 2); the
time to pack a record (what ingest adds per request); and the process edge: the same records
parsed from Lambda Kinesis events and processed by the in-memory process use case, packed
against plain (readings/s, ratio), so the cost of unpacking is a ratio measured in one run.
Needs the ``dev`` extra (moto). Seconds vary on a shared machine; the byte counts do not.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from iotpipe.adapters.aws.events import batch_from_kinesis_event
from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryStore
from iotpipe.application import ProcessService
from iotpipe.application.payloads import encode_items, is_packed, pack
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import parse_instant
from iotpipe.simulator import Fleet
from results import json_option, use_test_helpers, write

use_test_helpers()
from tests.aws.apigw import answer, http_event  # noqa: E402
from tests.aws.streams import event_record, read_stream  # noqa: E402

START = "2025-08-31T10:00:00Z"
KEY = "benchmark-key-0123456789"
UNIT = 1024
MODES = ("zlib", "none")


def requests(devices: int, minutes: int) -> list[bytes]:
    """Each device's POST body for each minute: its 60 readings, as devices send them."""
    fleet = Fleet(devices=devices, interval_s=1.0, seed=5)
    start = parse_instant(START)
    bodies: list[bytes] = []
    for minute in range(minutes):
        first = start + minute * 60_000
        by_device: dict[str, list[object]] = {}
        for reading in fleet.readings(first, first + 60_000):
            by_device.setdefault(str(reading["device_id"]), []).append(reading)
        bodies += [encode_items(items) for items in by_device.values()]
    return bodies


def moto() -> tuple[ThreadedMotoServer, str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def ingest_through_handler(mode: str, bodies: list[bytes]) -> dict[str, Any]:
    """POST every body through the ingest handler onto the stream of ``mode``."""
    from iotpipe.entrypoints.aws import bootstrap, clients, ingest

    stream = f"readings-{mode}"
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    os.environ.update({"IOTPIPE_STREAM_NAME": stream, "IOTPIPE_STREAM_COMPRESSION": mode})
    clients.client.cache_clear()
    bootstrap.ingest_api.cache_clear()
    seconds = []
    accepted = 0
    for body in bodies:
        started = time.perf_counter()
        event = http_event("POST", "/v1/readings", body, key=KEY)
        status, reply = answer(ingest.handler(event, None))
        seconds.append(time.perf_counter() - started)
        if status != 202:
            raise SystemExit(f"ingest answered {status}: {reply}")
        accepted += reply["accepted"]
    records = [record for _, record in read_stream(kinesis, stream)]
    mean_ms = 1000 * statistics.mean(seconds)
    return {"accepted": accepted, "records": records, "ms_per_request": mean_ms}


def billed(records: list[dict[str, Any]], with_key: bool = True) -> int:
    """Kinesis on-demand data-in units (1 KB each) of these records."""
    key = (lambda r: len(r["PartitionKey"].encode())) if with_key else (lambda r: 0)
    return sum(math.ceil((len(r["Data"]) + key(r)) / UNIT) for r in records)


def distribution(sizes: list[int]) -> dict[str, float]:
    ordered = sorted(sizes)
    many = len(ordered) > 1
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if many else ordered * 99
    return {
        "min": ordered[0],
        "p50": cuts[49],
        "p99": cuts[98],
        "max": ordered[-1],
        "mean": statistics.mean(ordered),
        "over_1kb": sum(s > UNIT for s in ordered) / len(ordered),
    }


def best_of(repeat: int, work: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs of ``work``, in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def process_edge(
    runs: dict[str, list[dict[str, Any]]], batch: int, repeat: int
) -> dict[str, dict[str, float]]:
    """Per mode: seconds to parse its records' Lambda events, and to parse and process them
    with the in-memory process use case (which unpacks them); the modes alternate, best of
    ``repeat`` each (a later run is not favoured by warm caches)."""
    events = {
        mode: [
            {"Records": [event_record("shardId-000000000000", r) for r in records[i : i + batch]]}
            for i in range(0, len(records), batch)
        ]
        for mode, records in runs.items()
    }

    def parse(mode: str) -> None:
        for event in events[mode]:
            batch_from_kinesis_event(event)

    def parse_and_process(mode: str) -> None:
        service = ProcessService(MemoryStore(), ManualClock(0), lateness=LatenessPolicy(None))
        for event in events[mode]:
            service.process(batch_from_kinesis_event(event))

    for mode in runs:  # one untimed round: the first run of the process path pays its warm-up
        parse_and_process(mode)
    found: dict[str, dict[str, list[float]]] = {m: {"parse_s": [], "process_s": []} for m in runs}
    for _ in range(repeat):
        for mode in runs:
            found[mode]["parse_s"].append(best_of(1, lambda: parse(mode)))  # noqa: B023
            found[mode]["process_s"].append(best_of(1, lambda: parse_and_process(mode)))  # noqa: B023
    return {mode: {k: min(v) for k, v in times.items()} for mode, times in found.items()}


def pack_time(bodies: list[bytes], repeat: int) -> float:
    """Microseconds to pack one request's record (what ingest adds to a request)."""
    return 1e6 * best_of(repeat, lambda: [pack(b) for b in bodies]) / len(bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100, help="records per Lambda batch")
    parser.add_argument("--repeat", type=int, default=5)
    json_option(parser)
    args = parser.parse_args()
    bodies = requests(args.devices, args.minutes)
    server, endpoint = moto()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "benchmark",
            "AWS_SECRET_ACCESS_KEY": "benchmark",
            "AWS_DEFAULT_REGION": "us-east-1",
            "IOTPIPE_API_KEYS": KEY,
            "IOTPIPE_LATENESS_HORIZON_HOURS": "0",
        }
    )
    try:
        runs = {mode: ingest_through_handler(mode, bodies) for mode in MODES}
    finally:
        server.stop()
    readings = runs["none"]["accepted"]
    assert runs["zlib"]["accepted"] == readings, "both modes must carry the same readings"
    packed = runs["zlib"]["records"]
    assert all(is_packed(r["Data"]) for r in packed), "device-minute records are sent packed"
    per = 1000 / readings
    figures: dict[str, Any] = {
        "devices": args.devices,
        "minutes": args.minutes,
        "readings": readings,
        "requests": len(bodies),
        "raw_bytes_per_record": statistics.mean(len(b) for b in bodies),
    }
    for mode in MODES:
        records = runs[mode]["records"]
        figures[mode] = {
            "records_per_1000": len(records) * per,
            "bytes_per_1000": sum(len(r["Data"]) for r in records) * per,
            "billed_kb_per_1000": billed(records) * per,
            "billed_kb_per_1000_data_only": billed(records, with_key=False) * per,
            "ingest_ms_per_request": runs[mode]["ms_per_request"],
        }
    edge = process_edge({m: runs[m]["records"] for m in MODES}, args.batch, args.repeat)
    for mode in MODES:
        figures[mode].update(edge[mode])
    figures["zlib"]["record_bytes"] = distribution(
        [len(r["Data"]) + len(r["PartitionKey"].encode()) for r in packed]
    )
    figures["pack_us_per_record"] = pack_time(bodies, args.repeat)
    report(figures)
    write(args.json, figures)


def report(f: dict[str, Any]) -> None:
    z, n = f["zlib"], f["none"]
    print(
        f"{f['readings']:,} readings from {f['devices']} devices over {f['minutes']} minutes, "
        f"{f['requests']:,} requests of ~{f['raw_bytes_per_record']:,.0f} bytes of JSON, "
        "through the AWS ingest handler onto Kinesis (moto)"
    )
    for mode, d in (("compressed (zlib, default)", z), ("plain JSON (baseline)", n)):
        print(
            f"  {mode}: {d['records_per_1000']:.2f} records, {d['bytes_per_1000'] / 1024:,.1f} KB"
            f" of data, billed {d['billed_kb_per_1000']:.1f} KB"
            f" ({d['billed_kb_per_1000_data_only']:.1f} without the partition key) per 1,000"
            f" readings; ingest {d['ingest_ms_per_request']:.2f} ms per request against moto"
        )
    ratio = z["billed_kb_per_1000"] / n["billed_kb_per_1000"]
    print(f"  billed ratio compressed / plain: {ratio:.3f}")
    dist = z["record_bytes"]
    print(
        f"  compressed record (data + key) bytes: min {dist['min']}, p50 {dist['p50']:.0f}, p99 "
        f"{dist['p99']:.0f}, max {dist['max']}; over 1 KB (billed 2): {dist['over_1kb']:.2%}"
    )
    print(f"  packing: {f['pack_us_per_record']:.0f} us per record (zlib level 9)")
    for label, key in (("event parse", "parse_s"), ("parse + in-memory process", "process_s")):
        rate_z, rate_n = f["readings"] / z[key], f["readings"] / n[key]
        print(
            f"  process edge, {label}: {rate_z:,.0f} readings/s packed vs {rate_n:,.0f} plain "
            f"(ratio {rate_z / rate_n:.2f})"
        )


if __name__ == "__main__":
    main()
