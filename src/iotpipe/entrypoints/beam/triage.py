"""One archived batch through the live path's own processing, stopping short of the store.

The Beam replay must decode, validate, judge lateness and quarantine exactly as the live path
does. Rather than copy that code, it runs the live :class:`~iotpipe.application.ProcessService`
over each batch with :class:`OfferedWindows` as its store: a store that writes nothing and
hands back, per window, the readings the batch offers it. Those go on to the combine; the
rejections go to the quarantine through the service itself, as in the live path.
"""

from __future__ import annotations

from collections.abc import Sequence

from iotpipe.application import ProcessReport, ProcessService
from iotpipe.domain import HourlyWindow, LatenessPolicy, Reading, absorb_all
from iotpipe.ports import (
    ApplyResult,
    Clock,
    Contribution,
    DeviceSummary,
    Page,
    Quarantine,
    RawBatch,
    StoreOps,
    WindowKey,
)


class OfferedWindows:
    """An :class:`~iotpipe.ports.AggregateStore` for one batch at a time that stores nothing.

    Each contribution is absorbed into an empty window, so a batch's own repeats are told apart
    (duplicate or conflict) by the domain exactly as a live store would tell them apart when
    the batch comes first; :attr:`offered` keeps the readings each window took. It holds no
    windows, so every query answers empty.
    """

    def __init__(self) -> None:
        self.offered: list[tuple[WindowKey, Sequence[Reading]]] = []

    def apply(self, contributions: Sequence[Contribution]) -> ApplyResult:
        """Absorb each contribution into an empty window; keep what it took."""
        empty = [HourlyWindow(c.device_id, c.hour_ms) for c in contributions]
        results = absorb_all(empty, [c.readings for c in contributions])
        absorbed = {c.key: absorption for c, (_, absorption) in zip(contributions, results)}  # noqa: B905
        self.offered = [(key, absorption.new) for key, absorption in absorbed.items()]
        return ApplyResult(absorbed, frozenset(absorbed))

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """No windows are held."""
        return Page(())

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """No windows are held."""
        return Page(())

    def latest(self, device_id: str) -> Reading | None:
        """No readings are held."""
        return None

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """No devices are held."""
        return Page(())

    def ops(self) -> StoreOps:
        """It never reads or writes."""
        return StoreOps()


class BatchTriage:
    """Decode, validate and quarantine batches as the live path does; hand back each batch's
    readings per window.

    Replay is a backfill (``LatenessPolicy.backfill()``): records are judged against their own
    arrival time, as they were the first time.
    """

    def __init__(self, clock: Clock, quarantine: Quarantine | None) -> None:
        self._windows = OfferedWindows()
        self._service = ProcessService(
            self._windows, clock, quarantine=quarantine, lateness=LatenessPolicy.backfill()
        )

    def run(self, batch: RawBatch) -> tuple[ProcessReport, list[tuple[WindowKey, list[Reading]]]]:
        """The batch's report (``accepted``: readings offered on) and its readings per window
        (distinct identities, in stream order)."""
        self._windows.offered = []
        report = self._service.process(batch)
        offered = [(key, list(readings)) for key, readings in self._windows.offered]
        return report, offered
