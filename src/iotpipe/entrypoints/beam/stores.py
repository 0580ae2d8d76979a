"""The replay's target store, named by one string that travels to every worker.

Workers build their own store (a client cannot be pickled), so the store is given as a spec:

- ``sqlite:PATH``: the local SQLite store (the DirectRunner only: every worker must see the
  file);
- ``dynamodb:TABLE[?region=R&endpoint=URL&fleet_shards=N&ttl_days=D]``: the AWS runtime's
  table (region and endpoint default to boto3's own configuration, ``AWS_REGION`` and
  ``AWS_ENDPOINT_URL``; ``fleet_shards`` and ``ttl_days`` must match the deployment's
  ``IOTPIPE_FLEET_SHARDS`` and ``IOTPIPE_TTL_DAYS``);
- ``firestore:PROJECT[?database=D&prefix=P&ttl_days=D&fleet_lanes=N]``: the GCP runtime's
  database (``FIRESTORE_EMULATOR_HOST`` is honoured by the client); ``fleet_lanes`` must match
  the deployment's ``IOTPIPE_FLEET_LANES`` (0, lanes off, by default).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from iotpipe.domain import DEFAULT_SCHEMA, TelemetrySchema
from iotpipe.ports import AggregateStore

KINDS = ("sqlite", "dynamodb", "firestore")
_SETTINGS = {
    "sqlite": set(),
    "dynamodb": {"region", "endpoint", "fleet_shards", "ttl_days"},
    "firestore": {"database", "prefix", "ttl_days", "fleet_lanes"},
}


class BadStoreSpec(ValueError):
    """The store spec cannot be used (one line, for the command line)."""


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A parsed store spec (see the module docstring)."""

    kind: str
    name: str
    settings: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def parse(text: str) -> StoreSpec:
        """Parse and check a spec; a relative SQLite path is made absolute (workers may run
        elsewhere than the command's directory)."""
        kind, colon, rest = text.partition(":")
        if kind not in KINDS or not colon:
            raise BadStoreSpec(
                f"--store must be sqlite:PATH, dynamodb:TABLE or firestore:PROJECT, not {text!r}"
            )
        name, _, query = rest.partition("?") if kind != "sqlite" else (rest, "", "")
        if not name:
            raise BadStoreSpec(f"--store {text!r} names no {'path' if kind == 'sqlite' else kind}")
        settings = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        unknown = set(settings) - _SETTINGS[kind]
        if unknown:
            raise BadStoreSpec(f"--store {text!r}: unknown setting {sorted(unknown)[0]!r}")
        for number in ("fleet_shards", "ttl_days", "fleet_lanes"):
            if number in settings and not settings[number].isdigit():
                raise BadStoreSpec(f"--store {text!r}: {number} must be a whole number")
        if kind == "sqlite":
            name = str(Path(name).resolve())
        return StoreSpec(kind, name, tuple(sorted(settings.items())))

    @property
    def local_only(self) -> bool:
        """Whether only workers on this machine can reach the store."""
        return self.kind == "sqlite"

    def open(
        self, schema: TelemetrySchema = DEFAULT_SCHEMA, *, write: bool = True
    ) -> tuple[AggregateStore, Callable[[], None]]:
        """A new store, its schema settled (:func:`~iotpipe.application.use_schema`: a schema
        unsafe for it raises :class:`~iotpipe.domain.SchemaConflict`; ``write=False`` only
        checks the store's schema record, never writes it), and the function that releases it."""
        from iotpipe.application import use_schema

        settings = dict(self.settings)
        if self.kind == "sqlite":
            from iotpipe.adapters.local import SqliteStore

            sqlite = SqliteStore(self.name)
            try:
                use_schema(sqlite, schema, write=write)
            except BaseException:
                sqlite.close()
                raise
            return sqlite, sqlite.close
        store = _dynamodb(self.name, settings) if self.kind == "dynamodb" else None
        store = store or _firestore(self.name, settings)
        use_schema(store, schema, write=write)
        return store, _nothing


def _dynamodb(table: str, settings: dict[str, str]) -> AggregateStore:
    import boto3

    from iotpipe.adapters.aws import DynamoStore
    from iotpipe.adapters.aws.dynamodb import DEFAULT_FLEET_SHARDS

    client = boto3.client(
        "dynamodb", region_name=settings.get("region"), endpoint_url=settings.get("endpoint")
    )
    return DynamoStore(
        table,
        client,
        fleet_shards=int(settings.get("fleet_shards", DEFAULT_FLEET_SHARDS)),
        ttl_days=int(settings["ttl_days"]) if "ttl_days" in settings else None,
    )


def _firestore(project: str, settings: dict[str, str]) -> AggregateStore:
    from iotpipe.adapters.gcp import FirestoreStore
    from iotpipe.adapters.gcp.firestore import commit_bytes_for

    firestore = importlib.import_module("google.cloud.firestore")
    client = firestore.Client(project=project, database=settings.get("database", "(default)"))
    return FirestoreStore(
        client,
        prefix=settings.get("prefix", ""),
        ttl_days=int(settings["ttl_days"]) if "ttl_days" in settings else None,
        fleet_lanes=int(settings.get("fleet_lanes", "0")),
        commit_bytes=commit_bytes_for(os.environ),
    )


def _nothing() -> None:
    """The cloud clients need no closing."""
