"""The schema record of an SQLite store: one row of its own table in the store's file.

::

    telemetry_schema                     at most one row
      id         INTEGER PRIMARY KEY     always 1
      version    INTEGER NOT NULL        1 when inserted, +1 per update
      record     TEXT    NOT NULL        SchemaRecord.to_json() as JSON

The table is created on first use, beside the store's own tables: a file without it is read by
every iotpipe as before (see :class:`~iotpipe.ports.SchemaRecords`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import orjson

from iotpipe.domain import StoreUnavailable
from iotpipe.domain.evolution import SchemaRecord
from iotpipe.domain.telemetry import SchemaRecordChanged
from iotpipe.ports import Version

T = TypeVar("T")

_CREATE = (
    "CREATE TABLE IF NOT EXISTS telemetry_schema ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, record TEXT NOT NULL)"
)
_READ = "SELECT record, version FROM telemetry_schema WHERE id = 1"
_INSERT = "INSERT OR IGNORE INTO telemetry_schema (id, version, record) VALUES (1, 1, ?)"
_UPDATE = (
    "UPDATE telemetry_schema SET version = version + 1, record = ? WHERE id = 1 AND version = ?"
)


class SqliteSchemaRecords:
    """The record of the SQLite store at ``path`` (a connection per call: start-up only)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s

    def read(self) -> tuple[SchemaRecord, Version] | None:
        """The record and its version, if one was written (reading takes no write lock)."""
        rows = self._run(_read)
        if not rows:
            return None
        [(record, version)] = rows
        return SchemaRecord.from_json(orjson.loads(record)), int(version)

    def write(self, record: SchemaRecord, expected: Version) -> None:
        """Insert the record (``expected`` ``None``) or update it if its version is still
        ``expected``; :class:`SchemaRecordChanged` otherwise."""
        text = orjson.dumps(record.to_json()).decode()
        if expected is None:
            changed = self._run(lambda conn: _created(conn).execute(_INSERT, (text,)).rowcount)
        else:
            changed = self._run(lambda conn: conn.execute(_UPDATE, (text, expected)).rowcount)
        if not changed:
            raise SchemaRecordChanged(f"{self.path}: the schema record changed since it was read")

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA synchronous = FULL")
            return work(conn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
        finally:
            conn.close()


def _read(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    if not conn.execute(_EXISTS).fetchall():
        return []  # a store from before schema records: nothing recorded yet
    return conn.execute(_READ).fetchall()


def _created(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.execute(_CREATE)
    return conn


_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'telemetry_schema'"
