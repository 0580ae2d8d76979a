"""The process use case: one batch from the stream into the aggregate store, exactly once."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, repeat
from operator import itemgetter, mod, sub

from iotpipe.application.payloads import decode_items, encode_item, gc_paused, unpack_batch
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    ArchiveUnavailable,
    InvalidReading,
    LatenessPolicy,
    Reading,
    Reason,
    TelemetrySchema,
    parse_reading,
)
from iotpipe.domain.kernels import ReadingColumns, decode_records
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import (
    DEADLINE_PASSED,
    AggregateStore,
    ApplyResult,
    Clock,
    Contribution,
    Deadline,
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
class ReportTotals:
    """Batch reports summed: what a run over many batches did (a replay, a stream file's chunks).

    Start empty and :meth:`add` each report (or take :meth:`of` them all). The counts add up;
    ``rejected`` sums each reason; ``failed_batches`` are the ids of the batches that left
    readings unapplied, in order, and ``failed_records`` the records they named; ``errors``
    are the distinct errors, the first seen first.
    """

    batches: int = 0
    records: int = 0
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    windows_updated: int = 0
    unapplied: int = 0
    store_retries: int = 0
    failed_records: int = 0
    failed_batches: list[str] = field(default_factory=list)
    seen_errors: dict[str, None] = field(default_factory=dict)  # an insertion-ordered set

    @classmethod
    def of(cls, reports: Iterable[ProcessReport]) -> ReportTotals:
        """The sum of ``reports``."""
        totals = cls()
        for report in reports:
            totals.add(report)
        return totals

    def add(self, report: ProcessReport) -> None:
        """Count one more batch's report."""
        self.batches += 1
        self.records += report.records
        self.received += report.received
        self.accepted += report.accepted
        self.duplicates += report.duplicates
        self.rejected.update(report.rejected)
        self.windows_updated += report.windows_updated
        self.unapplied += report.unapplied
        self.store_retries += report.store_retries
        if report.failed_records:
            self.failed_records += len(report.failed_records)
            self.failed_batches.append(report.batch_id)
        self.seen_errors.update(dict.fromkeys(report.errors))

    @property
    def errors(self) -> tuple[str, ...]:
        """Every distinct error, in the order first seen."""
        return tuple(self.seen_errors)

    def rejected_by_reason(self) -> dict[str, int]:
        """The rejections per reason, the reasons sorted (so summaries read alike)."""
        return dict(sorted(self.rejected.items()))


@dataclass(slots=True)
class _Triage:
    """Readings of a batch sorted into windows, and what was refused before the store.

    The decoded records' readings stay in columns (``columns``, with each one's record in
    ``owners``) and are grouped by position (``windows``); the general path's readings are
    objects (``general``). A window is offered its readings in stream order (record, then
    item): the first version of an identity counted wins.
    """

    columns: ReadingColumns = field(default_factory=lambda: ReadingColumns.of(()))
    owners: list[int] = field(default_factory=list)
    windows: dict[WindowKey, list[int]] = field(default_factory=dict)  # positions in columns
    general: dict[WindowKey, list[_Place]] = field(default_factory=dict)
    refusals: list[tuple[int, int, Rejection]] = field(default_factory=list)  # (record, item, ...)
    rejected_records: set[int] = field(default_factory=set)
    received: int = 0
    # Where the decoded readings were before the late ones were dropped (item indexes).
    decoded_owners: list[int] = field(default_factory=list)
    kept: list[int] | None = None

    @property
    def rejections(self) -> list[Rejection]:
        """The refusals in record and item order."""
        return [rejection for _, _, rejection in sorted(self.refusals, key=_FIRST_TWO)]

    def keys(self) -> set[WindowKey]:
        """Every window the batch's valid readings belong to."""
        return {*self.windows, *self.general}

    def contributions(self) -> list[Contribution]:
        """Each window's readings, in stream order: a span of the columns regrouped by window
        (cut at C speed), or the :meth:`offered` readings where the general path has some."""
        windows = {key: block for key, block in self.windows.items() if key not in self.general}
        grouped = self.columns.take(list(chain.from_iterable(windows.values())))
        bounds = list(accumulate(map(len, windows.values()), initial=0))
        offers: dict[WindowKey, Sequence[Reading]] = dict(zip(windows, grouped.split(bounds)))  # noqa: B905
        for key in self.general:
            offers[key] = [reading for _, reading in self.offered(key)]
        return [Contribution(device, hour, readings) for (device, hour), readings in offers.items()]

    def offered(self, key: WindowKey) -> list[tuple[tuple[int, int], Reading]]:
        """``((record position, item index), reading)`` of each reading offered to a window,
        in the order :meth:`contributions` offers them."""
        rows = self.columns.row
        decoded = [(self._place(p), rows(p)) for p in self.windows.get(key, ())]
        general = [((record, item), reading) for record, reading, item in self.general.get(key, ())]
        return sorted([*decoded, *general], key=_FIRST) if general else decoded

    def _place(self, position: int) -> tuple[int, int]:
        """(record position, item index) of the reading at a position of the columns."""
        decoded = position if self.kept is None else self.kept[position]
        record = self.decoded_owners[decoded]
        return record, decoded - bisect_left(self.decoded_owners, record)

    def records_of(self, keys: Collection[WindowKey]) -> set[int]:
        """Positions of the records that contributed to these windows."""
        found: set[int] = set()
        for key in keys:
            found.update(map(self.owners.__getitem__, self.windows.get(key, ())))
            found.update(record for record, _, _ in self.general.get(key, ()))
        return found

    def count_offered(self, key: WindowKey) -> int:
        """How many readings the window was offered."""
        return len(self.windows.get(key, ())) + len(self.general.get(key, ()))

    def newest(self) -> int | None:
        """The newest event time among the valid readings."""
        times = [reading.timestamp_ms for _, reading, _ in chain(*self.general.values())]
        if self.columns.times:
            times.append(max(self.columns.times))
        return max(times) if times else None


_Place = tuple[int, Reading, int]
"""A reading of the general path: (record position, reading, item index)."""


class ProcessService:
    """Decode, validate, archive raw, quarantine rejects, dedupe, aggregate and store a batch.

    Payloads are read by ``schema`` (the default payload unless one is given); the store must
    decode its windows by the same schema.
    """

    def __init__(
        self,
        store: AggregateStore,
        clock: Clock,
        archive: RawArchive | None = None,
        quarantine: Quarantine | None = None,
        lateness: LatenessPolicy | None = None,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        self._store = store
        self._clock = clock
        self._archive = archive
        self._quarantine = quarantine
        self._lateness = lateness or LatenessPolicy()
        self.schema = schema

    @property
    def store(self) -> AggregateStore:
        """The store this service writes (for its metering: :meth:`AggregateStore.ops`)."""
        return self._store

    def process(self, batch: RawBatch, deadline: Deadline | None = None) -> ProcessReport:
        """Process one batch; transient failures are reported as ``failed_records``, not raised.

        With a ``deadline`` (a function's time left, less what finishing takes), no store read
        or write starts after it: the records of the windows left are reported failed, to be
        delivered again, instead of the whole batch timing out.
        """
        with gc_paused():
            return self._process(batch, deadline)

    def _process(self, batch: RawBatch, deadline: Deadline | None = None) -> ProcessReport:
        # Packed records (compressed on the stream: either form) are read as their JSON here,
        # so the archive keeps JSON and the fast decoder takes them; a corrupt one stays as it
        # came, for the quarantine (corrupt_record). One place for every edge and replay.
        batch = unpack_batch(batch)
        now = self._clock.now_ms()
        partition = batch.arrived_ms() or now
        if deadline is not None and deadline.passed():
            return self._nothing_applied(batch, f"store: {DEADLINE_PASSED}")
        if self._archive is not None:
            try:
                self._archive.write(batch, partition)
            except ArchiveUnavailable as exc:
                return self._nothing_applied(batch, f"archive: {exc}")
        triage = self._triage(batch, now)
        contributions = triage.contributions()
        # Without a deadline the call is the one-argument form every store has always taken.
        result = (
            self._store.apply(contributions)
            if deadline is None
            else self._store.apply(contributions, deadline)
        )
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
        # The hot path of the pipeline: the batch's records are decoded together into columns
        # (see decode_records), the readings are checked for lateness and grouped by window,
        # all by position, with no object per reading. Records the decoder declines take the
        # general path, item by item.
        records = batch.records
        triage = _Triage()
        decoded = decode_records(list(map(_DATA, records)), self.schema)
        columns, owners = decoded.columns, decoded.owners
        triage.received = len(columns)
        triage.decoded_owners = owners
        arrived = list(map(_ARRIVED, records))
        arrivals = [now if at is None else at for at in arrived]  # the stream's, else now
        kept = self._on_time(triage, records, arrivals, columns.times, owners)
        if kept is not None:
            columns, owners = columns.take(kept), [owners[i] for i in kept]
            triage.kept = kept
        triage.columns, triage.owners = columns, owners
        for position in decoded.declined:
            self._parse_record(triage, position, records[position], arrivals[position])
        triage.windows = _by_window(columns.devices, columns.times)
        return triage

    def _on_time(
        self,
        triage: _Triage,
        records: Sequence[RawRecord],
        arrivals: list[int],
        times: list[int],
        owners: list[int],
    ) -> list[int] | None:
        """Refuse the decoded readings that are late or early against their record's arrival;
        the positions of the others, or ``None`` if none was refused."""
        if not times:
            return None
        # Bounds every record's reference accepts: a reading inside them is on time whatever
        # its record. Only readings outside are checked against their own record's arrival.
        bounds, check = self._lateness.bounds, self._lateness.check
        low, high = bounds(max(arrivals))[0], bounds(min(arrivals))[1]
        if min(times) >= low and max(times) <= high:
            return None
        kept: list[int] = []
        raw: dict[int, list[object]] = {}  # a record's raw items, decoded once if one is late
        for i, (ts, position) in enumerate(zip(times, owners, strict=True)):
            late = check(ts, arrivals[position]) if ts < low or ts > high else None
            if late is None:
                kept.append(i)
                continue
            index = i - bisect_left(owners, position)
            if position not in raw:
                raw[position] = decode_items(records[position].data)
            refusal = InvalidReading(late, _lateness_message(late))
            item = encode_item(raw[position][index])
            self._reject(triage, position, records[position].record_id, index, refusal, item)
        return kept if len(kept) < len(times) else None

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
        check, schema = self._lateness.check, self.schema
        for index, item in enumerate(items):
            try:
                reading = parse_reading(item, schema)
                late = check(reading.timestamp_ms, arrived)
                if late is not None:
                    raise InvalidReading(late, _lateness_message(late))
            except InvalidReading as exc:
                self._reject(triage, position, record.record_id, index, exc, encode_item(item))
            else:
                key = (reading.device_id, reading.hour_ms)
                triage.general.setdefault(key, []).append((position, reading, index))

    @staticmethod
    def _reject(
        triage: _Triage, position: int, record_id: str, index: int, exc: InvalidReading, raw: bytes
    ) -> None:
        rejection = Rejection(record_id, index, exc.reason, exc.message, raw)
        triage.refusals.append((position, index, rejection))
        triage.rejected_records.add(position)

    def _store_rejections(
        self, batch: RawBatch, triage: _Triage, result: ApplyResult
    ) -> list[Rejection]:
        """The readings the store did not count: conflicting versions and a full window's."""
        found: list[Rejection] = []
        for key, absorption in result.absorbed.items():
            if key in result.failed or not (absorption.conflicts or absorption.overflow):
                continue
            offered = triage.offered(key)
            refused = [(i, Reason.CONFLICTING_DUPLICATE) for i in absorption.conflicts]
            refused += [(i, Reason.WINDOW_FULL) for i in absorption.overflow]
            for i, reason in refused:
                (position, index), reading = offered[i]
                triage.rejected_records.add(position)
                record_id = batch.records[position].record_id
                payload = encode_item(reading.to_json(self.schema))
                found.append(Rejection(record_id, index, reason, STORE_MESSAGES[reason], payload))
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
            windows_touched=len(triage.keys()),
            newest_ms=triage.newest(),
            store_retries=result.retries,
            unapplied=sum(triage.count_offered(key) for key in result.failed),
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


#: How the readings a store refuses are worded in the quarantine (every replay words them so too).
STORE_MESSAGES = {
    Reason.CONFLICTING_DUPLICATE: "a reading with this device_id and timestamp but other values "
    "was counted already; this one is not counted",
    Reason.WINDOW_FULL: "the device's hourly window holds the maximum number of readings",
}


_FIRST = itemgetter(0)
_DATA = itemgetter(1)  # RawRecord.data, at C speed
_ARRIVED = itemgetter(2)  # RawRecord.arrived_ms
_FIRST_TWO = itemgetter(0, 1)


def _by_window(devices: list[str], times: list[int]) -> dict[WindowKey, list[int]]:
    """The positions of a batch's readings grouped by window, in stream order."""
    windows: dict[WindowKey, list[int]] = {}
    hours = map(sub, times, map(mod, times, repeat(MS_PER_HOUR)))  # each one's hour, at C speed
    for position, key in enumerate(zip(devices, hours, strict=True)):
        bucket = windows.get(key)
        if bucket is None:
            windows[key] = [position]
        else:
            bucket.append(position)
    return windows


def _lateness_message(reason: Reason) -> str:
    if reason is Reason.TOO_LATE:
        return "timestamp is older than the lateness horizon"
    return "timestamp is ahead of the arrival time by more than the allowed clock skew"
