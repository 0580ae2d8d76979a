"""``iotpipe migrate``: bring a store written by the release before format 2 to format 2.

Every store reads the previous layout (format 1) and converts a window on its next write, so a
deployment keeps working without this command; it converts the windows nobody writes any more
(past hours), so that they reach the hour's fleet totals and leave the slow path:

- ``dynamodb:TABLE``: each format 1 item becomes a window head (and a segment); the deployed
  fleet function folds the new heads into their hours' lanes from the table's stream. With
  ``--delete-format1`` the old items are removed once converted. ``fleet_shards`` in the spec
  must be the deployment's (``deploy/aws`` variable ``fleet_shards``, 16 by default);
- ``firestore:PROJECT``: each ``format: 1`` window document joins its hour's fleet lanes and
  becomes ``format: 2`` (for a deployment with lanes on: ``fleet_lanes``, if the spec names
  none, is the adapter's 8; a lane count other than the deployment's is harmless, 0 is refused);
- ``sqlite:PATH``: opening the file upgrades it (schema 1 to 2, in one transaction).

Safe beside live processing and idempotent: a window converted meanwhile by a write (or by an
earlier run) is skipped. The store spec is the one ``iotpipe replay --store`` takes.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: The deployments' fleet_shards default (deploy/aws variables.tf), used when the spec names none.
DEPLOYED_FLEET_SHARDS = "16"
#: The lanes a Firestore migration writes into when the spec names none (any count reads back).
MIGRATE_FLEET_LANES = "8"


def register(commands: Any) -> None:
    """Add ``migrate`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "migrate",
        help="convert a store written before format 2 (optional: stores read the old layout)",
        description="Convert every window the previous release wrote (format 1) into format "
        "2, so that past hours join the fleet totals. STORE: sqlite:PATH, "
        "dynamodb:TABLE[?region=R&endpoint=URL&fleet_shards=N&ttl_days=D] (fleet_shards "
        f"defaults to the deployment's {DEPLOYED_FLEET_SHARDS}) or "
        "firestore:PROJECT[?database=D&prefix=P&ttl_days=D&fleet_lanes=N] (for lanes on). "
        "Safe beside live processing; "
        "running it again converts nothing.",
    )
    parser.add_argument("--store", required=True, metavar="STORE", help="the store to convert")
    parser.add_argument(
        "--delete-format1",
        action="store_true",
        help="dynamodb: remove each format 1 item once its window is converted",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The ``migrate`` command: one summary line on stderr; exit 2 on a bad spec."""
    from iotpipe.entrypoints.beam.stores import BadStoreSpec, StoreSpec

    try:
        spec = StoreSpec.parse(args.store)
    except BadStoreSpec as exc:
        print(f"iotpipe: error: {exc}", file=sys.stderr)
        return 2
    if args.delete_format1 and spec.kind != "dynamodb":
        print("iotpipe: error: --delete-format1 applies to dynamodb stores only", file=sys.stderr)
        return 2
    if spec.kind == "dynamodb" and "fleet_shards" not in dict(spec.settings):
        shards = ("fleet_shards", DEPLOYED_FLEET_SHARDS)
        spec = StoreSpec(spec.kind, spec.name, (*spec.settings, shards))
    if spec.kind == "firestore":
        lanes = dict(spec.settings).get("fleet_lanes", MIGRATE_FLEET_LANES)
        if int(lanes) == 0:
            print(
                "iotpipe: error: fleet_lanes=0: lanes are off, nothing to migrate into",
                file=sys.stderr,
            )
            return 2
        others = tuple(kv for kv in spec.settings if kv[0] != "fleet_lanes")
        spec = StoreSpec(spec.kind, spec.name, (*others, ("fleet_lanes", lanes)))
    # Read by the schema the store's record keeps (the default payload's, and every metric it
    # recorded, as retired): converting rewrites fleet totals, which must keep all of them.
    store, close = spec.open(write=False)
    try:
        converted = _convert(store, spec.kind, args.delete_format1)
    finally:
        close()
    done = "upgraded to schema 2" if spec.kind == "sqlite" else f"{converted} windows converted"
    print(f"migrated {spec.kind}:{spec.name}: {done}", file=sys.stderr)
    return 0


def _convert(store: Any, kind: str, delete: bool) -> int:
    if kind == "sqlite":
        return 0  # opening it upgraded it
    if kind == "dynamodb":
        return int(store.migrate_format1(delete=delete))
    return int(store.migrate_format1())
