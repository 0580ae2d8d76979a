"""From a decoded JSON value to a :class:`~iotpipe.domain.reading.Reading`, or a clear refusal."""

from __future__ import annotations

from iotpipe.domain.errors import InvalidReading, Reason
from iotpipe.domain.kernels.parsing import fast_reading
from iotpipe.domain.reading import Reading
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, TelemetrySchema


def parse_reading(payload: object, schema: TelemetrySchema = DEFAULT_SCHEMA) -> Reading:
    """Validate one decoded JSON value as a reading of ``schema`` (the default payload unless
    one is given).

    The rules are :mod:`iotpipe.domain.schema`'s. Raises :class:`InvalidReading` with the
    reason of the first problem found, in field order.
    """
    fast = fast_reading(payload, schema)
    if fast is not None:
        return fast
    if not isinstance(payload, dict):
        raise InvalidReading(Reason.NOT_AN_OBJECT, "a reading must be a JSON object")
    # The declared path: imported on first use, so pydantic stays out of cold starts
    # (a function that only ever sees well-formed readings never loads it).
    from iotpipe.domain.schema import validate

    return validate(payload, schema)
