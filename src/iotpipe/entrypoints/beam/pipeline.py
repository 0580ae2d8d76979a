"""The replay pipeline on Apache Beam: list, read and triage, combine per window, write.

::

    day patterns -> ListObjects -> Reshuffle -> ReadAndTriage --(bad files)--> report text files
                                                    |  \\--(rejections)--> quarantine (live code)
                                                    v
                     ((device, hour), (object name, readings)) -> CombinePerKey(ReplayCombine)
                                                    v
                          WriteWindows (store port, bundles) -> refused readings
                                                    v
                          GroupByKey(object name) -> QuarantineRefused

Every step is idempotent, so a retried bundle changes nothing: triage rewrites the same
quarantine object, absorption ignores identities a window holds, and the refused readings are
merged into their batch's quarantine object without repeats. Counts are Beam counters in the
``iotpipe`` namespace; :func:`run` sums them into a :class:`BeamReplayReport`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from iotpipe.adapters.buckets import BucketQuarantine
from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.local import FileQuarantine
from iotpipe.application.codecs import archive as fmt
from iotpipe.domain import Reading
from iotpipe.ports import Quarantine, RawBatch, Rejection, WindowKey

from . import archive
from .combine import Copy, Packed, WindowReadings, merge, pack
from .job import ReplayJob
from .writing import Written, merged, rejections_for, write_windows

NAMESPACE = "iotpipe"
WORKERS = "iotpipe.workers"
#: Windows per store round trip (one ``AggregateStore.apply``: one batched load, and the
#: writes of a round together where the backend can, as SQLite in one transaction).
WINDOWS_PER_WRITE = 500

log = logging.getLogger("iotpipe.beam")
_GZIP = "application/gzip"
_AS_STORED = CompressionTypes.UNCOMPRESSED  # Beam would otherwise unpack .gz on the way


def _options(job: ReplayJob) -> PipelineOptions:
    """The job's Beam options (the file systems' settings: S3 endpoint, GCP project...)."""
    return PipelineOptions(list(job.flags))


# --- file systems -----------------------------------------------------------------------------


def _is_local(location: str) -> bool:
    return "://" not in location


class BeamBucket:
    """An :class:`iotpipe.ports.Bucket` on Beam's file systems: objects under a root
    (``s3://bucket/prefix``, ``gs://bucket/prefix`` or a directory), reached with the options
    the pipeline gives (``--s3_endpoint_url``...)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def path(self, name: str) -> str:
        """The full path of an object."""
        return f"{self.root}/{name}"

    def put(self, name: str, body: bytes) -> None:
        """Write the object whole (object stores replace it in one step)."""
        with FileSystems.create(self.path(name), _GZIP, _AS_STORED) as out:
            out.write(body)

    def get(self, name: str) -> bytes:
        """The object's bytes, as stored (never decompressed on the way)."""
        with FileSystems.open(self.path(name), _GZIP, _AS_STORED) as f:
            data: bytes = f.read()
        return data

    def names(self, under: str) -> list[str]:
        """Names of the objects whose names start with ``under``, in name order."""
        [found] = FileSystems.match([self.path(under) + "**"])
        return sorted(archive.relative(self.root, m.path) for m in found.metadata_list)

    def exists(self, name: str) -> bool:
        """Whether the object exists."""
        return bool(FileSystems.exists(self.path(name)))


def open_quarantine(location: str) -> Quarantine:
    """The quarantine at ``location``: a directory (written atomically, as the local runtime
    does) or a bucket root on Beam's file systems."""
    if _is_local(location):
        return FileQuarantine(location)
    return BucketQuarantine(BeamBucket(location))


# --- the transforms ---------------------------------------------------------------------------


class ListObjects(beam.DoFn):  # type: ignore[misc]
    """Glob pattern -> the names of the raw objects it matches inside the time range."""

    def __init__(self, job: ReplayJob) -> None:
        self._job = job

    def setup(self) -> None:
        FileSystems.set_options(_options(self._job))

    def process(self, pattern: str) -> Iterator[str]:
        [found] = FileSystems.match([pattern])
        root, start, end = self._job.archive, self._job.start_ms, self._job.end_ms
        for metadata in found.metadata_list:
            name = archive.relative(root, metadata.path)
            if archive.in_range(name, start, end):
                yield name


class ReadAndTriage(beam.DoFn):  # type: ignore[misc]
    """Archive object name -> its readings per window, as ``(key, (name, readings))``.

    The batch goes through the live path's processing (:class:`.triage.BatchTriage`), which
    quarantines its rejections. A bad object is reported on the ``bad`` output, and whatever
    could be read of it is still processed.
    """

    BAD = "bad"

    def __init__(self, job: ReplayJob) -> None:
        self._job = job

    def setup(self) -> None:
        from .triage import BatchTriage

        FileSystems.set_options(_options(self._job))
        self._archive = BeamBucket(self._job.archive)
        quarantine = open_quarantine(self._job.quarantine)
        self._triage = BatchTriage(SystemClock(), quarantine, self._job.schema)
        # One counter per worker process: the report says how many really took part.
        self._worker = Metrics.counter(WORKERS, f"{socket.gethostname()}:{os.getpid()}")

    def process(self, name: str) -> Iterator[Any]:
        try:
            body = self._archive.get(name)
        except Exception as exc:  # a missing or unreadable object is a bad file
            bad: archive.BadFile | None = archive.BadFile(name, f"cannot read: {exc}", 0, True)
            batch = RawBatch(fmt.batch_id_of(name), ())
        else:
            batch, bad = archive.read_batch(name, body)
        if bad is not None:
            log.warning("iotpipe replay: bad archive object %s", bad.describe())
            _count("bad_files")
            _count("unread_records", bad.unread)
            _count("bad_files_cut_short", int(bad.rest_lost))
            yield beam.pvalue.TaggedOutput(self.BAD, bad.describe())
        report, offered = self._triage.run(batch)
        if report.failed_records:  # the quarantine could not be written: retry the bundle
            raise OSError(f"{name}: {'; '.join(report.errors)}")
        self._worker.inc()
        _count("batches")
        _count("records", report.records)
        _count("received", report.received)
        _count("duplicates", report.duplicates)
        for reason, n in report.rejected.items():
            _count(f"rejected.{reason}", n)
        for key, readings in offered:
            yield key, (name, pack(readings))


class ReplayCombine(beam.CombineFn):  # type: ignore[misc]
    """The window's readings from every batch, each identity once (:mod:`.combine`)."""

    def create_accumulator(self) -> WindowReadings:
        return WindowReadings()

    def add_input(self, accumulator: WindowReadings, element: tuple[str, Packed]) -> WindowReadings:
        name, packed = element
        return accumulator.add(name, packed)

    def merge_accumulators(self, accumulators: Iterable[WindowReadings]) -> WindowReadings:
        return merge(accumulators)

    def extract_output(self, accumulator: WindowReadings) -> list[Copy]:
        return accumulator.offered()


class WriteWindows(beam.DoFn):  # type: ignore[misc]
    """``(key, copies)`` -> the store, :data:`WINDOWS_PER_WRITE` windows per round trip; emits
    the readings the store refused, keyed by the archive object they came from."""

    def __init__(self, job: ReplayJob) -> None:
        self._job = job

    def setup(self) -> None:
        self._store, self._close = self._job.store.open(self._job.schema)

    def start_bundle(self) -> None:
        self._buffer: list[tuple[WindowKey, Sequence[Copy]]] = []

    def process(self, element: tuple[WindowKey, Sequence[Copy]]) -> Iterator[Any]:
        self._buffer.append(element)
        if len(self._buffer) >= WINDOWS_PER_WRITE:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        for refused in self._flush():
            yield WindowedValue(refused, MIN_TIMESTAMP, [GlobalWindow()])

    def teardown(self) -> None:
        self._close()

    def _flush(self) -> list[Any]:
        if not self._buffer:
            return []
        done: Written = write_windows(self._store, self._buffer)
        self._buffer = []
        for counter, n in (
            ("windows", done.windows),
            ("windows_written", done.written),
            ("counted", done.counted),
            ("duplicates", done.duplicates),
            ("store_writes", done.store_writes),
            ("store_rounds", done.attempts),
        ):
            _count(counter, n)
        for reason, n in done.reasons.items():
            _count(f"rejected.{reason}", n)
        return list(done.refused)


class QuarantineRefused(beam.DoFn):  # type: ignore[misc]
    """``(object name, refused readings)`` -> merged into that batch's quarantine object, with
    their record ids and item indexes found in the raw object."""

    def __init__(self, job: ReplayJob) -> None:
        self._job = job

    def setup(self) -> None:
        FileSystems.set_options(_options(self._job))
        self._archive = BeamBucket(self._job.archive)
        self._quarantine = BeamBucket(self._job.quarantine)

    def process(self, element: tuple[str, Iterable[tuple[str, Reading, int]]]) -> None:
        name, refused = element
        batch, _ = archive.read_batch(name, self._archive.get(name))
        hour = archive.partition_hour(name)
        partition = batch.arrived_ms() or hour or 0
        target = fmt.object_name(fmt.REJECTED, partition, batch.batch_id)
        held: list[Rejection] = []
        if self._quarantine.exists(target):
            held = fmt.decode_rejections(self._quarantine.get(target))
        added = rejections_for(batch, list(refused), self._job.schema)
        open_quarantine(self._job.quarantine).put(batch.batch_id, partition, merged(held, added))


def _count(name: str, n: int = 1) -> None:
    if n:
        Metrics.counter(NAMESPACE, name).inc(n)


# --- the pipeline -----------------------------------------------------------------------------


def build(pipeline: beam.Pipeline, job: ReplayJob) -> None:
    """Add the replay's transforms to ``pipeline``."""
    patterns = archive.patterns(job.archive, job.start_ms, job.end_ms)
    triaged = (
        pipeline
        | "Day patterns" >> beam.Create(patterns)
        | "List objects" >> beam.ParDo(ListObjects(job))
        | "Spread objects" >> beam.Reshuffle()
        | "Read and triage"
        >> beam.ParDo(ReadAndTriage(job)).with_outputs(ReadAndTriage.BAD, main="windows")
    )
    _ = triaged[ReadAndTriage.BAD] | "Report bad objects" >> beam.io.WriteToText(
        job.report, shard_name_template="-SSSSS-of-NNNNN", num_shards=1
    )
    _ = (
        triaged.windows
        | "Combine per window" >> beam.CombinePerKey(ReplayCombine())
        | "Write windows" >> beam.ParDo(WriteWindows(job))
        | "Refused by object" >> beam.GroupByKey()
        | "Quarantine refused" >> beam.ParDo(QuarantineRefused(job))
    )


@dataclass(frozen=True, slots=True)
class BeamReplayReport:
    """What a Beam replay did, from the pipeline's counters."""

    runner: str
    state: str
    counters: dict[str, int]
    workers: int
    bad_files: tuple[str, ...]

    def get(self, name: str) -> int:
        """One counter (0 if never incremented)."""
        return self.counters.get(name, 0)

    @property
    def rejected(self) -> dict[str, int]:
        """Rejected readings by reason."""
        return {
            k.removeprefix("rejected."): v
            for k, v in sorted(self.counters.items())
            if k.startswith("rejected.")
        }

    @property
    def ok(self) -> bool:
        """Whether every archive object was read whole and the job finished."""
        return self.state == "DONE" and not self.get("bad_files")


def run(job: ReplayJob, runner: str) -> BeamReplayReport:
    """Run the replay on ``runner`` (a Beam runner name) and wait for it to finish."""
    options = _options(job)
    FileSystems.set_options(options)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline, job)
    result = pipeline.run()
    state = str(result.wait_until_finish())
    counters, workers = _counters(result)
    return BeamReplayReport(runner, state, counters, workers, tuple(_bad_files(job.report)))


def _counters(result: Any) -> tuple[dict[str, int], int]:
    """The iotpipe counters (committed where the runner supports it) and how many worker
    processes read batches."""
    found: dict[str, int] = {}
    workers = 0
    for metric in result.metrics().query(MetricsFilter())["counters"]:
        value = metric.committed if metric.committed is not None else metric.attempted
        namespace, name = metric.key.metric.namespace, metric.key.metric.name
        if namespace == NAMESPACE:
            found[name] = found.get(name, 0) + int(value)
        elif namespace == WORKERS and value:
            workers += 1
    return found, workers


def _bad_files(report: str) -> list[str]:
    """The lines of the bad-object report files (one per bad object), sorted."""
    [found] = FileSystems.match([report + "*"])
    lines: list[str] = []
    for metadata in found.metadata_list:
        with FileSystems.open(metadata.path, compression_type=_AS_STORED) as f:
            lines += [line for line in f.read().decode().splitlines() if line]
    return sorted(lines)
