"""The fast path: the domain's definitions computed for a whole batch at once.

The plain definitions (:class:`~iotpipe.domain.Reading` and its fingerprint,
:class:`~iotpipe.domain.Stats`, :class:`~iotpipe.domain.IdentitySet`,
:meth:`HourlyWindow.absorb <iotpipe.domain.HourlyWindow.absorb>`, the declared payload in
:mod:`iotpipe.domain.schema`) say what the pipeline computes; this package computes the same,
faster, for the shapes a stream batch almost always has: readings held as columns
(:class:`ReadingColumns`), decoded straight from a batch's bytes (:func:`decode_records`),
absorbed into their windows with the common window grown inline (:func:`absorb_all`), a plain
payload validated without pydantic (:func:`fast_reading`). Property tests hold each equal to
the plain definition on the same input. Everything not named here is private to the package.
"""

from iotpipe.domain.kernels.absorb import absorb_all
from iotpipe.domain.kernels.columns import ReadingColumns
from iotpipe.domain.kernels.decoding import DecodedRecords, decode_readings, decode_records
from iotpipe.domain.kernels.parsing import fast_reading

__all__ = [
    "DecodedRecords",
    "ReadingColumns",
    "absorb_all",
    "decode_readings",
    "decode_records",
    "fast_reading",
]
