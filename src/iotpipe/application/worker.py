"""A background worker that feeds a pollable stream to the process use case, batch by batch.

This is the local runtime's stand-in for the platform's stream trigger (Lambda's Kinesis event
source mapping, Eventarc's Pub/Sub push): poll, process, and redeliver what failed. Like those
triggers it never drops a batch: records the processor reports as failed are processed again,
with capped exponential backoff, until they succeed or the worker is stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from iotpipe.application.process import ProcessReport, ProcessService
from iotpipe.ports import BatchSource, RawBatch

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
            self._thread = threading.Thread(target=self._run, name="iotpipe-worker", daemon=True)
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

    def _run(self) -> None:
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
            self._process_until_done(batch)

    def _process_until_done(self, batch: RawBatch) -> None:
        delay = 0.05
        while not self._stop.is_set():
            report = self._processor.process(batch)
            self._emit(report)
            if not report.failed_records:
                return
            # Redeliver only what failed, as Lambda does from the first failed record.
            failed = set(report.failed_records)
            batch = replace(batch, records=tuple(r for r in batch.records if r.record_id in failed))
            self._stop.wait(delay)
            delay = min(self._max_backoff_s, delay * 2)

    def _emit(self, report: ProcessReport) -> None:
        level = logging.WARNING if report.failed_records else logging.INFO
        log.log(level, "batch processed", extra={"report": report.counts()})
        if self._on_report is not None:
            self._on_report(report)
