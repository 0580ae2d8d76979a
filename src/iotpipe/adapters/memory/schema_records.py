"""The schema record of a memory store (see :class:`~iotpipe.ports.SchemaRecords`)."""

from __future__ import annotations

import threading

from iotpipe.domain.evolution import SchemaRecord
from iotpipe.domain.telemetry import SchemaRecordChanged
from iotpipe.ports import Version


class MemorySchemaRecords:
    """One record and its version (1 when written first, +1 per write), under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: tuple[SchemaRecord, int] | None = None

    def read(self) -> tuple[SchemaRecord, Version] | None:
        """The record and its version, if one was written."""
        with self._lock:
            return self._held

    def write(self, record: SchemaRecord, expected: Version) -> None:
        """Write it if the held version is still ``expected``."""
        with self._lock:
            current = None if self._held is None else self._held[1]
            if current != expected:
                raise SchemaRecordChanged("the schema record changed since it was read")
            self._held = (record, (current or 0) + 1)
