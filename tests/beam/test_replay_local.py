"""The Beam replay on the DirectRunner (two worker processes) against the local archive and the
SQLite store: it stores exactly what ``iotpipe replay`` stores, byte for byte.

The archive is hard on purpose (tests/beam/archives.py): duplicate objects, resends across
files, late batches, conflicting versions across files, and corrupt files. The single-process
replay runs over the reference archive (the corrupt files replaced by what can be read of
them), since a corrupt file cannot be read whole by anyone.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

import orjson
import pytest

from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.local import FileArchive, FileQuarantine, SqliteStore
from iotpipe.application import ProcessService, replay
from iotpipe.application.codecs import archive as fmt
from iotpipe.domain import LatenessPolicy
from tests.beam.archives import HardArchive, hard_archive
from tests.beam.conftest import (
    BeamCli,
    Done,
    process_output,
    single_process_replay,
    windows,
)

pytestmark = pytest.mark.e2e

_COUNTS = re.compile(
    r"(?P<batches>\d+) batches, (?P<readings>\d+) readings, (?P<counted>\d+) counted, "
    r"(?P<duplicates>\d+) duplicates, (?P<rejected>\d+) rejected"
)


def counts(summary: str) -> dict[str, int]:
    """The figures both replays print, by name."""
    found = _COUNTS.search(summary)
    assert found, summary
    return {k: int(v) for k, v in found.groupdict().items()}


@pytest.fixture(scope="module")
def replayed(
    tmp_path_factory: pytest.TempPathFactory, beam: BeamCli
) -> tuple[HardArchive, Done, Done, Path]:
    """The hard archive replayed once by each: (archive, single-process, Beam, directory)."""
    root = tmp_path_factory.mktemp("beam-replay")
    made = hard_archive(root)
    single = single_process_replay(made.reference, root / "single.db")
    done = beam.replay(str(made.root), f"sqlite:{root / 'beam.db'}")
    return made, single, done, root


def test_beam_replay_stores_byte_for_byte_what_the_single_process_replay_stores(
    replayed: tuple[HardArchive, Done, Done, Path], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    _, single, done, root = replayed
    assert single.code == 0, single
    expected = process_output(root / "single.db", capsysbinary)
    assert expected.count(b"\n") > 40  # many windows, not a trivial store
    assert process_output(root / "beam.db", capsysbinary) == expected
    # Stronger than the output: every window whole, with its identities and latest reading.
    assert windows(root / "beam.db") == windows(root / "single.db")
    # And every reading is accounted for alike (the salvaged device included).
    assert counts(done.out) == {**counts(single.out), "batches": counts(done.out)["batches"]}
    assert b'"device_id":"salvaged-1"' in expected
    assert b'"device_id":"streamed-1"' in expected  # read from a stream file only
    # Read from packed lines only: all 10 messages' 12 readings (the corrupt line is a copy).
    [streamed_2] = [w for w in expected.splitlines() if b'"device_id":"streamed-2"' in w]
    assert orjson.loads(streamed_2)["count"] == 120


def test_beam_replay_runs_in_several_worker_processes(
    replayed: tuple[HardArchive, Done, Done, Path],
) -> None:
    _, _, done, _ = replayed
    workers = re.search(r"\(DirectRunner, (\d+) worker processes\)", done.out)
    assert workers, done.out
    assert int(workers.group(1)) == 2, "the batches were not spread over two processes"


def test_each_corrupt_object_is_reported_by_path_and_reason_and_the_exit_status_says_so(
    replayed: tuple[HardArchive, Done, Done, Path],
) -> None:
    made, _, done, _ = replayed
    assert done.code == 1, done
    skipped = [line for line in done.err.splitlines() if line.startswith("iotpipe replay: skipped")]
    assert len(skipped) == len(made.corrupt), done.err
    for name, why in made.corrupt.items():
        [line] = [s for s in skipped if f" {name}: " in s]
        assert why in line, line
    assert "1 unreadable records" in next(s for s in skipped if "garbled" in s)
    assert "an unknown number after them" in next(s for s in skipped if "cut-short" in s)
    assert "4 archive objects NOT read whole (1 records unreadable, 3 cut short" in done.out


def test_the_quarantine_holds_what_the_live_path_rejects(
    replayed: tuple[HardArchive, Done, Done, Path], tmp_path: Path
) -> None:
    made, _, _, _ = replayed
    # The live path's processing over the reference, in archive order, with a quarantine.
    live = FileQuarantine(tmp_path / "live")
    with SqliteStore(tmp_path / "live.db") as store:
        service = ProcessService(
            store, SystemClock(), quarantine=live, lateness=LatenessPolicy.backfill()
        )
        assert replay(FileArchive(made.reference), service, 0, 2**62).ok
    expected = _rejections(tmp_path / "live")
    assert Counter(r[2] for rs in expected.values() for r in rs)["conflicting_duplicate"] >= 6
    assert _rejections(made.root) == expected


def _rejections(root: Path) -> dict[str, list[tuple[str, int, str, str, bytes]]]:
    """Every quarantine object under ``root``: its rejections, as sortable tuples."""
    found = {}
    for path in sorted((root / fmt.REJECTED).rglob("*" + fmt.SUFFIX)):
        entries = fmt.decode_rejections(path.read_bytes())
        found[path.relative_to(root).as_posix()] = sorted(
            (r.record_id, r.index, r.reason.value, r.message, r.payload) for r in entries
        )
    return found


def test_replaying_again_changes_nothing(
    replayed: tuple[HardArchive, Done, Done, Path],
    beam: BeamCli,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    made, _, first, root = replayed
    again = root / "again.db"
    shutil.copy(root / "beam.db", again)
    before = process_output(again, capsysbinary)
    done = beam.replay(str(made.root), f"sqlite:{again}")
    assert process_output(again, capsysbinary) == before
    assert counts(done.out)["counted"] == 0
    assert counts(done.out)["readings"] == counts(first.out)["readings"]
    assert ", 0 windows updated, 0 store writes" in done.out


def test_merging_into_windows_that_already_hold_readings_stays_exact(
    tmp_path: Path, beam: BeamCli, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    made = hard_archive(tmp_path, devices=4, seed=5)
    # Both stores hold the first third of the batches already (the live path wrote them).
    for name in ("single.db", "beam.db"):
        with SqliteStore(tmp_path / name) as store:
            service = ProcessService(store, SystemClock(), lateness=LatenessPolicy.backfill())
            for batch in made.batches[: len(made.batches) // 3]:
                assert not service.process(batch).failed_records
    single = single_process_replay(made.reference, tmp_path / "single.db")
    done = beam.replay(str(made.root), f"sqlite:{tmp_path / 'beam.db'}")
    assert done.code == 1 and single.code == 0  # the corrupt files
    assert process_output(tmp_path / "beam.db", capsysbinary) == process_output(
        tmp_path / "single.db", capsysbinary
    )
    assert windows(tmp_path / "beam.db") == windows(tmp_path / "single.db")
    # Every repeat is judged against what the store held first, as the single process judges it.
    assert counts(done.out) == {**counts(single.out), "batches": counts(done.out)["batches"]}


def test_a_job_that_fails_on_a_worker_says_so_in_one_line_and_exits_1(
    tmp_path: Path, beam: BeamCli
) -> None:
    made = hard_archive(tmp_path, devices=2, seed=9)
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    (quarantine / "rejected").write_text("a file where the quarantine's directory must go")
    done = beam.replay(
        str(made.root), f"sqlite:{tmp_path / 's.db'}", "--quarantine", str(quarantine)
    )
    assert done.code == 1, done
    [line] = [e for e in done.err.splitlines() if e.startswith("iotpipe replay: the DirectRunner")]
    assert line.startswith("iotpipe replay: the DirectRunner job failed: ")
    assert "rejected" in line, line  # the cause, named (the workers log their own traceback)


def test_beam_replay_of_a_declared_fleet_stores_what_the_single_process_replay_stores(
    tmp_path: Path, beam: BeamCli, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # An industrial fleet (nested paths, epoch-ms times) archived by the local runtime, replayed
    # with --schema by both replays: the same stored windows, every declared metric in them.
    from iotpipe.adapters.clock import ManualClock
    from iotpipe.adapters.schema_file import load_schema
    from iotpipe.bootstrap import local_pipeline
    from iotpipe.domain.time import MS_PER_HOUR, parse_instant
    from iotpipe.entrypoints.cli import main
    from iotpipe.simulator import Faults, Fleet
    from tests.beam.archives import FROM, TO

    schema_file = Path(__file__).parents[2] / "examples" / "schemas" / "industrial.toml"
    schema = load_schema(schema_file)
    start = parse_instant(FROM) + MS_PER_HOUR
    clock = ManualClock(start + 2 * MS_PER_HOUR)
    pipeline = local_pipeline(
        tmp_path / "data", clock=clock, lateness=LatenessPolicy.unbounded(), schema=schema
    )
    fleet = Fleet(4, 120, seed=9, schema=schema)
    lines = list(fleet.payloads(start, start + 2 * MS_PER_HOUR, Faults(duplicates=0.1)))
    pipeline.ingest([orjson.loads(line) for line in lines])
    assert all(not r.failed_records for r in pipeline.drain(batch_size=50))
    archive = tmp_path / "data" / "archive"
    declared = ("--schema", str(schema_file))
    done = beam.replay(str(archive), f"sqlite:{tmp_path / 'beam.db'}", *declared)
    assert done.code == 0, done.err
    with redirect_stdout(io.StringIO()):
        single = main(
            ["replay", "--archive", str(archive), "--store", f"sqlite:{tmp_path / 'single.db'}",
             "--from", FROM, "--to", TO, *declared]
        )  # fmt: skip
    assert single == 0

    def output(store: str) -> bytes:
        capsysbinary.readouterr()
        assert main(["process", os.devnull, "--store", f"sqlite:{store}", *declared]) == 0
        return capsysbinary.readouterr().out

    expected = output(str(tmp_path / "single.db"))
    assert expected.count(b"\n") == 4 * 2 and b'"vibration_rms":{"count":30' in expected
    assert output(str(tmp_path / "beam.db")) == expected
