"""``iotpipe replay`` over an archive with damaged files: every good file and every readable
record is replayed, each bad file is named with its reason, and the run fails."""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import orjson
import pytest

from iotpipe.adapters.local import FileArchive
from iotpipe.domain.time import MS_PER_HOUR, format_instant, parse_instant
from iotpipe.entrypoints.cli import main
from iotpipe.ports import RawBatch, RawRecord

pytestmark = pytest.mark.integration

H10 = parse_instant("2025-08-31T10:00:00Z")
SPAN = ["--from", "2025-08-31T00:00:00Z", "--to", "2025-09-01T00:00:00Z"]


def _reading(n: int) -> dict[str, object]:
    return {
        "device_id": f"d{n % 4}",
        "timestamp": format_instant(H10 + n * 1000),
        "temperature": n % 37,
    }


def _archive(root: Path, batches: int = 12, per_batch: int = 50) -> dict[str, list[bytes]]:
    """Batches of one-reading records; each batch's record payloads, by file path."""
    archive = FileArchive(root)
    written: dict[str, list[bytes]] = {}
    for b in range(batches):
        payloads = [orjson.dumps([_reading(b * per_batch + i)]) for i in range(per_batch)]
        arrived = H10 + b * 60_000
        records = tuple(RawRecord(str(i), data, arrived) for i, data in enumerate(payloads))
        archive.write(RawBatch(f"batch-{b:03d}", records), H10 + (b % 3) * MS_PER_HOUR)
        [path] = [p for p in root.rglob(f"batch-{b:03d}.jsonl.gz")]
        written[str(path)] = payloads
    return written


def _windows(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> bytes:
    assert main(list(argv)) == 0
    return capsysbinary.readouterr().out


def test_replay_skips_bad_files_names_them_and_replays_everything_readable(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    written = _archive(tmp_path / "archive")
    paths = sorted(written)
    truncated, not_gzip, bad_line, empty = paths[1], paths[4], paths[7], paths[10]
    readable = {path: list(payloads) for path, payloads in written.items()}

    body = Path(truncated).read_bytes()
    cut = body[: len(body) * 4 // 5]
    Path(truncated).write_bytes(cut)
    whole_lines = gzip.decompress(body).split(b"\n")
    # What survives the cut: the complete lines before it (found as replay finds them).
    prefix = zlib.decompressobj(wbits=31).decompress(cut).split(b"\n")[:-1]
    readable[truncated] = [orjson.loads(line)["data"].encode() for line in prefix if line]
    assert 0 < len(prefix) < len(whole_lines) - 1

    Path(not_gzip).write_bytes(b"this is not gzip at all\n")
    readable[not_gzip] = []

    lines = gzip.decompress(Path(bad_line).read_bytes()).split(b"\n")
    lines[3] = b'{"id": "3", "data": '  # a line cut in the middle
    Path(bad_line).write_bytes(gzip.compress(b"\n".join(lines)))
    del readable[bad_line][3]

    Path(empty).write_bytes(b"")
    readable[empty] = []

    store = f"sqlite:{tmp_path / 'rebuilt.db'}"
    argv = ["replay", "--archive", str(tmp_path / "archive"), "--store", store, *SPAN]
    code = main(argv)
    captured = capsysbinary.readouterr()
    err = captured.err.decode()
    assert code == 1
    skipped = [line for line in err.splitlines() if line.startswith("iotpipe replay: skipped ")]
    assert len(skipped) == 4, err
    named = {line.split("skipped ", 1)[1].split(": ", 1)[0]: line for line in skipped}
    assert set(named) == {truncated, not_gzip, bad_line, empty}
    assert "truncated" in named[truncated] and "records lost: unknown" in named[truncated]
    assert "not a gzip file" in named[not_gzip]
    assert "1 line(s) are not archive records" in named[bad_line]
    assert "records lost: 1" in named[bad_line]
    assert "empty file" in named[empty]
    assert "4 files unreadable" in captured.out.decode()

    # The store holds exactly the readable readings: as `iotpipe process` counts them.
    payloads = [p for each in readable.values() for p in each]
    readings = [item for p in payloads for item in orjson.loads(p)]
    source = tmp_path / "readable.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in readings))
    expected = _windows(capsysbinary, "process", str(source))
    empty_input = tmp_path / "none.jsonl"
    empty_input.write_bytes(b"")
    assert _windows(capsysbinary, "process", str(empty_input), "--store", store) == expected
    assert len(readings) == 600 - 50 - 1 - 50 - (50 - len(readable[truncated]))


def test_a_large_object_damaged_late_keeps_every_record_before_the_damage(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # Records written before the damage are readable whatever lies after it, however large
    # the object: by construction here, the first `kept` lines end at a full flush, and the
    # very next byte starts a deflate block of the reserved type (a decoder stops there).
    # The Beam replay reads the same object the same way (issue 20: the same stored result).
    from iotpipe.application.codecs import archive as fmt
    from iotpipe.entrypoints.beam.archive import read_batch

    noise = random.Random(20)  # incompressible unknown fields: a large object
    payloads = [
        orjson.dumps([{**_reading(n), "firmware": noise.randbytes(100).hex()}]) for n in range(2000)
    ]
    arrived = H10 + MS_PER_HOUR  # after every reading: none is from the future
    records = tuple(RawRecord(str(i), p, arrived) for i, p in enumerate(payloads))
    lines = gzip.decompress(fmt.encode_batch(RawBatch("big", records))).splitlines(True)
    kept = 1500
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    head = deflate.compress(b"".join(lines[:kept])) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(b"".join(lines[kept:])) + deflate.flush()
    assert len(head) > 2 * 65536  # damage far into a large object
    body = head + b"\x06" + tail[1:]  # BFINAL 0, BTYPE 11: an invalid block
    name = fmt.object_name(fmt.RAW, H10, "big")
    (tmp_path / "archive" / name).parent.mkdir(parents=True)
    (tmp_path / "archive" / name).write_bytes(body)

    store = f"sqlite:{tmp_path / 'rebuilt.db'}"
    argv = ["replay", "--archive", str(tmp_path / "archive"), "--store", store, *SPAN]
    assert main(argv) == 1
    err = capsysbinary.readouterr().err.decode()
    assert "corrupt compressed data" in err and "records lost: unknown" in err, err
    readable = [item for p in payloads[:kept] for item in orjson.loads(p)]
    source = tmp_path / "readable.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in readable))
    expected = _windows(capsysbinary, "process", str(source))
    empty_input = tmp_path / "none.jsonl"
    empty_input.write_bytes(b"")
    assert _windows(capsysbinary, "process", str(empty_input), "--store", store) == expected
    salvaged, bad = read_batch(name, body)
    assert salvaged.records == records[:kept]
    assert bad is not None and bad.reason.startswith("corrupt compressed data") and bad.rest_lost
