"""Freshness: the time from a reading's POST to its aggregate being visible through the API.

For each sample, one reading is POSTed to the ingest route, then the device's hourly query is
polled (every ``--poll-ms``) until the hour's count includes it; the figure is the time from
just before the POST to the answer that shows it. p50 and p99 over ``--samples`` samples, after
one warm-up sample (cold starts are measured by the cold-import benchmarks). Baseline, in the
same run: the API round trip alone (the POST plus one query), the floor of any pipeline.

Setups (``--setup``, default all three):

- ``local``: ``iotpipe serve`` in its own process (API, in-process stream, worker, SQLite).
- ``aws``: the three Lambda handlers called with API Gateway events, against Kinesis, DynamoDB
  and S3 on a moto server, with the tests' miniature Kinesis event source mapping
  (tests/aws/test_handlers.py) polling the stream every ``--poll-ms``, batch size 500 as in
  deploy/aws. Real Lambda polls a shard about once a second and may wait up to the configured
  batching window (``batching_window_s``, 5 s in deploy/aws) to fill a batch: add up to ~6 s.
- ``gcp``: the three functions served by functions-framework in their own processes, a push
  subscription from the Pub/Sub emulator to the process function, Firestore and Cloud Storage
  emulators (the set-up of tests/gcp/test_end_to_end.py): the per-message path
  (``process_from = "messages"``). The default path, per archive file, adds the Cloud Storage
  subscription's file roll (``max_duration``, 60 s), which the emulators cannot run: ~1-2
  minutes (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import orjson

from iotpipe.domain.time import MS_PER_HOUR, format_instant, hour_start
from results import json_option, use_test_helpers, write
from serving import Client, local_server

Post = Callable[[bytes], None]
Count = Callable[[str, int, int], int]  # device, from, to -> readings counted in the range
Setup = Callable[[argparse.Namespace], AbstractContextManager[tuple[Post, Count]]]


def reading(device: str, at_ms: int, n: int) -> bytes:
    """One reading as a POST body."""
    body = {"device_id": device, "timestamp": format_instant(at_ms), "temperature": 20 + n % 7}
    return orjson.dumps(body)


def counted(page: dict[str, Any]) -> int:
    """Readings counted in a page of hourly aggregates."""
    return sum(int(item["count"]) for item in page.get("items", ()))


def measure(post: Post, count: Count, device: str, args: argparse.Namespace) -> dict[str, Any]:
    """Post ``--samples`` readings one at a time; the freshness of each, and the round trips."""
    # A few minutes in the past: within every lateness policy, in at most two UTC hours.
    first = (time.time_ns() // 1_000_000) - 10 * 60_000
    start, end = hour_start(first), hour_start(first) + 2 * MS_PER_HOUR
    fresh, trips = [], []
    for n in range(args.samples + 1):  # sample 0 warms up
        began = time.perf_counter()
        post(reading(device, first + n * 1000, n))
        posted = time.perf_counter()
        seen = count(device, start, end)
        trips.append(posted - began + time.perf_counter() - posted)
        deadline = began + args.timeout
        while seen < n + 1:
            if time.perf_counter() > deadline:
                raise SystemExit(f"reading {n} not visible after {args.timeout:.0f} s")
            time.sleep(args.poll_ms / 1000)
            seen = count(device, start, end)
        fresh.append(time.perf_counter() - began)
    fresh, trips = fresh[1:], trips[1:]
    return {
        "samples": len(fresh),
        "p50_ms": percentile(fresh, 50) * 1000,
        "p99_ms": percentile(fresh, 99) * 1000,
        "mean_ms": statistics.fmean(fresh) * 1000,
        "round_trip_p50_ms": percentile(trips, 50) * 1000,
        "round_trip_p99_ms": percentile(trips, 99) * 1000,
    }


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@contextmanager
def local(args: argparse.Namespace) -> Iterator[tuple[Post, Count]]:
    """``iotpipe serve`` in a child process."""
    with (
        tempfile.TemporaryDirectory(prefix="iotpipe-fresh-") as tmp,
        local_server(Path(tmp) / "data") as url,
    ):
        poster, reader = Client(url), Client(url)

        def post(body: bytes) -> None:
            status, reply = poster.request("POST", "/v1/readings", body)
            if status != 202:
                raise SystemExit(f"POST answered {status}: {reply[:300]!r}")

        def count(device: str, start: int, end: int) -> int:
            query = f"from={format_instant(start)}&to={format_instant(end)}"
            status, body = reader.request("GET", f"/v1/devices/{device}/hourly?{query}")
            return counted(orjson.loads(body)) if status == 200 else 0

        yield post, count
        poster.close()
        reader.close()


@contextmanager
def aws(args: argparse.Namespace) -> Iterator[tuple[Post, Count]]:
    """The Lambda handlers on moto, fed by the tests' Kinesis poller in a thread."""
    use_test_helpers()
    from tests.aws.test_handlers import _forget_composition_roots
    from tests.aws_support import MotoServer

    server = MotoServer()
    stop = threading.Event()
    saved = dict(os.environ)
    # The handlers write their JSON log and metric lines on stdout (for CloudWatch): drop them.
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        try:
            yield _deploy_on_moto(server, stop, args)
        finally:
            stop.set()
            _forget_composition_roots()
            os.environ.clear()
            os.environ.update(saved)
            server.stop()


def _deploy_on_moto(
    server: Any, stop: threading.Event, args: argparse.Namespace
) -> tuple[Post, Count]:
    """The stream, table and bucket, the handlers' environment, and the poller, started."""
    from tests.aws.apigw import answer
    from tests.aws.test_handlers import (
        BUCKET,
        KEY,
        STREAM,
        TABLE,
        Poller,
        _forget_composition_roots,
        http_event,
    )
    from tests.aws_support import REGION

    from iotpipe.adapters.aws import create_table
    from iotpipe.entrypoints.aws import api, ingest, settings

    server.client("kinesis").create_stream(StreamName=STREAM, ShardCount=1)
    create_table(server.client("dynamodb"), TABLE)
    server.client("s3").create_bucket(Bucket=BUCKET)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": server.endpoint,
            "AWS_ACCESS_KEY_ID": "benchmark",
            "AWS_SECRET_ACCESS_KEY": "benchmark",
            "AWS_DEFAULT_REGION": REGION,
            settings.STREAM_NAME: STREAM,
            settings.TABLE_NAME: TABLE,
            settings.BUCKET: BUCKET,
            settings.API_KEYS: KEY,
        }
    )
    _forget_composition_roots()
    poller = Poller(server, batch_size=500)  # deploy/aws's batch_size
    threading.Thread(target=_pump, args=(poller, stop, args.poll_ms), daemon=True).start()

    def post(body: bytes) -> None:
        status, reply = answer(ingest.handler(http_event("POST", "/v1/readings", body), None))
        if status != 202:
            raise SystemExit(f"ingest answered {status}: {reply}")

    def count(device: str, start: int, end: int) -> int:
        query = {"from": format_instant(start), "to": format_instant(end)}
        event = http_event("GET", f"/v1/devices/{device}/hourly", query=query)
        status, page = answer(api.handler(event, None))
        return counted(page) if status == 200 else 0

    return post, count


def _pump(poller: Any, stop: threading.Event, poll_ms: float) -> None:
    while not stop.is_set():
        poller.run()  # invokes the process handler until the shard is drained
        stop.wait(poll_ms / 1000)


@contextmanager
def gcp(args: argparse.Namespace) -> Iterator[tuple[Post, Count]]:
    """The three functions across processes on the emulators, as in the end-to-end test."""
    use_test_helpers()
    from google.cloud import pubsub_v1
    from google.pubsub_v1.types import PushConfig
    from tests.gcp.deployment import deploy, source_dir
    from tests.gcp.test_end_to_end import _serve, call
    from tests.gcp_support import (
        PROJECT,
        firestore_emulator,
        pubsub_emulator,
        storage_emulator,
        unique,
    )

    deployment = deploy(firestore_emulator(), pubsub_emulator(), storage_emulator())
    servers = []
    with tempfile.TemporaryDirectory(prefix="iotpipe-fresh-gcp-") as tmp:
        source = source_dir(Path(tmp) / "source")
        try:
            for target in ("ingest", "process", "api"):
                servers.append(_serve(target, source / "main.py", deployment.env))
            ingest, process, api = servers
            subscriber = pubsub_v1.SubscriberClient()
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(PROJECT, unique("push")),
                    "topic": deployment.topic_path,
                    "push_config": PushConfig(
                        push_endpoint=f"{process.url}/projects/{PROJECT}/topics/{deployment.topic}"
                    ),
                    "ack_deadline_seconds": 30,
                }
            )
            subscriber.close()

            def post(body: bytes) -> None:
                status, reply = call(ingest, "POST", "/v1/readings", body)
                if status != 202:
                    raise SystemExit(f"ingest answered {status}: {reply}")

            def count(device: str, start: int, end: int) -> int:
                query = f"from={format_instant(start)}&to={format_instant(end)}"
                status, page = call(api, "GET", f"/v1/devices/{device}/hourly?{query}")
                return counted(page) if status == 200 else 0

            yield post, count
        finally:
            for server in servers:
                server.stop()


SETUPS: dict[str, Setup] = {"local": local, "aws": aws, "gcp": gcp}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--setup", choices=sorted(SETUPS), action="append")
    parser.add_argument("--samples", type=int, default=200, help="per setup (after a warm-up)")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="query (and stream) polling")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per sample at most")
    json_option(parser)
    args = parser.parse_args()
    figures: dict[str, Any] = {"poll_ms": args.poll_ms, "setups": {}, "errors": {}}
    for name in args.setup or list(SETUPS):
        try:
            with SETUPS[name](args) as (post, count):
                result = measure(post, count, f"fresh-{name}-{time.time_ns()}", args)
        except BaseException as exc:  # pytest's skip (a missing emulator) is a BaseException
            if isinstance(exc, KeyboardInterrupt):
                raise
            figures["errors"][name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: FAILED: {figures['errors'][name]}", file=sys.stderr)
            continue
        figures["setups"][name] = result
        print(
            f"{name:6} freshness p50 {result['p50_ms']:7.0f} ms  p99 {result['p99_ms']:7.0f} ms"
            f"   round trip p50 {result['round_trip_p50_ms']:5.0f} ms"
            f"  ({result['samples']} samples, polled every {args.poll_ms:g} ms)"
        )
    write(args.json, figures)
    if figures["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
