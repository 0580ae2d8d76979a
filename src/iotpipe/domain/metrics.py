"""The metrics a reading may carry, declared once.

Everything that validates, aggregates or presents metrics iterates over :data:`METRICS`, so
adding one (say ``pressure``) is a one-line change here.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Values are kept in fixed point at this many units per unit of measure (0.001 resolution),
#: which makes every sum exact and every merge order-independent.
SCALE = 1000


@dataclass(frozen=True, slots=True)
class Metric:
    """A numeric measurement carried by readings and aggregated per window."""

    name: str
    unit: str
    minimum: float
    maximum: float
    description: str = ""


METRICS: tuple[Metric, ...] = (
    Metric("temperature", "degC", -273.15, 1000.0, "Air temperature in degrees Celsius."),
    Metric("humidity", "%RH", 0.0, 100.0, "Relative humidity in percent."),
)

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)


def to_fixed(value: float) -> int:
    """Quantise a measured value to the fixed-point resolution (round half to even)."""
    return round(value * SCALE)


def from_fixed(value: int) -> float:
    """The float nearest to a fixed-point value (correctly rounded)."""
    return value / SCALE
