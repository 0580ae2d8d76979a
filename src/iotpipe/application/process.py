"""The process use case: one batch from the stream into the aggregate store, exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from iotpipe.application.payloads import decode_items, encode_item, gc_paused
from iotpipe.domain import (
    ArchiveUnavailable,
    InvalidReading,
    LatenessPolicy,
    Reading,
    Reason,
    decode_readings,
    parse_reading,
)
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import (
    AggregateStore,
    ApplyResult,
    Clock,
    Contribution,
    Quarantine,
    RawArchive,
    RawBatch,
    RawRecord,
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
    ``windows_updated`` (written) never exceeds ``windows_touched`` (distinct windows in the
    batch): store writes scale with windows, not readings.
    """

    batch_id: str
    records: int
    received: int
    accepted: int
    duplicates: int
    rejected: Mapping[str, int]
    windows_updated: int
    windows_touched: int = 0
    unapplied: int = 0
    newest_ms: int | None = None
    store_retries: int = 0
    failed_records: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, object]:
        """The report as flat counts: the one summary line every runtime logs per batch."""
        return {
            "batch_id": self.batch_id,
            "records": self.records,
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "windows_updated": self.windows_updated,
            "unapplied": self.unapplied,
            "failed_records": len(self.failed_records),
            "store_retries": self.store_retries,
            "errors": list(self.errors),
        }

    @property
    def conflicts(self) -> int:
        """Readings that repeated a counted identity with other values (not counted)."""
        return self.rejected.get(Reason.CONFLICTING_DUPLICATE.value, 0)


@dataclass(slots=True)
class _Triage:
    """Readings of a batch sorted into windows, and what was refused before the store."""

    windows: dict[WindowKey, list[Reading]] = field(default_factory=dict)
    places: list[tuple[Reading, int, int]] = field(default_factory=list)  # (reading, record, item)
    rejections: list[Rejection] = field(default_factory=list)
    rejected_records: set[int] = field(default_factory=set)
    received: int = 0

    def origin(self) -> dict[int, tuple[int, int]]:
        """``id(reading)`` -> (record position, item index); built only when needed."""
        return {id(reading): (record, item) for reading, record, item in self.places}

    def records_of(self, keys: Collection[WindowKey]) -> set[int]:
        """Positions of the records that contributed to these windows."""
        if not keys:
            return set()
        return {
            record
            for reading, record, _ in self.places
            if (reading.device_id, reading.hour_ms) in keys
        }


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
        with gc_paused():
            return self._process(batch)

    def _process(self, batch: RawBatch) -> ProcessReport:
        now = self._clock.now_ms()
        partition = batch.arrived_ms() or now
        if self._archive is not None:
            try:
                self._archive.write(batch, partition)
            except ArchiveUnavailable as exc:
                return self._nothing_applied(batch, f"archive: {exc}")
        triage = self._triage(batch, now)
        contributions = [
            Contribution(key[0], key[1], readings) for key, readings in triage.windows.items()
        ]
        result = self._store.apply(contributions)
        rejections = triage.rejections + self._store_rejections(batch, triage, result)
        failed = triage.records_of(result.failed.keys())
        errors = sorted(set(result.failed.values()))
        if rejections and self._quarantine is not None:
            try:
                self._quarantine.put(batch.batch_id, partition, rejections)
            except ArchiveUnavailable as exc:
                failed |= triage.rejected_records
                errors.append(f"quarantine: {exc}")
        return self._report(batch, triage, result, rejections, failed, tuple(errors))

    def _triage(self, batch: RawBatch, now: int) -> _Triage:
        # The hot loop of the pipeline, run for every reading: kept flat on purpose, with the
        # per-record work (decoding, lateness bounds) hoisted out of the per-reading work.
        triage = _Triage()
        windows, places = triage.windows, triage.places
        bounds, check = self._lateness.bounds, self._lateness.check
        reference: int | None = None
        low = high = 0
        for position, record in enumerate(batch.records):
            arrived = record.arrived_ms if record.arrived_ms is not None else now
            if arrived != reference:
                reference = arrived
                low, high = bounds(arrived)
            readings = decode_readings(record.data)
            indexed: Iterable[tuple[int, Reading]]
            if readings is None:  # something unusual in the record: item by item, in general
                indexed = self._parse_items(triage, position, record)
            else:
                triage.received += len(readings)
                indexed = enumerate(readings)
            items: list[object] | None = None  # the record's raw items, decoded if one is late
            for index, reading in indexed:
                ts = reading.timestamp_ms
                if (ts < low or ts > high) and (late := check(ts, arrived)) is not None:
                    refusal = InvalidReading(late, _lateness_message(late))
                    items = items if items is not None else decode_items(record.data)
                    raw = encode_item(items[index])
                    self._reject(triage, position, record.record_id, index, refusal, raw)
                    continue
                key = (reading.device_id, ts - ts % MS_PER_HOUR)
                bucket = windows.get(key)
                if bucket is None:
                    windows[key] = [reading]
                else:
                    bucket.append(reading)
                places.append((reading, position, index))
        return triage

    def _parse_items(
        self, triage: _Triage, position: int, record: RawRecord
    ) -> list[tuple[int, Reading]]:
        """The valid readings of a record with their item indexes; the rest are rejected."""
        try:
            items = decode_items(record.data)
        except InvalidReading as exc:
            triage.received += 1
            self._reject(triage, position, record.record_id, 0, exc, record.data)
            return []
        triage.received += len(items)
        valid: list[tuple[int, Reading]] = []
        for index, item in enumerate(items):
            try:
                valid.append((index, parse_reading(item)))
            except InvalidReading as exc:
                self._reject(triage, position, record.record_id, index, exc, encode_item(item))
        return valid

    @staticmethod
    def _reject(
        triage: _Triage, position: int, record_id: str, index: int, exc: InvalidReading, raw: bytes
    ) -> None:
        triage.rejections.append(Rejection(record_id, index, exc.reason, exc.message, raw))
        triage.rejected_records.add(position)

    @staticmethod
    def _store_rejections(batch: RawBatch, triage: _Triage, result: ApplyResult) -> list[Rejection]:
        found: list[Rejection] = []
        origin: dict[int, tuple[int, int]] | None = None
        for key, absorption in result.absorbed.items():
            if key in result.failed:
                continue
            for reason, readings in (
                (Reason.CONFLICTING_DUPLICATE, absorption.conflicts),
                (Reason.WINDOW_FULL, absorption.overflow),
            ):
                for reading in readings:
                    origin = origin if origin is not None else triage.origin()
                    position, index = origin[id(reading)]
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
            windows_touched=len(triage.windows),
            newest_ms=_newest(triage.windows),
            store_retries=result.retries,
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


def _newest(windows: Mapping[WindowKey, list[Reading]]) -> int | None:
    """The newest event time among valid readings (only the newest hour's windows are read)."""
    if not windows:
        return None
    top = max(hour for _, hour in windows)
    return max(r.timestamp_ms for (_, hour), rs in windows.items() if hour == top for r in rs)


def _lateness_message(reason: Reason) -> str:
    if reason is Reason.TOO_LATE:
        return "timestamp is older than the lateness horizon"
    return "timestamp is ahead of the arrival time by more than the allowed clock skew"
