"""Stream records to readings, a whole batch at a time: the process hot path's decoder.

A stream record holds one JSON object or a JSON array of them. :func:`decode_records` takes the
common record (only the schema's fields, well-formed and in range) straight from its bytes into
:class:`~iotpipe.domain.kernels.columns.ReadingColumns`: msgspec decodes and checks it in one
pass in C, and the batch is finished here column by column. The msgspec shapes are generated
from the telemetry schema on first use (:class:`_SchemaDecoder`: nested structs for dotted
paths, each value's type and bounds): no shape is written by hand for any payload. Any other
record is declined, for the general path (``orjson.loads``, then
:func:`~iotpipe.domain.parse_reading` per item), which decides and words every verdict: this
decoder only ever agrees with it (property tests hold the two together on the same bytes, for
several schemas).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, repeat
from operator import attrgetter, mul, truediv
from typing import Annotated, Any, NamedTuple, TypeVar

from iotpipe.domain.kernels.columns import ReadingColumns
from iotpipe.domain.kernels.stamps import STAMPS
from iotpipe.domain.reading import Reading
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, TelemetrySchema, steps
from iotpipe.domain.time import MAX_MS, MS_PER_SECOND

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


def decode_readings(
    data: bytes | str, schema: TelemetrySchema = DEFAULT_SCHEMA
) -> list[Reading] | None:
    """Every reading of one stream record, straight from its bytes, if all are plain and valid;
    ``None`` declines the record (see :func:`decode_records`)."""
    decoded = decode_records((data,), schema)
    return None if decoded.declined else decoded.readings


def decode_records(
    records: Sequence[bytes | str], schema: TelemetrySchema = DEFAULT_SCHEMA
) -> DecodedRecords:
    """The readings of a batch of stream records of ``schema``, straight from their bytes (see
    the module docstring); a record with any reading this path does not take is declined whole."""
    decoder = _DECODERS.get(schema) or _decoder_of(schema)
    plains, owners, declined = _decoded(decoder, records)
    devices, times, values, lats, lons, odd = decoder.finish(plains)
    if odd:  # some records hold a reading the fast path does not take: decline them whole
        bad = {owners[i] for i in odd}
        keep = [owner not in bad for owner in owners]
        devices, times, owners = _kept(devices, keep), _kept(times, keep), _kept(owners, keep)
        lats, lons = _kept(lats, keep), _kept(lons, keep)
        values = tuple(_kept(column, keep) for column in values)
        declined = sorted([*declined, *bad])
    return DecodedRecords(ReadingColumns(devices, times, values, lats, lons), owners, declined)


def _decoded(
    decoder: _SchemaDecoder, records: Sequence[bytes | str]
) -> tuple[list[Any], list[int], list[int]]:
    """The plain readings msgspec decodes from the records, each one's record position, and
    the positions of the records it declines."""
    decode, error = decoder.decode, decoder.error
    try:  # the common batch, at C speed: every record decodes
        values: list[Any] = list(map(decode, records))
        positions: Sequence[int] = range(len(values))
        declined: list[int] = []
    except error:  # record by record
        values, kept, declined = [], [], []
        for position, data in enumerate(records):
            try:
                values.append(decode(data))
            except error:
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


class _Columns(NamedTuple):
    devices: list[str]
    times: list[int]
    values: tuple[list[int | None], ...]
    lats: list[float | None]
    lons: list[float | None]
    odd: list[int]


class _SchemaDecoder:
    """The record decoder of one schema: the msgspec shapes generated from its paths, and how
    each column is read back from the decoded shapes.

    Every path becomes a field of a struct nested as the path is (``sensors.co2``: field
    ``co2`` of the struct in field ``sensors``), named ``f<n>`` in Python and renamed to the
    JSON key. Unknown fields are refused at every level (the declared path ignores them) so
    that msgspec reads every byte it accepts: whatever it would skip unchecked goes the
    general way instead.
    """

    def __init__(self, schema: TelemetrySchema) -> None:
        import msgspec  # on first use: out of imports that never decode records (cold starts)

        self.schema = schema
        self.error: type[Exception] = msgspec.DecodeError
        tree = _Tree(schema)
        plain = tree.struct(msgspec)
        self.decode = msgspec.json.Decoder(list[plain] | plain).decode  # type: ignore[valid-type]
        self.device = attrgetter(tree.attribute[schema.device_id])
        self.time = attrgetter(tree.attribute[schema.timestamp])
        fmt = schema.timestamp_format
        self.time_unit = None if fmt == "rfc3339" else MS_PER_SECOND if fmt == "epoch_s" else 1
        self.metrics = tuple(
            None
            if m.retired
            else (_Reader(tree.attribute[m.path]), 10 ** abs(m.exponent), m.exponent > 0)
            for m in schema.metrics
        )
        self.no_values = (None,) * len(schema.metrics)
        self.lat = self.lon = None
        if schema.location is not None:
            self.lat = _Reader(tree.attribute[schema.location.lat])
            self.lon = _Reader(tree.attribute[schema.location.lon])
        self.paired = schema.location_object is not None  # msgspec checked both are there

    def finish(self, plains: list[Any]) -> _Columns:
        """The columns of decoded plain records, at C speed, and the indexes of the plains the
        fast path does not take (their places in the columns hold placeholders).

        Each column is first computed as if every value were there and known; a missing or
        unknown one makes the C-level pass raise (a ``KeyError``, an ``AttributeError`` on an
        absent object, or a ``TypeError`` on ``None``), and only then is the column redone
        value by value. The common batch pays no per-value check.
        """
        odd: set[int] = set()
        if not plains:
            return _Columns([], [], tuple([] for _ in self.metrics), [], [], [])
        devices = _device_ids(list(map(self.device, plains)), odd)
        stamps = list(map(self.time, plains))
        unit = self.time_unit
        times = _event_times(stamps, odd) if unit is None else _epoch_times(stamps, unit)
        values = self._fixed_values(plains, odd)
        lats, lons = self._coordinates(plains, odd)
        return _Columns(devices, times, values, lats, lons, sorted(odd))

    def _fixed_values(self, plains: list[Any], odd: set[int]) -> tuple[list[int | None], ...]:
        columns: list[list[int | None]] = []
        partial = False
        for metric in self.metrics:
            if metric is None:  # retired: never read
                columns.append([None] * len(plains))
                partial = True
                continue
            read, scale, coarse = metric
            try:
                # msgspec decodes every value as a float: float.__round__ is round() without
                # the method lookup (round half to even, as Metric.to_fixed)
                scaled = map(truediv if coarse else mul, map(read.fast, plains), repeat(scale))
                columns.append(list(map(float.__round__, scaled)))
            except (TypeError, AttributeError):  # some readings lack this metric
                partial = True
                column = map(read.safe, plains)
                columns.append(
                    [
                        None if v is None else round(v / scale) if coarse else round(v * scale)
                        for v in column
                    ]
                )
        if partial:
            values = zip(*columns)  # noqa: B905 - one length by construction
            odd.update(i for i, v in enumerate(values) if v == self.no_values)
        return tuple(columns)

    def _coordinates(
        self, plains: list[Any], odd: set[int]
    ) -> tuple[list[float | None], list[float | None]]:
        lat, lon = self.lat, self.lon
        if lat is None or lon is None:
            nothing: list[float | None] = [None] * len(plains)
            return nothing, list(nothing)
        try:
            return list(map(lat.fast, plains)), list(map(lon.fast, plains))
        except AttributeError:  # some readings carry no location
            lats, lons = list(map(lat.safe, plains)), list(map(lon.safe, plains))
        if not self.paired:  # two fields of their own: both or neither
            odd.update(i for i, (a, b) in enumerate(zip(lats, lons)) if (a is None) != (b is None))  # noqa: B905
        return lats, lons


class _Reader:
    """A value's reader in the decoded shapes: ``fast`` at C speed (raises if an object on the
    way is absent), ``safe`` value by value (``None`` then)."""

    def __init__(self, attribute: str) -> None:
        self.fast = attrgetter(attribute)
        self._steps = attribute.split(".")

    def safe(self, plain: Any) -> Any:
        value = plain
        for step in self._steps:
            if value is None:
                return None
            value = getattr(value, step)
        return value


class _Tree:
    """The schema's paths as a tree of JSON keys, and the msgspec structs built from it."""

    def __init__(self, schema: TelemetrySchema) -> None:
        self.schema = schema
        self.root: dict[str, Any] = {}
        self.attribute: dict[str, str] = {}  # path -> attribute path in the structs
        self._anchors: set[str] = set()  # the fields of the device id and the time
        # (path, type, required): the device id and the time make every object on their way
        # required; the coordinates of a location object are required within it.
        leaves: list[tuple[str, Any, bool]] = [
            (schema.device_id, str, True),
            (schema.timestamp, self._time_type(), True),
        ]
        leaves += [(m.path, _bounded(m.minimum, m.maximum), False) for m in schema.accepted]
        place = schema.location
        if place is not None:
            whole = schema.location_object is not None  # {lat, lon} whole, or nothing
            leaves += [
                (place.lat, _bounded(-90.0, 90.0), whole),
                (place.lon, _bounded(-180.0, 180.0), whole),
            ]
        self._counter = 0
        for path, kind, required in leaves:
            self._add(path, kind, required)

    def _time_type(self) -> Any:
        import msgspec

        fmt = self.schema.timestamp_format
        if fmt == "rfc3339":
            return str
        unit = MS_PER_SECOND if fmt == "epoch_s" else 1
        return Annotated[int, msgspec.Meta(ge=0, le=(MAX_MS - 1) // unit)]

    def _add(self, path: str, kind: Any, required: bool) -> None:
        node, names = self.root, []
        keys = steps(path)
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {"": self._name()}
            node = child
            names.append(child[""])
        name = self._name()
        node[keys[-1]] = (name, kind, required)
        if path in (self.schema.device_id, self.schema.timestamp):
            self._anchors.add(name)
        self.attribute[path] = ".".join([*names, name])

    def _name(self) -> str:
        self._counter += 1
        return f"f{self._counter}"

    def struct(self, msgspec: Any, node: dict[str, Any] | None = None) -> Any:
        """The struct of a node (the root's by default), its children's built first."""
        node = self.root if node is None else node
        fields: list[tuple[Any, ...]] = []
        rename: dict[str, str] = {}
        for key, child in node.items():
            if key == "":
                continue
            if isinstance(child, dict):
                inner = self.struct(msgspec, child)
                name = child[""]
                required = self._holds_required(child)
                fields.append((name, inner) if required else (name, inner | None, None))
            else:
                name, kind, required = child
                fields.append((name, kind) if required else (name, kind | None, None))
            rename[name] = key
        fields.sort(key=lambda f: len(f) == 3)  # required fields first, as structs want
        return msgspec.defstruct(
            "Plain",
            fields,
            rename=rename,
            forbid_unknown_fields=True,
            gc=False,  # holds strings, numbers and structs of them: no cycles possible
        )

    def _holds_required(self, node: dict[str, Any]) -> bool:
        for key, child in node.items():
            if key == "":
                continue
            if isinstance(child, dict):
                if self._holds_required(child):
                    return True
            elif child[2] and child[0] in self._anchors:
                return True
        return False


def _bounded(low: float, high: float) -> Any:
    import msgspec

    return Annotated[float, msgspec.Meta(ge=low, le=high)]


def _device_ids(ids: list[str], odd: set[int]) -> list[str]:
    """Each device id as the one instance the cache holds: its hash is computed once, and the
    windows' dictionaries and sets downstream compare it by identity."""
    known = STAMPS.known_devices(ids)
    if known is not None:
        return known
    checked = list(map(STAMPS.device, ids))  # a device not seen yet, or not a valid id
    odd.update(i for i, d in enumerate(checked) if d is None)
    return checked  # type: ignore[return-value]  # the odd ones' readings are dropped


def _event_times(stamps: list[str], odd: set[int]) -> list[int]:
    times = STAMPS.valid_instants(stamps)
    if times is not None:
        return times
    checked = list(map(STAMPS.instant, stamps))  # some stamp is not valid
    odd.update(i for i, t in enumerate(checked) if t is None)
    return [t or 0 for t in checked]


def _epoch_times(stamps: list[int], unit_ms: int) -> list[int]:
    """Epoch timestamps in milliseconds (msgspec checked each is a whole number in range)."""
    return stamps if unit_ms == 1 else list(map(mul, stamps, repeat(unit_ms)))


def _decoder_of(schema: TelemetrySchema) -> _SchemaDecoder:
    decoder = _DECODERS[schema] = _SchemaDecoder(schema)
    return decoder


#: Each schema's record decoder, generated on first use (a deployment has one schema).
_DECODERS: dict[TelemetrySchema, _SchemaDecoder] = {}
