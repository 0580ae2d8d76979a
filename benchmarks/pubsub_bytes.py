"""Pub/Sub billed bytes and archive-file bytes per 1,000 readings through the real GCP ingest
function, packed messages (the default) beside plain JSON messages, in the same run; and what
packing and unpacking cost.

The scenario is docs/scaling.md's load: ``--devices`` sensors at one reading a second, each
POSTing its last minute once a minute (60 readings, ~9.1 KB of JSON), for ``--minutes``. Every
request goes through the ingest function as Cloud Functions loads it (functions-framework's app
for ``main.py``'s ``ingest``, in-process) onto a topic of the Pub/Sub emulator, once with
``IOTPIPE_STREAM_COMPRESSION=zlib`` and once with ``none``, each onto its own topic; then both
are pulled back.

Billing (docs/scaling.md [P7]): a message's volume is its data, each attribute's key and value,
20 bytes of timestamp and its message id; **a minimum of 1,000 bytes per publish request** (not
per message). Ingest publishes a request's messages in one ``Publish`` call, and here each
request is one device's minute, one message: a request bills max(1,000, its message's volume).
The message id is counted as 16 bytes (production ids are 16-17 digits; the emulator's are
short), an assumption. The Cloud Storage subscription bills the same message volume, without a
per-request minimum; its files hold each message's data and a newline (the text format).

CPU: packing a request's message (what ingest adds per request), and processing stream files of
the same messages, packed against plain, with the in-memory store (the files path's work:
splitting, unpacking, decoding, aggregating): readings/s and their ratio, best of ``--repeat``,
the modes alternating. Seconds vary on a shared machine; the byte counts do not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.memory import MemoryArchive, MemoryStore
from iotpipe.application import ProcessService, StreamFileService
from iotpipe.application.payloads import is_packed_text, pack_text
from iotpipe.domain import LatenessPolicy
from kinesis_bytes import best_of, distribution, requests
from results import json_option, use_test_helpers, write

use_test_helpers()
from tests.gcp.deployment import KEY, source_dir  # noqa: E402
from tests.gcp.stream_files import stream_name  # noqa: E402
from tests.gcp_support import PROJECT, pubsub_emulator, unique  # noqa: E402

MODES = ("zlib", "none")
REQUEST_MINIMUM = 1000  # bytes billed at least per publish request [P7]
TIMESTAMP_BYTES = 20
MESSAGE_ID_BYTES = 16  # assumption: production message ids are 16-17 decimal digits
TIB = 2**40
FILE_BYTES = 16 * 2**20  # archive_file_max_bytes (deploy/gcp)


def ingest_through_function(mode: str, bodies: list[bytes], main: Path) -> dict[str, Any]:
    """POST every body through the ingest function onto a new topic; pull what it published."""
    import functions_framework
    from google.cloud import pubsub_v1

    from iotpipe.entrypoints.gcp import bootstrap, clients, ingest

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = unique(f"readings-{mode}")
    topic_path = publisher.topic_path(PROJECT, topic)
    publisher.create_topic(name=topic_path)
    subscription = subscriber.subscription_path(PROJECT, unique("pull"))
    subscriber.create_subscription(name=subscription, topic=topic_path)
    os.environ.update({"IOTPIPE_TOPIC": topic, "IOTPIPE_STREAM_COMPRESSION": mode})
    clients.forget()
    ingest.settings.cache_clear()
    bootstrap.forget()
    app = functions_framework.create_app("ingest", str(main), "http").test_client()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    seconds, accepted = [], 0
    for body in bodies:
        started = time.perf_counter()
        response = app.post("/v1/readings", data=body, headers=headers)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 202:
            raise SystemExit(f"ingest answered {response.status_code}: {response.data!r}")
        accepted += response.get_json()["accepted"]
    messages = _pull(subscriber, subscription, len(bodies))
    subscriber.close()
    return {"accepted": accepted, "messages": messages, "ms": 1000 * statistics.mean(seconds)}


def _pull(subscriber: Any, subscription: str, expected: int) -> list[Any]:
    from google.api_core import exceptions

    got: list[Any] = []
    deadline = time.monotonic() + 60
    while len(got) < expected and time.monotonic() < deadline:
        try:
            answer = subscriber.pull(subscription=subscription, max_messages=1000, timeout=5)
        except exceptions.DeadlineExceeded:
            continue
        if answer.received_messages:
            ack = [m.ack_id for m in answer.received_messages]
            subscriber.acknowledge(subscription=subscription, ack_ids=ack)
            got += [m.message for m in answer.received_messages]
    if len(got) != expected:
        raise SystemExit(f"pulled {len(got)} messages, expected {expected}")
    return got


def volume(message: Any) -> int:
    """A message's billed volume [P7]: data, attributes, timestamp and message id."""
    attributes = sum(len(k.encode()) + len(v.encode()) for k, v in message.attributes.items())
    return len(message.data) + attributes + TIMESTAMP_BYTES + MESSAGE_ID_BYTES


def files_of(messages: list[Any]) -> dict[str, bytes]:
    """The messages as the Cloud Storage subscription writes them: one stream file a minute."""
    per_file = max(1, len(messages) // 10)
    return {
        stream_name(1_756_634_400_000 + n * 60_000, f"f{n}"): b"".join(
            m.data + b"\n" for m in messages[i : i + per_file]
        )
        for n, i in enumerate(range(0, len(messages), per_file))
    }


def process_files(files: dict[str, dict[str, bytes]], repeat: int) -> dict[str, float]:
    """Per mode: the best seconds to process its stream files into a fresh in-memory store."""

    def run(mode: str) -> None:
        archive = MemoryArchive()
        for name, body in files[mode].items():
            archive.objects.put(name, body)
        processor = ProcessService(MemoryStore(), ManualClock(0), lateness=LatenessPolicy(None))
        service = StreamFileService(archive, processor)
        for name in files[mode]:
            report = service.process(name)
            assert not report.redeliver and not any(c.rejected for c in report.chunks), report

    for mode in files:  # an untimed round each: warm-up
        run(mode)
    found: dict[str, list[float]] = {m: [] for m in files}
    for _ in range(repeat):
        for mode in files:
            found[mode].append(best_of(1, lambda: run(mode)))  # noqa: B023
    return {mode: min(times) for mode, times in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    json_option(parser)
    args = parser.parse_args()
    bodies = requests(args.devices, args.minutes)
    pubsub_emulator()
    os.environ.update(
        {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "IOTPIPE_PROJECT": PROJECT,
            "IOTPIPE_API_KEYS": KEY,
            "IOTPIPE_LATENESS_HORIZON_HOURS": "0",
        }
    )
    with TemporaryDirectory() as tmp:
        main_py = source_dir(Path(tmp)) / "main.py"
        runs = {mode: ingest_through_function(mode, bodies, main_py) for mode in MODES}
    readings = runs["none"]["accepted"]
    assert runs["zlib"]["accepted"] == readings, "both modes must carry the same readings"
    packed = runs["zlib"]["messages"]
    assert all(is_packed_text(m.data) for m in packed), "device-minute messages are packed"
    per = 1000 / readings
    figures: dict[str, Any] = {
        "devices": args.devices,
        "minutes": args.minutes,
        "readings": readings,
        "requests": len(bodies),
        "raw_bytes_per_request": statistics.mean(len(b) for b in bodies),
    }
    files = {mode: files_of(runs[mode]["messages"]) for mode in MODES}
    for mode in MODES:
        messages = runs[mode]["messages"]
        volumes = [volume(m) for m in messages]
        archive_bytes = sum(len(body) for body in files[mode].values())
        figures[mode] = {
            "messages_per_1000": len(messages) * per,
            "data_bytes_per_1000": sum(len(m.data) for m in messages) * per,
            "publish_billed_bytes_per_1000": sum(max(REQUEST_MINIMUM, v) for v in volumes) * per,
            "subscription_billed_bytes_per_1000": sum(volumes) * per,
            "archive_bytes_per_1000": archive_bytes * per,
            "messages_per_16mib_file": FILE_BYTES / (archive_bytes / len(messages)),
            "ingest_ms_per_request": runs[mode]["ms"],
        }
    seconds = process_files(files, args.repeat)
    for mode in MODES:
        figures[mode]["file_process_s"] = seconds[mode]
    figures["zlib"]["message_bytes"] = distribution([len(m.data) for m in packed])
    figures["zlib"]["under_minimum"] = sum(volume(m) < REQUEST_MINIMUM for m in packed) / len(
        packed
    )
    figures["pack_us_per_request"] = (
        1e6 * best_of(args.repeat, lambda: [pack_text(b) for b in bodies]) / len(bodies)
    )
    report(figures)
    write(args.json, figures)


def monthly(per_1000: float) -> float:
    """TiB a month at docs/scaling.md's load (100,000 readings/s, 730 h)."""
    return per_1000 / 1000 * 100_000 * 2_628_000 / TIB


def report(f: dict[str, Any]) -> None:
    z, n = f["zlib"], f["none"]
    print(
        f"{f['readings']:,} readings from {f['devices']} devices over {f['minutes']} minutes, "
        f"{f['requests']:,} requests of ~{f['raw_bytes_per_request']:,.0f} bytes of JSON, "
        "through the GCP ingest function onto Pub/Sub (emulator)"
    )
    for label, d in (("packed (zlib, default)", z), ("plain JSON (baseline)", n)):
        print(
            f"  {label}: {d['messages_per_1000']:.2f} messages, "
            f"{d['data_bytes_per_1000'] / 1024:,.1f} KB of data; publish billed "
            f"{d['publish_billed_bytes_per_1000'] / 1024:,.1f} KB, the Cloud Storage "
            f"subscription {d['subscription_billed_bytes_per_1000'] / 1024:,.1f} KB, archive "
            f"files {d['archive_bytes_per_1000'] / 1024:,.1f} KB per 1,000 readings; "
            f"ingest {d['ingest_ms_per_request']:.2f} ms per request against the emulator"
        )
        print(
            f"    at 100,000 devices: publish {monthly(d['publish_billed_bytes_per_1000']):.1f} "
            f"TiB (${40 * monthly(d['publish_billed_bytes_per_1000']):,.0f}), subscription "
            f"{monthly(d['subscription_billed_bytes_per_1000']):.1f} TiB "
            f"(${50 * monthly(d['subscription_billed_bytes_per_1000']):,.0f}), archive "
            f"{monthly(d['archive_bytes_per_1000']) * TIB / 1e12:.1f} TB a month; "
            f"{d['messages_per_16mib_file']:,.0f} messages per 16 MiB file"
        )
    for key, what in (
        ("publish_billed_bytes_per_1000", "publish billed"),
        ("subscription_billed_bytes_per_1000", "subscription billed"),
        ("archive_bytes_per_1000", "archive bytes"),
    ):
        print(f"  {what} ratio packed / plain: {z[key] / n[key]:.3f}")
    dist = z["message_bytes"]
    print(
        f"  packed message data bytes: min {dist['min']}, p50 {dist['p50']:.0f}, p99 "
        f"{dist['p99']:.0f}, max {dist['max']}; requests billed the 1,000-byte minimum: "
        f"{z['under_minimum']:.1%}"
    )
    print(f"  packing: {f['pack_us_per_request']:.0f} us per request (zlib level 9 + base64)")
    rate_z, rate_n = f["readings"] / z["file_process_s"], f["readings"] / n["file_process_s"]
    print(
        f"  stream files processed in memory: {rate_z:,.0f} readings/s packed vs "
        f"{rate_n:,.0f} plain (ratio {rate_z / rate_n:.2f})"
    )


if __name__ == "__main__":
    main()
