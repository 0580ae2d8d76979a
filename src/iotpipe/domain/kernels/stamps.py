"""The fast paths' memory of the device ids and timestamp pieces they have validated already.

A stream repeats device ids, the date and hour of its timestamps, their minutes and seconds
and their fraction-and-offset endings over and over; each piece is checked once, then found in
a dict. The caches hold only pieces that passed their check, so what they hold never changes a
verdict, and each is emptied when full: memory stays bounded whatever the input.

The subset of RFC 3339 taken here: ``YYYY-MM-DDTHH:MM:SS``, an optional fraction of 1-6
digits, then ``Z`` or ``+hh:mm``/``-hh:mm``. Its three pieces (up to the hour, minutes and
seconds, the ending) are independent, so each is validated on its own and the instant is the
sum of their values. Anything else is left to the declared path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import add, itemgetter
from typing import NamedTuple

from iotpipe.domain.reading import DEVICE_ID_PATTERN
from iotpipe.domain.time import MAX_MS, MIN_MS

CACHE_LIMIT = 100_000


class _PieceKind(NamedTuple):
    """One piece of a timestamp: how it is cut out, checked and valued."""

    cut: Callable[[str], str]  # at C speed
    pattern: re.Pattern[str]
    template: str  # a whole timestamp around the piece
    anchor: int  # what the piece's value is measured from


_Y2K_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, the anchor endings are measured against
_KINDS = (
    _PieceKind(
        itemgetter(slice(None, 13)),
        re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3])"),
        "{}:00:00+00:00",
        0,
    ),
    _PieceKind(
        itemgetter(slice(13, 19)),
        re.compile(r":[0-5][0-9]:[0-5][0-9]"),
        "2000-01-01T00{}Z",
        _Y2K_MS,
    ),
    _PieceKind(
        itemgetter(slice(19, None)),
        re.compile(r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"),
        "2000-01-01T00:00:00{}",
        _Y2K_MS,
    ),
)
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class Stamps:
    """Validated device ids and timestamp pieces, each remembered once (see the module)."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self._limit = limit
        #: Valid device ids, each mapped to itself (the instance every reading shares).
        self._devices: dict[str, str] = {}
        #: Per piece kind: piece -> value (``"2025-08-31T10"`` -> epoch ms of that hour,
        #: ``":30:15"`` -> 1,815,000, ``".276Z"`` -> fraction minus the UTC offset, in ms).
        self._pieces: tuple[dict[str, int], ...] = tuple({} for _ in _KINDS)

    def device(self, device_id: str) -> str | None:
        """The one instance of a valid device id, or ``None`` if it is not a valid one."""
        known = self._devices.get(device_id)
        if known is not None or _DEVICE_ID.fullmatch(device_id) is None:
            return known
        if len(self._devices) >= self._limit:
            self._devices.clear()
        self._devices[device_id] = device_id
        return device_id

    def known_devices(self, ids: list[str]) -> list[str] | None:
        """:meth:`device` of each id, at C speed, if every one is known already; else ``None``
        (ask :meth:`device` id by id)."""
        try:
            return list(map(self._devices.__getitem__, ids))
        except KeyError:  # a device not seen yet, or not a valid id
            return None

    def instant(self, stamp: str) -> int | None:
        """Epoch ms of a timestamp in the subset and the supported range, or ``None``."""
        total = 0
        for kind, cache in zip(_KINDS, self._pieces, strict=True):
            value = cache.get(kind.cut(stamp))
            if value is None:
                value = self._learn(kind, cache, kind.cut(stamp))
                if value is None:
                    return None
            total += value
        return total if MIN_MS <= total < MAX_MS else None

    def valid_instants(self, stamps: list[str]) -> list[int] | None:
        """:meth:`instant` of each timestamp, at C speed, if every one is valid; else ``None``
        (ask :meth:`instant` stamp by stamp). Pieces not seen yet are learnt once each."""
        summed = self._summed(stamps)
        if summed is None:  # pieces not seen yet: learn each once (a new hour, say), then again
            for kind, cache in zip(_KINDS, self._pieces, strict=True):
                for piece in set(map(kind.cut, stamps)).difference(cache):
                    self._learn(kind, cache, piece)
            summed = self._summed(stamps)
        if summed and (min(summed) < MIN_MS or max(summed) >= MAX_MS):
            return None
        return summed

    def _summed(self, stamps: list[str]) -> list[int] | None:
        """Each timestamp's instant from the cached values of its pieces, at C speed; ``None``
        if a piece is not in its cache (``None + int`` raises: no comparison per stamp)."""
        (hour, minute, ending), (hours, minutes, endings) = _KINDS, self._pieces
        parts = map(hours.get, map(hour.cut, stamps)), map(minutes.get, map(minute.cut, stamps))
        try:
            return list(map(add, map(add, *parts), map(endings.get, map(ending.cut, stamps))))
        except TypeError:
            return None

    def _learn(self, kind: _PieceKind, cache: dict[str, int], piece: str) -> int | None:
        """Check one piece and remember its value; ``None`` if it is not valid."""
        if kind.pattern.fullmatch(piece) is None:
            return None
        try:
            instant = datetime.fromisoformat(kind.template.format(piece))
        except (ValueError, OverflowError):
            return None
        value: int = (instant - _EPOCH) // _ONE_MS - kind.anchor
        if len(cache) >= self._limit:
            cache.clear()
        cache[piece] = value
        return value


#: The process-wide memory the fast paths share (bounded; see the module docstring).
STAMPS = Stamps()
