"""The Beam replay's parts that need no Beam: reading archive objects (bad ones included),
which objects a time range covers, store specs, and the command line's errors."""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from pathlib import Path

import pytest

from iotpipe.application.codecs import archive as fmt
from iotpipe.domain.time import MS_PER_DAY, MS_PER_HOUR, parse_instant
from iotpipe.entrypoints.beam import archive
from iotpipe.entrypoints.beam.stores import BadStoreSpec, StoreSpec
from iotpipe.entrypoints.cli import main
from iotpipe.ports import RawBatch, RawRecord

pytestmark = pytest.mark.unit

H10 = parse_instant("2025-08-31T10:00:00Z")
NAME = "raw/dt=2025-08-31/hour=10/b1.jsonl.gz"


def _batch(n: int) -> RawBatch:
    payloads = [
        f'{{"device_id":"d{i}","timestamp":"2025-08-31T10:00:0{i}Z","humidity":5}}'
        for i in range(n)
    ]
    return RawBatch(
        "b1", tuple(RawRecord(f"r{i}", p.encode(), H10) for i, p in enumerate(payloads))
    )


# --- reading one object -----------------------------------------------------------------------


def test_a_good_object_reads_whole_with_no_report() -> None:
    batch = _batch(5)
    assert archive.read_batch(NAME, fmt.encode_batch(batch)) == (batch, None)


def test_a_truncated_object_gives_every_record_before_the_cut_and_says_the_rest_is_lost() -> None:
    batch = _batch(6)
    lines = gzip.decompress(fmt.encode_batch(batch)).splitlines(keepends=True)
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    head = deflate.compress(b"".join(lines[:4])) + deflate.flush(zlib.Z_FULL_FLUSH)
    read, bad = archive.read_batch(NAME, head + deflate.compress(b"".join(lines[4:]))[:5])
    assert read.records == batch.records[:4]
    assert bad == archive.BadFile(NAME, "the file breaks off (truncated gzip)", 0, True)
    assert bad.describe() == (
        f"{NAME}: the file breaks off (truncated gzip) "
        "(0 unreadable records and an unknown number after them)"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"plain text, not gzip", "not a gzip file"),
        (b"", "empty object (0 bytes)"),
        (
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x00garbage" * 4,
            "corrupt compressed data",
        ),
    ],
)
def test_an_unreadable_object_is_reported_never_raised(body: bytes, reason: str) -> None:
    read, bad = archive.read_batch(NAME, body)
    assert read == RawBatch("b1", ())
    assert bad is not None and bad.reason.startswith(reason) and bad.rest_lost


def test_bad_lines_are_counted_and_the_good_ones_kept() -> None:
    batch = _batch(4)
    lines = gzip.decompress(fmt.encode_batch(batch)).splitlines(keepends=True)
    body = gzip.compress(
        b"".join([lines[0], b"{not json\n", lines[1], b'{"no": "id"}\n', *lines[2:]])
    )
    read, bad = archive.read_batch(NAME, body)
    assert read.records == batch.records
    assert bad is not None and (bad.unread, bad.rest_lost) == (2, False)
    assert bad.reason.startswith("2 lines are not archive records (first: line 2: ")


# --- which objects a range covers -------------------------------------------------------------


def test_patterns_cover_each_day_of_the_range_or_the_whole_tree_for_a_long_one() -> None:
    assert archive.patterns("s3://b/p/", H10, H10 + MS_PER_DAY) == [
        "s3://b/p/raw/dt=2025-08-31/hour=*/*.jsonl.gz",
        "s3://b/p/raw/dt=2025-09-01/hour=*/*.jsonl.gz",
        "s3://b/p/stream/2025-08-31/*.jsonl",
        "s3://b/p/stream/2025-09-01/*.jsonl",
    ]
    assert archive.patterns("/a", 0, 253_402_214_400_000) == [
        "/a/raw/dt=*/hour=*/*.jsonl.gz",
        "/a/stream/*/*.jsonl",
    ]


@pytest.mark.parametrize(
    ("name", "start", "end", "inside"),
    [
        (NAME, H10, H10 + MS_PER_HOUR, True),
        (NAME, H10 + 1, H10 + MS_PER_HOUR, False),  # hour 10 starts before the range
        (NAME, H10 - MS_PER_HOUR, H10, False),  # half open
        ("raw/dt=2025-08-31/hour=7/b1.jsonl.gz", 0, 2 * H10, False),  # not a name the format makes
        ("raw/dt=2025-08-31/hour=10/.b1.jsonl.gz.1234.tmp", 0, 2 * H10, False),
        ("raw/dt=2025-08-31/hour=10/notes.txt", 0, 2 * H10, False),
        ("rejected/dt=2025-08-31/hour=10/b1.jsonl.gz", 0, 2 * H10, False),
        ("stream/2025-08-31/10_59_59Z_u.jsonl", H10, H10 + MS_PER_HOUR, True),
        ("stream/2025-08-31/11_00_00Z_u.jsonl", H10, H10 + MS_PER_HOUR, False),
        ("stream/2025-08-31/10_00_00Z_u.jsonl.tmp", 0, 2 * H10, False),
        ("stream/2025-08-31/1_00_00Z_u.jsonl", 0, 2 * H10, False),
    ],
)
def test_in_range_takes_the_names_iotpipe_replay_reads(
    name: str, start: int, end: int, inside: bool
) -> None:
    assert archive.in_range(name, start, end) is inside


def test_names_sort_the_way_iotpipe_replay_reads() -> None:
    """The raw objects by partition hour then name, then the stream files by opening time."""
    names = [
        fmt.object_name(fmt.RAW, H10 + h * MS_PER_HOUR, b) for h in (14, 3, 0) for b in ("z", "a")
    ]
    names += [f"stream/2025-08-{d}/{h:02d}_00_00Z_{u}.jsonl" for d in (31, 30) for h in (9, 11)
              for u in ("b", "a")]  # fmt: skip
    stream = fmt.STREAM_FILENAME_PREFIX
    by_layout = sorted(names, key=lambda n: (n.startswith(stream), archive.partition_hour(n), n))
    assert sorted(names) == by_layout


def test_a_stream_file_is_read_whole_as_one_batch_of_lines_as_delivered() -> None:
    name = "stream/2025-08-31/10_00_05Z_u-1.jsonl"
    batch, bad = archive.read_batch(name, b'[{"a": 1}]\nnot json\n\n[]\n')
    assert bad is None and archive.partition_hour(name) == H10
    assert [(r.record_id, r.data) for r in batch.records] == [
        (f"{name}#1", b'[{"a": 1}]'),
        (f"{name}#2", b"not json"),
        (f"{name}#4", b"[]"),
    ]
    assert archive.read_batch(name, b"") == (RawBatch(f"{name}#c0", ()), None)


# --- store specs ------------------------------------------------------------------------------


def test_store_specs_parse_and_travel_as_plain_values(tmp_path: Path) -> None:
    spec = StoreSpec.parse("dynamodb:iotpipe-windows?region=eu-west-1&fleet_shards=16")
    assert spec == StoreSpec(
        "dynamodb", "iotpipe-windows", (("fleet_shards", "16"), ("region", "eu-west-1"))
    )
    assert not spec.local_only
    assert StoreSpec.parse("firestore:my-project?database=iotpipe").settings == (
        ("database", "iotpipe"),
    )
    local = StoreSpec.parse(f"sqlite:{tmp_path.name}/x.db")
    assert local.local_only and Path(local.name).is_absolute()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("memory", "--store must be sqlite:PATH, dynamodb:TABLE or firestore:PROJECT"),
        ("dynamodb:", "names no dynamodb"),
        ("dynamodb:t?shards=3", "unknown setting 'shards'"),
        ("firestore:p?ttl_days=soon", "ttl_days must be a whole number"),
        ("firestore:p?fleet_lanes=-1", "fleet_lanes must be a whole number"),
    ],
)
def test_a_bad_store_spec_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(BadStoreSpec, match=message):
        StoreSpec.parse(text)


# --- the command line -------------------------------------------------------------------------


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err.strip()


def test_replay_options_of_the_beam_runners_need_a_runner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "replay",
        "--archive",
        str(tmp_path),
        "--store",
        f"sqlite:{tmp_path}/s.db",
        "--from",
        "2025-08-31T00:00:00Z",
        "--to",
        "2025-09-01T00:00:00Z",
    ]
    message = "iotpipe: error: --quarantine and pipeline options (after --) need --runner"
    assert _error(capsys, *base, "--quarantine", str(tmp_path)) == message
    assert _error(capsys, *base, "--", "--project=p") == message


def test_a_cloud_runner_cannot_write_a_local_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "replay",
        "--runner",
        "dataflow",
        "--archive",
        "gs://b",
        "--store",
        "sqlite:s.db",
        "--from",
        "2025-08-31T00:00:00Z",
        "--to",
        "2025-09-01T00:00:00Z",
    ]
    assert "an SQLite file is reachable only from this machine; --runner dataflow needs" in _error(
        capsys, *argv
    )


@pytest.mark.skipif(
    importlib.util.find_spec("apache_beam") is not None, reason="Beam is installed here"
)
def test_without_beam_the_runner_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The development environment has no Beam (it has an environment of its own, .venv-beam).
    argv = [
        "replay",
        "--runner",
        "direct",
        "--archive",
        str(tmp_path),
        "--store",
        f"sqlite:{tmp_path}/s.db",
        "--from",
        "2025-08-31T00:00:00Z",
        "--to",
        "2025-09-01T00:00:00Z",
    ]
    assert "--runner direct needs Apache Beam: pip install 'iotpipe[beam]'" in _error(capsys, *argv)


def test_an_unusable_store_or_quarantine_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-db").write_text("this is not an SQLite database, not even close " * 20)
    (tmp_path / "a-file").write_text("x")
    span = ["--from", "2025-08-31T00:00:00Z", "--to", "2025-09-01T00:00:00Z"]
    base = ["replay", "--runner", "direct", "--archive", str(tmp_path), *span]
    bad_store = _error(capsys, *base, "--store", f"sqlite:{tmp_path}/not-a-db")
    assert bad_store.startswith(f"iotpipe: error: --store sqlite:{tmp_path}/not-a-db: ")
    bad_quarantine = _error(
        capsys, *base, "--store", f"sqlite:{tmp_path}/s.db", "--quarantine", f"{tmp_path}/a-file/q"
    )
    assert bad_quarantine == f"iotpipe: error: --quarantine {tmp_path}/a-file/q: Not a directory"


def test_a_data_directory_given_for_the_archive_is_named_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "archive" / "raw").mkdir(parents=True)
    span = ["--from", "2025-08-31T00:00:00Z", "--to", "2025-09-01T00:00:00Z"]
    argv = [
        "replay",
        "--runner",
        "direct",
        "--archive",
        str(tmp_path),
        "--store",
        f"sqlite:{tmp_path}/s.db",
    ]
    assert _error(capsys, *argv, *span) == (
        f"iotpipe: error: --archive {tmp_path} holds no raw/ partitions; "
        f"did you mean {tmp_path / 'archive'}?"
    )
