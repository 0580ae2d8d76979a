"""The replay use case: process archived raw batches again (a backfill, or a repair).

Replay is safe because absorption is idempotent. Readings the store already counted are
duplicates and cause no writes, so replaying twice, or replaying what was never lost, changes
nothing. Readings the store is missing (a lost store, a new store, a failed batch) are counted
once.

Build the :class:`ProcessService` for replay like this:

- **without an archive**: the batches come from the archive, and writing them back would at
  best rewrite identical files. Records that carry no arrival time would even be written again
  under the current hour;
- **with** ``LatenessPolicy.backfill()``: replay is a backfill. Records carry their original
  arrival time, so lateness is judged as it was the first time. Records without one are judged
  against the processing clock, and the default policy would refuse everything older than its
  horizon as ``too_late``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from iotpipe.application.process import ProcessService, ReportTotals
from iotpipe.ports import CheckedArchive, RawArchive, UnreadableObject


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did, summed over the batches it processed.

    ``failed_batches`` are the ids of batches that left readings unapplied (a transient store
    failure). Replaying again is the retry. ``unreadable`` are the archive's damaged objects:
    what could be read of each was replayed, the rest could not be.
    """

    batches: int = 0
    records: int = 0
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    windows_updated: int = 0
    unapplied: int = 0
    failed_batches: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    unreadable: tuple[UnreadableObject, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every archived reading was read and applied (or deliberately rejected)."""
        return not self.failed_batches and not self.unreadable


def replay(
    archive: RawArchive, processor: ProcessService, start_ms: int, end_ms: int
) -> ReplayReport:
    """Process every archived batch whose partition hour lies in ``[start_ms, end_ms)``.

    Batches are read and processed one at a time, so memory does not grow with the archive.
    A damaged object of an archive that can say so (:class:`~iotpipe.ports.CheckedArchive`)
    does not stop the replay: it is reported in ``unreadable`` and the others are processed.
    ``processor`` must have no archive and should use ``LatenessPolicy.backfill()`` (see the
    module docstring).
    """
    totals = ReportTotals()
    unreadable: list[UnreadableObject] = []
    items = archive.scan(start_ms, end_ms) if isinstance(archive, CheckedArchive) else None
    for item in items or archive.read(start_ms, end_ms):
        if isinstance(item, UnreadableObject):
            unreadable.append(item)
        else:
            totals.add(processor.process(item))
    return _replay_report(totals, unreadable)


def _replay_report(totals: ReportTotals, unreadable: list[UnreadableObject]) -> ReplayReport:
    return ReplayReport(
        batches=totals.batches,
        records=totals.records,
        received=totals.received,
        accepted=totals.accepted,
        duplicates=totals.duplicates,
        rejected=totals.rejected_by_reason(),
        windows_updated=totals.windows_updated,
        unapplied=totals.unapplied,
        failed_batches=tuple(totals.failed_batches),
        errors=totals.errors,
        unreadable=tuple(unreadable),
    )
