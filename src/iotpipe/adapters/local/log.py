"""The local runtime's stream: a durable log of records in an SQLite file (WAL mode).

Ingest appends, the processor reads in log order and commits a checkpoint after the store has
applied a batch. Tables (schema version 1, in ``PRAGMA user_version``)::

    records   seq INTEGER PRIMARY KEY AUTOINCREMENT   the log position (never reused)
              arrived_ms INTEGER NOT NULL             when the record was appended
              data BLOB NOT NULL                      one publish call's messages (a JSON array)
    cursor    done, done_bytes                        the checkpoint: every seq <= done is applied
              pending_first, pending_last             the batch handed out and not yet committed
    meta      log_id (random, made with the file), appended_bytes

**Durability.** :meth:`SqliteLog.publish` returns only after its records are committed. Appends
are group-committed: one writer thread takes every request waiting, inserts them in one
transaction and commits once, so many requests share one sync. With ``sync="full"`` (the
default) the commit waits for ``fsync`` of the WAL: an acknowledged record survives ``kill -9``,
a power cut and an operating system crash (as far as the disk honours ``fsync``). With
``sync="normal"`` the commit waits only for the write into the operating system: an acknowledged
record survives ``kill -9`` of the process, but a power cut or OS crash may lose the last
commits before the WAL is checkpointed (the file stays consistent).

**Exactly what was accepted, at least once.** The checkpoint moves only when the processor says
a batch is applied (:meth:`SqliteLog.commit`), after the store committed it; a crash between
the two re-delivers that batch, which the store counts as duplicates. The batch handed out is
recorded before it is processed, so after a restart the same range is delivered again, with the
same id: a retried batch overwrites its own archive file, and only that.

**Batch ids** are ``log-<log id>-<first seq>-<last seq>``, with zero-padded positions: unique
across restarts (positions are never reused, even after compaction) and across log files (the
log id), and sorting in log order.

**One record per publish call.** The messages of one call (ingest publishes one per device)
are joined into one JSON array: one partition has no use for their keys, and the log and the
processor then pay per request, not per device.

**Bounded.** Consumed records are deleted when the checkpoint moves (the file's free pages are
reused, so the file stays about the size of the largest backlog). Publishing is refused with
:class:`~iotpipe.domain.StreamFull` while the backlog (appended, not yet applied) is at its
limit of records or bytes; nothing already accepted is ever dropped.
"""

from __future__ import annotations

import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from iotpipe.adapters.clock import SystemClock
from iotpipe.domain import StreamFull, StreamUnavailable
from iotpipe.ports import Clock, PublishResult, RawBatch, RawRecord, StreamMessage

SCHEMA_VERSION = 1

Sync = Literal["full", "normal"]

#: Defaults of the backlog's bounds: whichever is reached first refuses new records. A record
#: is one publish call's messages (one request's valid readings); 64 MiB is ~400,000 readings
#: of ~150 bytes, about 20 s of the processor's measured rate on a 2-core machine.
DEFAULT_MAX_BACKLOG_RECORDS = 100_000
DEFAULT_MAX_BACKLOG_BYTES = 64 << 20

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        arrived_ms INTEGER NOT NULL,
        data BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cursor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        done INTEGER NOT NULL,
        done_bytes INTEGER NOT NULL,
        pending_first INTEGER,
        pending_last INTEGER
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "INSERT OR IGNORE INTO cursor (id, done, done_bytes) VALUES (1, 0, 0)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('appended_bytes', 0)",
)
_APPEND = "INSERT INTO records (arrived_ms, data) VALUES (?, ?)"
_CURSOR = "SELECT done, done_bytes, pending_first, pending_last FROM cursor WHERE id = 1"
_RANGE = "SELECT seq, arrived_ms, data FROM records WHERE seq >= ? AND seq <= ? ORDER BY seq"
_NEXT = "SELECT seq, arrived_ms, data FROM records WHERE seq > ? ORDER BY seq LIMIT ?"


@dataclass(frozen=True, slots=True)
class LogStatus:
    """The log at one instant: what waits to be applied, and how old the oldest of it is."""

    appended: int
    done: int
    backlog_records: int
    backlog_bytes: int
    oldest_unprocessed_ms: int | None
    file_bytes: int
    max_backlog_records: int
    max_backlog_bytes: int

    def as_json(self, now_ms: int) -> dict[str, object]:
        """The status as JSON members (``oldest_unprocessed_age_ms`` against ``now_ms``)."""
        oldest = self.oldest_unprocessed_ms
        return {
            "backlog_records": self.backlog_records,
            "backlog_bytes": self.backlog_bytes,
            "oldest_unprocessed_age_ms": None if oldest is None else max(0, now_ms - oldest),
            "max_backlog_records": self.max_backlog_records,
            "max_backlog_bytes": self.max_backlog_bytes,
            "log_bytes": self.file_bytes,
            "appended": self.appended,
            "applied": self.done,
        }


class _Waiter:
    """One publish call waiting for the group commit that holds its records."""

    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: list[tuple[int, bytes]]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: BaseException | None = None


class SqliteLog:
    """A durable, bounded log in one SQLite file: a ``ReadingStream`` and a ``BatchSource``.

    Several processes may open it: one appends (the server), one consumes (the processor).
    Thread-safe. See the module docstring for what is guaranteed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        sync: Sync = "full",
        max_backlog_records: int = DEFAULT_MAX_BACKLOG_RECORDS,
        max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_BYTES,
        max_batch_bytes: int = 4 << 20,
        busy_timeout_s: float = 30.0,
    ) -> None:
        if sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', not {sync!r}")
        if min(max_backlog_records, max_backlog_bytes, max_batch_bytes) < 1:
            raise ValueError("the backlog and batch bounds must be at least 1")
        self.path = Path(path)
        self.max_backlog_records = max_backlog_records
        self.max_backlog_bytes = max_backlog_bytes
        self._clock = clock or SystemClock()
        self._sync = sync
        self._busy_timeout_s = busy_timeout_s
        self._max_batch_bytes = max_batch_bytes
        # _lock guards the queue of appends and the cached backlog; _db guards the reading
        # connection (taken after _lock when both are needed, never the other way round).
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._db = threading.Lock()
        self._queue: list[_Waiter] = []
        self._queued_rows = self._queued_bytes = 0
        self._writer: threading.Thread | None = None
        self._closed = False
        self._rate = _Rate()
        self._conn = self._connect()
        self._append_conn: sqlite3.Connection | None = None
        self.log_id = self._open_schema()
        self._backlog = self._measure()

    # --- publishing (the server) --------------------------------------------------------------

    def publish(self, messages: Sequence[StreamMessage]) -> PublishResult:
        """Append every message durably, or none; returns once they are committed.

        Raises :class:`~iotpipe.domain.StreamFull` while the backlog is at its bound, and
        :class:`~iotpipe.domain.StreamUnavailable` if the file cannot be written (disk full).
        """
        if not messages:
            return PublishResult()
        arrived = self._clock.now_ms()
        rows = [(arrived, data) for data in _aggregated(messages)]
        size = sum(len(data) for _, data in rows)
        waiter = _Waiter(rows)
        with self._lock:
            if self._closed:
                raise StreamUnavailable(f"the log {self.path} is closed")
            self._admit(len(rows), size)
            self._queue.append(waiter)
            self._queued_rows += len(rows)
            self._queued_bytes += size
            self._ensure_writer()
            self._appended.notify_all()
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return PublishResult()

    def _admit(self, rows: int, size: int) -> None:
        """Refuse (under the lock) what would take the backlog past a bound."""
        if self._fits(rows, size):
            return
        # The processor may have moved on since the backlog was last measured: look again.
        self._backlog = self._measure()
        if self._fits(rows, size):
            return
        records, nbytes = self._backlog
        raise StreamFull(
            f"the backlog is full: {records:,} records ({nbytes:,} bytes) wait to be processed",
            retry_after_s=self._rate.seconds_for(self._queued_rows + rows),
        )

    def _fits(self, rows: int, size: int) -> bool:
        records, nbytes = self._backlog
        return (
            records + self._queued_rows + rows <= self.max_backlog_records
            and nbytes + self._queued_bytes + size <= self.max_backlog_bytes
        )

    def _ensure_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="iotpipe-log", daemon=True
            )
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._appended.wait()
                if not self._queue:
                    return
                group, self._queue = self._queue, []
                self._queued_rows = self._queued_bytes = 0
            self._commit_group(group)

    def _commit_group(self, group: list[_Waiter]) -> None:
        """One transaction, one sync, for every request waiting."""
        rows = [row for waiter in group for row in waiter.rows]
        error: BaseException | None = None
        try:
            self._append(rows)
            backlog = self._measure()
        except sqlite3.Error as exc:
            error = StreamUnavailable(f"log {self.path}: {exc}")
        with self._lock:
            if error is None:
                self._backlog = backlog
                self._appended.notify_all()
        for waiter in group:
            waiter.error = error
            waiter.done.set()

    def _append(self, rows: list[tuple[int, bytes]]) -> None:
        if self._append_conn is None:
            self._append_conn = self._connect()
        size = sum(len(data) for _, data in rows)
        with _transaction(self._append_conn) as conn:
            conn.executemany(_APPEND, rows)
            conn.execute("UPDATE meta SET value = value + ? WHERE key = 'appended_bytes'", (size,))

    # --- consuming (the processor) -------------------------------------------------------------

    def poll(self, max_records: int, timeout_s: float = 0.0) -> RawBatch | None:
        """The next batch after the checkpoint (up to ``max_records`` records and the batch
        byte bound), or ``None`` if none came within ``timeout_s``.

        Until :meth:`commit`, the same batch is handed out again, also after a restart.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self._next(max_records)
            remaining = deadline - time.monotonic()
            if batch is not None or remaining <= 0:
                return batch
            # Woken at once by an append in this process; another process's appends are
            # seen at the next look, 25 ms later at most.
            with self._appended:
                self._appended.wait(min(remaining, 0.025))

    def _next(self, max_records: int) -> RawBatch | None:
        with self._db:
            conn = self._conn
            done, _, first, last = conn.execute(_CURSOR).fetchone()
            if first is not None and last > done:
                rows = conn.execute(_RANGE, (max(first, done + 1), last)).fetchall()
            else:
                rows = self._cut(conn.execute(_NEXT, (done, max_records)).fetchall())
                if not rows:
                    return None
                first, last = rows[0][0], rows[-1][0]
                with _transaction(conn):
                    conn.execute(
                        "UPDATE cursor SET pending_first = ?, pending_last = ? WHERE id = 1",
                        (first, last),
                    )
        records = tuple(RawRecord(str(seq), bytes(data), arrived) for seq, arrived, data in rows)
        return RawBatch(self.batch_id(first, last), records)

    def _cut(self, rows: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        total = 0
        for end, (_, _, data) in enumerate(rows):
            total += len(data)
            if total > self._max_batch_bytes and end > 0:
                return rows[:end]
        return rows

    def commit(self, batch: RawBatch) -> None:
        """The batch is applied: move the checkpoint past it and delete what it consumed."""
        last = int(batch.records[-1].record_id)
        size = sum(len(r.data) for r in batch.records)
        with self._db, _transaction(self._conn) as conn:
            conn.execute(
                "UPDATE cursor SET done = MAX(done, ?), done_bytes = done_bytes + ?, "
                "pending_first = NULL, pending_last = NULL WHERE id = 1",
                (last, size),
            )
            conn.execute("DELETE FROM records WHERE seq <= ?", (last,))
        backlog = self._measure()
        with self._lock:
            self._backlog = backlog

    def batch_id(self, first: int, last: int) -> str:
        """The id of the batch of positions ``[first, last]`` (see the module docstring)."""
        return f"log-{self.log_id}-{first:012d}-{last:012d}"

    # --- observing ------------------------------------------------------------------------------

    def status(self) -> LogStatus:
        """Backlog, its oldest record's arrival, and the file's size on disk."""
        with self._db:
            done, appended, backlog_bytes = self._positions()
            oldest = self._conn.execute(
                "SELECT arrived_ms FROM records WHERE seq > ? ORDER BY seq LIMIT 1", (done,)
            ).fetchone()
        return LogStatus(
            appended=appended,
            done=done,
            backlog_records=max(0, appended - done),
            backlog_bytes=backlog_bytes,
            oldest_unprocessed_ms=oldest[0] if oldest else None,
            file_bytes=_file_bytes(self.path),
            max_backlog_records=self.max_backlog_records,
            max_backlog_bytes=self.max_backlog_bytes,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the appends in flight, then close the file."""
        with self._lock:
            self._closed = True
            self._appended.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()
        with self._db:
            self._conn.close()
            if self._append_conn is not None:
                self._append_conn.close()

    def __enter__(self) -> SqliteLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------------------

    def _measure(self) -> tuple[int, int]:
        """``(records, bytes)`` appended and not yet applied; notes the drain rate."""
        with self._db:
            done, appended, backlog_bytes = self._positions()
        self._rate.note(done)
        return max(0, appended - done), backlog_bytes

    def _positions(self) -> tuple[int, int, int]:
        """``(done, last appended, backlog bytes)``, read under ``_db``."""
        conn = self._conn
        done, done_bytes, _, _ = conn.execute(_CURSOR).fetchone()
        appended = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        [(appended_bytes,)] = conn.execute(
            "SELECT value FROM meta WHERE key = 'appended_bytes'"
        ).fetchall()
        return done, appended[0] if appended else 0, max(0, appended_bytes - done_bytes)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA synchronous = {self._sync.upper()}")
            # The WAL is truncated back to this size after each checkpoint: bounded disk.
            conn.execute("PRAGMA journal_size_limit = 67108864")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_schema(self) -> str:
        conn = self._conn
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
        with _transaction(conn):
            [(version,)] = conn.execute("PRAGMA user_version").fetchall()
            if version > SCHEMA_VERSION:
                raise StreamUnavailable(
                    f"{self.path} has log schema version {version}; this iotpipe knows up to "
                    f"{SCHEMA_VERSION}"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?)",
                (secrets.token_hex(4),),
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            [(log_id,)] = conn.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchall()
        return str(log_id)


class _Rate:
    """The processor's recent drain rate, from how fast the checkpoint moves (any process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: tuple[float, int] | None = None
        self.per_s = 0.0

    def note(self, done: int) -> None:
        now = time.monotonic()
        with self._lock:
            if self._since is None or done < self._since[1]:
                self._since = (now, done)
                return
            elapsed = now - self._since[0]
            if elapsed >= 1.0:
                self.per_s = (done - self._since[1]) / elapsed
                self._since = (now, done)

    def seconds_for(self, records: int) -> int:
        """Whole seconds (1 to 30) for the processor to make room for ``records``: clients
        come back when there is room, not all at once."""
        if self.per_s <= 0:
            return 1
        return int(min(30, max(1, math.ceil(records / self.per_s))))


def _aggregated(messages: Sequence[StreamMessage]) -> list[bytes]:
    """The messages of one publish call as one record: their JSON arrays joined into one.

    One partition has no use for the keys, and a record per request instead of per device
    makes appending and processing cost per request, not per device (the Kinesis Producer
    Library aggregates for the same reason). Data that is not a JSON array stays a record
    of its own.
    """
    arrays = [m.data for m in messages if m.data[:1] == b"[" and m.data[-1:] == b"]"]
    others = [m.data for m in messages if not (m.data[:1] == b"[" and m.data[-1:] == b"]")]
    if len(arrays) < 2:
        return [m.data for m in messages]
    inner = [data[1:-1] for data in arrays if data[1:-1].strip()]
    return [b"[" + b",".join(inner) + b"]", *others]


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _file_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with suppress(OSError):
            total += os.stat(f"{path}{suffix}").st_size
    return total
