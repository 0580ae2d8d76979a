"""The Cloud Functions source archive: reproducible, laid out as Cloud Functions expects, and
loadable by functions-framework from the archive alone (plus the pinned requirements)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import orjson
import pytest

from iotpipe.entrypoints.gcp.packaging import (
    ENTRY_POINTS,
    MANIFEST,
    SOURCE_ZIP,
    build_gcp,
    format_report,
)

pytestmark = pytest.mark.integration

MAIN = Path(__file__).resolve().parents[2] / "src" / "iotpipe" / "entrypoints" / "gcp" / "main.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    build_gcp(first)
    build_gcp(second)
    return first, second


def test_two_builds_are_byte_identical(built: tuple[Path, Path]) -> None:
    first, second = built
    assert (first / SOURCE_ZIP).read_bytes() == (second / SOURCE_ZIP).read_bytes()
    assert (first / MANIFEST).read_bytes() == (second / MANIFEST).read_bytes()


def test_the_archive_has_main_requirements_and_the_package(built: tuple[Path, Path]) -> None:
    first, _ = built
    with zipfile.ZipFile(first / SOURCE_ZIP) as archive:
        names = archive.namelist()
        assert archive.read("main.py") == MAIN.read_bytes()
        requirements = archive.read("requirements.txt").decode().splitlines()
    assert {"main.py", "requirements.txt", "iotpipe/__init__.py", "iotpipe/py.typed"} <= set(names)
    assert "iotpipe/entrypoints/gcp/process.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    for distribution in ("google-cloud-firestore", "google-cloud-pubsub", "functions-framework"):
        assert f"{distribution}=={metadata.version(distribution)}" in requirements
    manifest = orjson.loads((first / MANIFEST).read_bytes())
    assert manifest["entry_points"] == ENTRY_POINTS
    assert manifest["zips"][SOURCE_ZIP]["entries"] == len(names)
    assert SOURCE_ZIP in format_report(build_gcp(first))


def test_functions_framework_loads_every_entry_point_from_the_archive(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    with zipfile.ZipFile(built[0] / SOURCE_ZIP) as archive:
        archive.extractall(tmp_path)
    code = (
        "import functions_framework, iotpipe, json, sys\n"
        "from functions_framework import _function_registry as registry\n"
        "for target in sys.argv[1:]:\n"
        "    functions_framework.create_app(target, 'main.py')\n"
        "print(json.dumps({'iotpipe': iotpipe.__file__, 'types': registry.REGISTRY_MAP}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *ENTRY_POINTS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert Path(loaded["iotpipe"]).is_relative_to(tmp_path)  # the archive's copy, not ours
    assert loaded["types"] == {
        name: point["signature_type"] for name, point in ENTRY_POINTS.items()
    }


def test_a_schema_is_packaged_where_the_functions_read_it(tmp_path: Path) -> None:
    from iotpipe.adapters.schema_file import load_schema
    from iotpipe.entrypoints.bundling import PackagingError
    from iotpipe.entrypoints.deployed_schema import PACKAGED

    schema_file = Path(__file__).parents[2] / "examples" / "schemas" / "industrial.toml"
    build_gcp(tmp_path / "out", schema=schema_file)
    with zipfile.ZipFile(tmp_path / "out" / SOURCE_ZIP) as archive:
        assert archive.read(f"iotpipe/{PACKAGED}") == schema_file.read_bytes()
        archive.extractall(tmp_path / "source")
    # The unpacked archive's own iotpipe reads it, with no environment variable.
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); "
        "from iotpipe.entrypoints.deployed_schema import deployed_schema; "
        "import iotpipe; assert iotpipe.__file__.startswith(sys.argv[1]), iotpipe.__file__; "
        "print(','.join(deployed_schema(os.environ).names))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "source")],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ",".join(load_schema(schema_file).names)
    # A bad schema is refused as it is packaged, before anything is written.
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[metrics]]\nname = "x"\nunit = "u"\nminimum = 0\nmaximum = 1\nresolution = 3\n'
    )
    with pytest.raises(PackagingError, match="resolution 3 is not a power of ten"):
        build_gcp(tmp_path / "refused", schema=bad)
    assert not (tmp_path / "refused").exists()
