"""A single validated measurement from one device: who, when, what, where.

A :class:`Reading` is a small immutable value. Its metric values are held in exact fixed point
(see :mod:`iotpipe.domain.metrics`), its identity is ``(device_id, timestamp_ms)`` and its
:meth:`~Reading.fingerprint` tells a resend of it from a conflicting version. Validation lives
in :mod:`iotpipe.domain.schema` (the rules) and :func:`iotpipe.domain.parse_reading`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from iotpipe._exports import lazy_exports
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, TelemetrySchema
from iotpipe.domain.time import MS_PER_HOUR, format_instant

#: What a device id may be: 1-128 characters from ``[A-Za-z0-9._:-]``, starting with a letter
#: or digit (device ids become parts of storage keys).
DEVICE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"

#: Stands for a missing value or location in a digest: ``hash(None)`` varies per process
#: before Python 3.12, a constant does not.
ABSENT = -7


class Location(NamedTuple):
    """Where a device was, in decimal degrees (WGS 84)."""

    lat: float
    lon: float


class Reading(NamedTuple):
    """One validated measurement: who, when (UTC epoch ms), what (fixed-point values), where.

    ``values`` is aligned with the metrics of the schema it was read with (the default
    schema's: temperature, humidity), each in units of its metric's resolution; ``None`` means
    the reading does not carry that metric. A reading's identity is ``(device_id,
    timestamp_ms)``.
    """

    device_id: str
    timestamp_ms: int
    values: tuple[int | None, ...]
    location: Location | None = None

    @property
    def identity(self) -> tuple[str, int]:
        """What makes two readings the same reading (a resend), whatever their values."""
        return (self.device_id, self.timestamp_ms)

    @property
    def hour_ms(self) -> int:
        """Start of the reading's hourly window (UTC, epoch ms)."""
        return self.timestamp_ms - self.timestamp_ms % MS_PER_HOUR

    def value(self, metric: str, schema: TelemetrySchema = DEFAULT_SCHEMA) -> float | None:
        """The reading's value of a metric of its schema, at the metric's resolution."""
        fixed = self.values[schema.names.index(metric)]
        return None if fixed is None else schema.metric(metric).from_fixed(fixed)

    def fingerprint(self) -> int:
        """A 16-bit digest of what the reading says; tells a resend from a conflicting duplicate.

        The XOR of the four 16-bit lanes of :func:`digest`. A fingerprint only classifies a
        repeated identity as resend or conflict; it never decides whether a reading counts.
        """
        return fold(digest(self.values, self.location))

    def to_json(self, schema: TelemetrySchema = DEFAULT_SCHEMA) -> dict[str, Any]:
        """The reading in the canonical format (see :meth:`TelemetrySchema.canonical
        <iotpipe.domain.telemetry.TelemetrySchema.canonical>`): the default schema's payload
        format, each metric by name."""
        body: dict[str, Any] = {
            "device_id": self.device_id,
            "timestamp": format_instant(self.timestamp_ms),
        }
        for metric, fixed in zip(schema.metrics, self.values, strict=True):
            if fixed is not None:
                body[metric.name] = metric.from_fixed(fixed)
        if self.location is not None:
            body["location"] = {"lat": self.location.lat, "lon": self.location.lon}
        return body


def digest(values: tuple[int | None, ...], location: Location | None) -> int:
    """The 64-bit digest of what a reading says: ``hash((values, location))``, absent parts
    hashed as :data:`ABSENT`.

    CPython's hash of a tuple of ints and floats is not salted per process (only str and bytes
    hashes are), is identical on every 64-bit platform and unchanged since Python 3.8. Stored
    identity sets depend on it: a golden test pins known fingerprints, so a change fails loudly.
    """
    said = tuple([ABSENT if v is None else v for v in values])
    return hash((said, ABSENT if location is None else location))


def fold(digest: int) -> int:
    """A 64-bit digest folded to 16 bits: the XOR of its four 16-bit lanes."""
    return (digest ^ digest >> 16 ^ digest >> 32 ^ digest >> 48) & 0xFFFF


if not TYPE_CHECKING:  # former names, served by name (this module imports neither)
    _PACKING = "iotpipe.domain.kernels.packing"
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {},
        moved={
            "parse_reading": "iotpipe.domain.parsing",
            **{
                name: _PACKING
                for name in (
                    "column_digests",
                    "fingerprints_of",
                    "identity_keys",
                    "location_or_none",
                    "reading_digests",
                )
            },
        },
    )

__all__ = ["ABSENT", "DEVICE_ID_PATTERN", "Location", "Reading", "digest", "fold"]
