"""The ``iotpipe`` command line: batch processing, replay, simulation and the local demo."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.local import FileArchive, SqliteStore
from iotpipe.adapters.memory import MemoryStore
from iotpipe.application import ProcessService, ReplayReport, replay, use_schema
from iotpipe.application.process import ReportTotals
from iotpipe.application.views import window_json
from iotpipe.bootstrap import batch_pipeline
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    ArchiveUnavailable,
    InvalidSchema,
    IotPipeError,
    LatenessPolicy,
    SchemaConflict,
    StoreUnavailable,
    TelemetrySchema,
)
from iotpipe.domain.time import MS_PER_HOUR, hour_start, parse_instant
from iotpipe.ports import AggregateStore, RawRecord, Rejection
from iotpipe.simulator import Faults, Fleet

if TYPE_CHECKING:
    from iotpipe.entrypoints.local_runtime import LocalRuntime as LocalRuntimeT
    from iotpipe.entrypoints.local_runtime import LocalSettings as LocalSettingsT


class CliError(Exception):
    """A problem with the command's arguments or inputs, shown as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"iotpipe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


# --- iotpipe process --------------------------------------------------------------------------


def _process(args: argparse.Namespace) -> int:
    declared = _schema(args)
    with ExitStack() as stack:
        # The store and its schema first: neither may fail after the output files truncated.
        store = _open_store(stack, args.store)
        schema = _use_schema(store, declared, args.store)
        source = _open_in(stack, args.input)
        output = _open_out(stack, args.output) if args.output else sys.stdout.buffer
        rejects = _RejectsFile(_open_out(stack, args.rejects)) if args.rejects else None
        pipeline = batch_pipeline(store, quarantine=rejects, schema=declared)
        totals = ReportTotals()
        for report in pipeline.process_records(
            _lines(source), batch_size=args.batch_size, source="cli"
        ):
            totals.add(report)
        # Every window of the store: with a persistent store, all it ever counted.
        for window in pipeline.query.every_window():
            line = orjson.dumps(window_json(window, schema), option=orjson.OPT_APPEND_NEWLINE)
            output.write(line)
        output.flush()
    print(_summary(totals), file=sys.stderr)
    return 1 if totals.unapplied else 0


def _open_store(stack: ExitStack, spec: str) -> AggregateStore:
    """The store named by ``--store``: ``memory``, or ``sqlite:PATH`` (created if missing)."""
    if spec == "memory":
        return MemoryStore()
    kind, colon, path = spec.partition(":")
    if kind != "sqlite" or not colon or not path:
        raise CliError(f"--store must be 'memory' or 'sqlite:PATH', not {spec!r}")
    try:
        store = SqliteStore(path)
    except (IotPipeError, ValueError) as exc:
        raise CliError(f"--store {spec!r}: {exc.__cause__ or exc}") from None
    stack.callback(store.close)
    return store


def _schema(args: argparse.Namespace) -> TelemetrySchema:
    """The schema named by ``--schema`` (the default payload without it)."""
    path = getattr(args, "schema", None)
    if path is None:
        return DEFAULT_SCHEMA
    from iotpipe.adapters.schema_file import load_schema

    try:
        return load_schema(path)
    except InvalidSchema as exc:
        raise CliError(f"--schema {exc}") from None


def _use_schema(store: AggregateStore, declared: TelemetrySchema, spec: str) -> TelemetrySchema:
    """The schema settled against the store's record, or one line saying why not."""
    try:
        return use_schema(store, declared)
    except SchemaConflict as exc:
        raise CliError(f"--schema does not fit --store {spec}: {exc}") from None
    except (StoreUnavailable, InvalidSchema) as exc:
        raise CliError(f"--store {spec}: {exc}") from None


def _lines(source: IO[bytes]) -> Iterator[RawRecord]:
    for number, line in enumerate(source, start=1):
        if line.strip():
            yield RawRecord(str(number), line.rstrip(b"\r\n"))


class _RejectsFile:
    """A quarantine that appends rejections to a JSON lines file, with input line numbers."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink

    def put(self, batch_id: str, partition_ms: int, rejections: Sequence[Rejection]) -> None:
        for r in rejections:
            line = {"line": int(r.record_id), "reason": r.reason.value, "message": r.message}
            if r.index:
                line["index"] = r.index
            self._sink.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


def _summary(totals: ReportTotals) -> str:
    """The one line ``iotpipe process`` prints when it is done."""
    reasons = ", ".join(f"{k} {v}" for k, v in totals.rejected_by_reason().items())
    return (
        f"iotpipe process: {totals.received} readings, {totals.accepted} counted, "
        f"{totals.duplicates} duplicates, {sum(totals.rejected.values())} rejected"
        + (f" ({reasons})" if reasons else "")
        + _unapplied(totals.unapplied, totals.errors)
    )


def _unapplied(count: int, errors: Iterable[str]) -> str:
    # A persistent store can be busy or full: say so, never report a partial run as complete.
    return f"; {count} NOT applied ({'; '.join(errors)}), run again" if count else ""


# --- iotpipe replay ---------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    start, end = _instant(args.start), _instant(args.end)
    if start >= end:
        raise CliError("the time range is empty: --from must be before --to")
    if args.runner:
        return _beam_replay(args, start, end)
    if args.pipeline_options or args.quarantine:
        raise CliError("--quarantine and pipeline options (after --) need --runner")
    if not args.store.startswith("sqlite:"):
        raise CliError("replay needs a persistent store: --store sqlite:PATH")
    archive = _archive_dir(args.archive)
    declared = _schema(args)
    with ExitStack() as stack:
        store = _open_store(stack, args.store)
        schema = _use_schema(store, declared, args.store)
        # A backfill into the store, writing nothing back to the archive it reads.
        processor = ProcessService(
            store, SystemClock(), lateness=LatenessPolicy.backfill(), schema=schema
        )
        try:
            report = replay(FileArchive(archive), processor, start, end)
        except ArchiveUnavailable as exc:
            raise CliError(f"--archive {args.archive}: {exc}") from None
    for damaged in report.unreadable:
        lost = "unknown" if damaged.records_lost is None else str(damaged.records_lost)
        print(
            f"iotpipe replay: skipped {damaged.name}: {damaged.reason} (records lost: {lost})",
            file=sys.stderr,
        )
    print(_replay_summary(report))
    return 0 if report.ok else 1


def _beam_replay(args: argparse.Namespace, start: int, end: int) -> int:
    """The replay on Apache Beam (``iotpipe.entrypoints.beam``; Beam is imported only here)."""
    from iotpipe.entrypoints.beam import command

    try:
        return command.replay(
            runner=args.runner,
            archive=args.archive,
            store=args.store,
            start_ms=start,
            end_ms=end,
            quarantine=args.quarantine,
            pipeline_options=args.pipeline_options,
            schema=args.schema,
        )
    except (command.BeamUnavailable, command.BadReplay) as exc:
        raise CliError(str(exc)) from None


def _archive_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise CliError(f"--archive {text}: not a directory")
    if not (path / "raw").is_dir() and (path / "archive" / "raw").is_dir():
        raise CliError(
            f"--archive {text} holds no raw/ partitions; did you mean {path / 'archive'}?"
        )
    return path


def _replay_summary(report: ReplayReport) -> str:
    rejected = sum(report.rejected.values())
    reasons = ", ".join(f"{k} {v}" for k, v in report.rejected.items())
    return (
        f"iotpipe replay: {report.batches} batches, {report.received} readings, "
        f"{report.accepted} counted, {report.duplicates} duplicates, {rejected} rejected"
        + (f" ({reasons})" if reasons else "")
        + f", {report.windows_updated} windows updated"
        + _unapplied(report.unapplied, report.errors)
        + (f"; {len(report.unreadable)} files unreadable (see above)" if report.unreadable else "")
    )


# --- iotpipe simulate -------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    fleet = Fleet(args.devices, args.interval, args.seed, _schema(args))
    start, end = _time_range(args)
    faults = Faults(
        duplicates=args.duplicates,
        disorder=args.disorder,
        malformed=args.malformed,
        late=args.late,
        skewed=args.skewed,
        skew_s=args.skew,
    )
    lines = fleet.payloads(start, end, faults)
    if args.url:
        return _post(lines, args, total=len(fleet.devices) * ((end - start) // fleet.interval_ms))
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()
    return 0


def _post(lines: Iterator[str], args: argparse.Namespace, total: int) -> int:
    from iotpipe.entrypoints.delivery import Progress, post_payloads

    key = args.api_key or os.environ.get("IOTPIPE_API_KEY")
    progress = Progress(total, "posting")
    report = post_payloads(lines, args.url, key, batch_size=args.post_batch, progress=progress)
    progress.close()
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(report.statuses.items()))
    print(
        f"iotpipe simulate: {report.requests} requests ({statuses}); "
        f"{report.accepted} readings accepted, {report.rejected} rejected, "
        f"{report.failed_requests} requests failed"
        + (f"; waited out a full backlog {report.waits} times" if report.waits else ""),
        file=sys.stderr,
    )
    return 1 if report.failed_requests else 0


def _time_range(args: argparse.Namespace) -> tuple[int, int]:
    end = _instant(args.end) if args.end else hour_start(SystemClock().now_ms())
    start = _instant(args.start) if args.start else end - round(args.hours * MS_PER_HOUR)
    if start >= end:
        raise CliError("the time range is empty: --start must be before --end")
    return start, end


# --- iotpipe serve / demo ---------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from iotpipe.entrypoints.local_runtime import LocalSettings, configure_logging

    configure_logging()
    keys = [*args.api_key, *_env_keys()]
    settings = LocalSettings(
        host=args.host,
        port=args.port,
        keys=keys,
        log_sync=args.log_sync,
        max_backlog_records=args.max_backlog_records,
        max_backlog_bytes=args.max_backlog_bytes,
        processor=args.processor,
        schema=_schema(args) if args.schema else None,
    )
    runtime = _start_runtime(Path(args.data), settings)
    generated = "" if keys else " (generated for this run; set IOTPIPE_API_KEYS to choose)"
    print(
        f"iotpipe serve: {runtime.url}/  data in {args.data}\n"
        f"API key{generated}: {runtime.api_key}\n"
        f"dashboard: {runtime.url}/#key={runtime.api_key}\nCtrl-C stops the server",
        flush=True,
    )
    try:
        with _terminated_as_interrupt():
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        runtime.close()


def _start_runtime(data_dir: Path, settings: LocalSettingsT) -> LocalRuntimeT:
    """Start the local runtime, or raise one line saying why it cannot run."""
    import sqlite3

    from iotpipe.entrypoints.http.server import ServerError
    from iotpipe.entrypoints.local_runtime import DataDirError, LocalRuntime

    try:
        return LocalRuntime.start(data_dir, settings)
    except ModuleNotFoundError as exc:
        if exc.name != "uvicorn":
            raise
        raise CliError("the local server needs uvicorn: pip install 'iotpipe[serve]'") from None
    except (DataDirError, ServerError) as exc:
        raise CliError(str(exc)) from None
    except SchemaConflict as exc:
        raise CliError(f"--schema does not fit the store in --data {data_dir}: {exc}") from None
    except (IotPipeError, sqlite3.Error) as exc:
        raise CliError(f"--data {data_dir}: {exc}") from None


@contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager's stop) stops the server as Ctrl-C does."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _demo(args: argparse.Namespace) -> int:
    from iotpipe.entrypoints.demo import DemoOptions, run_demo

    options = DemoOptions(
        devices=args.devices,
        hours=args.hours,
        interval_s=args.interval,
        seed=args.seed,
        host=args.host,
        port=args.port,
        data_dir=Path(args.data) if args.data else None,
        duration_s=args.duration,
        api_key=args.api_key or next(iter(_env_keys()), None),
        schema=_schema(args) if args.schema else None,
    )
    return run_demo(options, sys.stdout, start=_start_runtime)


def _env_keys() -> list[str]:
    return [k.strip() for k in os.environ.get("IOTPIPE_API_KEYS", "").split(",") if k.strip()]


# --- iotpipe package -------------------------------------------------------------------------


def _package(args: argparse.Namespace) -> int:
    """Build the deployment zips (the builds: ``iotpipe.entrypoints.{aws,gcp}.packaging``)."""
    from iotpipe.entrypoints.aws.packaging import AwsOptions, build_aws, format_report
    from iotpipe.entrypoints.bundling import PackagingError

    if args.target == "gcp":
        return _package_gcp(args)
    options = AwsOptions(
        out=Path(args.out),
        python=args.python,
        arch=args.arch,
        with_boto3=args.with_boto3,
        pinned=not args.latest,
        schema=Path(args.schema) if args.schema else None,
    )
    try:
        report = build_aws(options, log=lambda message: print(message, file=sys.stderr))
    except PackagingError as exc:
        raise CliError(str(exc)) from None
    print(format_report(report))
    for warning in report.warnings:
        print(f"iotpipe package: warning: {warning}", file=sys.stderr)
    return 0


def _package_gcp(args: argparse.Namespace) -> int:
    from iotpipe.entrypoints.aws import packaging
    from iotpipe.entrypoints.bundling import PackagingError
    from iotpipe.entrypoints.gcp import packaging as gcp

    out = gcp.DEFAULT_OUT if args.out == str(packaging.DEFAULT_OUT) else Path(args.out)
    schema = Path(args.schema) if args.schema else None
    try:
        package = gcp.build_gcp(out, pinned=not args.latest, schema=schema)
    except PackagingError as exc:
        raise CliError(str(exc)) from None
    print(gcp.format_report(package))
    return 0


def _package_options(parser: argparse.ArgumentParser) -> None:
    """The ``package`` command's arguments; the defaults are the packaging module's."""
    from iotpipe.entrypoints.aws import packaging

    parser.add_argument(
        "target",
        choices=["aws", "gcp"],
        help="aws: Lambda code zip + dependency layer; gcp: the Cloud Functions source archive",
    )
    parser.add_argument(
        "--out",
        default=str(packaging.DEFAULT_OUT),
        help=f"output directory (default: {packaging.DEFAULT_OUT})",
    )
    parser.add_argument(
        "--python",
        default=packaging.DEFAULT_PYTHON,
        help=f"the Lambda runtime's Python version (default: {packaging.DEFAULT_PYTHON})",
    )
    parser.add_argument(
        "--arch",
        choices=sorted(packaging.PLATFORMS),
        default=packaging.DEFAULT_ARCH,
        help=f"the functions' architecture (default: {packaging.DEFAULT_ARCH}, Graviton)",
    )
    parser.add_argument(
        "--with-boto3",
        action="store_true",
        help="bundle boto3/botocore in the layer (pinned) instead of using the runtime's",
    )
    parser.add_argument(
        "--latest",
        action="store_true",
        help="resolve the newest dependency versions pyproject.toml allows, not those installed",
    )


# --- argument parsing -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotpipe",
        description="Exact, delivery-independent hourly aggregates of IoT readings.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    _add_process(commands)

    _add_replay(commands)

    simulate = commands.add_parser(
        "simulate",
        help="print simulated device readings as JSON lines",
        description="Simulate a fleet deterministically (same seed, same output).",
    )
    _fleet_options(simulate)
    simulate.add_argument(
        "--hours", type=float, default=1.0, help="duration before --end (default: 1)"
    )
    simulate.add_argument("--start", help="first instant, RFC 3339 (default: --end minus --hours)")
    simulate.add_argument(
        "--end", help="end instant, RFC 3339, exclusive (default: this hour's start)"
    )
    simulate.add_argument("--duplicates", type=_rate, default=0.0, help="rate of device resends")
    simulate.add_argument(
        "--disorder", type=_rate, default=0.0, help="rate of out-of-order readings"
    )
    simulate.add_argument("--malformed", type=_rate, default=0.0, help="rate of malformed payloads")
    simulate.add_argument(
        "--late", type=_rate, default=0.0, help="rate of readings delivered after all others"
    )
    simulate.add_argument(
        "--skewed", type=_rate, default=0.0, help="share of devices whose clocks are off"
    )
    simulate.add_argument(
        "--skew", type=_positive_float, default=900.0, help="largest clock error, s (default: 900)"
    )
    simulate.add_argument(
        "--url", help="POST batches to this ingest URL (e.g. http://127.0.0.1:8080/v1/readings)"
    )
    simulate.add_argument("--api-key", help="API key for --url (default: $IOTPIPE_API_KEY)")
    simulate.add_argument(
        "--post-batch", type=_positive, default=500, help="readings per POST (default: 500)"
    )
    _schema_option(simulate, "shape the payloads by this telemetry schema (TOML)")
    simulate.set_defaults(run=_simulate)

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API and dashboard over a local store",
        description="Run the local runtime: POST /v1/readings answers 202 once the readings are "
        "in the durable log under --data; a processor applies the log to the SQLite store there "
        "(resuming after a restart); the API and dashboard are served on --host:--port. Keys "
        "come from --api-key or $IOTPIPE_API_KEYS (comma-separated). Logs JSON lines to stderr.",
    )
    serve.add_argument(
        "--data", default="iotpipe-data", help="data directory (default: ./iotpipe-data)"
    )
    _server_options(serve)
    serve.add_argument(
        "--api-key", action="append", default=[], help="an accepted API key (repeatable)"
    )
    _log_options(serve)
    _schema_option(
        serve,
        "the readings' telemetry schema (TOML), kept in --data for the next start (default: "
        "the one kept there, else the default payload)",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo",
        help="the main job: a simulated fleet through the local runtime, served live",
        description="Simulate a fleet over the last hours (with resends, disorder, late and "
        "malformed readings and skewed clocks), POST it through the local API into the embedded "
        "store, print the dashboard URL, an API key and example curl commands, then keep "
        "streaming live readings until interrupted or --duration has passed.",
    )
    _fleet_options(demo)
    demo.add_argument("--hours", type=_positive, default=24, help="hours of history (default: 24)")
    _server_options(demo)
    demo.add_argument("--data", help="keep the store here (default: a temporary directory)")
    demo.add_argument(
        "--duration", type=_positive_float, help="stop after this many seconds (default: never)"
    )
    demo.add_argument("--api-key", help="the API key to use (default: generated)")
    _schema_option(demo, "simulate and serve readings of this telemetry schema (TOML)")
    demo.set_defaults(run=_demo)

    package = commands.add_parser(
        "package",
        help="build reproducible deployment archives (AWS Lambda zips, GCP functions source)",
        description="aws: build iotpipe-code.zip (the iotpipe package, shared by the ingest, "
        "process and api functions), iotpipe-deps-layer.zip (a Lambda layer with the runtime "
        "dependencies for the target platform; boto3 comes from the Lambda runtime) and "
        "manifest.json into --out (default dist/aws). gcp: build the Cloud Functions source "
        "archive (main.py, a pinned requirements.txt, the package) into dist/gcp. The same "
        "source and environment give byte-identical archives.",
    )
    _package_options(package)
    _schema_option(
        package,
        "the deployment's telemetry schema (TOML), packaged with the code for the functions "
        "to read (default: the default payload)",
    )
    package.set_defaults(run=_package)

    from iotpipe.entrypoints.aws import redrive  # boto3 is imported only when it runs

    redrive.register(commands)
    from iotpipe.entrypoints import migrate  # store SDKs are imported only when it runs

    migrate.register(commands)
    return parser


def _add_process(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``process`` subcommand."""
    process = commands.add_parser(
        "process",
        help="aggregate a JSON lines file of readings into hourly aggregates",
        description="Run the pipeline over INPUT (one JSON reading per line; '-' for stdin) and "
        "write hourly aggregates as JSON lines sorted by device_id and hour. Duplicate lines and "
        "any input order give byte-identical output. No lateness horizon (a backfill).",
    )
    process.add_argument("input", metavar="INPUT", help="JSON lines file, or - for stdin")
    process.add_argument(
        "-o", "--output", metavar="FILE", help="write aggregates here (default: stdout)"
    )
    process.add_argument("--rejects", metavar="FILE", help="write rejected lines with reasons here")
    process.add_argument(
        "--batch-size", type=_positive, default=5000, help="lines per batch (default: 5000)"
    )
    process.add_argument(
        "--store",
        metavar="STORE",
        default="memory",
        help="'memory' (default) or 'sqlite:PATH': aggregate into an SQLite file, created if "
        "missing, and write every window it holds (runs accumulate, each reading counted once)",
    )
    _schema_option(process)
    process.set_defaults(run=_process)


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``replay`` command: one process by default, Apache Beam with ``--runner``."""
    replay_ = commands.add_parser(
        "replay",
        help="process archived raw batches again into a store (a backfill; idempotent)",
        description="Re-process the raw batches archived under DIR whose partition hour lies in "
        "[--from, --to) into the store. Readings already counted change nothing, so replaying "
        "twice is harmless. Prints a one-line summary.",
    )
    replay_.add_argument(
        "--archive", metavar="DIR", required=True, help="archive directory (holding raw/)"
    )
    replay_.add_argument("--store", metavar="sqlite:PATH", required=True, help="the store")
    replay_.add_argument(
        "--from", dest="start", metavar="RFC3339", required=True, help="first hour (inclusive)"
    )
    replay_.add_argument(
        "--to", dest="end", metavar="RFC3339", required=True, help="end (exclusive)"
    )
    replay_.add_argument(
        "--runner",
        choices=["direct", "dataflow", "flink", "spark"],
        help="run on Apache Beam (pip install 'iotpipe[beam]'): DIR may then be s3://BUCKET or "
        "gs://BUCKET and the store dynamodb:TABLE or firestore:PROJECT (default: one process)",
    )
    replay_.add_argument(
        "--quarantine",
        metavar="LOCATION",
        help="with --runner: where rejected readings go (default: the archive, under rejected/)",
    )
    replay_.add_argument(
        "pipeline_options",
        nargs="*",
        metavar="-- PIPELINE_OPTION",
        help="with --runner: Beam pipeline options after --, e.g. -- --project=P --region=R",
    )
    _schema_option(replay_, "the archived readings' telemetry schema (TOML)")
    replay_.set_defaults(run=_replay)


def _schema_option(
    parser: argparse.ArgumentParser,
    text: str = "the readings' telemetry schema (TOML; default: the default payload, "
    "device_id, timestamp, temperature, humidity, location)",
) -> None:
    parser.add_argument("--schema", metavar="SCHEMA.toml", help=text)


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)"
    )


def _log_options(parser: argparse.ArgumentParser) -> None:
    from iotpipe.adapters.local.log import DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_MAX_BACKLOG_RECORDS

    parser.add_argument(
        "--log-sync",
        choices=["full", "normal"],
        default="full",
        help="full (default): a 202 waits for fsync, surviving a power cut; normal: it waits "
        "for the write to the OS, surviving a crash of iotpipe but not of the machine",
    )
    parser.add_argument(
        "--max-backlog-records",
        type=_positive,
        default=DEFAULT_MAX_BACKLOG_RECORDS,
        help="records waiting to be processed beyond which ingest answers 503 with Retry-After "
        f"(default: {DEFAULT_MAX_BACKLOG_RECORDS:,}; a record is one request's valid "
        "readings)",
    )
    parser.add_argument(
        "--max-backlog-bytes",
        type=_positive,
        default=DEFAULT_MAX_BACKLOG_BYTES,
        help=f"the same bound in bytes (default: {DEFAULT_MAX_BACKLOG_BYTES:,}, 64 MiB)",
    )
    parser.add_argument(
        "--processor",
        choices=["process", "thread", "none"],
        default="process",
        help="process (default): the processor runs in a child process, on another core; "
        "thread: everything in one process; none: only fill the log (a later start applies it)",
    )


def _fleet_options(
    parser: argparse.ArgumentParser, devices: int = 20, interval: float = 60.0
) -> None:
    parser.add_argument(
        "--devices", type=_positive, default=devices, help=f"number of devices (default: {devices})"
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=interval,
        help=f"seconds between readings (default: {interval:g})",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")


def _open_in(stack: ExitStack, path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return stack.enter_context(open(path, "rb"))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _open_out(stack: ExitStack, path: str) -> IO[bytes]:
    try:
        return stack.enter_context(open(path, "wb"))
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _instant(text: str) -> int:
    try:
        return parse_instant(text)
    except ValueError:
        raise CliError(f"not an RFC 3339 instant with an offset: {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1: {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
