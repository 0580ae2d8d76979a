"""Start-up's schema check: the schema to run with over a store, refused if it is unsafe.

Every runtime calls :func:`settle_schema` once, when it builds its store: the store's schema
record (:class:`~iotpipe.ports.SchemaRecords`) says which metrics it keeps, in which unit and
at which resolution; a schema that changes one of them is refused with
:class:`~iotpipe.domain.SchemaConflict` and a message saying what to do. A schema that adds
metrics is recorded; metrics the store keeps and the schema no longer declares are run as
retired (their stored aggregates stay readable).
"""

from __future__ import annotations

import logging

from iotpipe.domain import StoreUnavailable, TelemetrySchema
from iotpipe.domain.evolution import SchemaRecord, reconcile, record_of
from iotpipe.domain.telemetry import DEFAULT_SCHEMA, SchemaRecordChanged
from iotpipe.ports import AggregateStore, SchemaKeeper, SchemaRecords

_log = logging.getLogger("iotpipe.schema")

#: Rounds of read, check, write when other processes change the record meanwhile.
ATTEMPTS = 5


def settle_schema(
    records: SchemaRecords,
    declared: TelemetrySchema,
    *,
    store: AggregateStore | None = None,
    write: bool = True,
) -> TelemetrySchema:
    """The schema to run with over the store whose record ``records`` holds: ``declared`` and,
    after its metrics, the retired ones the store still keeps.

    Raises :class:`~iotpipe.domain.SchemaConflict` if ``declared`` changes the unit or the
    resolution of a metric the store keeps. With ``write`` (a runtime that writes the store),
    the record is created or extended as the schema requires; a read-only runtime only checks.
    A store without a record that already holds windows (made before stores kept records) is
    taken to hold the default schema's metrics: pass it as ``store`` so that it can be asked.
    """
    for _ in range(ATTEMPTS):
        found = records.read()
        record, version = (None, None) if found is None else found
        if record is None and store is not None and store.devices(limit=1).items:
            record = record_of(DEFAULT_SCHEMA)  # windows from before schema records
        settled = reconcile(record, declared)
        if not write or not settled.changed:
            _retired(settled.schema)
            return settled.schema
        try:
            records.write(settled.record, version)
        except SchemaRecordChanged:
            continue  # another process wrote first: check against what it wrote
        _retired(settled.schema)
        return settled.schema
    raise StoreUnavailable("the store's schema record kept changing; start again")


def use_schema(
    store: AggregateStore, declared: TelemetrySchema, *, write: bool = True
) -> TelemetrySchema:
    """Settle the schema over ``store`` (:func:`settle_schema`) and set the store to encode its
    windows by it; the schema to run the use cases with. A store that keeps no schema record
    simply runs with ``declared``."""
    if not isinstance(store, SchemaKeeper):
        return declared
    schema = settle_schema(store.schema_records(), declared, store=store, write=write)
    store.schema = schema
    return schema


def _retired(schema: TelemetrySchema) -> None:
    retired = [m.name for m in schema.metrics if m.retired]
    if retired:
        _log.info(
            "metrics kept by the store but no longer declared are read as retired: %s",
            ", ".join(retired),
        )


__all__ = ["SchemaRecord", "settle_schema", "use_schema"]
