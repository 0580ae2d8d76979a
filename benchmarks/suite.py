"""Every benchmark, one table: each figure beside a baseline measured in the same run.

``python benchmarks/suite.py`` (``make bench``) runs each benchmark script of this directory at
full size, each in its own process, and prints one table: the figure, the baseline it is
compared with (measured in the same run, or the platform's limit), their ratio, and the target
where issue #9 sets one, met or not. ``--smoke`` (``make bench-smoke``, run by CI) runs each at
a tiny size, so that none can rot; its figures mean little. Each script's own report goes to a
log file (``--logs``); ``--only NAME`` runs some of them.

These machines are noisy (timings vary by tens of percent from run to run): read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Row = tuple[str, str, str, str, str, str]  # measure, figure, baseline, ratio, target, verdict
HEADER: Row = ("measure", "figure", "baseline (same run) or limit", "ratio", "target", "")


@dataclass(frozen=True)
class Benchmark:
    """One run of a benchmark script, and how its figures become rows."""

    name: str
    script: str
    rows: Callable[[dict[str, Any]], list[Row]]
    full: list[str] = field(default_factory=list)
    smoke: list[str] = field(default_factory=list)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "-"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def declared_throughput_rows(d: dict[str, Any]) -> list[Row]:
    """process_throughput.py --schema: reported (issue #19), no target (#9's is the default
    payload's)."""
    first, *rest = throughput_rows(d)
    label = first[0].replace("process path", "process path, six-metric nested epoch-ms schema")
    return [(label, *first[1:4], "reported", ""), *rest]


def throughput_rows(d: dict[str, Any]) -> list[Row]:
    """process_throughput.py."""
    base, pipe = d["baseline"], d["pipeline"]
    base_rate = base["readings"] / base["seconds"]
    rate = pipe["readings"] / pipe["seconds"]
    return [
        (
            f"in-memory process path, {d['readings']:,} readings",
            f"{rate:,.0f} readings/s",
            f"{base_rate:,.0f} readings/s: orjson.loads + dict fold",
            _ratio(rate, base_rate),
            f">= {d['target']:.2f}",
            _verdict(rate / base_rate >= d["target"]),
        ),
        (
            "  store writes (in memory)",
            f"{pipe['writes'] * 1000 / pipe['readings']:.1f} per 1,000 readings",
            f"{pipe['windows']:,.0f} windows in {pipe['batches']:,.0f} batches",
            "-",
            "",
            "",
        ),
    ]


def cli_rows(d: dict[str, Any]) -> list[Row]:
    """cli_process.py."""
    from cli_process import rss_target_met

    return [
        (
            f"iotpipe process --store sqlite:PATH, {d['readings']:,} readings",
            f"{d['cli_rate']:,.0f} readings/s",
            f"{d['baseline_rate']:,.0f} readings/s: orjson.loads + dict fold",
            _ratio(d["cli_rate"], d["baseline_rate"]),
            "",
            "",
        ),
        (
            f"  peak RSS of the child, {d['readings']:,} readings",
            f"{d['rss_mb']:.0f} MB",
            f"{d['short_rss_mb']:.0f} MB at {d['short_readings']:,} readings",
            _ratio(d["rss_mb"], d["short_rss_mb"]),
            f"<= {d['target_rss_mb']:.0f} MB, flat",
            _verdict(rss_target_met(d)),
        ),
    ]


def _scenario(d: dict[str, Any]) -> str:
    rate = 1 / d["interval"]
    each = f"{rate:g} readings/s" if rate > 1 else f"1 reading / {d['interval']:g} s"
    return f"{d['profile']} ({d['devices']:,} devices x {each}, {d['batch_minutes']}-min batches)"


# Issue #16's write budgets (WCU per 1,000 readings, process + fold) for the per-second profile:
# by the kind of Kinesis record and the batch's seconds.
DYNAMODB_WCU_TARGETS = {("minute", 60): 40.0, ("reading", 10): 250.0}


def dynamodb_rows(d: dict[str, Any]) -> list[Row]:
    """dynamodb_ops.py (one profile): format 2's capacity beside format 1's, same writes."""
    p = d["per_1000"]
    target = DYNAMODB_WCU_TARGETS.get((d.get("record"), d.get("batch_seconds")))
    if d["profile"] != "per-second":
        target = None
    record = f"one {d.get('record', 'minute')} per record, {d.get('batch_seconds', 60)}-s batches"
    return [
        (
            f"DynamoDB, {_scenario(d)}, {record}: WCU / 1,000 readings",
            f"{p['wcu']:.1f} WCU ({p['fold_wcu']:.1f} of them the fleet lanes)",
            f"{p['baseline_wcu']:.1f} WCU: format 1, the same writes",
            _ratio(p["wcu"], p["baseline_wcu"]),
            f"<= {target:g}" if target else "",
            _verdict(p["wcu"] <= target) if target else "",
        ),
        _dynamodb_rcu_row(d),
        (
            "  items written / 1,000 readings",
            f"{p['items_written']:.1f} ({p['segment_puts']:.1f} segments, "
            f"{p['lane_puts']:.1f} lanes)",
            f"{p['window_writes']:.1f} window writes (the floor)",
            _ratio(p["items_written"], p["window_writes"]),
            "",
            "",
        ),
        _archive_row(p, "batch"),
    ]


WHOLE_HOUR = 60  # minutes: as dynamodb_ops.WHOLE_HOUR (not imported: it loads boto3 and moto)


def _dynamodb_rcu_row(d: dict[str, Any]) -> Row:
    """Read units beside format 1's: a target over a whole hour only (dynamodb_ops.PART_OF_HOUR
    says why; the run prints it), so a shorter run's row names its minutes instead of a verdict."""
    p, minutes = d["per_1000"], d.get("minutes", WHOLE_HOUR)
    whole = minutes >= WHOLE_HOUR
    return (
        "  RCU / 1,000 readings",
        f"{p['rcu']:.1f} RCU ({p.get('startup_rcu', 0):.1f} of them the first start-up)",
        f"{p['baseline_rcu']:.1f} RCU: format 1, the same reads",
        _ratio(p["rcu"], p["baseline_rcu"]),
        "<= 2x format 1 (whole hour)",
        _verdict(p["rcu"] <= 2 * p["baseline_rcu"])
        if whole
        else f"n/a: {minutes} min (one-off reads over few readings)",
    )


def _archive_row(p: dict[str, Any], per: str) -> Row:
    return (
        "  raw archive / 1,000 readings",
        f"{p['archive_bytes'] / 1000:.1f} KB gzip",
        f"{p['archive_objects']:.2f} objects (one per {per})",
        "-",
        "",
        "",
    )


def firestore_rows(d: dict[str, Any]) -> list[Row]:
    """firestore_ops.py (one profile)."""
    p = d["per_1000"]
    return [
        (
            f"Firestore, {_scenario(d)}: document writes / 1,000 readings",
            f"{p['document_writes']:.1f}",
            f"{p['windows_touched']:.1f} windows touched (the floor)",
            _ratio(p["document_writes"], p["windows_touched"]),
            "",
            "",
        ),
        (
            "  document reads, messages / 1,000 readings",
            f"{p['document_reads']:.1f} reads",
            f"{p['messages']:.1f} Pub/Sub messages (invocations)",
            "-",
            "",
            "",
        ),
        _archive_row(p, "message"),
    ]


def kinesis_rows(d: dict[str, Any]) -> list[Row]:
    """kinesis_bytes.py: Kinesis on-demand billed bytes, compressed records against plain JSON
    in the same run, and what packing and unpacking cost (issue #16, the AWS bill)."""
    z, n, dist = d["zlib"], d["none"], d["zlib"]["record_bytes"]
    rate = {m: d["readings"] / d[m]["process_s"] for m in ("zlib", "none")}
    return [
        (
            "Kinesis on demand, device-minute records via the AWS ingest handler: billed KB "
            "/ 1,000 readings",
            f"{z['billed_kb_per_1000']:.1f} KB compressed (zlib)",
            f"{n['billed_kb_per_1000']:.1f} KB: plain JSON, the same requests",
            _ratio(z["billed_kb_per_1000"], n["billed_kb_per_1000"]),
            "reported",
            "",
        ),
        (
            "  compressed record bytes (data + key): p50 / p99 / max; share over 1 KB",
            f"{dist['p50']:.0f} / {dist['p99']:.0f} / {dist['max']}; {dist['over_1kb']:.1%}",
            "1,024 bytes: one billing unit",
            _ratio(dist["max"], 1024),
            "",
            "",
        ),
        (
            "  ingest: packing one record (zlib level 9)",
            f"{d['pack_us_per_record']:.0f} us",
            f"{n['ingest_ms_per_request']:.2f} ms: an ingest request, plain, against moto",
            _ratio(d["pack_us_per_record"] / 1000, n["ingest_ms_per_request"]),
            "",
            "",
        ),
        (
            "  process edge: Kinesis events parsed and processed (in memory), packed records",
            f"{rate['zlib']:,.0f} readings/s",
            f"{rate['none']:,.0f} readings/s: plain records, same run",
            _ratio(rate["zlib"], rate["none"]),
            "",
            "",
        ),
    ]


def pubsub_rows(d: dict[str, Any]) -> list[Row]:
    """pubsub_bytes.py: Pub/Sub billed bytes and archive-file bytes, packed messages against
    plain JSON in the same run, and what packing and unpacking cost (issue #16, the GCP bill)."""
    z, n, dist = d["zlib"], d["none"], d["zlib"]["message_bytes"]
    rate = {m: d["readings"] / d[m]["file_process_s"] for m in ("zlib", "none")}

    def kb(mode: dict[str, Any], key: str) -> str:
        return f"{mode[key] / 1024:,.1f} KB"

    return [
        (
            "Pub/Sub publish, device-minute messages via the GCP ingest function: billed KB "
            "/ 1,000 readings (1,000-byte minimum per request)",
            f"{kb(z, 'publish_billed_bytes_per_1000')} packed (base64 zlib text)",
            f"{kb(n, 'publish_billed_bytes_per_1000')}: plain JSON, the same requests",
            _ratio(z["publish_billed_bytes_per_1000"], n["publish_billed_bytes_per_1000"]),
            "reported",
            "",
        ),
        (
            "  the Cloud Storage subscription: billed KB / 1,000 readings",
            kb(z, "subscription_billed_bytes_per_1000"),
            kb(n, "subscription_billed_bytes_per_1000"),
            _ratio(
                z["subscription_billed_bytes_per_1000"], n["subscription_billed_bytes_per_1000"]
            ),
            "reported",
            "",
        ),
        (
            "  archive stream files: bytes / 1,000 readings",
            kb(z, "archive_bytes_per_1000"),
            kb(n, "archive_bytes_per_1000"),
            _ratio(z["archive_bytes_per_1000"], n["archive_bytes_per_1000"]),
            "reported",
            "",
        ),
        (
            "  packed message data bytes: p50 / p99 / max",
            f"{dist['p50']:.0f} / {dist['p99']:.0f} / {dist['max']}",
            f"{d['raw_bytes_per_request']:,.0f} bytes: the request's JSON",
            _ratio(dist["p50"], d["raw_bytes_per_request"]),
            "",
            "",
        ),
        (
            "  ingest: packing one request's message (zlib level 9 + base64)",
            f"{d['pack_us_per_request']:.0f} us",
            f"{n['ingest_ms_per_request']:.2f} ms: an ingest request, plain, on the emulator",
            _ratio(d["pack_us_per_request"] / 1000, n["ingest_ms_per_request"]),
            "",
            "",
        ),
        (
            "  stream files processed (in memory), packed lines",
            f"{rate['zlib']:,.0f} readings/s",
            f"{rate['none']:,.0f} readings/s: plain lines, same run",
            _ratio(rate["zlib"], rate["none"]),
            "",
            "",
        ),
    ]


def sqlite_rows(d: dict[str, Any]) -> list[Row]:
    """sqlite_writes.py: bytes the SQLite store writes per 1,000 readings."""
    p = d["per_1000"]
    return [
        (
            f"SQLite store, {_scenario(d)}: bytes written / 1,000 readings",
            f"{p['bytes_written'] / 1000:,.1f} KB (write() calls: WAL pages, checkpoints)",
            f"{p['baseline_bytes'] / 1000:,.1f} KB: schema 1's rows rewritten (a lower bound)",
            _ratio(p["bytes_written"], p["baseline_bytes"]),
            "reported",
            "",
        )
    ]


def fleet_page_rows(d: dict[str, Any]) -> list[Row]:
    """fleet_page.py: the first fleet page's items read, by store and fleet size."""
    rows: list[Row] = []
    for store in ("dynamodb", "firestore"):
        for r in d.get(store, []):
            rows.append(
                (
                    f"{store}: first page of GET /v1/fleet/hourly (limit {d['page']}), "
                    f"{r['devices']:,} devices: items read",
                    f"{r['first_page']} (dashboard refresh: {r['refresh']})",
                    f"{r['walk']:,}: the page + a walk of the hour, as before",
                    _ratio(r["first_page"], r["walk"]),
                    f"<= {d['target']}",
                    _verdict(r["first_page"] <= d["target"]),
                )
            )
    return rows


def cold_import_rows(d: dict[str, Any]) -> list[Row]:
    """cold_import.py."""
    boto3, target = d["boto3"], d["target"]
    return (
        [
            (
                f"cold import {module} + boto3",
                f"{times['with_boto3']:.0f} ms ({times['alone']:.0f} ms alone)",
                f"{boto3:.0f} ms: import boto3",
                _ratio(times["with_boto3"], boto3),
                f"<= {target:g}x",
                _verdict(times["with_boto3"] <= target * boto3),
            )
            for module, times in d["handlers"].items()
        ]
        + _instruction_rows(d.get("instructions"), target)
        + _bytecode_rows(d.get("bytecode"))
    )


def _bytecode_rows(d: dict[str, Any] | None) -> list[Row]:
    """cold_import.py --bytecode: each handler imported from the zips unpacked read-only, with
    their bytecode against without it (the same run), and what the bytecode adds to the zips."""
    if not d:
        return []
    rows: list[Row] = []
    for module, figures in d["handlers"].items():
        for unit, key in (("ms", "ms"), ("M instructions", "instructions")):
            if key in figures:
                with_, without = figures[key]["with"], figures[key]["without"]
                rows.append(
                    (
                        f"  from the zips (Python {d['python']}), with bytecode: {module}",
                        f"{with_:,.1f} {unit}",
                        f"{without:,.1f} {unit} without bytecode",
                        _ratio(with_, without),
                        "",
                        "",
                    )
                )
    for name, size in d["zips"].items():
        rows.append(
            (
                f"  {name} with bytecode, zipped (unzipped)",
                f"{size['with'] / 1e6:.2f} MB ({size['unzipped_with'] / 1e6:.2f} MB)",
                f"{size['without'] / 1e6:.2f} MB ({size['unzipped_without'] / 1e6:.2f} MB) without",
                _ratio(size["with"], size["without"]),
                "",
                "",
            )
        )
    return rows


def _instruction_rows(counts: dict[str, float] | None, target: float) -> list[Row]:
    """cold_import.py --instructions: the same ratios in instructions (load-independent), and
    the process function's whole cold start, which has no target (a first batch's calls)."""
    if not counts:
        return []
    counts = dict(counts)  # the figures stay as the run wrote them
    boto3 = counts.pop("boto3")
    first = counts.pop("process first batch")
    rows: list[Row] = [
        (
            f"  in instructions: {module} + boto3",
            f"{count:,.0f} M",
            f"{boto3:,.0f} M: import boto3",
            _ratio(count, boto3),
            f"<= {target:g}x",
            _verdict(count <= target * boto3),
        )
        for module, count in counts.items()
    ]
    rows.append(
        (
            "  in instructions: process import + boto3 + first batch (moto)",
            f"{first:,.0f} M",
            f"{boto3:,.0f} M: import boto3",
            _ratio(first, boto3),
            "",
            "",
        )
    )
    return rows


def gcp_cold_import_rows(d: dict[str, Any]) -> list[Row]:
    """gcp_cold_import.py."""
    libraries = d["libraries_together"]
    base = f"{libraries:.0f} ms: the 3 client libraries"
    rows: list[Row] = [
        (
            "cold import GCP main.py (after functions_framework)",
            f"{d['main']:.0f} ms",
            base,
            _ratio(d["main"], libraries),
            "",
            "",
        )
    ]
    for name, ms in d["first_request_setup"].items():
        total = d["main"] + ms
        rows.append(
            (
                f"  main.py + {name}'s first-request set-up",
                f"{total:.0f} ms",
                base,
                _ratio(total, libraries),
                "",
                "",
            )
        )
    return rows


def package_rows(d: dict[str, Any]) -> list[Row]:
    """package_sizes.py."""
    limits = d["limits_mb"]
    sizes = (
        ("Lambda zip, largest (code or layer)", d["lambda_largest_zip"], "lambda_zipped_mb"),
        ("Lambda code + layer, unzipped", d["lambda_unzipped"], "lambda_unzipped_mb"),
        ("Cloud Functions source zip", d["gcf_zipped"], "gcf_zipped_mb"),
        ("Cloud Functions source + modules, unzipped", d["gcf_unzipped"], "gcf_unzipped_mb"),
    )
    return [
        (
            f"package: {label}",
            f"{size / 1e6:.2f} MB",
            f"{limits[key]} MB limit",
            f"{size / (limits[key] * 1e6):.3f}",
            "<= limit",
            _verdict(size <= limits[key] * 1e6),
        )
        for label, size, key in sizes
    ]


def freshness_rows(d: dict[str, Any]) -> list[Row]:
    """freshness.py."""
    labels = {
        "local": "local runtime (iotpipe serve)",
        "aws": "AWS handlers on moto",
        "gcp": "GCP functions on the emulators, per message (process_from = messages)",
    }
    rows: list[Row] = []
    for name, label in labels.items():
        if name in d["errors"]:
            rows.append((f"freshness, {label}", "FAILED", d["errors"][name][:60], "-", "", ""))
            continue
        if name not in d["setups"]:
            continue
        r = d["setups"][name]
        rows.append(
            (
                f"freshness, {label}: POST to visible ({r['samples']} samples)",
                f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms",
                f"p50 {r['round_trip_p50_ms']:.0f} ms, p99 {r['round_trip_p99_ms']:.0f} ms: "
                "POST + 1 query",
                _ratio(r["p50_ms"], r["round_trip_p50_ms"]),
                "",
                "",
            )
        )
    return rows


def api_load_rows(d: dict[str, Any]) -> list[Row]:
    """api_load.py."""
    hourly, health = d["routes"]["hourly_30_days"], d["routes"]["health"]

    def figures(r: dict[str, Any]) -> str:
        return (
            f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
            f"{r['errors']} errors"
        )

    return [
        (
            f"local API, {d['clients']} clients x {d['seconds']:g} s: hourly, 30 days",
            figures(hourly),
            "health: " + figures(health),
            _ratio(hourly["rps"], health["rps"]),
            "0 errors",
            _verdict(hourly["errors"] == 0 and health["errors"] == 0),
        )
    ]


def local_load_rows(d: dict[str, Any]) -> list[Row]:
    """local_load.py: the local runtime under 16 clients, its drain, its memory, freshness."""
    base, load, fresh = d["baseline"], d["overload"], d["freshness"]
    return [
        (
            f"local runtime, {load['clients']} clients x {load['seconds']:.0f} s: "
            "POST to queryable",
            f"{load['end_to_end_rate']:,.0f} readings/s ({load['refused_503']} 503s)",
            f"{base['ingest_rate']:,.0f} readings/s: ingest alone, nothing processed",
            _ratio(load["end_to_end_rate"], base["ingest_rate"]),
            ">= 20,000/s",
            _verdict(load["end_to_end_rate"] >= 20_000),
        ),
        (
            "  drain after the burst",
            f"{load['backlog_at_stop_readings']:,} readings waiting, drained in "
            f"{load['drain_seconds']:.2f} s",
            f"{base['drain_rate']:,.0f} readings/s: a filled log drained alone",
            "-",
            "",
            "",
        ),
        (
            "  peak RSS, server + processor",
            f"{load['peak_rss_mb']:.0f} MB",
            "300 MB limit",
            f"{load['peak_rss_mb'] / 300:.2f}",
            "<= 300 MB",
            _verdict(load["peak_rss_mb"] <= 300),
        ),
        (
            f"local runtime freshness at {fresh['rate']:,.0f} readings/s ({fresh['samples']} "
            "samples)",
            f"p50 {fresh['p50_ms']:.0f} ms, p99 {fresh['p99_ms']:.0f} ms",
            f"p50 {fresh['round_trip_p50_ms']:.0f} ms, p99 {fresh['round_trip_p99_ms']:.0f} ms: "
            "POST + 1 query",
            _ratio(fresh["p99_ms"], fresh["round_trip_p99_ms"]),
            "p99 <= 2 s",
            _verdict(fresh["p99_ms"] <= 2000),
        ),
    ]


def throttled_rows(d: dict[str, Any]) -> list[Row]:
    """throttled_batch.py."""
    base, new, left = d["baseline"], d["configured"], d["time_left"]
    full = d["configured_full"]
    refusals = "every attempt" if d["refusals"] < 0 else f"{d['refusals']} attempts"
    return [
        (
            f"AWS process under DynamoDB throttling ({d['devices']} devices x {d['hours']} h, "
            f"one device's writes refused {refusals}): time to answer",
            f"{new['seconds']:.1f} s, {new['retry']}/{new['records']} records to retry",
            f"{base['seconds']:.1f} s, {base['retry']}/{base['records']} to retry: "
            "legacy retries, no deadline",
            _ratio(new["seconds"], base["seconds"]),
            f"<= {left:g} s left",
            _verdict(bool(new["in_time"])),
        ),
        (
            "  the same with 60 s left (the deployed timeout)",
            f"{full['seconds']:.1f} s, {full['retry']}/{full['records']} records to retry",
            "the throttled device's records only",
            "-",
            "<= 60 s",
            _verdict(bool(full["in_time"])),
        ),
    ]


def beam_replay_rows(d: dict[str, Any]) -> list[Row]:
    """beam_replay.py."""
    runs = f"median of {d['runs']}"
    startup = d["beam_startup_seconds"]
    return [
        (
            f"Beam replay, DirectRunner, {d['workers']} workers, {d['readings']:,} readings",
            f"{d['beam_rate']:,.0f} readings/s ({runs}, start-up included)",
            f"{d['single_rate']:,.0f} readings/s: iotpipe replay (one process)",
            _ratio(d["beam_rate"], d["single_rate"]),
            "",
            "",
        ),
        (
            "  Beam: marginal rate per worker (minus the empty-range start-up)",
            f"{d['beam_marginal_rate_per_worker']:,.0f} readings/s",
            f"start-up {min(startup):.1f}-{max(startup):.1f} s; "
            f"{d['worker_processes_seen']} worker processes seen",
            "-",
            "",
            "",
        ),
        (
            "  store writes / 1,000 readings: Beam replay",
            f"{d['beam_writes_per_1000']:.1f}",
            f"{d['single_writes_per_1000']:.1f}: iotpipe replay",
            _ratio(d["beam_writes_per_1000"], d["single_writes_per_1000"]),
            "",
            "",
        ),
    ]


def gcp_files_rows(d: dict[str, Any]) -> list[Row]:
    """gcp_files.py: processing per archive file (lanes on) vs per message (lanes off)."""
    m, f, p = d["messages"], d["files"], d["projection"]
    fewer = p["messages_objects_s"] / p["files_s"]
    return [
        (
            "GCP archive objects / 1,000 readings (per-second): files mode",
            f"{f['objects']:.3f}",
            f"{m['objects']:.2f} messages mode (one per message)",
            _ratio(m["objects"], f["objects"]) + "x fewer",
            "",
            "",
        ),
        (
            "  at 100,000 devices: archive objects/s (files roll by size)",
            f"{p['files_s']:.2f}",
            f"{p['messages_objects_s']:,.0f} messages mode",
            f"{fewer:,.0f}x fewer",
            ">= 50x fewer",
            _verdict(fewer >= 50),
        ),
        (
            "  Firestore document writes / 1,000 readings, files mode, 8 lanes",
            f"{f['writes']:.2f}",
            f"{m['writes']:.2f} messages mode, lanes off",
            _ratio(f["writes"], m["writes"]),
            "<= 16.9",
            _verdict(f["writes"] <= 16.9),
        ),
        (
            "  Firestore document reads / 1,000 readings, files mode, 8 lanes",
            f"{f['reads']:.2f}",
            f"{m['reads']:.2f} messages mode, lanes off",
            _ratio(f["reads"], m["reads"]),
            "reported",
            "",
        ),
        (
            "  process invocations / 1,000 readings, files mode",
            f"{f['invocations']:.3f}",
            f"{m['invocations']:.2f} messages mode",
            _ratio(m["invocations"], f["invocations"]) + "x fewer",
            "",
            "",
        ),
        (
            "  at 100,000 devices: commits/s per fleet lane document, files mode",
            f"{p['lane_commits_per_lane_s']:.2f}",
            "~1 sustained write/s per document (Firestore)",
            _ratio(p["lane_commits_per_lane_s"], 1.0),
            "<= 1",
            _verdict(p["lane_commits_per_lane_s"] <= 1.0),
        ),
    ]


def gcp_files_reading_rows(d: dict[str, Any]) -> list[Row]:
    """gcp_files.py with one-reading messages (devices that post every reading): a file's
    lines grouped by device, so a device is one window write per chunk, not per message."""
    m, f, p = d["messages"], d["files"], d["projection"]
    return [
        (
            f"GCP one-reading messages ({d['devices']} devices posting every reading): "
            "Firestore writes / 1,000 readings, files mode",
            f"{f['writes']:.2f}",
            f"{m['writes']:.2f} messages mode (one window write per message)",
            _ratio(f["writes"], m["writes"]),
            "<= messages mode",
            _verdict(f["writes"] <= m["writes"]),
        ),
        (
            "  at 100,000 devices posting every reading: commits/s per fleet lane document",
            f"{p['lane_commits_per_lane_s']:.2f}",
            "~1 sustained write/s per document (Firestore)",
            _ratio(p["lane_commits_per_lane_s"], 1.0),
            "reported (lanes hold while window writes <= 3,200/s: docs/architecture.md)",
            "",
        ),
    ]


# The store benchmarks' profiles (profiles.py), and the size of each in the smoke run.
SMOKE_PROFILES = {
    "fleet": ["--devices", "20", "--minutes", "5"],
    "high-rate": ["--devices", "2", "--minutes", "3"],
    "per-second": ["--devices", "2", "--minutes", "3"],
}
# DynamoDB's per-second profile (issue #16's targets) runs a whole hour even in the smoke run,
# on 2 devices (~7 s against moto): its read units compare with format 1's over a whole hour
# only (dynamodb_ops.PART_OF_HOUR); 3 minutes read 2.4x format 1, half of it the first start-up
# (the schema check of a new table looks for devices in all 8 registry shards).
DYNAMODB_SMOKE_PROFILES = {**SMOKE_PROFILES, "per-second": ["--devices", "2", "--minutes", "60"]}


def _store_benchmarks(
    store: str,
    script: str,
    rows: Callable[[dict[str, Any]], list[Row]],
    smoke_profiles: dict[str, list[str]] = SMOKE_PROFILES,
) -> tuple[Benchmark, ...]:
    return tuple(
        Benchmark(
            f"{store}_{profile.replace('-', '_')}",
            script,
            rows,
            full=["--profile", profile],
            smoke=["--profile", profile, *small],
        )
        for profile, small in smoke_profiles.items()
    )


SIX_METRICS = "benchmarks/schemas/six_metrics.toml"  # relative to the repository (the runs' cwd)

BENCHMARKS = (
    Benchmark(
        "process_throughput",
        "process_throughput.py",
        throughput_rows,
        smoke=["--readings", "20000", "--devices", "50", "--repeat", "1"],
    ),
    Benchmark(  # issue #19: a declared schema (six metrics, nested paths, epoch-ms times)
        "process_throughput_six_metrics",
        "process_throughput.py",
        declared_throughput_rows,
        full=["--schema", SIX_METRICS],
        smoke=["--schema", SIX_METRICS, "--readings", "20000", "--devices", "50", "--repeat", "1"],
    ),
    Benchmark(
        "cli_process",
        "cli_process.py",
        cli_rows,
        smoke=["--readings", "20000", "--devices", "50", "--hours", "8"],
    ),
    *_store_benchmarks("dynamodb", "dynamodb_ops.py", dynamodb_rows, DYNAMODB_SMOKE_PROFILES),
    Benchmark(
        "dynamodb_per_second_readings",
        "dynamodb_ops.py",
        dynamodb_rows,
        full=["--profile", "per-second", "--record", "reading", "--batch-seconds", "10"],
        smoke=[
            *("--profile", "per-second", "--record", "reading", "--batch-seconds", "10"),
            *SMOKE_PROFILES["per-second"],
        ],
    ),
    *_store_benchmarks("firestore", "firestore_ops.py", firestore_rows),
    Benchmark(
        "gcp_files",
        "gcp_files.py",
        gcp_files_rows,
        full=["--profile", "per-second"],
        smoke=["--profile", "per-second", *SMOKE_PROFILES["per-second"]],
    ),
    Benchmark(
        "gcp_files_per_reading_messages",
        "gcp_files.py",
        gcp_files_reading_rows,
        full=[
            "--profile",
            "per-second",
            "--batch-minutes",
            "0",
            "--devices",
            "50",
            "--minutes",
            "10",
        ],
        smoke=[
            "--profile",
            "per-second",
            "--batch-minutes",
            "0",
            "--devices",
            "3",
            "--minutes",
            "2",
        ],
    ),
    Benchmark("fleet_page", "fleet_page.py", fleet_page_rows, smoke=["--devices", "30", "90"]),
    Benchmark(
        "kinesis_bytes",
        "kinesis_bytes.py",
        kinesis_rows,
        smoke=["--devices", "5", "--minutes", "2", "--repeat", "1"],
    ),
    Benchmark(
        "pubsub_bytes",
        "pubsub_bytes.py",
        pubsub_rows,
        smoke=["--devices", "5", "--minutes", "2", "--repeat", "1"],
    ),
    Benchmark(
        "sqlite_writes",
        "sqlite_writes.py",
        sqlite_rows,
        smoke=["--devices", "5", "--minutes", "10"],
    ),
    # Full size also counts instructions (valgrind, when installed: CI's smoke run does not);
    # both import the handlers from the built zips, with and without their bytecode.
    Benchmark(
        "cold_import",
        "cold_import.py",
        cold_import_rows,
        full=["--instructions", "--bytecode"],
        smoke=["--repeat", "1", "--bytecode"],
    ),
    Benchmark(
        "gcp_cold_import", "gcp_cold_import.py", gcp_cold_import_rows, smoke=["--repeat", "1"]
    ),
    Benchmark("package_sizes", "package_sizes.py", package_rows),
    Benchmark(
        "throttled_batch",
        "throttled_batch.py",
        throttled_rows,
        smoke=["--devices", "3", "--hours", "1", "--refusals", "2"],
    ),
    Benchmark("freshness", "freshness.py", freshness_rows, smoke=["--samples", "10"]),
    Benchmark(
        "beam_replay",
        "beam_replay.py",
        beam_replay_rows,
        smoke=["--devices", "10", "--minutes", "10", "--repeat", "1"],
    ),
    Benchmark(
        "local_load",
        "local_load.py",
        local_load_rows,
        smoke=["--seconds", "3", "--steady-seconds", "3", "--clients", "4", "--devices", "50"],
    ),
    Benchmark(
        "api_load",
        "api_load.py",
        api_load_rows,
        smoke=["--devices", "1", "--interval", "600", "--seconds", "2"],
    ),
)


def run(bench: Benchmark, smoke: bool, logs: Path) -> tuple[list[Row], str | None, float]:
    """Run one benchmark; its rows, an error (or ``None``) and its duration in seconds."""
    figures, log = logs / f"{bench.name}.json", logs / f"{bench.name}.log"
    figures.unlink(missing_ok=True)
    command = [sys.executable, str(HERE / bench.script), *(bench.smoke if smoke else bench.full)]
    began = time.perf_counter()
    with log.open("wb") as out:
        done = subprocess.run(
            [*command, "--json", str(figures)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=HERE.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            check=False,
        )
    seconds = time.perf_counter() - began
    error = None
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        error = f"exit {done.returncode}: {tail[0][:200]} (see {log})"
    rows: list[Row] = []
    if figures.exists():
        try:
            rows = bench.rows(json.loads(figures.read_text()))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            error = error or f"unreadable figures: {type(exc).__name__}: {exc}"
    if error and not rows:
        rows = [(bench.name, "FAILED", error[:120], "-", "", "")]
    return rows, error, seconds


def table(rows: list[Row]) -> str:
    """The rows as one Markdown table, columns aligned."""
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row: Row) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(HEADER), rule, *(line(row) for row in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="each benchmark at a tiny size")
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("--only", action="append", choices=names, help="run only these")
    parser.add_argument("--logs", type=Path, help="keep each benchmark's report here")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="iotpipe-bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    rows: list[Row] = []
    failed: list[str] = []
    began = time.perf_counter()
    for number, bench in enumerate(chosen, start=1):
        print(f"[{number}/{len(chosen)}] {bench.name} ...", end=" ", file=sys.stderr, flush=True)
        bench_rows, error, seconds = run(bench, args.smoke, logs)
        print(f"{seconds:.0f} s" + (f"  FAILED: {error}" if error else ""), file=sys.stderr)
        rows += bench_rows
        if error:
            failed.append(bench.name)
    size = "smoke (tiny sizes: the figures mean little)" if args.smoke else "full size"
    heading = (
        f"iotpipe benchmarks, {size}: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, {time.perf_counter() - began:.0f} s; reports in {logs}"
    )
    text = f"{heading}\n\n{table(rows)}\n"
    print(f"\n{text}")
    if args.markdown:
        args.markdown.write_text(text)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
