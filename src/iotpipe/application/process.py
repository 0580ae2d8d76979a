"""The process use case: one batch from the stream into the aggregate store, exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter, mod, sub

from iotpipe.application.payloads import decode_items, encode_item, gc_paused
from iotpipe.domain import (
    ArchiveUnavailable,
    DecodedRecords,
    InvalidReading,
    LatenessPolicy,
    Reading,
    Reason,
    decode_records,
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
    # Where each valid reading came from: the decoded records' readings with their records'
    # positions (item indexes follow from the order), then the general path's, with theirs.
    readings: list[Reading] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    places: list[tuple[Reading, int, int]] = field(default_factory=list)  # (reading, record, item)
    refusals: list[tuple[int, int, Rejection]] = field(default_factory=list)  # (record, item, ...)
    rejected_records: set[int] = field(default_factory=set)
    received: int = 0

    @property
    def rejections(self) -> list[Rejection]:
        """The refusals in record and item order."""
        return [rejection for _, _, rejection in sorted(self.refusals, key=_FIRST_TWO)]

    def origin(self) -> dict[int, tuple[int, int]]:
        """``id(reading)`` -> (record position, item index); built only when needed."""
        found = {id(reading): (record, item) for reading, record, item in self.places}
        start, owner = 0, -1
        for i, (reading, record) in enumerate(zip(self.readings, self.owners, strict=True)):
            if record != owner:
                start, owner = i, record
            found[id(reading)] = (record, i - start)
        return found

    def records_of(self, keys: Collection[WindowKey]) -> set[int]:
        """Positions of the records that contributed to these windows."""
        if not keys:
            return set()
        sources = [*zip(self.readings, self.owners, strict=True), *(p[:2] for p in self.places)]
        return {
            record for reading, record in sources if (reading.device_id, reading.hour_ms) in keys
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
            _new(Contribution, (device_id, hour_ms, readings))
            for (device_id, hour_ms), readings in triage.windows.items()
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
        # The hot path of the pipeline: the batch's records are decoded together, column by
        # column (see decode_records), then each reading is checked for lateness and put in
        # its window. Records the decoder declines take the general path, item by item.
        records = batch.records
        triage = _Triage()
        decoded = decode_records([record.data for record in records])
        triage.received = len(decoded.readings)
        arrivals = [now if r.arrived_ms is None else r.arrived_ms for r in records]
        times = list(map(_EVENT_TIME, decoded.readings))
        readings, owners, times = self._on_time(triage, records, arrivals, decoded, times)
        triage.readings, triage.owners = readings, owners
        for position in decoded.declined:
            self._parse_record(triage, position, records[position], arrivals[position])
        if triage.places:  # keep stream order across both paths: the first version counted wins
            ordered = sorted(
                [*zip(owners, readings, strict=True), *((p, r) for r, p, _ in triage.places)],
                key=_FIRST,
            )
            readings = [reading for _, reading in ordered]
            times = list(map(_EVENT_TIME, readings))
        windows = triage.windows
        get = windows.get
        hours = map(sub, times, map(mod, times, repeat(MS_PER_HOUR)))
        keys = zip(map(_DEVICE, readings), hours, strict=True)
        for key, reading in zip(keys, readings, strict=True):
            bucket = get(key)
            if bucket is None:
                windows[key] = [reading]
            else:
                bucket.append(reading)
        return triage

    def _on_time(
        self,
        triage: _Triage,
        records: Sequence[RawRecord],
        arrivals: list[int],
        decoded: DecodedRecords,
        times: list[int],
    ) -> tuple[list[Reading], list[int], list[int]]:
        """The decoded readings that are not refused as late, with their records' positions
        and their event times (``times``: those of all the decoded readings)."""
        readings, owners = decoded.readings, decoded.owners
        if not readings:
            return readings, owners, times
        # Bounds every record's reference accepts: a reading inside them is on time whatever
        # its record. Only readings outside are checked against their own record's arrival.
        bounds, check = self._lateness.bounds, self._lateness.check
        low, high = bounds(max(arrivals))[0], bounds(min(arrivals))[1]
        if min(times) >= low and max(times) <= high:
            return readings, owners, times
        kept: list[int] = []
        raw: dict[int, list[object]] = {}  # a record's raw items, decoded once if one is late
        for i, (ts, position) in enumerate(zip(times, owners, strict=True)):
            late = check(ts, arrivals[position]) if ts < low or ts > high else None
            if late is None:
                kept.append(i)
                continue
            index = i - owners.index(position)
            if position not in raw:
                raw[position] = decode_items(records[position].data)
            refusal = InvalidReading(late, _lateness_message(late))
            item = encode_item(raw[position][index])
            self._reject(triage, position, records[position].record_id, index, refusal, item)
        return [readings[i] for i in kept], [owners[i] for i in kept], [times[i] for i in kept]

    def _parse_record(
        self, triage: _Triage, position: int, record: RawRecord, arrived: int
    ) -> None:
        """A record the decoder declined: each item parsed the general way and checked."""
        try:
            items = decode_items(record.data)
        except InvalidReading as exc:
            triage.received += 1
            self._reject(triage, position, record.record_id, 0, exc, record.data)
            return
        triage.received += len(items)
        check = self._lateness.check
        for index, item in enumerate(items):
            try:
                reading = parse_reading(item)
                late = check(reading.timestamp_ms, arrived)
                if late is not None:
                    raise InvalidReading(late, _lateness_message(late))
            except InvalidReading as exc:
                self._reject(triage, position, record.record_id, index, exc, encode_item(item))
            else:
                triage.places.append((reading, position, index))

    @staticmethod
    def _reject(
        triage: _Triage, position: int, record_id: str, index: int, exc: InvalidReading, raw: bytes
    ) -> None:
        rejection = Rejection(record_id, index, exc.reason, exc.message, raw)
        triage.refusals.append((position, index, rejection))
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


_DEVICE = itemgetter(0)  # Reading.device_id, at C speed
_EVENT_TIME = itemgetter(1)  # Reading.timestamp_ms
_FIRST = itemgetter(0)
_new = tuple.__new__  # builds named tuples without their Python-level __new__
_FIRST_TWO = itemgetter(0, 1)


def _key(reading: Reading) -> WindowKey:
    return (reading.device_id, reading.hour_ms)


def _newest(windows: Mapping[WindowKey, list[Reading]]) -> int | None:
    """The newest event time among valid readings (only the newest hour's windows are read)."""
    if not windows:
        return None
    top = max(hour for _, hour in windows)
    newest: int = max(max(map(_EVENT_TIME, rs)) for (_, hour), rs in windows.items() if hour == top)
    return newest


def _lateness_message(reason: Reason) -> str:
    if reason is Reason.TOO_LATE:
        return "timestamp is older than the lateness horizon"
    return "timestamp is ahead of the arrival time by more than the allowed clock skew"
