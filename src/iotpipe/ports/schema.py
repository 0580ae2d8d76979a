"""Where a store keeps its schema record: every metric it has kept, with unit and resolution.

One record per store (a row, an item, a document beside the windows). Start-up reads it, checks
the schema against it (:func:`iotpipe.domain.reconcile`) and writes it back if the schema adds
metrics (:func:`iotpipe.application.settle_schema`). Writes are conditional, so two processes
starting together cannot lose each other's additions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from iotpipe.domain import TelemetrySchema
from iotpipe.ports.store import Version

if TYPE_CHECKING:
    from iotpipe.domain.evolution import SchemaRecord


class SchemaRecords(Protocol):
    """A store's schema record, read and written with a concurrency token."""

    def read(self) -> tuple[SchemaRecord, Version] | None:
        """The record and its version, or ``None`` if the store holds none yet."""
        ...

    def write(self, record: SchemaRecord, expected: Version) -> None:
        """Write the record if the stored one still has version ``expected`` (``None``: there
        is none yet); else raise :class:`~iotpipe.domain.telemetry.SchemaRecordChanged`.
        Transient failures raise :class:`~iotpipe.domain.StoreUnavailable`."""
        ...


@runtime_checkable
class SchemaKeeper(Protocol):
    """A store that keeps a schema record and encodes its windows by a telemetry schema (every
    store of iotpipe): start-up settles the schema (:func:`iotpipe.application.use_schema`)
    and sets ``schema`` before the store is used."""

    schema: TelemetrySchema

    def schema_records(self) -> SchemaRecords:
        """Where the store keeps its schema record."""
        ...
