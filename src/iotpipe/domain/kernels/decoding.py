"""Stream records to readings, a whole batch at a time: the process hot path's decoder.

A stream record holds one JSON object or a JSON array of them. :func:`decode_records` takes the
common record (only the declared fields, well-formed and in range) straight from its bytes into
:class:`~iotpipe.domain.kernels.columns.ReadingColumns`: msgspec decodes and checks it in one
pass in C, and the batch is finished here column by column. Any other record is declined, for
the general path (``orjson.loads``, then :func:`~iotpipe.domain.parse_reading` per item), which
decides and words every verdict: this decoder only ever agrees with it (property tests hold the
two together on the same bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, repeat
from operator import attrgetter, mul
from typing import Annotated, Any, NamedTuple, TypeVar

from iotpipe.domain.kernels.columns import ReadingColumns
from iotpipe.domain.kernels.stamps import STAMPS
from iotpipe.domain.metrics import METRIC_NAMES, METRICS, SCALE
from iotpipe.domain.reading import Reading

_T = TypeVar("_T")


class DecodedRecords(NamedTuple):
    """What :func:`decode_records` made of a batch of stream records."""

    columns: ReadingColumns
    """The readings of every record decoded, in record order, then item order."""
    owners: list[int]
    """For each reading, the position of its record in the batch."""
    declined: list[int]
    """Positions of the records left to the general path (in order)."""

    @property
    def readings(self) -> list[Reading]:
        """The decoded readings as :class:`Reading` objects."""
        return self.columns.rows()


def decode_readings(data: bytes | str) -> list[Reading] | None:
    """Every reading of one stream record, straight from its bytes, if all are plain and valid;
    ``None`` declines the record (see :func:`decode_records`)."""
    decoded = decode_records((data,))
    return None if decoded.declined else decoded.readings


def decode_records(records: Sequence[bytes | str]) -> DecodedRecords:
    """The readings of a batch of stream records, straight from their bytes (see the module
    docstring); a record with any reading this path does not take is declined whole."""
    if _record_decoder is None:
        _load_record_decoder()
    plains, owners, declined = _decoded(records)
    devices, times, values, lats, lons, odd = _finish(plains)
    if odd:  # some records hold a reading the fast path does not take: decline them whole
        bad = {owners[i] for i in odd}
        keep = [owner not in bad for owner in owners]
        devices, times, owners = _kept(devices, keep), _kept(times, keep), _kept(owners, keep)
        lats, lons = _kept(lats, keep), _kept(lons, keep)
        values = tuple(_kept(column, keep) for column in values)
        declined = sorted([*declined, *bad])
    return DecodedRecords(ReadingColumns(devices, times, values, lats, lons), owners, declined)


def _decoded(records: Sequence[bytes | str]) -> tuple[list[Any], list[int], list[int]]:
    """The plain readings msgspec decodes from the records, each one's record position, and
    the positions of the records it declines."""
    decode = _record_decoder.decode
    try:  # the common batch, at C speed: every record decodes
        values: list[Any] = list(map(decode, records))
        positions: Sequence[int] = range(len(values))
        declined: list[int] = []
    except _DecodeError:  # record by record
        values, kept, declined = [], [], []
        for position, data in enumerate(records):
            try:
                values.append(decode(data))
            except _DecodeError:
                declined.append(position)
            else:
                kept.append(position)
        positions = kept
    if list not in set(map(type, values)):  # no arrays: one reading per record
        return values, list(positions), declined
    plains: list[Any] = []
    owners: list[int] = []
    for position, value in zip(positions, values, strict=True):
        if type(value) is not list:
            plains.append(value)
            owners.append(position)
        else:  # an array (an empty one is a record of no readings)
            plains.extend(value)
            owners.extend(repeat(position, len(value)))
    return plains, owners, declined


def _kept(column: list[_T], keep: list[bool]) -> list[_T]:
    return list(compress(column, keep))


def _finish(plains: list[Any]) -> _Columns:
    """The columns of decoded plain records, at C speed, and the indexes of the plains the fast
    path does not take (their places in the columns hold placeholders).

    Each column is first computed as if every value were there and known; a missing or unknown
    one makes the C-level pass raise (a ``KeyError``, or a ``TypeError`` on ``None``), and only
    then is the column redone value by value. The common batch pays no per-value check.
    """
    odd: set[int] = set()
    if not plains:
        return _Columns([], [], tuple([] for _ in METRICS), [], [], [])
    devices = _device_ids(plains, odd)
    times = _event_times(plains, odd)
    values = _fixed_values(plains, odd)
    lats, lons = _coordinates(plains)
    return _Columns(devices, times, values, lats, lons, sorted(odd))


class _Columns(NamedTuple):
    devices: list[str]
    times: list[int]
    values: tuple[list[int | None], ...]
    lats: list[float | None]
    lons: list[float | None]
    odd: list[int]


def _device_ids(plains: list[Any], odd: set[int]) -> list[str]:
    """Each device id as the one instance the cache holds: its hash is computed once, and the
    windows' dictionaries and sets downstream compare it by identity."""
    ids = list(map(_DEVICE_OF, plains))
    known = STAMPS.known_devices(ids)
    if known is not None:
        return known
    checked = list(map(STAMPS.device, ids))  # a device not seen yet, or not a valid id
    odd.update(i for i, d in enumerate(checked) if d is None)
    return checked  # type: ignore[return-value]  # the odd ones' readings are dropped


def _event_times(plains: list[Any], odd: set[int]) -> list[int]:
    stamps = list(map(_TIMESTAMP, plains))
    times = STAMPS.valid_instants(stamps)
    if times is not None:
        return times
    checked = list(map(STAMPS.instant, stamps))  # some stamp is not valid
    odd.update(i for i, t in enumerate(checked) if t is None)
    return [t or 0 for t in checked]


def _fixed_values(plains: list[Any], odd: set[int]) -> tuple[list[int | None], ...]:
    columns: list[list[int | None]] = []
    partial = False
    for read in _METRIC_READERS:
        try:
            # msgspec decodes every value as a float: float.__round__ is round() without the
            # method lookup (round half to even, as metrics.to_fixed)
            scaled = map(mul, map(read, plains), repeat(SCALE))
            columns.append(list(map(float.__round__, scaled)))
        except TypeError:  # some readings lack this metric
            partial = True
            column = map(read, plains)
            columns.append([None if v is None else round(v * SCALE) for v in column])
    if partial:
        values = zip(*columns)  # noqa: B905 - one length by construction
        odd.update(i for i, v in enumerate(values) if v == _NO_VALUES)
    return tuple(columns)


def _coordinates(plains: list[Any]) -> tuple[list[float | None], list[float | None]]:
    places = list(map(_LOCATION, plains))
    try:
        return list(map(_LAT, places)), list(map(_LON, places))
    except AttributeError:  # some readings carry no location
        return (
            [None if p is None else p.lat for p in places],
            [None if p is None else p.lon for p in places],
        )


def _load_record_decoder() -> None:
    """Build the record decoder on first use: msgspec stays out of imports that never decode
    records (the ingest and API functions' cold starts)."""
    global _record_decoder, _DecodeError  # noqa: PLW0603 - built once, then only read
    import msgspec

    coordinates = msgspec.defstruct(
        "PlainLocation",
        [
            ("lat", Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]),
            ("lon", Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]),
        ],
        forbid_unknown_fields=True,
        gc=False,  # holds only numbers: nothing for the cycle collector to track
    )
    # Unknown fields are refused here (the declared path ignores them) so that msgspec reads
    # every byte it accepts: whatever it would skip unchecked goes the general way instead.
    fields: list[tuple[str, Any, Any]] = [
        (m.name, Annotated[float, msgspec.Meta(ge=m.minimum, le=m.maximum)] | None, None)
        for m in METRICS
    ]
    plain = msgspec.defstruct(
        "PlainReading",
        [("device_id", str), ("timestamp", str), *fields, ("location", coordinates | None, None)],
        forbid_unknown_fields=True,
        gc=False,  # holds strings, numbers and a location: no cycles possible
    )
    _DecodeError = msgspec.DecodeError
    _record_decoder = msgspec.json.Decoder(list[plain] | plain)  # type: ignore[valid-type]


#: The record decoder: msgspec shapes built from :data:`METRICS`, on first use.
_record_decoder: Any = None
_DecodeError: type[Exception] = Exception
_METRIC_READERS = tuple(attrgetter(name) for name in METRIC_NAMES)
_NO_VALUES = (None,) * len(METRICS)
_DEVICE_OF = attrgetter("device_id")
_TIMESTAMP = attrgetter("timestamp")
_LOCATION = attrgetter("location")
_LAT = attrgetter("lat")
_LON = attrgetter("lon")
