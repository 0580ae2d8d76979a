"""Former home of the window codec, now :mod:`iotpipe.application.codecs.window`."""

from iotpipe.application.codecs.window import (
    FORMAT,
    RECORD_FIELDS,
    window_from_record,
    window_to_record,
)

__all__ = ["FORMAT", "RECORD_FIELDS", "window_from_record", "window_to_record"]
