"""The schema record of a Firestore store: one document of its own beside the windows.

::

    {prefix}schema/telemetry     record (map: SchemaRecord.to_json()), version (integer)

Created with ``create`` (which fails if it exists) and replaced with ``update`` under a
``last_update_time`` precondition, like a window (see :class:`~iotpipe.ports.SchemaRecords`).
Nothing queries the collection: its fields need no index.
"""

from __future__ import annotations

import importlib
from typing import Any

from google.api_core import exceptions as api

from iotpipe.adapters.gcp.errors import GOOGLE_ERRORS, describe, is_transient
from iotpipe.domain import StoreUnavailable
from iotpipe.domain.evolution import SchemaRecord
from iotpipe.domain.telemetry import SchemaRecordChanged
from iotpipe.ports import Version

COLLECTION = "schema"
DOCUMENT = "telemetry"


class FirestoreSchemaRecords:
    """The record through a ``google.cloud.firestore.Client``; ``rpc`` holds the store's retry
    and timeout arguments for each call."""

    def __init__(self, client: Any, *, prefix: str = "", rpc: dict[str, Any] | None = None) -> None:
        self._client = client
        self._ref = client.collection(prefix + COLLECTION).document(DOCUMENT)
        self._rpc = rpc or {}

    def read(self) -> tuple[SchemaRecord, Version] | None:
        """The record and its version (the document's update time, to the nanosecond)."""
        snapshot = self._call(lambda: self._ref.get(**self._rpc))
        if not snapshot.exists:
            return None
        fields = snapshot.to_dict()
        stamp = snapshot.update_time.timestamp_pb()
        return SchemaRecord.from_json(fields["record"]), f"{stamp.seconds}.{stamp.nanos:09d}"

    def write(self, record: SchemaRecord, expected: Version) -> None:
        """Create the record, or replace it if it is unchanged since version ``expected``."""
        fields = {"record": record.to_json()}

        def write() -> Any:
            if expected is None:
                return self._ref.create(fields, **self._rpc)
            option = self._client.write_option(last_update_time=_timestamp(str(expected)))
            return self._ref.update(fields, option=option, **self._rpc)

        try:
            self._call(write)
        except (api.AlreadyExists, api.FailedPrecondition, api.Aborted, api.NotFound) as exc:
            raise SchemaRecordChanged(f"firestore schema record: {describe(exc)}") from exc

    @staticmethod
    def _call(call: Any) -> Any:
        try:
            return call()
        except (api.AlreadyExists, api.FailedPrecondition, api.Aborted, api.NotFound):
            raise
        except GOOGLE_ERRORS as exc:
            if is_transient(exc):
                raise StoreUnavailable(f"firestore schema record: {describe(exc)}") from exc
            raise


def _timestamp(version: str) -> Any:
    """The protobuf ``Timestamp`` of a version (``<seconds>.<nanoseconds>``)."""
    # protobuf ships no type information: imported by name, so its types are Any here.
    timestamp_pb2 = importlib.import_module("google.protobuf.timestamp_pb2")
    seconds, _, nanos = version.partition(".")
    return timestamp_pb2.Timestamp(seconds=int(seconds), nanos=int(nanos))
