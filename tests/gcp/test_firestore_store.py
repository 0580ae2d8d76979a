"""FirestoreStore on the Firestore emulator: the document layout, optimistic concurrency,
metering and error translation (the shared contract, stateful and exactness tests run it too,
through ``STORE_FACTORIES``)."""

from __future__ import annotations

import base64
import json
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as api
from google.cloud.firestore_v1.base_query import FieldFilter

from iotpipe.adapters.clock import ManualClock
from iotpipe.adapters.gcp import FirestoreStore
from iotpipe.adapters.gcp.firestore import EMULATOR_COMMIT_BYTES, _commits, stored_size
from iotpipe.application import Pipeline
from iotpipe.application.codecs.window import window_to_record
from iotpipe.domain import (
    FleetTotal,
    HourlyWindow,
    IdentitySet,
    LatenessPolicy,
    Location,
    Reading,
    Stats,
    StoreUnavailable,
    WindowConflict,
    merge_all,
)
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import Contribution, RawBatch, RawRecord, RetryPolicy
from tests.gcp_support import PROJECT, Server, free_port
from tests.oracle import expected_windows

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "format1"

pytestmark = pytest.mark.integration

H0 = 1_756_634_400_000  # 2025-08-31T10:00:00Z
H1 = H0 + MS_PER_HOUR


def reading(device: str, ts: int, temperature: float = 20.0, location: Location | None = None):
    return Reading(device, ts, (round(temperature * 1000), 50_000), location)


def contribute(store: FirestoreStore, *readings: Reading):
    groups: dict[tuple[str, int], list[Reading]] = {}
    for r in readings:
        groups.setdefault((r.device_id, r.hour_ms), []).append(r)
    return store.apply([Contribution(d, h, tuple(rs)) for (d, h), rs in groups.items()])


def test_documents_follow_the_documented_layout(firestore_db: Any) -> None:
    store = FirestoreStore(firestore_db, ttl_days=30)
    contribute(store, reading("iot-sensor-001", H0 + 5), reading("iot-sensor-001", H1 + 7))
    doc = firestore_db.document(f"devices/iot-sensor-001/hours/{H0:015d}").get()
    assert doc.exists
    fields = doc.to_dict()
    assert fields["device_id"] == "iot-sensor-001" and fields["hour_ms"] == H0
    assert fields["count"] == 1 and fields["version"] == 1 and fields["format"] == 2
    assert isinstance(fields["seen"], bytes) and len(IdentitySet.from_bytes(fields["seen"])) == 1
    assert fields["metrics"]["temperature"] == [1, 20_000, 400_000_000, 20_000, 20_000]
    assert fields["latest"]["timestamp"] == "2025-08-31T10:00:00.005Z"
    assert fields["expire_at"] == datetime.fromtimestamp(H1 / 1000, UTC) + timedelta(days=30)
    registry = firestore_db.document("devices/iot-sensor-001").get()
    assert registry.exists and registry.to_dict()["device_id"] == "iot-sensor-001"
    contribute(store, reading("iot-sensor-001", H0 + 6))
    again = firestore_db.document(f"devices/iot-sensor-001/hours/{H0:015d}").get().to_dict()
    assert again["version"] == 2 and again["count"] == 2
    ids = [d.id for d in firestore_db.collection("devices/iot-sensor-001/hours").stream()]
    assert ids == [f"{H0:015d}", f"{H1:015d}"]


def test_without_ttl_no_expiry_field_is_written(firestore_db: Any) -> None:
    contribute(FirestoreStore(firestore_db), reading("d1", H0))
    assert "expire_at" not in firestore_db.document(f"devices/d1/hours/{H0:015d}").get().to_dict()


def test_extreme_values_round_trip_exactly(firestore_db: Any) -> None:
    store = FirestoreStore(firestore_db)
    tiny = reading("d1", H0 + 1, temperature=1000.0, location=Location(5e-324, -0.0))
    many = [reading("d1", H0 + 2 + i, temperature=1000.0) for i in range(500)]
    contribute(store, tiny, *many)
    [window] = store.hourly("d1", H0, H1, limit=5).items
    assert window.stats == Stats.of([tiny, *many])
    assert window.stats.metric("temperature").squares == 501 * 10**12
    located = store.latest("d1")
    assert located is not None
    stored = store.hourly("d1", H0, H1, limit=1).items[0].stats.located
    assert stored is not None and stored.lat == 5e-324
    assert math.copysign(1.0, stored.lon) == -1.0  # -0.0 stays negative


def test_a_stale_version_or_a_second_create_is_a_conflict(firestore_db: Any) -> None:
    store = FirestoreStore(firestore_db)
    contribute(store, reading("d1", H0))
    [(window, token, *_)] = store._load([("d1", H0)]).values()
    grown, _ = window.absorb([reading("d1", H0 + 1)])
    store._save(grown, token)  # the token is current: written
    with pytest.raises(WindowConflict):
        store._save(grown, token)  # the same token again: someone (we) wrote since
    with pytest.raises(WindowConflict):
        store._save(grown, None)  # creating a window that exists
    assert store.ops().extra["conflicts"] == 2


def test_eight_threads_applying_overlapping_batches_end_exact(firestore_db: Any) -> None:
    store = FirestoreStore(firestore_db, retry=RetryPolicy(attempts=30, max_delay_s=0.2))
    readings = [reading(f"d{i % 3}", H0 + i * 11, temperature=i % 40) for i in range(480)]
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            start.wait()
            # Overlapping slices: every reading is offered by several threads.
            for first in range(offset * 7, len(readings), 60):
                result = contribute(store, *readings[first : first + 90])
                assert not result.failed, result.failed
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for device in ("d0", "d1", "d2"):
        [window] = store.hourly(device, H0, H1, limit=5).items
        assert window.stats == Stats.of([r for r in readings if r.device_id == device])
    assert store.ops().extra.get("conflicts", 0) > 0, "the writers never collided"


def test_reads_and_writes_are_metered_as_firestore_bills_them(firestore_db: Any) -> None:
    store = FirestoreStore(firestore_db)
    contribute(store, reading("a", H0), reading("b", H0))
    # 2 window lookups (missing), 2 registry gets, 1 lane lookup; 2 registry creates, 2 window
    # creates and 1 lane write, in one commit.
    assert (store.ops().reads, store.ops().writes) == (5, 5)
    contribute(store, reading("a", H0), reading("b", H0))  # a replay: lookups only
    assert (store.ops().reads, store.ops().writes) == (7, 5)
    contribute(store, reading("a", H0 + 1))  # a known device: lookup, lane, update, lane
    assert (store.ops().reads, store.ops().writes) == (9, 7)
    store.fleet_hour(H0, limit=10)  # one query returning 2 windows
    store.fleet_hour(H1, limit=10)  # an empty query still bills one read
    assert store.ops().reads == 12
    assert store.ops().extra["queries"] == 2


def test_fleet_hour_reads_windows_without_identities_and_only_its_own(firestore_db: Any) -> None:
    mine, other = FirestoreStore(firestore_db, prefix="a_"), FirestoreStore(firestore_db)
    contribute(mine, reading("d1", H0), reading("d2", H0 + 1))
    contribute(other, reading("d0", H0))  # same hour, another collection group
    windows = mine.fleet_hour(H0, limit=10).items
    assert [w.device_id for w in windows] == ["d1", "d2"]
    assert all(len(w.seen) == 0 and w.stats.count == 1 for w in windows)
    assert [w.device_id for w in other.fleet_hour(H0, limit=10).items] == ["d0"]


def test_an_unreachable_firestore_is_unavailable_not_a_crash(
    firestore_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nobody there
    client = firestore.Client(project=PROJECT)
    store = FirestoreStore(client, timeout_s=1.0, retry=RetryPolicy(attempts=1))
    result = contribute(store, reading("d1", H0))
    assert result.failed[("d1", H0)].startswith("unavailable: firestore")
    with pytest.raises(StoreUnavailable):
        store.hourly("d1", H0, H1, limit=1)


def test_a_bad_cursor_or_limit_is_refused(firestore_db: Any) -> None:
    store = FirestoreStore(firestore_db)
    with pytest.raises(ValueError):
        store.hourly("d1", H0, H1, limit=1, cursor="not-an-hour")
    with pytest.raises(ValueError):
        store.devices(limit=0)
    with pytest.raises(ValueError):
        FirestoreStore(firestore_db, prefix="a/b")


def test_a_full_window_fits_in_one_document(firestore_db: Any) -> None:
    """72,000 readings (the window maximum) stay under the 1 MiB document limit, which the
    emulator enforces as production does."""
    store = FirestoreStore(firestore_db)
    readings = [reading("busy", H0 + i * 50, temperature=i % 97) for i in range(72_000)]
    result = contribute(store, *readings)
    assert not result.failed and result.written == {("busy", H0)}
    [(window, *_)] = store._load([("busy", H0)]).values()
    assert window.stats.count == 72_000 and len(window.seen) == 72_000


def test_a_round_of_large_windows_is_cut_into_requests_the_service_accepts(
    firestore_db: Any,
) -> None:
    """Devices at 10 readings/s: late in the hour a window is ~130 KB (its identity set), so a
    round of 40 (a stream file's chunk) is ~5 MB, more than one request may carry (10 MiB in
    production; the emulator refuses gRPC messages over 4 MiB). The store cuts its batched
    writes by bytes too, and every window and the lanes stay exact."""
    store = FirestoreStore(firestore_db, fleet_lanes=8, commit_bytes=EMULATOR_COMMIT_BYTES)
    devices = [f"fast-{d:02d}" for d in range(40)]
    readings = [
        reading(d, H0 + i * 100, temperature=i % 97) for d in devices for i in range(36_000)
    ]
    result = contribute(store, *readings)
    assert not result.failed and result.written == {(d, H0) for d in devices}
    assert store.ops().extra["commits"] >= 2
    loaded = store._load([(d, H0) for d in devices])
    assert {key: stored.window.stats.count for key, stored in loaded.items()} == {
        (d, H0): 36_000 for d in devices
    }
    windows = [stored.window.stats for stored in loaded.values()]
    assert store.fleet_total(H0) == FleetTotal(merge_all(windows), len(devices))


def test_batched_writes_are_cut_by_windows_and_by_bytes() -> None:
    # 400 windows at most, and the byte bound (a window alone may pass it).
    assert _commits([1] * 1000, 10**9) == [(0, 400), (400, 800), (800, 1000)]
    assert _commits([4, 4, 4, 9, 1], 8) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert _commits([], 8) == []


def test_the_byte_count_of_a_window_is_at_least_its_encoded_size() -> None:
    """What the bound counts (Firestore's documented storage sizes) is never less than the
    client's own encoding of the document, from one reading to a busy hour."""
    from google.cloud.firestore_v1 import _helpers
    from google.cloud.firestore_v1.types import Document

    for n in (1, 60, 3_600, 36_000):
        rs = [reading("dev-1", H0 + i * 100, i % 97, Location(34.05, -118.24)) for i in range(n)]
        window = HourlyWindow("dev-1", H0).absorb(rs)[0]
        record = window_to_record(window)
        encoded = Document(fields=_helpers.encode_dict(record))._pb.ByteSize()
        assert encoded <= stored_size(record) <= encoded + 1024


def test_lanes_hold_the_fleet_total_in_the_documented_layout(firestore_db: Any) -> None:
    store = FirestoreStore(firestore_db, ttl_days=3, fleet_lanes=1)
    contribute(store, reading("a", H0 + 1), reading("b", H0 + 2))
    [lane] = list(firestore_db.collection(f"fleet/{H0:015d}/lanes").stream())
    fields = lane.to_dict()
    assert lane.id == "0" and fields["hour_ms"] == H0 and isinstance(fields["total"], bytes)
    assert fields["expire_at"] == datetime.fromtimestamp(H1 / 1000, UTC) + timedelta(days=3)
    assert store.fleet_total(H0) == FleetTotal(
        Stats.of([reading("a", H0 + 1), reading("b", H0 + 2)]), 2
    )


def test_a_commit_whose_reply_was_lost_is_not_applied_twice(firestore_db: Any) -> None:
    """The batched write lands, then the reply is lost (a transient error): the batch is
    delivered again, its windows find their readings counted, the lane is not grown twice."""
    store = FirestoreStore(firestore_db, fleet_lanes=2)
    batch = [reading("a", H0 + 1), reading("b", H0 + 2), reading("a", H0 + 3)]
    real_batch = firestore_db.batch
    state = {"lost": False}

    def batch_losing_a_reply() -> Any:
        write = real_batch()
        commit = write.commit

        def commit_then_lose(**kwargs: Any) -> Any:
            writes = len(write)
            result = commit(**kwargs)
            # Only the store's window commit (windows and a lane), not a single create.
            if not state["lost"] and writes > 1:
                state["lost"] = True
                raise api.ServiceUnavailable("the reply was lost")
            return result

        write.commit = commit_then_lose
        return write

    firestore_db.batch = batch_losing_a_reply
    try:
        first = contribute(store, *batch)
        assert set(first.failed) == {("a", H0), ("b", H0)}
        again = contribute(store, *batch)
        assert not again.failed and not again.written
    finally:
        firestore_db.batch = real_batch
    assert store.fleet_total(H0) == FleetTotal(Stats.of(batch), 2)


def test_a_database_of_the_previous_release_is_converted_once(firestore_db: Any) -> None:
    for doc in json.loads((FIXTURE / "firestore.json").read_text(), object_hook=_bytes):
        firestore_db.document(doc["path"]).set(doc["fields"])
    lines = (FIXTURE / "readings.jsonl").read_bytes().splitlines()
    expected = expected_windows(lines)
    store = FirestoreStore(firestore_db)
    pipeline = Pipeline(store=store, clock=ManualClock(H0), lateness=LatenessPolicy.unbounded())
    # A live write converts its window (its whole statistics join the lane) ...
    one = json.loads(lines[0])
    raw = RawRecord("n", json.dumps([{**one, "timestamp": "2025-08-31T10:00:00.001Z"}]).encode())
    assert pipeline.process(RawBatch("n", (raw,))).accepted == 1
    # ... and the command converts the others, once.
    assert store.migrate_format1() == len(expected) - 1
    assert store.migrate_format1() == 0
    expected = expected_windows([*lines, raw.data[1:-1]])
    for hour in {h for _, h in expected}:
        mine = [s for (_, h), s in expected.items() if h == hour]
        assert store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))
    batch = RawBatch("again", tuple(RawRecord(str(i), line) for i, line in enumerate(lines)))
    report = pipeline.process(batch)
    assert report.accepted == 0 and report.windows_updated == 0


def _bytes(value: dict[str, Any]) -> Any:
    return base64.b64decode(value["__bytes__"]) if set(value) == {"__bytes__"} else value


def test_iotpipe_migrate_converts_a_database_of_the_previous_release(
    firestore_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line on the emulator (``FIRESTORE_EMULATOR_HOST`` is set by the fixture)."""
    from iotpipe.entrypoints.cli import main

    for doc in json.loads((FIXTURE / "firestore.json").read_text(), object_hook=_bytes):
        firestore_db.document(doc["path"]).set(doc["fields"])
    expected = expected_windows((FIXTURE / "readings.jsonl").read_bytes().splitlines())
    assert main(["migrate", "--store", f"firestore:{PROJECT}"]) == 0
    assert f"{len(expected)} windows converted" in capsys.readouterr().err
    assert main(["migrate", "--store", f"firestore:{PROJECT}"]) == 0
    assert "0 windows converted" in capsys.readouterr().err
    store = FirestoreStore(firestore_db)
    for hour in {h for _, h in expected}:
        mine = [s for (_, h), s in expected.items() if h == hour]
        assert store.fleet_total(hour) == FleetTotal(merge_all(mine), len(mine))


# --- fleet lanes off (the GCP deployment's default) ---------------------------------------------


def _expected_total(readings: list[Reading], hour: int) -> FleetTotal:
    mine = [r for r in readings if r.hour_ms == hour]
    per_device = [
        Stats.of([r for r in mine if r.device_id == d]) for d in {r.device_id for r in mine}
    ]
    return FleetTotal(merge_all(per_device), len(per_device))


def test_lanes_off_writes_only_windows_and_totals_the_hours_windows(firestore_db: Any) -> None:
    """One device's window per round, as the GCP process function commits: one document
    write per round, no lane read or written, windows in format 1, and the hour's total the
    merge of its windows, exactly what the lanes give for the same readings."""
    off, on = (
        FirestoreStore(firestore_db, fleet_lanes=0),
        FirestoreStore(firestore_db, prefix="on_"),
    )
    readings = [
        reading(f"d{i % 7}", H0 + i * 997 % MS_PER_HOUR, temperature=i % 31) for i in range(40)
    ] + [reading("d1", H1 + 5), reading("d2", H1 + 6, location=Location(1.5, 2.5))]
    for r in readings:
        contribute(off, r)
        contribute(on, r)
    ops = off.ops()
    assert ops.writes == len(readings) + 7  # a window per round, and each device registered once
    assert ops.extra.get("lane_writes", 0) == 0 and ops.extra.get("lookups") == len(readings)
    assert not list(firestore_db.collection("fleet").list_documents())
    format1 = firestore_db.collection_group("hours").where(filter=FieldFilter("format", "==", 1))
    assert len(list(format1.stream())) == 9  # 7 devices in H0, 2 in H1 (on_hours not included)
    for hour in (H0, H1, H1 + MS_PER_HOUR):
        assert off.fleet_total(hour) == _expected_total(readings, hour) == on.fleet_total(hour)


def test_lanes_switched_on_off_and_on_again_keep_every_total_exact(firestore_db: Any) -> None:
    """Windows written with lanes off (format 1) join the lanes on their next write with
    lanes on, or through ``migrate_format1``; windows already in the lanes keep their lane
    exact while lanes are off, so that switching back on does not count them twice."""
    readings: list[Reading] = []

    def write(store: FirestoreStore, *more: Reading) -> None:
        readings.extend(more)
        for r in more:
            contribute(store, r)

    on, off = (
        FirestoreStore(firestore_db, fleet_lanes=3),
        FirestoreStore(firestore_db, fleet_lanes=0),
    )
    write(on, reading("a", H0 + 1), reading("b", H0 + 2, temperature=30))
    write(off, reading("a", H0 + 3, temperature=25), reading("c", H0 + 4), reading("c", H1 + 4))
    assert off.ops().extra.get("lane_writes") == 1  # a's growth: a is in the lanes
    write(on, reading("c", H0 + 5, temperature=-4), reading("d", H0 + 6))
    # c's window of H0 joined whole on its write with lanes on; its H1 window is still out.
    assert on.fleet_total(H0) == _expected_total(readings, H0)
    assert on.fleet_total(H1) == FleetTotal()
    assert on.migrate_format1() == 1  # c's H1 window: the only one left in format 1
    for hour in (H0, H1):
        assert on.fleet_total(hour) == _expected_total(readings, hour) == off.fleet_total(hour)


def test_migrate_refuses_a_store_with_lanes_off(firestore_db: Any) -> None:
    with pytest.raises(ValueError, match="lanes are off"):
        FirestoreStore(firestore_db, fleet_lanes=0).migrate_format1()


def test_store_specs_and_migrate_follow_the_deployments_lane_setting(
    firestore_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replay's ``firestore:`` spec has lanes off unless it names the deployment's
    ``fleet_lanes``; ``iotpipe migrate`` writes into lanes and refuses ``fleet_lanes=0``."""
    from iotpipe.entrypoints.beam.stores import StoreSpec
    from iotpipe.entrypoints.cli import main

    assert StoreSpec.parse(f"firestore:{PROJECT}").open()[0].fleet_lanes == 0
    assert StoreSpec.parse(f"firestore:{PROJECT}?fleet_lanes=5").open()[0].fleet_lanes == 5
    assert main(["migrate", "--store", f"firestore:{PROJECT}?fleet_lanes=0"]) == 2
    assert "lanes are off" in capsys.readouterr().err
