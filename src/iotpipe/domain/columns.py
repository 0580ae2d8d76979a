"""Deprecated: :class:`ReadingColumns` is part of the fast path, :mod:`iotpipe.domain.kernels`."""

import warnings

from iotpipe.domain.kernels.columns import ReadingColumns

warnings.warn(
    "iotpipe.domain.columns is deprecated: import ReadingColumns from iotpipe.domain.kernels",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ReadingColumns"]
