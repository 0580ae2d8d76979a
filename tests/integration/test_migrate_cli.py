"""``iotpipe migrate`` on stores the previous release wrote (the committed format 1 fixtures):
a DynamoDB table on a moto server and an SQLite file, converted through the command line."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from iotpipe.adapters.aws import DynamoStore
from iotpipe.adapters.local import SqliteStore
from iotpipe.domain import FleetTotal, merge_all
from iotpipe.entrypoints.cli import main
from tests.aws_support import REGION, MotoServer, fresh_table, moto, moto_server
from tests.oracle import expected_windows

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "format1"
SHARDS = 4
__all__ = ["moto", "moto_server"]  # the fixtures


def _bytes(value: dict[str, Any]) -> Any:
    return base64.b64decode(value["__bytes__"]) if set(value) == {"__bytes__"} else value


def _expected() -> dict[tuple[str, int], Any]:
    return expected_windows((FIXTURE / "readings.jsonl").read_bytes().splitlines())


def _format1_items(moto: MotoServer, table: str) -> list[dict[str, Any]]:
    items = moto.client("dynamodb").scan(TableName=table)["Items"]
    return [i for i in items if i["PK"]["S"].startswith("DEV#") and i["SK"]["S"].startswith("H#")]


def test_migrate_converts_a_dynamodb_table_once_and_the_lanes_then_hold_every_hour(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    table = fresh_table(moto)
    client = moto.client("dynamodb")
    for item in json.loads((FIXTURE / "dynamodb.json").read_text(), object_hook=_bytes):
        client.put_item(TableName=table, Item=item)
    expected = _expected()
    assert len(_format1_items(moto, table)) == len(expected)
    spec = f"dynamodb:{table}?endpoint={moto.endpoint}&region={REGION}&fleet_shards={SHARDS}"

    assert main(["migrate", "--store", spec, "--delete-format1"]) == 0
    assert f"{len(expected)} windows converted" in capsys.readouterr().err
    assert _format1_items(moto, table) == []
    assert main(["migrate", "--store", spec]) == 0
    assert "0 windows converted" in capsys.readouterr().err

    store = DynamoStore(table, client, fleet_shards=SHARDS, stream=moto.client("dynamodbstreams"))
    store.fold_stream()  # what the deployed fleet function does with the new heads
    hours = {h for _, h in expected}
    stored = {
        (w.device_id, w.hour_ms): w.stats
        for hour in hours
        for w in store.fleet_hour(hour, limit=1000).items
    }
    assert stored == expected
    for hour in hours:
        mine = [s for (_, h), s in expected.items() if h == hour]
        assert store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))


def test_migrate_upgrades_an_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE / "sqlite.db", path)
    assert main(["migrate", "--store", f"sqlite:{path}"]) == 0
    assert "upgraded to schema 2" in capsys.readouterr().err
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    expected = _expected()
    with SqliteStore(path) as store:
        for hour in {h for _, h in expected}:
            mine = [s for (_, h), s in expected.items() if h == hour]
            assert store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--store", "postgres:x"], "--store must be"),
        (["--store", "sqlite:x.db", "--delete-format1"], "dynamodb stores only"),
    ],
)
def test_migrate_refuses_a_bad_store_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
