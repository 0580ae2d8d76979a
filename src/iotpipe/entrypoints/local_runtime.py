"""The local runtime: the HTTP API over a durable log, a processor, and a persistent store.

Used by ``iotpipe serve`` and ``iotpipe demo``, and by anyone running iotpipe on an edge gateway.
Under the data directory::

    log.db       the durable log: POST /v1/readings answers 202 once its readings are in it
    iotpipe.db   the SQLite store of hourly windows
    archive/     raw batches (raw/) and rejected payloads (rejected/), named by log positions
    schema.toml  the telemetry schema the runtime reads payloads by (kept for the next start)
    serve.lock   held while a server runs on the directory (a second one is refused)

The processor reads the log in order and commits its checkpoint after the store applied each
batch (see :mod:`iotpipe.adapters.local.log`). By default it runs in a child process
(``python -m iotpipe.entrypoints.local_runtime``), so serving and validating on one core and
processing on another do not share an interpreter lock; ``processor="thread"`` keeps everything
in one process (for embedding). The child exits when its parent does, however the parent ends
(it watches a pipe the parent holds), and a restart resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.local import SqliteLog
from iotpipe.adapters.local.log import DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_MAX_BACKLOG_RECORDS
from iotpipe.adapters.schema_file import dump_schema, load_schema
from iotpipe.application import Pipeline, StreamWorker
from iotpipe.bootstrap import LOG_FILE, local_pipeline
from iotpipe.domain import DEFAULT_SCHEMA, LatenessPolicy, TelemetrySchema
from iotpipe.entrypoints.http.api import AnalyticsApi
from iotpipe.entrypoints.http.auth import ApiKeys
from iotpipe.entrypoints.http.server import LocalServer, serve

log = logging.getLogger("iotpipe.local")

#: Records per batch at most: a backlog is processed in batches this large (see StreamWorker).
DEFAULT_BATCH_RECORDS = 20_000
#: The telemetry schema's file in a data directory.
SCHEMA_FILE = "schema.toml"


class DataDirError(Exception):
    """The data directory cannot be used (not writable, not a directory, or in use)."""


@dataclass(frozen=True)
class LocalSettings:
    """How the local runtime runs; every field has the default ``iotpipe serve`` uses."""

    host: str = "127.0.0.1"
    port: int = 8080
    keys: Sequence[str] = ()
    lateness: LatenessPolicy = field(default_factory=LatenessPolicy)
    batch_records: int = DEFAULT_BATCH_RECORDS
    log_sync: Literal["full", "normal"] = "full"
    max_backlog_records: int = DEFAULT_MAX_BACKLOG_RECORDS
    max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_BYTES
    processor: Literal["process", "thread", "none"] = "process"
    processor_log_level: str = "INFO"
    schema: TelemetrySchema | None = None
    """The readings' schema; ``None``: the one kept in the data directory, else the default."""


class LocalRuntime:
    """A running local pipeline: close it to stop the server and the processor."""

    def __init__(
        self,
        pipeline: Pipeline,
        log_: SqliteLog,
        server: LocalServer,
        processor: _Processor,
        api_key: str,
        lock: IO[str],
    ) -> None:
        self.pipeline = pipeline
        self.log = log_
        self.server = server
        self.api_key = api_key
        self._processor = processor
        self._lock = lock

    @property
    def url(self) -> str:
        """The base URL of the API (``http://127.0.0.1:PORT``)."""
        return self.server.url.rstrip("/")

    @staticmethod
    def start(
        data_dir: Path,
        settings: LocalSettings | None = None,
        **overrides: Any,
    ) -> LocalRuntime:
        """Open the pipeline in ``data_dir``, start the processor and serve the API.

        ``overrides`` replace fields of ``settings`` (``port=0``, ``keys=[...]``). Without
        keys a random one is made for this run (and returned as ``api_key``). Raises
        :class:`DataDirError` for an unusable directory and
        :class:`~iotpipe.entrypoints.http.server.ServerError` for an unusable address.
        """
        settings = _settings(settings, overrides)
        keys = list(settings.keys) or [secrets.token_urlsafe(18)]
        lock = lock_data_dir(data_dir)
        try:
            return LocalRuntime._open(data_dir, settings, keys, lock)
        except BaseException:
            lock.close()
            raise

    @staticmethod
    def _open(
        data_dir: Path, settings: LocalSettings, keys: list[str], lock: IO[str]
    ) -> LocalRuntime:
        clock = SystemClock()
        declared = settings.schema or kept_schema(data_dir)
        log_ = open_log(data_dir, settings)
        try:
            pipeline = local_pipeline(
                data_dir, clock=clock, lateness=settings.lateness, stream=log_, schema=declared
            )
            keep_schema(data_dir, declared)  # checked against the store: the child reads it
            api = AnalyticsApi.for_pipeline(
                pipeline, ApiKeys(keys), stream_status=lambda: log_.status().as_json(clock.now_ms())
            )
            # The address first: a busy port fails before a processor is started for nothing.
            server = serve(api, host=settings.host, port=settings.port)
        except BaseException:
            log_.close()
            raise
        try:
            processor = _processor(data_dir, pipeline, log_, settings)
        except BaseException:
            server.close()
            log_.close()
            raise
        log.info("serving", extra={"url": server.url, "data_dir": str(data_dir)})
        return LocalRuntime(pipeline, log_, server, processor, keys[0], lock)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until everything appended before this call is applied; ``False`` on timeout."""
        target = self.log.status().appended
        deadline = time.monotonic() + timeout_s
        while self.log.status().done < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        """Stop serving, let the processor finish its batch, release the data directory.

        What is still in the log stays there: the next start processes it.
        """
        try:
            self.server.close()
            self._processor.stop()
            self.pipeline.close()  # the log and the store
        finally:
            self._lock.close()


def _settings(settings: LocalSettings | None, overrides: dict[str, Any]) -> LocalSettings:
    base = settings or LocalSettings()
    if not overrides:
        return base
    if overrides.get("lateness", base.lateness) is None:
        overrides["lateness"] = LatenessPolicy()
    if overrides.get("keys") is None:
        overrides["keys"] = ()
    return LocalSettings(**{**base.__dict__, **overrides})


def kept_schema(data_dir: Path) -> TelemetrySchema:
    """The schema kept in the data directory (the default payload's if none is)."""
    path = data_dir / SCHEMA_FILE
    return load_schema(path) if path.exists() else DEFAULT_SCHEMA


def keep_schema(data_dir: Path, schema: TelemetrySchema) -> None:
    """Keep the schema in the data directory (written whole, then renamed into place)."""
    path = data_dir / SCHEMA_FILE
    text = dump_schema(schema)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    partial = path.with_suffix(".toml.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def open_log(data_dir: Path, settings: LocalSettings) -> SqliteLog:
    """The data directory's durable log, with the settings' bounds."""
    return SqliteLog(
        data_dir / LOG_FILE,
        sync=settings.log_sync,
        max_backlog_records=settings.max_backlog_records,
        max_backlog_bytes=settings.max_backlog_bytes,
    )


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Create ``data_dir`` if needed and lock it for this process (released when the process
    ends, however it ends); :class:`DataDirError` if it cannot be used or is in use."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(f"--data {data_dir} is a file, not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / "serve.lock", "a+")  # noqa: SIM115 (held for the runtime's life)
    except OSError as exc:
        raise DataDirError(f"--data {data_dir}: {exc.strerror or exc}") from None
    if not _try_lock(handle):
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirError(
            f"--data {data_dir} is in use by another iotpipe serve (pid {holder}); stop it or "
            "choose another directory"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    if not os.access(data_dir, os.W_OK):
        handle.close()
        raise DataDirError(f"--data {data_dir}: not writable")
    return handle


def _try_lock(handle: IO[str]) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (documented)
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


# --- the processor ------------------------------------------------------------------------------


class _Processor:
    """No processor: the log only fills (``processor="none"``); a later start applies it."""

    def stop(self) -> None:
        """Nothing to stop."""


def _processor(
    data_dir: Path, pipeline: Pipeline, log_: SqliteLog, settings: LocalSettings
) -> _Processor:
    if settings.processor == "thread":
        return _ThreadProcessor(pipeline, log_, settings)
    if settings.processor == "process":
        return _ChildProcessor(data_dir, settings)
    return _Processor()


class _ThreadProcessor(_Processor):
    """The worker on a thread of this process."""

    def __init__(self, pipeline: Pipeline, log_: SqliteLog, settings: LocalSettings) -> None:
        self._worker = StreamWorker(
            log_, pipeline.processor, batch_size=settings.batch_records, poll_s=0.2
        ).start()

    def stop(self) -> None:
        self._worker.stop(30)


class _ChildProcessor(_Processor):
    """The worker in a child process, restarted if it dies while the runtime runs."""

    def __init__(self, data_dir: Path, settings: LocalSettings) -> None:
        self._command = [
            sys.executable,
            "-m",
            "iotpipe.entrypoints.local_runtime",
            "--data",
            str(data_dir),
            *_child_arguments(settings),
        ]
        self._stopping = threading.Event()
        self._child = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="iotpipe-processor", daemon=True)
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # stdin is the lifeline: the child stops when it reads end-of-file, which happens
        # when this process closes it or dies.
        return subprocess.Popen(self._command, stdin=subprocess.PIPE)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self._child.wait()
            if self._stopping.is_set():
                return
            log.error("the processor exited (status %s); restarting it", code)
            self._stopping.wait(1.0)
            if not self._stopping.is_set():
                self._child = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        child = self._child
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _child_arguments(settings: LocalSettings) -> list[str]:
    lateness = settings.lateness
    return [
        "--batch-records",
        str(settings.batch_records),
        "--log-sync",
        settings.log_sync,
        "--horizon-ms",
        _ms(lateness.horizon),
        "--max-skew-ms",
        _ms(lateness.max_skew),
        "--log-level",
        settings.processor_log_level,
    ]


def _ms(delta: timedelta | None) -> str:
    return "none" if delta is None else str(delta // timedelta(milliseconds=1))


def _delta(text: str) -> timedelta | None:
    return None if text == "none" else timedelta(milliseconds=int(text))


def run_processor(
    data_dir: Path, settings: LocalSettings, stop: threading.Event | None = None
) -> None:
    """Process the data directory's log into its store until ``stop`` is set (the child's
    body). Waits for a processor still running on the directory to exit first."""
    stop = stop or threading.Event()
    with _processor_lock(data_dir, stop):
        if stop.is_set():
            return
        log_ = open_log(data_dir, settings)
        # The same composition as the server's (bootstrap.local_pipeline), over the same log,
        # with the schema the server kept in the directory (or the one given).
        declared = settings.schema or kept_schema(data_dir)
        pipeline = local_pipeline(
            data_dir, lateness=settings.lateness, stream=log_, schema=declared
        )
        worker = StreamWorker(
            log_, pipeline.processor, batch_size=settings.batch_records, poll_s=0.2
        )
        threading.Thread(target=_stop_when, args=(stop, worker), daemon=True).start()
        reporter = threading.Thread(target=_report_status, args=(log_, stop), daemon=True)
        reporter.start()
        try:
            worker.run()
        finally:
            pipeline.close()


def _stop_when(stop: threading.Event, worker: StreamWorker) -> None:
    stop.wait()
    worker.stop(0)


class _processor_lock:  # noqa: N801 (a context manager used like a function)
    """Hold ``processor.lock``; a predecessor whose parent died is still finishing its batch."""

    def __init__(self, data_dir: Path, stop: threading.Event) -> None:
        self._handle = open(data_dir / "processor.lock", "a+")  # noqa: SIM115
        self._stop = stop

    def __enter__(self) -> None:
        while not _try_lock(self._handle) and not self._stop.wait(0.1):
            pass

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _report_status(log_: SqliteLog, stop: threading.Event, every_s: float = 10.0) -> None:
    """A ``stream status`` line every ``every_s`` while something waits (or just drained)."""
    clock = SystemClock()
    last: int | None = None
    while not stop.wait(every_s):
        status = log_.status()
        if status.backlog_records or last:
            log.info("stream status", extra={"report": status.as_json(clock.now_ms())})
        last = status.backlog_records


# --- logging ------------------------------------------------------------------------------------


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's ``report``.

    Messages that are JSON objects already (the access log) are written as they are.
    """

    converter = time.gmtime  # type: ignore[assignment]  # UTC, as every instant iotpipe writes

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        message = record.getMessage()
        if message.startswith("{"):
            return message
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key in ("url", "data_dir"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        line.update(getattr(record, "report", None) or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Log JSON lines to stderr (unless the application configured logging already)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root.addHandler(handler)
    root.setLevel(level)


# --- the child process ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """The processor process: ``python -m iotpipe.entrypoints.local_runtime --data DIR``."""
    parser = argparse.ArgumentParser(prog="iotpipe-processor")
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-records", type=int, default=DEFAULT_BATCH_RECORDS)
    parser.add_argument("--log-sync", choices=["full", "normal"], default="full")
    parser.add_argument("--horizon-ms", default=_ms(LatenessPolicy().horizon))
    parser.add_argument("--max-skew-ms", default=_ms(LatenessPolicy().max_skew))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings = LocalSettings(
        batch_records=args.batch_records,
        log_sync=args.log_sync,
        lateness=LatenessPolicy(_delta(args.horizon_ms), _delta(args.max_skew_ms)),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # the terminal's Ctrl-C reaches us too
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True).start()
    run_processor(Path(args.data), settings, stop)
    return 0


def _watch_parent(stop: threading.Event) -> None:
    # The parent never writes: read returns end-of-file when it closes the pipe or dies.
    sys.stdin.buffer.read()
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
