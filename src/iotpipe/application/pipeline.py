"""A whole pipeline over chosen adapters: the use cases wired to one set of ports."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import count, islice, repeat

from iotpipe.application.ingest import IngestResult, IngestService
from iotpipe.application.payloads import gc_paused
from iotpipe.application.process import ProcessReport, ProcessService
from iotpipe.application.query import QueryService
from iotpipe.domain import DEFAULT_SCHEMA, LatenessPolicy, TelemetrySchema
from iotpipe.ports import (
    AggregateStore,
    BatchSource,
    Clock,
    CommittableSource,
    Quarantine,
    RawArchive,
    RawBatch,
    RawRecord,
    ReadingStream,
)


class Pipeline:
    """Ingest, process and query over one store, stream, archive, quarantine and clock.

    Readings are of ``schema`` (the default payload unless one is given); the store must
    decode its windows by the same schema.
    """

    def __init__(
        self,
        store: AggregateStore,
        clock: Clock,
        stream: ReadingStream | None = None,
        archive: RawArchive | None = None,
        quarantine: Quarantine | None = None,
        lateness: LatenessPolicy | None = None,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        self.store = store
        self.stream = stream
        self.archive = archive
        self.quarantine = quarantine
        self.schema = schema
        self.processor = ProcessService(store, clock, archive, quarantine, lateness, schema)
        self.query = QueryService(store)
        self._ingest = (
            IngestService(stream, clock, lateness, schema) if stream is not None else None
        )

    def close(self) -> None:
        """Release what the adapters hold (files, connections); the pipeline is done with."""
        for part in (self.stream, self.store, self.archive, self.quarantine):
            close = getattr(part, "close", None)
            if callable(close):
                close()

    def ingest(self, items: list[object]) -> IngestResult:
        """Validate readings and publish the valid ones to the stream."""
        if self._ingest is None:
            raise RuntimeError("this pipeline has no stream to ingest into")
        return self._ingest.ingest(items)

    def process(self, batch: RawBatch) -> ProcessReport:
        """Process one batch as the stream delivered it."""
        return self.processor.process(batch)

    def drain(self, batch_size: int = 500) -> Iterator[ProcessReport]:
        """Process everything waiting on a pollable stream, batch by batch.

        A durable stream's batch is committed once applied; one that left readings unapplied
        stays on it (to be delivered again) and ends the drain.
        """
        stream = self.stream
        if not isinstance(stream, BatchSource):
            raise RuntimeError("this pipeline's stream cannot be polled")
        while (batch := stream.poll(batch_size)) is not None:
            report = self.processor.process(batch)
            yield report
            if isinstance(stream, CommittableSource):
                if report.failed_records:
                    return
                stream.commit(batch)

    def process_payloads(
        self, payloads: Iterable[bytes], *, batch_size: int = 500, source: str = "payloads"
    ) -> Iterator[ProcessReport]:
        """Process raw payloads directly (no stream); record ids are 1-based positions."""
        # Built at C speed (no per-record Python call): a file of payloads is millions of them.
        ids = map(str, count(1))
        records = map(_new, repeat(RawRecord), zip(ids, payloads, repeat(None)))
        return self.process_records(records, batch_size=batch_size, source=source)

    def process_records(
        self, records: Iterable[RawRecord], *, batch_size: int = 500, source: str = "records"
    ) -> Iterator[ProcessReport]:
        """Process records directly (no stream), ``batch_size`` per batch, lazily.

        Batch ids come from ``source`` and the record ids, so the same input gives the same
        batches, and a re-run changes nothing.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        pending = iter(records)
        while True:
            # A batch's records are acyclic, like everything processing it allocates: the
            # cycle collector stays paused while they are gathered, as it does while they are
            # processed, instead of scanning them and promoting them to its old generations.
            with gc_paused():
                batch = tuple(islice(pending, batch_size))
            if not batch:
                return
            yield self.processor.process(_batch(source, batch))


def _batch(source: str, records: tuple[RawRecord, ...]) -> RawBatch:
    return RawBatch(f"{source}-{records[0].record_id}-{records[-1].record_id}", records)


_new = tuple.__new__  # builds records without RawRecord's Python-level __new__
