"""What a store remembers of the schemas it has run with, and which new schema is safe.

A store's sums are exact only in the unit and at the resolution they were made at, so a store
keeps a :class:`SchemaRecord`: every metric it has ever kept, with its unit and resolution.
:func:`reconcile` checks a schema against it at start-up: adding a metric is safe (old windows
simply lack it); dropping one is safe (it stays readable as a retired metric); changing a kept
metric's unit or resolution is refused with :class:`~iotpipe.domain.telemetry.SchemaConflict`,
unless the metric gets a new name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from iotpipe.domain.metrics import (
    MAX_FIXED,
    InvalidSchema,
    Metric,
    exponent_of,
    from_fixed_at,
    resolution_text,
)
from iotpipe.domain.telemetry import SchemaConflict, TelemetrySchema


class KeptMetric(NamedTuple):
    """A metric as a store keeps it: its name, unit and resolution (``10 ** exponent``)."""

    name: str
    unit: str
    exponent: int

    def retired_metric(self) -> Metric:
        """The metric as a schema that no longer declares it sees it: retired, any value its
        resolution can hold."""
        bound = from_fixed_at(MAX_FIXED, self.exponent)
        return Metric(
            self.name,
            self.unit,
            -bound,
            bound,
            "Retired: no longer declared; its stored aggregates are kept.",
            exponent=self.exponent,
            retired=True,
        )


class SchemaRecord(NamedTuple):
    """Every metric a store has ever kept, with its unit and resolution (see the module), in
    name order (build it with :meth:`of`: stores such as Firestore give maps back sorted, and
    an unchanged record must compare equal, or every start-up would write it again)."""

    metrics: tuple[KeptMetric, ...]

    @staticmethod
    def of(kept: Iterable[KeptMetric]) -> SchemaRecord:
        """The record of these metrics, in name order."""
        return SchemaRecord(tuple(sorted(kept)))

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (``format`` 1)."""
        return {
            "format": 1,
            "metrics": {
                m.name: {"unit": m.unit, "resolution": resolution_text(m.exponent)}
                for m in self.metrics
            },
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> SchemaRecord:
        """The record :meth:`to_json` wrote; :class:`InvalidSchema` if it is not one."""
        try:
            if data["format"] != 1:
                raise InvalidSchema(f"unknown schema record format {data['format']!r}")
            kept = tuple(
                KeptMetric(str(name), str(m["unit"]), exponent_of(m["resolution"]))
                for name, m in data["metrics"].items()
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidSchema(f"the store's schema record is damaged: {exc!r}") from None
        return SchemaRecord.of(kept)


def reconcile(record: SchemaRecord | None, declared: TelemetrySchema) -> Reconciled:
    """The schema to run with over a store holding ``record``, and the record to keep.

    New metrics are added to the record; metrics the record holds and the schema does not are
    kept as retired (their aggregates stay readable). Raises :class:`SchemaConflict` if a
    declared metric has another unit or resolution than the store keeps.
    """
    kept = () if record is None else record.metrics
    stored = {k.name: k for k in kept}
    problems = [_conflict(stored[m.name], m) for m in declared.metrics if m.name in stored]
    problems = [p for p in problems if p]
    if problems:
        raise SchemaConflict(
            "the schema is unsafe for this store: " + "; ".join(problems) + ". A store's "
            "sums are exact only in the unit and at the resolution they were made at; keep "
            "them, or declare the metric under a new name (the old one stays readable as retired)"
        )
    added = tuple(KeptMetric(m.name, m.unit, m.exponent) for m in declared.metrics)
    merged = SchemaRecord.of((*kept, *(k for k in added if k.name not in stored)))
    return Reconciled(with_retired(declared, kept), merged, merged != record)


def record_of(schema: TelemetrySchema) -> SchemaRecord:
    """What a store must remember of a schema: each metric's unit and resolution."""
    return SchemaRecord.of(KeptMetric(m.name, m.unit, m.exponent) for m in schema.metrics)


def with_retired(schema: TelemetrySchema, kept: Iterable[KeptMetric]) -> TelemetrySchema:
    """The schema and, after its metrics, each kept metric it does not declare (retired: no
    longer read from payloads, its stored aggregates still read and shown)."""
    retired = tuple(k.retired_metric() for k in kept if k.name not in schema.names)
    return replace(schema, metrics=(*schema.metrics, *retired)) if retired else schema


def _conflict(kept: KeptMetric, declared: Metric) -> str:
    problems = []
    if kept.unit != declared.unit:
        problems.append(f"unit {kept.unit!r} in the store, {declared.unit!r} in the schema")
    if kept.exponent != declared.exponent:
        problems.append(
            f"resolution {resolution_text(kept.exponent)} in the store, "
            f"{declared.resolution} in the schema"
        )
    return f"metric {declared.name!r} has " + " and ".join(problems) if problems else ""


class Reconciled(NamedTuple):
    """What :func:`reconcile` decided: the schema to run with (the declared one and any retired
    metrics), the record the store should hold, and whether that differs from what it holds."""

    schema: TelemetrySchema
    record: SchemaRecord
    changed: bool


__all__ = ["KeptMetric", "Reconciled", "SchemaRecord", "reconcile", "record_of", "with_retired"]
