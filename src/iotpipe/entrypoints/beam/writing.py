"""Combined windows into the store, and the readings the store refuses back to their batches.

No Beam here: :mod:`.pipeline` calls these from its ``DoFn`` s, once per bundle of windows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from iotpipe.application.payloads import decode_items, encode_item
from iotpipe.application.process import STORE_MESSAGES
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    Absorption,
    InvalidReading,
    Reading,
    Reason,
    StoreUnavailable,
    TelemetrySchema,
    parse_reading,
)
from iotpipe.ports import AggregateStore, Contribution, RawBatch, Rejection, WindowKey

from .combine import Copy, Origin, Row, as_readings

Refused = tuple[str, tuple[str, Reading, int]]
"""A reading the store refused, by its archive object: ``(name, (reason, reading, rank))``;
``rank`` tells equal copies of a batch apart (0: the batch's first copy of these values)."""


@dataclass(slots=True)
class Written:
    """What writing a bundle of windows did."""

    windows: int = 0
    written: int = 0
    counted: int = 0
    duplicates: int = 0
    refused: list[Refused] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    store_writes: int = 0
    attempts: int = 0


def write_windows(
    store: AggregateStore,
    windows: Sequence[tuple[WindowKey, Sequence[Copy]]],
    *,
    attempts: int = 6,
    sleep: Callable[[float], None] = time.sleep,
) -> Written:
    """Offer each window's copies to the store in one :meth:`AggregateStore.apply` (the store
    tells new readings, duplicates, conflicts and overflow apart exactly as for a live batch);
    windows a transient failure left unapplied are offered again, then
    :class:`~iotpipe.domain.StoreUnavailable` is raised, so the runner retries the bundle (safe:
    absorption is idempotent)."""
    offered = {key: (copies, as_readings(key[0], copies)) for key, copies in windows}
    pending = [Contribution(*key, found) for key, (_, found) in offered.items()]
    before = store.ops().writes
    done = Written(windows=len(pending))
    for attempt in range(1, attempts + 1):
        done.attempts = attempt
        result = store.apply(pending)
        for key, absorption in result.absorbed.items():
            if key not in result.failed:
                _tally(done, absorption, *offered[key])
        done.written += len(result.written)
        pending = [c for c in pending if c.key in result.failed]
        if not pending:
            break
        if attempt == attempts:
            errors = "; ".join(sorted(set(result.failed.values())))
            raise StoreUnavailable(f"{len(pending)} windows not written: {errors}")
        sleep(min(10.0, 0.2 * 2**attempt))
    done.store_writes = store.ops().writes - before
    return done


def _tally(
    done: Written, absorption: Absorption, copies: Sequence[Copy], offered: Sequence[Reading]
) -> None:
    done.counted += len(absorption.new)
    done.duplicates += len(absorption.duplicates)
    if not (absorption.conflicts or absorption.overflow):
        return
    ranks = _ranks(copies)
    for reason, refused in (
        (Reason.CONFLICTING_DUPLICATE, absorption.conflicts),
        (Reason.WINDOW_FULL, absorption.overflow),
    ):
        done.reasons[reason.value] += len(refused)
        for position in refused:  # a position in the offer: the copy's and its reading's
            origin = copies[position][0]
            done.refused.append((origin[0], (reason.value, offered[position], ranks[origin])))


def _ranks(copies: Sequence[Copy]) -> dict[Origin, int]:
    """Each copy's rank among the equal copies of its batch (copies come in origin order)."""
    seen: Counter[tuple[str, Row]] = Counter()
    ranks: dict[Origin, int] = {}
    for origin, row in copies:
        ranks[origin] = seen[origin[0], row]
        seen[origin[0], row] += 1
    return ranks


def rejections_for(
    batch: RawBatch,
    refused: Sequence[tuple[str, Reading, int]],
    schema: TelemetrySchema = DEFAULT_SCHEMA,
) -> list[Rejection]:
    """The quarantine entries of readings the store refused, found in the batch they came from
    (record id and item index, as the live path reports them): the copy of rank ``r`` is the
    ``r``-th item of the batch, in stream order, that says exactly that reading (of
    ``schema``)."""
    wanted = {reading for _, reading, _ in refused}
    found: dict[Reading, list[tuple[int, str, int]]] = {}
    for position, record in enumerate(batch.records):
        try:
            items = decode_items(record.data)
        except InvalidReading:
            continue
        for index, item in enumerate(items):
            try:
                reading = parse_reading(item, schema)
            except InvalidReading:
                continue
            if reading in wanted:
                found.setdefault(reading, []).append((position, record.record_id, index))
    entries = []
    for reason, reading, rank in refused:
        places = found.get(reading, [])
        # Not found (it cannot be, short of a changed object): the batch id stands for the record.
        place = places[rank] if rank < len(places) else (-1, batch.batch_id, -1)
        message = STORE_MESSAGES[Reason(reason)]  # the live path's words, one wording
        payload = _payload(reading, schema)
        entries.append((place, Rejection(*place[1:], Reason(reason), message, payload)))
    return [rejection for _, rejection in sorted(entries, key=_PLACE)]


def _payload(reading: Reading, schema: TelemetrySchema) -> bytes:
    return encode_item(reading.to_json(schema))


_PLACE = itemgetter(0)


def merged(held: Sequence[Rejection], added: Sequence[Rejection]) -> list[Rejection]:
    """``held`` followed by the entries of ``added`` it lacks (a retried or repeated replay
    adds nothing twice)."""
    seen = {(r.record_id, r.index, r.reason) for r in held}
    return [*held, *(r for r in added if (r.record_id, r.index, r.reason) not in seen)]
