"""A background worker that feeds a pollable stream to the process use case, batch by batch.

This is the local runtime's stand-in for the platform's stream trigger (Lambda's Kinesis event
source mapping, Eventarc's Pub/Sub push): poll, process, and redeliver what failed. Like those
triggers it never drops a batch: a batch the processor reports failures for is processed again,
whole and under the same id (so its archive file is rewritten with the same records), with
capped exponential backoff, until it succeeds or the worker is stopped. A durable source's
batch is committed only after that, so a crash at any instant re-delivers at most the batch in
hand, which exactness makes harmless.

Batches are as large as what is waiting, up to ``batch_size`` records: small when the worker
keeps up (fresh results), large when a backlog builds up, which amortises the per-window cost
of a store round over more readings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from iotpipe.application.process import ProcessReport, ProcessService
from iotpipe.ports import BatchSource, CommittableSource, RawBatch

log = logging.getLogger("iotpipe.worker")


class StreamWorker:
    """Polls ``source`` and processes each batch on a daemon thread until stopped."""

    def __init__(
        self,
        source: BatchSource,
        processor: ProcessService,
        *,
        batch_size: int = 500,
        poll_s: float = 0.2,
        max_backoff_s: float = 5.0,
        on_report: Callable[[ProcessReport], None] | None = None,
    ) -> None:
        self._source = source
        self._processor = processor
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._max_backoff_s = max_backoff_s
        self._on_report = on_report
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Polls are numbered; wait_idle waits for an empty poll that began after it was called.
        self._changed = threading.Condition()
        self._polls = 0
        self._last_empty_poll = 0

    def start(self) -> StreamWorker:
        """Start the background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="iotpipe-worker", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the batch in hand; waits up to ``timeout_s``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until everything published before this call is processed; ``False`` on timeout."""
        with self._changed:
            target = self._polls + 1
            return self._changed.wait_for(lambda: self._last_empty_poll >= target, timeout_s)

    def run(self) -> None:
        """Poll and process until :meth:`stop` (the thread's body; callable in the foreground)."""
        while not self._stop.is_set():
            with self._changed:
                self._polls += 1
                number = self._polls
            batch = self._source.poll(self._batch_size, timeout_s=self._poll_s)
            if batch is None:
                with self._changed:
                    self._last_empty_poll = number
                    self._changed.notify_all()
                continue
            if self._process_until_done(batch) and isinstance(self._source, CommittableSource):
                self._source.commit(batch)

    def _process_until_done(self, batch: RawBatch) -> bool:
        """Process the batch until nothing failed; ``False`` if stopped before that."""
        delay = 0.05
        while not self._stop.is_set():
            started = time.perf_counter()
            report = self._processor.process(batch)
            self._emit(report, time.perf_counter() - started)
            if not report.failed_records:
                return True
            # The whole batch again, not only its failed records: the same id must archive
            # the same records, and what was applied already counts as duplicates.
            self._stop.wait(delay)
            delay = min(self._max_backoff_s, delay * 2)
        return False

    def _emit(self, report: ProcessReport, seconds: float) -> None:
        level = logging.WARNING if report.failed_records else logging.INFO
        counts = {**report.counts(), "duration_ms": round(seconds * 1000, 1)}
        log.log(level, "batch processed", extra={"report": counts})
        if self._on_report is not None:
            self._on_report(report)
