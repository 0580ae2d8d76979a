"""Per-device hourly windows that absorb readings exactly once.

A window remembers the identities it has counted in an :class:`IdentitySet`, so absorbing a
reading it already holds changes nothing: resends, retried batches and replays are harmless.
That is what makes stored aggregates independent of delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from iotpipe._exports import lazy_exports
from iotpipe.domain.aggregate import Stats
from iotpipe.domain.identity import CorruptIdentitySet, IdentitySet
from iotpipe.domain.reading import Reading

#: Identities one window may hold: 20 readings per second for a whole hour. Beyond that a device
#: is misbehaving; its extra readings are refused (reason ``window_full``), never silently lost.
MAX_READINGS_PER_WINDOW = 72_000


class Absorption(NamedTuple):
    """How the readings offered to a window were taken: their positions in the offer.

    ``new`` were counted; ``duplicates`` repeat a counted identity with the same fingerprint (a
    resend); ``conflicts`` repeat one with another fingerprint (not counted); ``overflow`` came
    when the window was full (not counted). Every offered position is in exactly one of them.
    """

    new: tuple[int, ...] = ()
    duplicates: tuple[int, ...] = ()
    conflicts: tuple[int, ...] = ()
    overflow: tuple[int, ...] = ()


class HourlyWindow(NamedTuple):
    """The aggregate of one device's readings in one UTC hour, with the identities it counted.

    ``latest`` is the window's reading with the greatest event time (the device's latest
    reading, when this is its newest window). ``stats.count`` is the number of identities
    counted; a store may hand over a window whose ``seen`` holds only the identities that could
    repeat the readings offered to it (the others are sealed away where no offered reading can
    reach them), so room is judged by the count, never by ``len(seen)``.
    """

    device_id: str
    hour_ms: int
    stats: Stats = Stats()
    seen: IdentitySet = IdentitySet()
    latest: Reading | None = None

    @property
    def key(self) -> tuple[str, int]:
        """``(device_id, hour_ms)``: the window's identity and storage key."""
        return (self.device_id, self.hour_ms)

    def absorb(self, readings: Sequence[Reading]) -> tuple[HourlyWindow, Absorption]:
        """Count each reading whose identity is new; classify the rest (see :class:`Absorption`).

        The first version of an identity counted stays. All readings must belong to this
        window. A window to which nothing new was offered is returned as it is.
        """
        self._check_belong(readings)
        stats, latest = self.stats, self.latest
        fresh: dict[int, int] = {}  # offset -> fingerprint, of the readings counted here
        taken: tuple[list[int], ...] = ([], [], [], [])  # positions, as Absorption's fields
        for position, reading in enumerate(readings):
            offset, fingerprint = reading.timestamp_ms - self.hour_ms, reading.fingerprint()
            known = fresh.get(offset, self.seen.fingerprint_at(offset))
            if known is not None:
                taken[_DUPLICATE if known == fingerprint else _CONFLICT].append(position)
            elif self.stats.count + len(fresh) >= MAX_READINGS_PER_WINDOW:
                taken[_OVERFLOW].append(position)
            else:
                fresh[offset] = fingerprint
                stats = stats.add(reading)
                if latest is None or latest.timestamp_ms < reading.timestamp_ms:
                    latest = reading
                taken[_NEW].append(position)
        absorbed = Absorption(*map(tuple, taken))
        if not fresh:
            return self, absorbed
        grown = self.seen.with_added(fresh.items())
        return HourlyWindow(self.device_id, self.hour_ms, stats, grown, latest), absorbed

    def _check_belong(self, readings: Sequence[Reading]) -> None:
        for reading in readings:
            if reading.device_id != self.device_id or reading.hour_ms != self.hour_ms:
                raise ValueError(f"readings outside window {self.key} were offered to it")


_NEW, _DUPLICATE, _CONFLICT, _OVERFLOW = range(4)  # the fields of Absorption, in order


if not TYPE_CHECKING:  # a former name, now the kernel's (served by name: see the contracts)
    __getattr__, __dir__ = lazy_exports(
        __name__, {}, moved={"absorb_all": "iotpipe.domain.kernels"}
    )

__all__ = [
    "MAX_READINGS_PER_WINDOW",
    "Absorption",
    "CorruptIdentitySet",
    "HourlyWindow",
    "IdentitySet",
]
