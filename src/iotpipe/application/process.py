"""The process use case: one batch from the stream into the aggregate store, exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from iotpipe.application.payloads import decode_items, encode_item
from iotpipe.domain import (
    ArchiveUnavailable,
    InvalidReading,
    LatenessPolicy,
    Reading,
    Reason,
    parse_reading,
)
from iotpipe.domain.time import hour_start
from iotpipe.ports import (
    AggregateStore,
    ApplyResult,
    Clock,
    Contribution,
    Quarantine,
    RawArchive,
    RawBatch,
    Rejection,
    WindowKey,
)


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """What processing one batch did.

    Every received reading is accounted for exactly once:
    ``received == accepted + duplicates + sum(rejected.values()) + unapplied``.
    ``failed_records`` are the records to deliver again (a transient failure left some of
    their readings unapplied); retrying them is safe because absorption is idempotent.
    """

    batch_id: str
    records: int
    received: int
    accepted: int
    duplicates: int
    rejected: Mapping[str, int]
    windows_updated: int
    unapplied: int = 0
    failed_records: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=())

    @property
    def conflicts(self) -> int:
        """Readings that repeated a counted identity with other values (not counted)."""
        return self.rejected.get(Reason.CONFLICTING_DUPLICATE.value, 0)


@dataclass(slots=True)
class _Triage:
    """Readings of a batch sorted into windows, and what was refused before the store."""

    windows: dict[WindowKey, list[Reading]] = field(default_factory=dict)
    sources: dict[WindowKey, set[int]] = field(default_factory=dict)
    origin: dict[int, tuple[int, int]] = field(default_factory=dict)  # id(reading) -> place
    rejections: list[Rejection] = field(default_factory=list)
    rejected_records: set[int] = field(default_factory=set)
    received: int = 0


class ProcessService:
    """Decode, validate, archive raw, quarantine rejects, dedupe, aggregate and store a batch."""

    def __init__(
        self,
        store: AggregateStore,
        clock: Clock,
        archive: RawArchive | None = None,
        quarantine: Quarantine | None = None,
        lateness: LatenessPolicy | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._archive = archive
        self._quarantine = quarantine
        self._lateness = lateness or LatenessPolicy()

    def process(self, batch: RawBatch) -> ProcessReport:
        """Process one batch; transient failures are reported as ``failed_records``, not raised."""
        now = self._clock.now_ms()
        partition = batch.arrived_ms() or now
        if self._archive is not None:
            try:
                self._archive.write(batch, partition)
            except ArchiveUnavailable as exc:
                return self._nothing_applied(batch, f"archive: {exc}")
        triage = self._triage(batch, now)
        contributions = [
            Contribution(key[0], key[1], tuple(readings))
            for key, readings in triage.windows.items()
        ]
        result = self._store.apply(contributions)
        rejections = triage.rejections + self._store_rejections(batch, triage, result)
        failed = {i for key in result.failed for i in triage.sources[key]}
        errors = sorted(set(result.failed.values()))
        if rejections and self._quarantine is not None:
            try:
                self._quarantine.put(batch.batch_id, partition, rejections)
            except ArchiveUnavailable as exc:
                failed |= triage.rejected_records
                errors.append(f"quarantine: {exc}")
        return self._report(batch, triage, result, rejections, failed, tuple(errors))

    def _triage(self, batch: RawBatch, now: int) -> _Triage:
        triage = _Triage()
        for position, record in enumerate(batch.records):
            reference = record.arrived_ms if record.arrived_ms is not None else now
            try:
                items = decode_items(record.data)
            except InvalidReading as exc:
                triage.received += 1
                self._reject(triage, position, record.record_id, 0, exc, record.data)
                continue
            for index, item in enumerate(items):
                triage.received += 1
                try:
                    reading = parse_reading(item)
                    late = self._lateness.check(reading.timestamp_ms, reference)
                    if late is not None:
                        raise InvalidReading(late, _lateness_message(late))
                except InvalidReading as exc:
                    self._reject(triage, position, record.record_id, index, exc, encode_item(item))
                    continue
                key = (reading.device_id, hour_start(reading.timestamp_ms))
                triage.windows.setdefault(key, []).append(reading)
                triage.sources.setdefault(key, set()).add(position)
                triage.origin[id(reading)] = (position, index)
        return triage

    @staticmethod
    def _reject(
        triage: _Triage, position: int, record_id: str, index: int, exc: InvalidReading, raw: bytes
    ) -> None:
        triage.rejections.append(Rejection(record_id, index, exc.reason, exc.message, raw))
        triage.rejected_records.add(position)

    @staticmethod
    def _store_rejections(batch: RawBatch, triage: _Triage, result: ApplyResult) -> list[Rejection]:
        found: list[Rejection] = []
        for key, absorption in result.absorbed.items():
            if key in result.failed:
                continue
            for reason, readings in (
                (Reason.CONFLICTING_DUPLICATE, absorption.conflicts),
                (Reason.WINDOW_FULL, absorption.overflow),
            ):
                for reading in readings:
                    position, index = triage.origin[id(reading)]
                    triage.rejected_records.add(position)
                    found.append(
                        Rejection(
                            batch.records[position].record_id,
                            index,
                            reason,
                            _STORE_MESSAGES[reason],
                            encode_item(reading.to_json()),
                        )
                    )
        return found

    @staticmethod
    def _report(
        batch: RawBatch,
        triage: _Triage,
        result: ApplyResult,
        rejections: Sequence[Rejection],
        failed: set[int],
        errors: tuple[str, ...],
    ) -> ProcessReport:
        absorbed = [a for key, a in result.absorbed.items() if key not in result.failed]
        return ProcessReport(
            batch_id=batch.batch_id,
            records=len(batch.records),
            received=triage.received,
            accepted=sum(len(a.new) for a in absorbed),
            duplicates=sum(len(a.duplicates) for a in absorbed),
            rejected=dict(Counter(r.reason.value for r in rejections)),
            windows_updated=len(result.written),
            unapplied=sum(len(triage.windows[key]) for key in result.failed),
            failed_records=tuple(batch.records[i].record_id for i in sorted(failed)),
            errors=errors,
        )

    @staticmethod
    def _nothing_applied(batch: RawBatch, error: str) -> ProcessReport:
        return ProcessReport(
            batch_id=batch.batch_id,
            records=len(batch.records),
            received=0,
            accepted=0,
            duplicates=0,
            rejected={},
            windows_updated=0,
            failed_records=tuple(r.record_id for r in batch.records),
            errors=(error,),
        )


_STORE_MESSAGES = {
    Reason.CONFLICTING_DUPLICATE: "a reading with this device_id and timestamp but other values "
    "was counted already; this one is not counted",
    Reason.WINDOW_FULL: "the device's hourly window holds the maximum number of readings",
}


def _lateness_message(reason: Reason) -> str:
    if reason is Reason.TOO_LATE:
        return "timestamp is older than the lateness horizon"
    return "timestamp is ahead of the arrival time by more than the allowed clock skew"
