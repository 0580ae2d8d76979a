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
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    Absorption,
    FleetTotal,
    HourlyWindow,
    LatenessPolicy,
    Reading,
    TelemetrySchema,
)
from iotpipe.ports import (
    ApplyResult,
    Clock,
    Contribution,
    Deadline,
    DeviceSummary,
    Page,
    Quarantine,
    RawBatch,
    StoreOps,
    WindowKey,
)


class OfferedWindows:
    """An :class:`~iotpipe.ports.AggregateStore` for one batch at a time that stores nothing:
    :attr:`offered` keeps the readings the batch offers each window, in stream order, repeats
    included.

    It takes every reading. Whether a repeat is a duplicate or a conflict depends on what was
    counted before it, in this batch or any other, so only the target store can say, once the
    combine has put every copy in archive order. It holds no windows: queries answer empty.
    """

    def __init__(self) -> None:
        self.offered: list[tuple[WindowKey, Sequence[Reading]]] = []

    def apply(
        self, contributions: Sequence[Contribution], deadline: Deadline | None = None
    ) -> ApplyResult:
        """Keep each contribution's readings; report them all taken (no store call: no
        deadline to keep)."""
        self.offered = [(c.key, c.readings) for c in contributions]
        absorbed = {
            key: Absorption(new=tuple(range(len(readings)))) for key, readings in self.offered
        }
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

    def fleet_total(self, hour_ms: int) -> FleetTotal:
        """No windows are held."""
        return FleetTotal()

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

    def __init__(
        self,
        clock: Clock,
        quarantine: Quarantine | None,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        self._windows = OfferedWindows()
        self._service = ProcessService(
            self._windows,
            clock,
            quarantine=quarantine,
            lateness=LatenessPolicy.backfill(),
            schema=schema,
        )

    def run(
        self, batch: RawBatch
    ) -> tuple[ProcessReport, list[tuple[WindowKey, Sequence[Reading]]]]:
        """The batch's report (``accepted``: readings offered on) and its readings per window,
        in stream order."""
        self._windows.offered = []
        report = self._service.process(batch)
        return report, self._windows.offered
