"""``iotpipe replay --runner ...``: the Beam replay's command line (``iotpipe.entrypoints.cli``
calls it).

Pipeline options after ``--`` go to Beam unchanged (``--project``, ``--region``,
``--temp_location``, ``--flink_master``, ``--s3_endpoint_url``...). On the DirectRunner the
replay uses every core in separate processes unless told otherwise
(``--direct_num_workers``, ``--direct_running_mode``).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from iotpipe.domain import (
    DEFAULT_SCHEMA,
    InvalidSchema,
    IotPipeError,
    SchemaConflict,
    TelemetrySchema,
)

from .job import ReplayJob
from .stores import BadStoreSpec, StoreSpec

if TYPE_CHECKING:
    from .pipeline import BeamReplayReport

RUNNERS = {
    "direct": "DirectRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
}


class BeamUnavailable(RuntimeError):
    """Apache Beam is not installed (``pip install 'iotpipe[beam]'``)."""


class BadReplay(ValueError):
    """The replay's arguments cannot work together (one line, for the command line)."""


def replay(
    *,
    runner: str,
    archive: str,
    store: str,
    start_ms: int,
    end_ms: int,
    quarantine: str | None = None,
    report: str | None = None,
    pipeline_options: Sequence[str] = (),
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    schema: str | None = None,
) -> int:
    """Run the Beam replay; print its summary (and each bad archive object); the exit status
    (0: everything read and written; 1: some archive objects could not be read whole, or the
    job failed: running it again is safe). ``schema`` is the path of the archived readings'
    telemetry schema (TOML; the default payload without it)."""
    declared = _schema(schema)
    job = ReplayJob(
        archive=_archive(archive),
        store=_store(store, runner, declared),
        quarantine=_location(quarantine or archive, "--quarantine", create=True),
        report=report or _default_report(quarantine or archive),
        start_ms=start_ms,
        end_ms=end_ms,
        flags=tuple(_flags(runner, pipeline_options)),
        schema=declared,
    )
    try:
        from . import pipeline
    except ImportError as exc:
        raise BeamUnavailable(
            f"--runner {runner} needs Apache Beam: pip install 'iotpipe[beam]' ({exc})"
        ) from None
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # Beam's INFO is per bundle
    try:
        done = pipeline.run(job, RUNNERS[runner])
    except Exception as exc:  # the job failed on a worker: one line, not the runner's traceback
        print(f"iotpipe replay: the {RUNNERS[runner]} job failed: {_last_line(exc)}", file=err)
        return 1
    for line in done.bad_files:
        print(f"iotpipe replay: skipped {line}", file=err)
    print(summary(done), file=out)
    return 0 if done.ok else 1


def summary(done: BeamReplayReport) -> str:
    """The one-line summary, worded like ``iotpipe replay``'s, plus what Beam adds."""
    rejected = done.rejected
    reasons = ", ".join(f"{k} {v}" for k, v in rejected.items())
    line = (
        f"iotpipe replay ({done.runner}, {done.workers} worker processes): "
        f"{done.get('batches')} batches, {done.get('received')} readings, "
        f"{done.get('counted')} counted, {done.get('duplicates')} duplicates, "
        f"{sum(rejected.values())} rejected"
        + (f" ({reasons})" if reasons else "")
        + f", {done.get('windows_written')} windows updated"
        + f", {done.get('store_writes')} store writes"
    )
    if done.get("bad_files"):
        cut = done.get("bad_files_cut_short")
        line += (
            f"; {done.get('bad_files')} archive objects NOT read whole "
            f"({done.get('unread_records')} records unreadable"
            + (f", {cut} cut short" if cut else "")
            + "; see above)"
        )
    if done.state != "DONE":
        line += f"; the job ended {done.state}"
    return line


def _archive(text: str) -> str:
    """The archive's root; a local data directory (``iotpipe serve --data``) is refused with
    the archive it holds named, as ``iotpipe replay`` does."""
    root = _location(text, "--archive")
    path = Path(root)
    if "://" not in root and not (path / "raw").is_dir() and (path / "archive" / "raw").is_dir():
        raise BadReplay(
            f"--archive {text} holds no raw/ partitions; did you mean {path / 'archive'}?"
        )
    return root


def _last_line(exc: Exception) -> str:
    """What went wrong, from a runner's error (often a whole worker traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _location(text: str, option: str, *, create: bool = False) -> str:
    """A local directory made absolute (workers may start elsewhere); URLs unchanged."""
    if "://" in text:
        return text.rstrip("/")
    path = Path(text)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadReplay(f"{option} {text}: {exc.strerror}") from None
    if not path.is_dir():
        raise BadReplay(f"{option} {text}: not a directory")
    return str(path.resolve())


def _schema(path: str | None) -> TelemetrySchema:
    if path is None:
        return DEFAULT_SCHEMA
    from iotpipe.adapters.schema_file import load_schema

    try:
        return load_schema(path)
    except InvalidSchema as exc:
        raise BadReplay(f"--schema {exc}") from None


def _store(text: str, runner: str, schema: TelemetrySchema = DEFAULT_SCHEMA) -> StoreSpec:
    try:
        spec = StoreSpec.parse(text)
    except BadStoreSpec as exc:
        raise BadReplay(str(exc)) from None
    if spec.local_only and runner != "direct":
        raise BadReplay(
            f"--store {text}: an SQLite file is reachable only from this machine; "
            f"--runner {runner} needs dynamodb:TABLE or firestore:PROJECT"
        )
    if spec.local_only:  # open it once here: a bad path or an unsafe schema fails now, not on
        try:  # every worker (a cloud store's workers check the schema as they start)
            _, close = spec.open(schema)
        except SchemaConflict as exc:
            raise BadReplay(f"--schema does not fit --store {text}: {exc}") from None
        except (IotPipeError, ValueError) as exc:
            raise BadReplay(f"--store {text}: {exc.__cause__ or exc}") from None
        close()
    return spec


def _default_report(quarantine: str) -> str:
    """Where workers write the bad-object report: beside the quarantine, one folder per run."""
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    return f"{_location(quarantine, '--quarantine')}/replay-reports/{stamp}/bad-objects"


def _flags(runner: str, given: Sequence[str]) -> list[str]:
    """The pipeline options: the given ones, and on the DirectRunner real parallelism."""
    flags = list(given)
    if runner == "direct":
        if not any(f.startswith("--direct_running_mode") for f in flags):
            flags.append("--direct_running_mode=multi_processing")
        if not any(f.startswith("--direct_num_workers") for f in flags):
            flags.append(f"--direct_num_workers={os.cpu_count() or 1}")
        if not any(f.startswith("--default_sdk_harness_log_level") for f in flags):
            flags.append("--default_sdk_harness_log_level=ERROR")  # Beam's own notices
    return flags
