"""What one Beam replay does, as plain values that travel to every worker (no Beam here)."""

from __future__ import annotations

from dataclasses import dataclass

from iotpipe.domain import DEFAULT_SCHEMA, TelemetrySchema

from .stores import StoreSpec


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """What to replay, from where, into what.

    ``archive`` and ``quarantine`` are roots (a directory, ``s3://bucket/prefix``,
    ``gs://bucket/prefix``); ``report`` is the prefix of the bad-object report files;
    ``flags`` are Beam's pipeline options; ``schema`` is the archived readings' telemetry
    schema (settled against the store's record before the job starts).
    """

    archive: str
    store: StoreSpec
    quarantine: str
    report: str
    start_ms: int
    end_ms: int
    flags: tuple[str, ...] = ()
    schema: TelemetrySchema = DEFAULT_SCHEMA
