"""Combined windows into the store, and the readings the store refuses back to their batches.

No Beam here: :mod:`.pipeline` calls these from its ``DoFn`` s, once per bundle of windows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from iotpipe.application.payloads import decode_items, encode_item
from iotpipe.domain import (
    Absorption,
    InvalidReading,
    Reading,
    Reason,
    StoreUnavailable,
    parse_reading,
)
from iotpipe.ports import AggregateStore, Contribution, RawBatch, Rejection, WindowKey

from .combine import Copy, Origin, readings_of

#: The messages the live path gives the readings a store refuses (the same words, so a
#: quarantine holds one wording whoever wrote it; a test holds them equal to the live path's).
STORE_MESSAGES = {
    Reason.CONFLICTING_DUPLICATE: "a reading with this device_id and timestamp but other values "
    "was counted already; this one is not counted",
    Reason.WINDOW_FULL: "the device's hourly window holds the maximum number of readings",
}

Refused = tuple[str, tuple[str, Reading]]
"""A reading the store refused, by its archive object: ``(name, (reason, reading))``."""


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
    origins = {key: {id(reading): origin for origin, reading in copies} for key, copies in windows}
    pending = [Contribution(key[0], key[1], readings_of(copies)) for key, copies in windows]
    before = store.ops().writes
    done = Written(windows=len(pending))
    for attempt in range(1, attempts + 1):
        done.attempts = attempt
        result = store.apply(pending)
        for key, absorption in result.absorbed.items():
            if key not in result.failed:
                _tally(done, absorption, origins[key])
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


def _tally(done: Written, absorption: Absorption, origins: dict[int, Origin]) -> None:
    done.counted += len(absorption.new)
    done.duplicates += len(absorption.duplicates)
    for reason, readings in (
        (Reason.CONFLICTING_DUPLICATE, absorption.conflicts),
        (Reason.WINDOW_FULL, absorption.overflow),
    ):
        done.reasons[reason.value] += len(readings)
        for reading in readings:
            done.refused.append((origins[id(reading)][0], (reason.value, reading)))


def rejections_for(batch: RawBatch, refused: Sequence[tuple[str, Reading]]) -> list[Rejection]:
    """The quarantine entries of readings the store refused, found in the batch they came from
    (record id and item index, as the live path reports them). A refused reading is the first
    of its values in its batch: the batch's own repeats were settled before the combine."""
    wanted = {(reading.identity, reading): reason for reason, reading in refused}
    found: dict[tuple[object, Reading], tuple[str, int]] = {}
    for record in batch.records:
        try:
            items = decode_items(record.data)
        except InvalidReading:
            continue
        for index, item in enumerate(items):
            try:
                reading = parse_reading(item)
            except InvalidReading:
                continue
            key = (reading.identity, reading)
            if key in wanted and key not in found:
                found[key] = (record.record_id, index)
    positions = {record.record_id: n for n, record in enumerate(batch.records)}
    # Not found (it cannot be, short of a changed object): the batch id stands for the record.
    places = {key: found.get(key, (batch.batch_id, -1)) for key in wanted}
    ordered = sorted(wanted, key=lambda k: (positions.get(places[k][0], -1), places[k][1]))
    return [
        Rejection(
            *places[key],
            Reason(wanted[key]),
            STORE_MESSAGES[Reason(wanted[key])],
            encode_item(key[1].to_json()),
        )
        for key in ordered
    ]


def merged(held: Sequence[Rejection], added: Sequence[Rejection]) -> list[Rejection]:
    """``held`` followed by the entries of ``added`` it lacks (a retried or repeated replay
    adds nothing twice)."""
    seen = {(r.record_id, r.index, r.reason) for r in held}
    return [*held, *(r for r in added if (r.record_id, r.index, r.reason) not in seen)]
