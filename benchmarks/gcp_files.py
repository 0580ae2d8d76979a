"""GCP processing per archive file vs per message: archive objects, invocations and Firestore
document operations per 1,000 readings, measured against the Firestore emulator.

The load is the store benchmarks' (``--profile``, see profiles.py; default ``per-second``: 100
devices at 1 reading/s, each posting its last minute once a minute, standing for
docs/scaling.md's 100,000). The same messages are processed twice, each time into a new
Firestore store on the emulator:

- **messages** (``process_from = "messages"``, fleet lanes off: the previous default): each
  message through :class:`~iotpipe.application.ProcessService` with an archive, one object
  per message, one invocation per message;
- **files** (``process_from = "files"``, fleet lanes on, 8: the new default): the messages of
  each minute of arrivals batched into stream files as the Pub/Sub Cloud Storage subscription
  writes them (text format; a new file at ``--max-duration`` seconds or ``--max-bytes``; each
  message as ingest publishes it, packed when over 1 KB, unless ``--plain``), each file
  processed by :class:`~iotpipe.application.StreamFileService` (its lines grouped by device,
  chunks of at most 400 devices, no archive object written), one invocation per file.

The Cloud Storage subscription itself cannot run on the emulators: the files are made here by
its documented rules (the roll by duration or size), in memory, with the codec's names. The
projection to 100,000 devices is printed with its arithmetic: at that rate files roll by size.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from firestore_ops import PROJECT, START, firestore_emulator, messages
from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.gcp import FirestoreStore
from iotpipe.adapters.gcp.firestore import EMULATOR_COMMIT_BYTES, WINDOWS_PER_COMMIT
from iotpipe.adapters.gcp.pubsub import message_data
from iotpipe.adapters.memory import MemoryArchive
from iotpipe.application import ProcessService, StreamFileService
from iotpipe.application.codecs import archive as fmt
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import format_instant, from_ms, parse_instant
from iotpipe.ports import RawBatch
from profiles import apply_profile, archived, profile_options
from results import json_option, write

FLEET_DEVICES = 100_000  # docs/scaling.md's profile: one reading per second each
LANES = 8


def _store(client: Any, lanes: int) -> FirestoreStore:
    return FirestoreStore(
        client, prefix=f"f{time.time_ns()}_", fleet_lanes=lanes, commit_bytes=EMULATOR_COMMIT_BYTES
    )


def per_message(periods: list[list[RawBatch]], client: Any) -> dict[str, Any]:
    """The previous default: one invocation and one archive object per message, lanes off."""
    store, archive = _store(client, 0), MemoryArchive()
    service = ProcessService(
        store, ManualClock(parse_instant(START)), archive, lateness=LatenessPolicy.unbounded()
    )
    readings = invocations = 0
    for period in periods:
        for batch in period:
            report = service.process(batch)
            assert not report.failed_records, report.errors
            readings += report.accepted
            invocations += 1
    return _totals(readings, invocations, store, archived(archive))


def per_file(
    periods: list[list[RawBatch]], client: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """The new default: stream files rolled as the subscription rolls them, one invocation
    each, processed in chunks without an archive object, lanes on."""
    store, files = _store(client, LANES), MemoryArchive()
    processor = ProcessService(
        store, ManualClock(parse_instant(START)), lateness=LatenessPolicy.unbounded()
    )
    service = StreamFileService(files, processor)
    readings = invocations = chunks = 0
    for names in _roll(periods, files, args):
        for name in names:
            report = service.process(name)
            assert not report.redeliver, report.errors
            readings += sum(c.accepted for c in report.chunks)
            chunks += len(report.chunks)
            invocations += 1
    totals = _totals(readings, invocations, store, archived(files))
    return {**totals, "chunks": chunks}


def _roll(
    periods: list[list[RawBatch]], files: MemoryArchive, args: argparse.Namespace
) -> list[list[str]]:
    """Each period's stream files: its messages' data, a line each, a new file when the next
    line would pass ``max_bytes`` (every period is at most ``max_duration`` long)."""
    start, out = parse_instant(START), []
    for n, period in enumerate(periods):
        opened = start + n * args.max_duration * 1000
        lines = [
            message_data(record.data, compress=not args.plain) + b"\n"
            for batch in period
            for record in batch.records
        ]
        names, body = [], b""
        for line in lines:
            if body and len(body) + len(line) > args.max_bytes:
                names.append(_put(files, opened, len(names), body))
                body = b""
            body += line
        if body:
            names.append(_put(files, opened, len(names), body))
        out.append(names)
    return out


def _put(files: MemoryArchive, opened_ms: int, n: int, body: bytes) -> str:
    t = from_ms(opened_ms)
    name = f"{fmt.STREAM_FILENAME_PREFIX}{t:%Y-%m-%d/%H_%M_%S}Z_w{n}{fmt.STREAM_FILENAME_SUFFIX}"
    files.objects.put(name, body)
    return name


def _totals(
    readings: int, invocations: int, store: FirestoreStore, archive: dict[str, int]
) -> dict[str, Any]:
    ops = store.ops()
    return {
        "readings": readings,
        "invocations": invocations,
        "reads": ops.reads,
        "writes": ops.writes,
        "lane_writes": ops.extra.get("lane_writes", 0),
        "commits": ops.extra.get("commits", 0),
        "objects": archive["objects"],
        "bytes": archive["bytes"],
    }


def per_thousand(totals: dict[str, Any]) -> dict[str, float]:
    per = 1000 / totals["readings"]
    keys = ("invocations", "reads", "writes", "lane_writes", "commits", "objects", "bytes")
    return {key: totals[key] * per for key in keys}


def projection(
    files: dict[str, Any], msgs: dict[str, Any], args: argparse.Namespace
) -> dict[str, float]:
    """Objects and lane commits per second at 100,000 devices (one reading/s each), from the
    measured bytes per reading and the subscription's roll rules."""
    readings_s = FLEET_DEVICES * 1.0
    bytes_s = files["bytes"] / files["readings"] * readings_s
    files_s = max(bytes_s / args.max_bytes, 1 / args.max_duration)
    messages_s = msgs["invocations"] / msgs["readings"] * readings_s
    lines_per_file = messages_s / files_s
    # A file's lines are grouped by device into chunks of at most STREAM_CHUNK_DEVICES devices
    # and STREAM_CHUNK_BYTES bytes; at this rate each device has a line or so per file.
    devices_per_file = min(float(FLEET_DEVICES), lines_per_file)
    chunks_per_file = max(
        math.ceil(devices_per_file / fmt.STREAM_CHUNK_DEVICES),
        math.ceil(bytes_s / files_s / fmt.STREAM_CHUNK_BYTES),
    )
    chunks_s = files_s * chunks_per_file
    windows_per_device = 1.0  # a device's lines in a file: one window (two across an hour's edge)
    commits_per_chunk = math.ceil(
        fmt.STREAM_CHUNK_DEVICES * windows_per_device / WINDOWS_PER_COMMIT
    )
    return {
        "readings_s": readings_s,
        "bytes_s": bytes_s,
        "files_s": files_s,
        "messages_objects_s": msgs["objects"] / msgs["readings"] * readings_s,
        "lines_per_file": lines_per_file,
        "devices_per_file": devices_per_file,
        "chunks_s": chunks_s,
        "commits_per_chunk": commits_per_chunk,
        "lane_commits_per_lane_s": chunks_s * commits_per_chunk / LANES,
    }


def show(
    args: argparse.Namespace, msgs: dict[str, Any], files: dict[str, Any], p: dict[str, float]
) -> None:
    m, f = per_thousand(msgs), per_thousand(files)
    print(
        f"{args.devices} devices x 1 reading / {args.interval:g} s, {args.batch_minutes}-minute "
        f"messages, {args.minutes} minutes: {msgs['readings']:,} readings, "
        f"{msgs['invocations']:,} messages, {files['invocations']:,} files "
        f"(max_duration {args.max_duration} s, max_bytes {args.max_bytes:,})"
    )
    print(f"per 1,000 readings:                {'messages, lanes off':>22} {'files, 8 lanes':>16}")
    for label, key in (
        ("archive objects", "objects"),
        ("process invocations", "invocations"),
        ("Firestore document writes", "writes"),
        ("Firestore document reads", "reads"),
        ("  of which fleet lane writes", "lane_writes"),
        ("  batched commits", "commits"),
        ("archive bytes", "bytes"),
    ):
        print(f"  {label:<32} {m[key]:22.2f} {f[key]:16.2f}")
    print(f"at {FLEET_DEVICES:,} devices (1 reading/s each):")
    print(f"  messages mode: {p['messages_objects_s']:,.0f} archive objects/s (one per message)")
    per_reading = files["bytes"] / files["readings"]
    print(
        f"  files mode: {p['bytes_s'] / 1e6:.1f} MB/s of messages ({per_reading:.0f} "
        f"bytes per reading measured) / max_bytes {args.max_bytes / 2**20:.0f} MiB "
        f"= {p['files_s']:.2f} files/s (at least 1 per {args.max_duration} s): "
        f"{p['messages_objects_s'] / p['files_s']:,.0f}x fewer objects"
    )
    print(
        f"  lanes: {p['lines_per_file']:,.0f} messages of {p['devices_per_file']:,.0f} devices per "
        f"file -> {p['chunks_s']:.1f} chunks/s x "
        f"{p['commits_per_chunk']} commits (<= {WINDOWS_PER_COMMIT} windows each) / {LANES} lanes "
        f"= {p['lane_commits_per_lane_s']:.2f} commits/s per lane document"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    profile_options(parser)
    parser.set_defaults(profile="per-second")
    parser.add_argument("--minutes", type=int, default=60, help="event time to simulate")
    parser.add_argument("--max-duration", type=int, default=60, help="file roll, seconds")
    parser.add_argument("--max-bytes", type=int, default=16 * 2**20, help="file roll, bytes")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="messages as plain JSON (stream_compression = none), not packed as ingest does",
    )
    json_option(parser)
    args = apply_profile(parser.parse_args())
    from iotpipe.simulator import Fleet

    fleet = Fleet(devices=args.devices, interval_s=args.interval, seed=1)
    periods = list(messages(fleet, parse_instant(START), args))
    with firestore_emulator() as host:
        from google.cloud import firestore

        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        client = firestore.Client(project=PROJECT)
        msgs = per_message(periods, client)
        files = per_file(periods, client, args)
    assert msgs["readings"] == files["readings"], (msgs, files)
    p = projection(files, msgs, args)
    show(args, msgs, files, p)
    write(
        args.json,
        {
            "profile": args.profile,
            "record": "minute" if args.batch_minutes else "reading",
            "devices": args.devices,
            "readings": msgs["readings"],
            "messages": per_thousand(msgs),
            "files": per_thousand(files),
            "projection": p,
            "start": format_instant(parse_instant(START)),
        },
    )


if __name__ == "__main__":
    main()
