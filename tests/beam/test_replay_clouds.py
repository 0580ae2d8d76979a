"""The Beam replay through Beam's own S3 and Cloud Storage file systems, against moto (S3, and
DynamoDB as the target store: the Flink/Spark-on-AWS shape) and gcp-storage-emulator (Cloud
Storage), on the DirectRunner with two worker processes.

The archive is uploaded object for object from the hard archive (tests/beam/archives.py); what
the replay stores must equal what ``iotpipe replay`` stores from the local reference, and the
quarantine it writes into the bucket must hold what the live path rejects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from iotpipe.adapters.aws import DynamoStore, create_table
from iotpipe.application import QueryService
from iotpipe.application.codecs import archive as fmt
from iotpipe.application.views import window_json
from iotpipe.ports import AggregateStore
from tests.aws_support import REGION, MotoServer
from tests.beam.archives import HardArchive, hard_archive
from tests.beam.conftest import BeamCli, process_output, single_process_replay

pytestmark = pytest.mark.integration

FLEET_SHARDS = 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HardArchive, Path]]:
    """The hard archive, and the store the single-process replay makes of its reference."""
    root = tmp_path_factory.mktemp("beam-clouds")
    made = hard_archive(root, devices=5, seed=3)
    assert single_process_replay(made.reference, root / "single.db").code == 0
    yield made, root / "single.db"


def _objects(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rejections(objects: dict[str, bytes]) -> dict[str, list[tuple[str, int, str]]]:
    return {
        name: sorted((r.record_id, r.index, r.reason.value) for r in fmt.decode_rejections(body))
        for name, body in objects.items()
        if name.startswith(fmt.REJECTED + "/")
    }


def _live_rejections(made: HardArchive, tmp_path: Path) -> dict[str, list[tuple[str, int, str]]]:
    """What the live path quarantines, replaying the reference in archive order."""
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.local import FileArchive, FileQuarantine, SqliteStore
    from iotpipe.application import ProcessService, replay
    from iotpipe.domain import LatenessPolicy

    with SqliteStore(tmp_path / "live.db") as store:
        quarantine = FileQuarantine(tmp_path / "live")
        service = ProcessService(
            store, SystemClock(), quarantine=quarantine, lateness=LatenessPolicy.backfill()
        )
        assert replay(FileArchive(made.reference), service, 0, 2**62).ok
    return _rejections(_objects(tmp_path / "live"))


def _lines(store: AggregateStore) -> list[bytes]:
    return [orjson.dumps(window_json(w)) + b"\n" for w in QueryService(store).every_window()]


def test_replay_from_s3_into_dynamodb_on_moto(
    reference: tuple[HardArchive, Path],
    beam: BeamCli,
    moto: MotoServer,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    made, single = reference
    s3, dynamodb = moto.client("s3"), moto.client("dynamodb")
    s3.create_bucket(Bucket="archive")
    for name, body in _objects(made.root).items():
        s3.put_object(Bucket="archive", Key=f"site-7/{name}", Body=body)
    create_table(dynamodb, "windows")
    endpoint = moto.endpoint
    done = beam.replay(
        "s3://archive/site-7",
        f"dynamodb:windows?endpoint={endpoint}&region={REGION}&fleet_shards={FLEET_SHARDS}",
        "--",
        f"--s3_endpoint_url={endpoint}",
        "--s3_access_key_id=testing",
        "--s3_secret_access_key=testing",
        f"--s3_region_name={REGION}",
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    assert done.code == 1, done  # the corrupt objects
    assert "(DirectRunner, 2 worker processes)" in done.out, done.out
    for name in made.corrupt:
        assert f"iotpipe replay: skipped {name}: " in done.err

    expected = process_output(single, capsysbinary)
    stored = _lines(DynamoStore("windows", dynamodb, fleet_shards=FLEET_SHARDS))
    assert b"".join(stored) == expected
    # The quarantine went to the bucket, beside raw/, as the live path lays it out.
    held = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="archive", Prefix="site-7/rejected/"
    ):
        for entry in page.get("Contents", []):
            key = entry["Key"].removeprefix("site-7/")
            held[key] = s3.get_object(Bucket="archive", Key=entry["Key"])["Body"].read()
    assert _rejections(held) == _live_rejections(made, tmp_path)


def test_replay_from_cloud_storage_into_firestore_on_the_emulators(
    reference: tuple[HardArchive, Path],
    beam: BeamCli,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    """The Dataflow shape: the archive in a bucket, the windows into Firestore."""
    from google.cloud import storage

    from iotpipe.adapters.gcp import FirestoreStore
    from tests.gcp_support import (
        PROJECT,
        firestore_client,
        firestore_emulator,
        storage_emulator,
        unique,
    )

    server, firestore = storage_emulator(), firestore_emulator()
    prefix = unique("beam").replace("-", "_") + "_"
    made, single = reference
    client = storage.Client(project=PROJECT)
    bucket = client.create_bucket(unique("archive"))
    for name, body in _objects(made.root).items():
        bucket.blob(f"site-7/{name}").upload_from_string(body, content_type="application/gzip")
    done = beam.replay(
        f"gs://{bucket.name}/site-7",
        f"firestore:{PROJECT}?prefix={prefix}",
        "--",
        f"--project={PROJECT}",
        env={"STORAGE_EMULATOR_HOST": server.url, "FIRESTORE_EMULATOR_HOST": firestore.host},
    )
    assert done.code == 1, done
    assert "(DirectRunner, 2 worker processes)" in done.out, done.out
    stored = FirestoreStore(firestore_client(firestore.host), prefix=prefix)
    assert b"".join(_lines(stored)) == process_output(single, capsysbinary)
    held = {
        blob.name.removeprefix("site-7/"): blob.download_as_bytes()
        for blob in client.list_blobs(bucket.name, prefix="site-7/rejected/")
    }
    assert _rejections(held) == _live_rejections(made, tmp_path)
