"""The first page of ``GET /v1/fleet/hourly`` (limit 100) at several fleet sizes: items read.

For each fleet size (``--devices``, several), one hour with one window per device is written
through the real store (DynamoDB on a moto server, its stream folded into the fleet lanes as
the deployed fleet function does; Firestore on its emulator), then a fresh store (a clean
meter) answers the query service's ``fleet_hour`` exactly as the route does: one page of
windows and the hour's kept fleet total. Printed: the items read (``StoreOps.reads``: index
entries, items and documents alike) for that first page, and for the dashboard's refresh (the
same route with ``limit=1``); the **baseline**, measured in the same run on the same data:
what the route read before format 2, the page plus a walk of every window of the hour
(``QueryService.fleet_walk``). The target (issue #16): at most 150 items, whatever the size.

Needs the ``dev`` extra (moto) and, for Firestore, the Cloud SDK's emulator (or
``FIRESTORE_EMULATOR_HOST``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from iotpipe.adapters.aws import DynamoStore, create_table
from iotpipe.application import QueryService
from iotpipe.domain import Location, Reading
from iotpipe.ports import AggregateStore, Contribution
from results import json_option, write

HOUR = 1_756_634_400_000  # 2025-08-31T10:00Z
PAGE, TARGET = 100, 150
SHARDS = 16  # deploy/aws's fleet_shards


def readings(devices: int) -> list[Contribution]:
    """One window per device in the hour, two readings each."""
    return [
        Contribution(
            f"sensor-{i:06d}",
            HOUR,
            tuple(
                Reading(
                    f"sensor-{i:06d}",
                    HOUR + i + k * 60_000,
                    (20_000 + k, 50_000),
                    Location(1.5, 2.5),
                )
                for k in range(2)
            ),
        )
        for i in range(devices)
    ]


def fill(store: AggregateStore, devices: int) -> None:
    """Write the hour in rounds of 500 windows (as process batches would)."""
    contributions = readings(devices)
    for start in range(0, devices, 500):
        result = store.apply(contributions[start : start + 500])
        if result.failed:
            raise SystemExit(f"writes failed: {result.failed[:3]}")


def measure(reader: Callable[[], Any], devices: int) -> dict[str, Any]:
    """Items read by the first page, the dashboard's refresh and the walk (fresh stores)."""
    store = reader()
    answer = QueryService(store).fleet_hour(HOUR, limit=PAGE)
    if answer.devices != devices or len(answer.page.items) != min(PAGE, devices):
        raise SystemExit(f"wrong answer: {answer.devices} devices, {len(answer.page.items)} items")
    first = store.ops().reads
    store = reader()
    QueryService(store).fleet_hour(HOUR, limit=1)
    refresh = store.ops().reads
    store = reader()
    service = QueryService(store)
    service.fleet_hour(HOUR, limit=PAGE)
    walked = service.fleet_walk(HOUR)
    if walked != answer.fleet:
        raise SystemExit("the kept fleet total differs from the walk")
    return {"devices": devices, "first_page": first, "refresh": refresh, "walk": store.ops().reads}


def dynamodb(sizes: list[int]) -> list[dict[str, Any]]:
    """Each size on a fresh table of one moto server."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options: dict[str, Any] = {
        "endpoint_url": f"http://{host}:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": "benchmark",
        "aws_secret_access_key": "benchmark",
    }
    client, streams = (
        boto3.client("dynamodb", **options),
        boto3.client("dynamodbstreams", **options),
    )
    try:
        out = []
        for devices in sizes:
            table = f"windows-{devices}"
            create_table(client, table)
            writer = DynamoStore(table, client, fleet_shards=SHARDS, stream=streams)
            fill(writer, devices)
            writer.fold_stream()
            out.append(measure(partial(DynamoStore, table, client, fleet_shards=SHARDS), devices))
        return out
    finally:
        server.stop()


def firestore(sizes: list[int]) -> list[dict[str, Any]]:
    """Each size under its own collection prefix of one emulator."""
    from google.cloud import firestore as gfs

    from firestore_ops import firestore_emulator
    from iotpipe.adapters.gcp import FirestoreStore

    out = []
    with firestore_emulator() as host:
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        client = gfs.Client(project="iotpipe-bench")
        for devices in sizes:
            prefix = f"f{devices}{int(time.time())}_"
            fill(FirestoreStore(client, prefix=prefix), devices)
            out.append(measure(partial(FirestoreStore, client, prefix=prefix), devices))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[300, 900, 3000])
    parser.add_argument(
        "--stores", nargs="+", choices=("dynamodb", "firestore"), default=["dynamodb", "firestore"]
    )
    json_option(parser)
    args = parser.parse_args()
    figures: dict[str, Any] = {"page": PAGE, "target": TARGET}
    for name in args.stores:
        began = time.perf_counter()
        figures[name] = {"dynamodb": dynamodb, "firestore": firestore}[name](args.devices)
        print(f"{name} ({time.perf_counter() - began:.0f} s):")
        for r in figures[name]:
            print(
                f"  {r['devices']:>6,} devices: first page {r['first_page']:>4} items read, "
                f"dashboard refresh {r['refresh']:>3}; baseline (page + walk, as before) "
                f"{r['walk']:>6,}"
            )
    write(args.json, figures)


if __name__ == "__main__":
    main()
