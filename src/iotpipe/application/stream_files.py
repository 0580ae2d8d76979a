"""The process use case for a stream file: one archive file, processed chunk by chunk.

On GCP's default path a Pub/Sub Cloud Storage subscription batches the readings messages into
files in the archive bucket (the layout is :mod:`iotpipe.application.codecs.archive`'s), and
each new file is announced to the process function. The file *is* the archive, so its chunks
go through a :class:`ProcessService` built **without** an archive; rejections are quarantined
under the chunk's batch id (``<file name>#c<n>``), so a redelivered file overwrites its own.

Exactness under redelivery comes from the store: a chunk processed again finds its readings
counted already (duplicates, no write), so a file may be delivered any number of times, and
the same message may sit in two files (Pub/Sub delivers at least once) without a reading
counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from iotpipe.application.codecs import archive as fmt
from iotpipe.application.process import ProcessReport, ProcessService, ReportTotals
from iotpipe.domain import ArchiveUnavailable
from iotpipe.ports import ArchiveFiles


@dataclass(frozen=True, slots=True)
class FileReport:
    """What processing one stream file did: a report per chunk, or why there was none.

    ``found`` is false for a file that no longer exists (nothing to do: acknowledge it);
    ``error`` says why the file could not be read now (deliver it again).
    """

    name: str
    found: bool = True
    chunks: tuple[ProcessReport, ...] = ()
    error: str | None = None

    @property
    def redeliver(self) -> bool:
        """Whether the file must be delivered again: unread, or some readings unapplied."""
        return self.error is not None or any(c.failed_records for c in self.chunks)

    @property
    def errors(self) -> tuple[str, ...]:
        """Every distinct error, the read error first."""
        found = [self.error] if self.error else []
        found += [e for chunk in self.chunks for e in chunk.errors]
        return tuple(dict.fromkeys(found))

    def counts(self) -> dict[str, object]:
        """The chunks' counts summed: the one summary line logged per file."""
        totals = ReportTotals.of(self.chunks)
        rejected = totals.rejected_by_reason()
        return {
            "batch_id": self.name,
            "found": self.found,
            "chunks": totals.batches,
            "records": totals.records,
            "received": totals.received,
            "accepted": totals.accepted,
            "duplicates": totals.duplicates,
            "windows_updated": totals.windows_updated,
            "unapplied": totals.unapplied,
            "store_retries": totals.store_retries,
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "failed_chunks": len(totals.failed_batches),
            "failed_records": totals.failed_records,
            "errors": list(self.errors),
        }


class StreamFileService:
    """Read a stream file from the archive and process it in chunks, its lines grouped by
    device (:func:`~iotpipe.application.codecs.archive.decode_stream_file`; ``max_devices``
    and ``max_bytes`` bound a chunk).

    ``processor`` must have no archive (the file is the archive); every chunk is processed,
    even after one fails, so each delivery of a file makes what progress it can.
    """

    def __init__(
        self,
        files: ArchiveFiles,
        processor: ProcessService,
        max_devices: int = fmt.STREAM_CHUNK_DEVICES,
        max_bytes: int = fmt.STREAM_CHUNK_BYTES,
    ) -> None:
        self._files = files
        self._processor = processor
        self._bounds = (max_devices, max_bytes)

    @property
    def processor(self) -> ProcessService:
        """The chunks' process use case (for its store's metering)."""
        return self._processor

    def process(self, name: str, generation: int | None = None) -> FileReport:
        """Process the stream file ``name`` (that ``generation`` of it, if given)."""
        try:
            body = self._files.read_file(name, generation)
        except ArchiveUnavailable as exc:
            return FileReport(name, error=f"archive: {exc}")
        if body is None:
            return FileReport(name, found=False)
        batches = fmt.decode_stream_file(name, body, *self._bounds)
        return FileReport(name, chunks=tuple(self._processor.process(b) for b in batches))
