"""Deprecated: the batch record decoder is part of the fast path, :mod:`iotpipe.domain.kernels`."""

import warnings

from iotpipe.domain.kernels.decoding import DecodedRecords, decode_readings, decode_records

warnings.warn(
    "iotpipe.domain.decoding is deprecated: import decode_records, decode_readings and "
    "DecodedRecords from iotpipe.domain.kernels",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["DecodedRecords", "decode_readings", "decode_records"]
