"""Former home of the archive format, now :mod:`iotpipe.application.codecs.archive`."""

from iotpipe.application.codecs.archive import (
    RAW,
    REJECTED,
    SUFFIX,
    batch_id_of,
    decode_batch,
    decode_rejections,
    encode_batch,
    encode_rejections,
    object_name,
    partition_hours,
    partition_prefix,
)

__all__ = [
    "RAW",
    "REJECTED",
    "SUFFIX",
    "batch_id_of",
    "decode_batch",
    "decode_rejections",
    "encode_batch",
    "encode_rejections",
    "object_name",
    "partition_hours",
    "partition_prefix",
]
