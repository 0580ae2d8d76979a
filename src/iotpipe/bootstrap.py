"""Composition roots for the in-process runtime: pipelines over the memory adapters.

Nothing is built at import time; each call builds a fresh pipeline.
"""

from __future__ import annotations

from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.memory import MemoryArchive, MemoryQuarantine, MemoryStore, MemoryStream
from iotpipe.application import Pipeline
from iotpipe.domain import LatenessPolicy
from iotpipe.ports import AggregateStore, Clock


def in_memory_pipeline(
    *,
    clock: Clock | None = None,
    lateness: LatenessPolicy | None = None,
    store: AggregateStore | None = None,
    archive: bool = True,
) -> Pipeline:
    """A complete pipeline in this process: memory stream, store, archive and quarantine.

    ``store`` swaps in another store (e.g. a persistent one); ``archive=False`` keeps no raw
    copy (for long batch runs whose input file is the archive).
    """
    clock = clock or SystemClock()
    return Pipeline(
        store=store or MemoryStore(),
        clock=clock,
        stream=MemoryStream(clock),
        archive=MemoryArchive() if archive else None,
        quarantine=MemoryQuarantine(),
        lateness=lateness,
    )
