"""Golden outputs of the default payload: what existing deployments store and print.

Declared schemas (issue #19) must leave the default schema's stored output byte-identical: the
simulator's lines, ``iotpipe process``'s aggregates and rejects, and every window's record
(identities included) are pinned here by digest, computed before schemas existed. A change to
any of them fails here first, whatever other test still passes.

Store format 2 (issue #16) changed what the SQLite and DynamoDB stores write, by design: window
heads, sealed identity segments and fleet totals (``application/codecs/heads.py``), with metrics
by name. Their bytes are pinned by the SQLite store's rows, a digest computed on #16's code
alone (before declared schemas reached the heads codec), so the default schema's format 2
output is held to #16's, not to itself. The window record of format 1 is still what Firestore's
window documents hold and what the stores read of the previous release.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import orjson
import pytest

from iotpipe import LatenessPolicy, in_memory_pipeline
from iotpipe.adapters.local import SqliteStore
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
#: The SQLite store's format 2 rows (heads, segments, fleet totals; bytes as hex) after the
#: simulated input and a denser hour that seals segments. Computed on branch i16 (issue #16)
#: alone, by this file's ``_format2_rows`` run with i16's sources first on the path.
STORE_ROWS_SHA256 = "e5d36ddcab1b76652c76efa6b4a9ad2b7afcfcdc59a8d12da5f71f178e4790ea"


def _simulated() -> bytes:
    fleet = Fleet(devices=7, interval_s=37, seed=11)
    start = parse_instant("2025-08-31T08:00:00Z")
    faults = Faults(duplicates=0.1, disorder=0.1, malformed=0.05, late=0.05, skewed=0.3, skew_s=600)
    lines = list(fleet.payloads(start, start + 3 * 3_600_000, faults))
    return ("\n".join(lines) + "\n").encode()


def _dense() -> bytes:
    """One hour of 3 devices every 5 s (720 readings a window): heads seal segments."""
    fleet = Fleet(devices=3, interval_s=5, seed=5)
    start = parse_instant("2025-08-31T12:00:00Z")
    faults = Faults(duplicates=0.1, disorder=0.1, late=0.05)
    lines = list(fleet.payloads(start, start + 3_600_000, faults))
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


_FORMAT2_TABLES = {
    "windows": "SELECT device_id, hour_ms, version, latest_ms, head FROM windows "
    "ORDER BY device_id, hour_ms",
    "segments": "SELECT device_id, hour_ms, base, identities FROM segments "
    "ORDER BY device_id, hour_ms, base",
    "fleet": "SELECT hour_ms, total FROM fleet ORDER BY hour_ms",
}


def _format2_rows(path: Path) -> tuple[str, dict[str, int]]:
    """The digest of the store's format 2 rows after both inputs, and each table's row count."""
    store = SqliteStore(path)
    pipeline = in_memory_pipeline(lateness=LatenessPolicy.backfill(), archive=False, store=store)
    for data in (_simulated(), _dense()):
        for _ in pipeline.process_payloads(data.splitlines(), batch_size=101):
            pass
    store.close()
    digest, counts = hashlib.sha256(), {}
    with sqlite3.connect(path) as conn:
        for table, sql in _FORMAT2_TABLES.items():
            rows = conn.execute(sql).fetchall()
            counts[table] = len(rows)
            for row in rows:
                fields = [table, *(v.hex() if isinstance(v, bytes) else v for v in row)]
                digest.update(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE))
    return digest.hexdigest(), counts


def test_stored_format2_rows_are_the_same(tmp_path: Path) -> None:
    digest, counts = _format2_rows(tmp_path / "store.db")
    assert counts == {"windows": 26, "segments": 9, "fleet": 6}  # sealing is exercised
    assert digest == STORE_ROWS_SHA256
