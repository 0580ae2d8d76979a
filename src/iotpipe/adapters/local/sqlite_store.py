"""The aggregate store in a local SQLite file, on the standard library's ``sqlite3``.

Tables (schema version 2, kept in ``PRAGMA user_version``)::

    windows                              one row per device and UTC hour: the window's head
      device_id  TEXT    NOT NULL
      hour_ms    INTEGER NOT NULL        start of the hour, epoch ms
      version    INTEGER NOT NULL        concurrency token: 1 when inserted, +1 per update
      latest_ms  INTEGER                 event time of the window's latest reading
      head       BLOB    NOT NULL        statistics, latest reading, recent identities
                                         (format 2: iotpipe.application.codecs.heads)
      PRIMARY KEY (device_id, hour_ms)   hourly(), latest(), the newest window of a device
    windows_by_hour (hour_ms, device_id) fleet_hour(): one hour, in device order
    segments                             identities sealed out of a head, written once
      device_id, hour_ms, base           base: the head version the segment was sealed from
      identities BLOB NOT NULL
    fleet                                each hour's fleet total, updated in the same
      hour_ms INTEGER PRIMARY KEY        transaction as the windows it merges
      total   BLOB NOT NULL
    devices                              the registry, in id order (WITHOUT ROWID)
      device_id  TEXT PRIMARY KEY

A head stays around 1 KB however many readings its window holds, so a write rewrites ~1 KB
instead of the whole identity set (schema 1 rewrote ~13 KB at the end of an hour at one reading
a second). ``latest_ms`` duplicates a field of the head so that :meth:`SqliteStore.devices`
needs no decoding. A file of schema 1 (iotpipe before format 2) is upgraded when it is opened,
in one transaction: every window becomes a head and a segment, every hour gets its total.

Concurrency: several threads and processes may write to the file at the same time. The file is
in WAL mode, so readers never wait for the writer. Each connection waits up to
``busy_timeout_s`` for the write lock. Reads run in autocommit; the window writes of one
apply round share one transaction (one sync to disk per batch, not per window), which holds
the write lock only while its statements run: windows are encoded before it begins, so no
lock is held while Python code runs. Exactness comes from the ``version``
column: an update applies only if the version that was read is still stored (see
:class:`~iotpipe.adapters.window_store.WindowStoreBase`). A pool hands each concurrent caller
a connection of its own, so threads never share one at the same time.

Durability: ``synchronous=FULL``. Once a batch is acknowledged, its stream position moves on, so
its windows must survive a power cut.

Errors: a busy or locked database, a full disk, an I/O error, a read-only file or one that
cannot be opened raise :class:`~iotpipe.domain.StoreUnavailable` (the batch is retried). Other
SQLite errors (SQL mistakes, a missing table) are bugs and propagate unchanged. A file that is
not an SQLite database, or that has a newer schema, raises :class:`UnusableDatabase`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from iotpipe.adapters.local.schema_records import SqliteSchemaRecords
from iotpipe.adapters.window_store import Save, Stored, WindowStoreBase
from iotpipe.application.codecs import heads
from iotpipe.application.codecs.window import window_from_record
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    FleetTotal,
    HourlyWindow,
    IdentitySet,
    IotPipeError,
    Reading,
    StoreUnavailable,
    TelemetrySchema,
    WindowConflict,
)
from iotpipe.ports import (
    DeviceSummary,
    Page,
    RetryPolicy,
    StoreOps,
    Version,
    WindowKey,
)

SCHEMA_VERSION = 2

#: A head is kept under this many bytes by sealing its identities into segments.
HEAD_BUDGET = 1024

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS windows (
        device_id TEXT NOT NULL,
        hour_ms INTEGER NOT NULL,
        version INTEGER NOT NULL,
        latest_ms INTEGER,
        head BLOB NOT NULL,
        PRIMARY KEY (device_id, hour_ms)
    )""",
    "CREATE INDEX IF NOT EXISTS windows_by_hour ON windows (hour_ms, device_id)",
    """CREATE TABLE IF NOT EXISTS segments (
        device_id TEXT NOT NULL,
        hour_ms INTEGER NOT NULL,
        base INTEGER NOT NULL,
        identities BLOB NOT NULL,
        PRIMARY KEY (device_id, hour_ms, base)
    ) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS fleet (hour_ms INTEGER PRIMARY KEY, total BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY) WITHOUT ROWID",
)

_INSERT = (
    "INSERT INTO windows (device_id, hour_ms, version, latest_ms, head) VALUES (?, ?, 1, ?, ?)"
)
_UPDATE = (
    "UPDATE windows SET version = version + 1, latest_ms = ?, head = ? "
    "WHERE device_id = ? AND hour_ms = ? AND version = ?"
)
# A segment is the tail as committed at its base version: the same bytes whoever seals it.
_SEAL = "INSERT OR REPLACE INTO segments (device_id, hour_ms, base, identities) VALUES (?, ?, ?, ?)"
_SEGMENTS = "SELECT identities FROM segments WHERE device_id = ? AND hour_ms = ?"
_TOTAL = "SELECT total FROM fleet WHERE hour_ms = ?"
_PUT_TOTAL = "INSERT OR REPLACE INTO fleet (hour_ms, total) VALUES (?, ?)"
_REGISTER = "INSERT OR IGNORE INTO devices (device_id) VALUES (?)"
_HOURLY = (
    "SELECT device_id, hour_ms, head FROM windows "
    "WHERE device_id = ? AND hour_ms >= ? AND hour_ms < ? ORDER BY hour_ms LIMIT ?"
)
# Cursors are the last device returned, and '' sorts before every device id (ids are never
# empty): one statement serves the first page and the next ones.
_FLEET_HOUR = (
    "SELECT device_id, hour_ms, head FROM windows WHERE hour_ms = ? AND device_id > ? "
    "ORDER BY device_id LIMIT ?"
)
_NEWEST = (
    "SELECT device_id, hour_ms, head FROM windows WHERE device_id = ? ORDER BY hour_ms DESC LIMIT 1"
)
_DEVICES = """
    SELECT d.device_id, w.hour_ms, w.latest_ms
    FROM devices AS d
    LEFT JOIN windows AS w
      ON w.device_id = d.device_id
     AND w.hour_ms = (SELECT MAX(hour_ms) FROM windows WHERE device_id = d.device_id)
    WHERE d.device_id > ?
    ORDER BY d.device_id
    LIMIT ?"""

#: Keys per load query: 500 parameters, under the 999 that older SQLite builds allow.
_KEYS_PER_QUERY = 250

#: Primary result codes that mean "not now" rather than "wrong": reported as StoreUnavailable.
_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_READONLY,
    }
)


class UnusableDatabase(IotPipeError):
    """The file is not a store this version can use (not SQLite, or a newer schema).

    Retrying will not help, unlike :class:`~iotpipe.domain.StoreUnavailable`.
    """


class SqliteStore(WindowStoreBase):
    """Hourly windows and the device registry in one SQLite file (see the module docstring).

    Safe to share between threads. Several processes may each open their own store on the
    same file. The schema is created or checked when the store is opened. Call :meth:`close`
    (or use it as a context manager) to release its connections. Windows are encoded and
    decoded by ``schema``, the telemetry schema (the default payload's unless one is given).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        super().__init__(retry)
        self.schema = schema
        if str(path) in ("", ":memory:"):
            # Each pooled connection would get a private, empty in-memory database.
            raise ValueError("SqliteStore needs a file path, not an in-memory database")
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._free: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._reads = 0
        self._writes = 0
        self._open_schema()

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every idle connection; connections still in use close when they are released."""
        with self._lock:
            self._closed = True
            idle, self._free = self._free, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def schema_records(self) -> SqliteSchemaRecords:
        """Where this store keeps its schema record (:func:`~iotpipe.application.settle_schema`)."""
        return SqliteSchemaRecords(self.path, busy_timeout_s=self._busy_timeout_s)

    # --- hooks -------------------------------------------------------------------------------

    def _load(self, keys: Sequence[WindowKey], *, strong: bool = False) -> dict[WindowKey, Stored]:
        found: dict[WindowKey, Stored] = {}
        with self._connection() as conn:
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = keys[start : start + _KEYS_PER_QUERY]
                params = [part for key in chunk for part in key]
                for device_id, hour_ms, version, head in conn.execute(
                    _load_sql(len(chunk)), params
                ).fetchall():
                    found[(device_id, hour_ms)] = self._stored(device_id, hour_ms, version, head)
        self._count(reads=len(keys))
        return found

    def _complete(self, windows: dict[WindowKey, Stored]) -> dict[WindowKey, Stored]:
        """The windows with their sealed identities read back (late or resent readings)."""
        completed: dict[WindowKey, Stored] = {}
        with self._connection() as conn:
            for key, stored in windows.items():
                rows = conn.execute(_SEGMENTS, key).fetchall()
                parts = [stored.window.seen, *(heads.unpack_identities(r[0]) for r in rows)]
                window = stored.window._replace(seen=heads.merged_identities(parts))
                completed[key] = stored._replace(window=window, horizon=None)
        self._count(reads=sum(1 for _ in windows))
        return completed

    def _save(self, window: HourlyWindow, expected: Version) -> None:
        before = None if expected is None else self._load([window.key]).get(window.key)
        [outcome] = self._save_all([Save(window, expected, before)])
        if outcome is not None:
            raise outcome

    def _save_all(self, windows: Sequence[Save]) -> list[IotPipeError | None]:
        """A round's window writes in one transaction: one sync to disk per batch, not per window.

        Each write stays conditional on the version that was read; one that finds another
        version is skipped and reported as a conflict, and the others commit. Each written
        window's segments (if its tail was sealed) go first, and its growth is added to its
        hour's fleet total in the same transaction. Heads are encoded before the write lock
        is taken, so it is held only for the statements.
        """
        if not windows:
            return []
        rows = [(save, _encode(save, self.schema)) for save in windows]
        outcomes: list[IotPipeError | None] = []
        written = registered = 0
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    totals: dict[int, FleetTotal] = {}
                    for save, encoded in rows:
                        outcome = _write(conn, save, encoded)
                        outcomes.append(outcome)
                        if outcome is None:
                            written += 1 + len(encoded.segments)
                            registered += _grow_total(conn, totals, save, self.schema)
                    for hour, total in totals.items():
                        conn.execute(_PUT_TOTAL, (hour, heads.encode_total(total, self.schema)))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except StoreUnavailable as exc:  # nothing was written
            return [exc] * len(rows)
        new = sum(1 for save, _ in rows if save.expected is None)
        self._count(reads=new, writes=written + registered)
        return outcomes

    def _register(self, device_id: str) -> None:
        with self._connection() as conn:
            inserted = conn.execute(_REGISTER, (device_id,)).rowcount
        self._count(reads=1, writes=inserted)

    def _stored(self, device_id: str, hour_ms: int, version: int, head: bytes) -> Stored:
        decoded = heads.decode_head(device_id, hour_ms, head, self.schema)
        horizon = None if decoded.horizon == heads.NO_HORIZON else decoded.horizon
        return Stored(decoded.window, version, horizon, decoded)

    def _decode(self, device_id: str, hour_ms: int, head: bytes) -> HourlyWindow:
        """A window as queries return it: statistics and latest reading, no identities."""
        window = heads.decode_head(device_id, hour_ms, head, self.schema).window
        return window._replace(seen=IdentitySet())

    # --- queries -----------------------------------------------------------------------------

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's windows in ``[start_ms, end_ms)``; the cursor is the last hour returned."""
        low = start_ms if cursor is None else max(start_ms, int(cursor) + 1)
        rows = self._fetch(_HOURLY, (device_id, low, end_ms, limit + 1))
        items = [self._decode(*row) for row in rows[:limit]]
        self._count(reads=len(items))
        return Page(items, str(items[-1].hour_ms) if len(rows) > limit else None)

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """Every device's window for the hour; the cursor is the last device returned."""
        rows = self._fetch(_FLEET_HOUR, (hour_ms, cursor or "", limit + 1))
        items = [self._decode(*row) for row in rows[:limit]]
        self._count(reads=len(items))
        return Page(items, items[-1].device_id if len(rows) > limit else None)

    def latest(self, device_id: str) -> Reading | None:
        """The device's latest reading: the newest reading of its newest window."""
        rows = self._fetch(_NEWEST, (device_id,))
        if not rows:
            return None
        self._count(reads=1)
        return self._decode(*rows[0]).latest

    def fleet_total(self, hour_ms: int) -> FleetTotal:
        """The hour's fleet total: one row, kept in the windows' own transactions."""
        rows = self._fetch(_TOTAL, (hour_ms,))
        self._count(reads=1)
        return heads.decode_total(rows[0][0], self.schema) if rows else FleetTotal()

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """Devices in id order with their newest window's latest event time; the cursor is the
        last device returned."""
        rows = self._fetch(_DEVICES, (cursor or "", limit + 1))
        chosen = rows[:limit]
        # Like the reference store: one read per device that has a window to look at.
        self._count(reads=sum(1 for _, newest_hour, _ in chosen if newest_hour is not None))
        items = [DeviceSummary(device_id, latest_ms) for device_id, _, latest_ms in chosen]
        return Page(items, items[-1].device_id if len(rows) > limit else None)

    def ops(self) -> StoreOps:
        """Reads and writes this store object performed, counted as a remote store bills them:
        one per window or registry item."""
        with self._lock:
            return StoreOps(self._reads, self._writes)

    # --- plumbing ----------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        with self._connection() as conn:
            # fetchall: an unfinished SELECT would keep its read transaction open.
            return conn.execute(sql, params).fetchall()

    def _count(self, *, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self._reads += reads
            self._writes += writes

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection for one short piece of work; transient errors translated."""
        try:
            conn = self._acquire()
            try:
                yield conn
            finally:
                self._release(conn)
        except sqlite3.OperationalError as exc:
            if (exc.sqlite_errorcode & 0xFF) not in _TRANSIENT:
                raise
            raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the sqlite store {self.path} is closed")
            if self._pid != os.getpid():
                # A forked child must not use its parent's connections: SQLite forbids it.
                self._free, self._pid = [], os.getpid()
            if self._free:
                return self._free.pop()
        return self._connect()

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed:
                self._free.append(conn)
                return
        conn.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, so each statement is its own short transaction.
        # check_same_thread=False: the pool hands a connection to one thread at a time, but
        # not always the same thread.
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_schema(self) -> None:
        try:
            with self._connection() as conn:
                _use_wal(conn, self._busy_timeout_s)
                _migrate(conn, self.path)
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_NOTADB:
                raise
            raise UnusableDatabase(f"{self.path} is not an SQLite database") from exc


def _use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Put the file in WAL mode (a property of the file: a no-op once it is on).

    Processes that open a new file together race to switch it. SQLite then answers some of
    them "busy" at once instead of waiting (to avoid a deadlock), so the wait happens here,
    bounded by the busy timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.001, 0.01))


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema, in one transaction: concurrent openers queue here."""
    if _schema_version(conn, path) == SCHEMA_VERSION:
        return  # the usual case: opening takes no write lock, even while others write
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _schema_version(conn, path)  # not upgraded meanwhile by another opener?
        if found == 1:
            conn.execute("ALTER TABLE windows RENAME TO windows_format1")
            conn.execute("DROP INDEX IF EXISTS windows_by_hour")
        if found < SCHEMA_VERSION:
            for statement in _SCHEMA:
                conn.execute(statement)
        if found == 1:
            _upgrade_windows(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _upgrade_windows(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: each whole window becomes a head and a segment of its identities (as the
    next write would have sealed them), each hour gets the total of its windows.

    Read and written by the default schema, whatever schema the store is opened with: schema 1
    files come from the releases before declared schemas, which knew only the default payload
    (and both formats keep metrics by name, so the conversion keeps every one of them)."""
    totals: dict[int, FleetTotal] = {}
    rows = conn.execute("SELECT device_id, hour_ms, version, record, seen FROM windows_format1")
    for device_id, hour_ms, version, record, seen in rows.fetchall():
        window = window_from_record({**orjson.loads(record), "seen": seen}, DEFAULT_SCHEMA)
        save = Save(window, None, None)
        encoded = heads.written(None, 0, window, _fits, legacy=window.seen, schema=DEFAULT_SCHEMA)
        for base, identities in encoded.segments:
            conn.execute(_SEAL, (device_id, hour_ms, base, identities))
        conn.execute(
            "INSERT INTO windows (device_id, hour_ms, version, latest_ms, head) "
            "VALUES (?, ?, ?, ?, ?)",
            (device_id, hour_ms, version, _latest_ms(window), encoded.head),
        )
        totals[hour_ms] = totals.get(hour_ms, FleetTotal()).grown(None, save.window.stats)
    for hour, total in totals.items():
        conn.execute(_PUT_TOTAL, (hour, heads.encode_total(total, DEFAULT_SCHEMA)))
    conn.execute("DROP TABLE windows_format1")


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    [(found,)] = conn.execute("PRAGMA user_version").fetchall()
    if found > SCHEMA_VERSION:
        raise UnusableDatabase(
            f"{path} has schema version {found}; this iotpipe knows up to {SCHEMA_VERSION}"
        )
    return int(found)


def _write(conn: sqlite3.Connection, save: Save, encoded: heads.Written) -> IotPipeError | None:
    """One window's segments and head, the head conditional on its version."""
    window, expected, _ = save
    device_id, hour_ms = window.key
    for base, identities in encoded.segments:
        conn.execute(_SEAL, (device_id, hour_ms, base, identities))
    latest_ms = _latest_ms(window)
    if expected is None:
        conn.execute(_REGISTER, (device_id,))
        try:
            conn.execute(_INSERT, (device_id, hour_ms, latest_ms, encoded.head))
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
                raise
            # Another writer created the window since we found it missing.
            return WindowConflict(f"window {window.key} was created since it was read")
        return None
    params = (latest_ms, encoded.head, device_id, hour_ms, expected)
    if conn.execute(_UPDATE, params).rowcount == 0:
        return WindowConflict(f"window {window.key} changed")
    return None


def _grow_total(
    conn: sqlite3.Connection, totals: dict[int, FleetTotal], save: Save, schema: TelemetrySchema
) -> int:
    """Add a written window's growth to its hour's total (read once per transaction, by
    ``schema``); 1 if this registered its device (counted as a write), else 0."""
    hour = save.window.hour_ms
    if hour not in totals:
        rows = conn.execute(_TOTAL, (hour,)).fetchall()
        totals[hour] = heads.decode_total(rows[0][0], schema) if rows else FleetTotal()
    before = None if save.before is None else save.before.window.stats
    totals[hour] = totals[hour].grown(before, save.window.stats)
    return 0


@lru_cache(maxsize=32)
def _load_sql(keys: int) -> str:
    # A join on a VALUES list looks each key up by primary key; SQLite answers the row-value
    # form "(device_id, hour_ms) IN (VALUES ...)" with a full table scan instead.
    values = ", ".join(["(?, ?)"] * keys)
    return (
        "SELECT w.device_id, w.hour_ms, w.version, w.head "
        f"FROM (VALUES {values}) AS k JOIN windows AS w "
        "ON w.device_id = k.column1 AND w.hour_ms = k.column2"
    )


def _fits(head: bytes) -> bool:
    return len(head) <= HEAD_BUDGET


def _latest_ms(window: HourlyWindow) -> int | None:
    return None if window.latest is None else window.latest.timestamp_ms


def _encode(save: Save, schema: TelemetrySchema) -> heads.Written:
    """What to write for one window (see :func:`iotpipe.application.codecs.heads.written`)."""
    before = save.before
    if before is None:
        return heads.written(None, 0, save.window, _fits, schema=schema)
    version = int(before.version)  # type: ignore[arg-type]
    seen = before.window.seen
    return heads.written(before.head, version, save.window, _fits, loaded=seen, schema=schema)
