"""Golden outputs of the default payload: what existing deployments store and print.

Declared schemas (issue #19) must leave the default schema's stored output byte-identical: the
simulator's lines, ``iotpipe process``'s aggregates and rejects, and every window's stored record
(identities included) are pinned here by digest, computed before schemas existed. A change to
any of them fails here first, whatever other test still passes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from iotpipe import LatenessPolicy, in_memory_pipeline
from iotpipe.application.codecs.window import window_to_record
from iotpipe.domain.time import parse_instant
from iotpipe.entrypoints.cli import main
from iotpipe.simulator import Faults, Fleet

pytestmark = pytest.mark.unit

#: Simulated input with every fault the simulator injects (3 hours, 7 devices).
SIMULATED_SHA256 = "54edd064d56fb5aeb59d833a9ced134a66de775890a36ce3cd7f64bf6764b431"
#: ``iotpipe process --batch-size 97`` of it: the aggregates, then the rejects file.
OUTPUT_SHA256 = "678eb57ca66fb8318b69a4da9ad65d82cab047c183f9e0dda85e11dd6cbddc83"
REJECTS_SHA256 = "b1a04eb812edddc98a39ae668dff13efcf03bc3e6be321c44d97b5b83c706d92"
#: Every window's record (``window_to_record``, identities as hex), one JSON line each.
RECORDS_SHA256 = "cefaf96c4de445a2060b034a14e74edb2f0fcdbe5fe3ada7cdd6925591cf108b"


def _simulated() -> bytes:
    fleet = Fleet(devices=7, interval_s=37, seed=11)
    start = parse_instant("2025-08-31T08:00:00Z")
    faults = Faults(duplicates=0.1, disorder=0.1, malformed=0.05, late=0.05, skewed=0.3, skew_s=600)
    lines = list(fleet.payloads(start, start + 3 * 3_600_000, faults))
    return ("\n".join(lines) + "\n").encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_simulator_writes_the_same_lines() -> None:
    assert _sha256(_simulated()) == SIMULATED_SHA256


def test_process_writes_the_same_aggregates_and_rejects(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(_simulated())
    rejects = tmp_path / "rejects.jsonl"
    status = main(["process", str(source), "--rejects", str(rejects), "--batch-size", "97"])
    assert status == 0
    assert _sha256(capsysbinary.readouterr().out) == OUTPUT_SHA256
    assert _sha256(rejects.read_bytes()) == REJECTS_SHA256


def test_stored_window_records_are_the_same() -> None:
    pipeline = in_memory_pipeline(lateness=LatenessPolicy.backfill(), archive=False)
    for _ in pipeline.process_payloads(_simulated().splitlines(), batch_size=101):
        pass
    digest = hashlib.sha256()
    for window in pipeline.query.every_window():
        record = window_to_record(window)
        record["seen"] = record["seen"].hex()
        digest.update(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    assert digest.hexdigest() == RECORDS_SHA256
