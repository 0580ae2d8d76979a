"""``iotpipe package aws``: reproducible Lambda zips of the code and of a dependency layer.

The layer's wheels come from the package index (PyPI) or pip's cache, so the first run needs the
index; these tests never skip for that: they fail and say why.
"""

from __future__ import annotations

import hashlib
import io
import platform
import subprocess
import sys
import textwrap
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import orjson
import pytest

from iotpipe.entrypoints.aws.bytecode import pyc_name, running_python
from iotpipe.entrypoints.aws.packaging import (
    CODE_ZIP,
    HANDLERS,
    LAYER_ZIP,
    MANIFEST,
    AwsOptions,
    PackagingError,
    Project,
    build_aws,
    handler_module,
    installed_pins,
    layer_requirements,
)
from iotpipe.entrypoints.cli import main

pytestmark = pytest.mark.integration

SOURCE = Path(__file__).resolve().parents[2] / "src" / "iotpipe"
ELF_MACHINE = {"arm64": 0xB7, "x86_64": 0x3E}  # EM_AARCH64, EM_X86_64
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Builds:
    """The default build (python3.12, arm64) made twice, and what the first one printed."""

    first: Path
    second: Path
    printed: str
    warned: str


def package(out: Path, *options: str) -> str:
    """Run ``iotpipe package aws`` and return what it printed; fail clearly if it cannot."""
    return package_printed(out, *options)[0]


def package_printed(out: Path, *options: str) -> tuple[str, str]:
    """Run ``iotpipe package aws``; what it printed to stdout and to stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        status = main(["package", "aws", "--out", str(out), *options])
    if status != 0:
        pytest.fail(
            "`iotpipe package aws` failed; the layer's wheels come from the package index "
            f"(PyPI) or pip's cache, which must be reachable:\n{stderr.getvalue()}",
            pytrace=False,
        )
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    printed, warned = package_printed(first / "aws")
    package(second / "aws")
    return Builds(first / "aws", second / "aws", printed, warned)


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def elf_machine(data: bytes) -> int:
    """The ``e_machine`` field of a 64-bit little-endian ELF file."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert data[4] == 2 and data[5] == 1, "not 64-bit little-endian"
    return int.from_bytes(data[18:20], "little")


def shared_objects(layer: dict[str, bytes], package_dir: str) -> dict[str, bytes]:
    prefix = f"python/{package_dir}/"
    return {n: d for n, d in layer.items() if n.startswith(prefix) and n.endswith(".so")}


# --- reproducibility ----------------------------------------------------------------------------


def test_two_builds_are_byte_identical(builds: Builds) -> None:
    for name in (CODE_ZIP, LAYER_ZIP, MANIFEST):
        first, second = (builds.first / name).read_bytes(), (builds.second / name).read_bytes()
        assert first == second, f"{name} differs between two builds of the same inputs"


def test_entries_are_normalised(builds: Builds) -> None:
    leaks = [str(builds.first).encode(), sys.prefix.encode()]  # the output and the venv
    for name in (CODE_ZIP, LAYER_ZIP):
        with zipfile.ZipFile(builds.first / name) as archive:
            infos = archive.infolist()
            names = [i.filename for i in infos]
            assert names == sorted(names)
            bytecode_names = {pyc_name(n) for n in names if n.endswith(".py")}
            for info in infos:
                assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
                assert info.external_attr >> 16 in {0o100644, 0o100755}, info.filename
                assert info.compress_type == zipfile.ZIP_DEFLATED, info.filename
                assert info.extra == b"" and not info.is_dir(), info.filename
                parts = info.filename.split("/")
                assert not info.filename.startswith("/") and ".." not in parts, info.filename
                if "__pycache__" in parts or info.filename.endswith(".pyc"):
                    assert info.filename in bytecode_names, f"stray bytecode {info.filename}"
                data = archive.read(info)
                assert not any(leak in data for leak in leaks), f"a build path in {info.filename}"


# --- the code zip -------------------------------------------------------------------------------


def test_the_code_zip_holds_the_package_and_its_data(builds: Builds) -> None:
    code = entries(builds.first / CODE_ZIP)
    assert all(name.startswith("iotpipe/") for name in code)
    sources = {
        f"iotpipe/{p.relative_to(SOURCE).as_posix()}"
        for p in SOURCE.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert {n for n in code if n.endswith(".py")} == sources
    assert code["iotpipe/__init__.py"] == (SOURCE / "__init__.py").read_bytes()
    assert "iotpipe/py.typed" in code
    assert b"<html" in code["iotpipe/entrypoints/http/static/dashboard.html"].lower()
    for handler in HANDLERS.values():
        module = handler_module(handler)
        if (SOURCE.parent / module).is_file():
            assert module in code


# --- the layer ----------------------------------------------------------------------------------


def test_the_layer_holds_the_dependencies_for_arm64(builds: Builds) -> None:
    layer = entries(builds.first / LAYER_ZIP)
    assert all(name.startswith("python/") for name in layer)
    for package_ in ("pydantic", "pydantic_core", "orjson", "msgspec"):
        assert f"python/{package_}/__init__.py" in layer
    for package_ in ("pydantic_core", "orjson", "msgspec"):
        objects = shared_objects(layer, package_)
        assert len(objects) == 1, objects.keys()
        [(name, data)] = objects.items()
        assert "cpython-312-aarch64-linux-gnu" in name
        assert elf_machine(data) == 0xB7  # AArch64
    wheel = next(d for n, d in layer.items() if n.endswith(".dist-info/WHEEL") and "core" in n)
    assert b"manylinux" in wheel and b"aarch64" in wheel
    assert not [n for n in layer if n.split("/")[1].startswith(("boto3", "botocore", "bin"))]


def test_every_record_row_names_a_file_in_the_layer(builds: Builds) -> None:
    layer = entries(builds.first / LAYER_ZIP)
    records = [n for n in layer if n.endswith(".dist-info/RECORD")]
    assert records
    for record in records:
        for row in layer[record].decode().splitlines():
            assert f"python/{row.split(',')[0]}" in layer, f"{record}: {row}"


# --- the manifest and the report ----------------------------------------------------------------


def test_the_manifest_matches_the_files(builds: Builds) -> None:
    manifest = orjson.loads((builds.first / MANIFEST).read_bytes())
    assert (manifest["python"], manifest["runtime"]) == ("3.12", "python3.12")
    assert (manifest["architecture"], manifest["platform"]) == ("arm64", "manylinux2014_aarch64")
    assert manifest["handlers"] == HANDLERS
    for name in (CODE_ZIP, LAYER_ZIP):
        data = (builds.first / name).read_bytes()
        with zipfile.ZipFile(builds.first / name) as archive:
            infos = archive.infolist()
        assert manifest["zips"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "unzipped": sum(i.file_size for i in infos),
            "entries": len(infos),
        }
    assert manifest["unzipped_total"] == sum(z["unzipped"] for z in manifest["zips"].values())
    dependencies = manifest["dependencies"]
    assert {"pydantic", "pydantic-core", "orjson", "msgspec"} <= set(dependencies)
    assert "boto3" not in dependencies and "botocore" not in dependencies
    # Pinned: the layer holds the versions the tests run against.
    assert all(dependencies[name] == metadata.version(name) for name in dependencies)


def test_the_default_build_has_bytecode_only_when_this_is_its_python(builds: Builds) -> None:
    # The default target is Python 3.12: this interpreter's .pyc files are useless to it unless
    # this is 3.12 too, so the zips hold none and the build warns (test_packaged_bytecode.py
    # builds for this interpreter and checks the bytecode itself).
    mismatched = running_python() != "3.12"
    for name in (CODE_ZIP, LAYER_ZIP):
        names = entries(builds.first / name)
        assert any(n.endswith(".pyc") for n in names) is not mismatched, name
    manifest = orjson.loads((builds.first / MANIFEST).read_bytes())
    assert (manifest["bytecode"] == "none") is mismatched
    warning = "iotpipe package: warning: no bytecode in the zips: they target Python 3.12"
    assert (warning in builds.warned) is mismatched


def test_the_sizes_are_printed(builds: Builds) -> None:
    lines = builds.printed.splitlines()
    assert "compressed" in lines[1] and "unzipped" in lines[1]
    for name in (CODE_ZIP, LAYER_ZIP, "total"):
        assert any(line.split()[:1] == [name] and "iB" in line for line in lines), name
    assert "of Lambda's 250.0 MiB limit" in builds.printed


# --- the zips run -------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="manylinux wheels load on Linux only")
def test_the_zips_run_on_a_matching_interpreter(tmp_path: Path) -> None:
    """Built for this machine's Python and architecture, code + layer import and validate."""
    arch = HOST_ARCH[platform.machine().lower()]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    package(tmp_path / "out", "--python", python, "--arch", arch)
    code, layer = tmp_path / "task", tmp_path / "opt"
    for zip_name, target in ((CODE_ZIP, code), (LAYER_ZIP, layer)):
        with zipfile.ZipFile(tmp_path / "out" / zip_name) as archive:
            archive.extractall(target)
    [obj] = shared_objects(entries(tmp_path / "out" / LAYER_ZIP), "pydantic_core").values()
    assert elf_machine(obj) == ELF_MACHINE[arch]
    script = textwrap.dedent(
        """
        import sys
        sys.path[:0] = sys.argv[1:]
        import orjson, pydantic
        from iotpipe import parse_reading
        from iotpipe.domain.kernels import decode_readings
        from iotpipe.entrypoints.http.dashboard import PLACEHOLDER, dashboard_page
        line = b'{"device_id": "d1", "timestamp": "2025-08-31T10:00:00Z", "temperature": 25.5}'
        reading = parse_reading(orjson.loads(line))
        assert decode_readings(line) == [reading]  # msgspec, from the layer
        print(reading.device_id, pydantic.__file__, dashboard_page() != PLACEHOLDER)
        """
    )
    # -I -S: no environment and no site-packages, only the two unzipped directories.
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(code), str(layer / "python")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    device, pydantic_file, has_html = done.stdout.split()
    assert (device, has_html) == ("d1", "True")
    assert pydantic_file.startswith(str(layer / "python"))


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (AwsOptions(arch="sparc"), "--arch"),
        (AwsOptions(python="three"), "--python"),
        (AwsOptions(python="3.10"), "requires Python"),
    ],
)
def test_bad_options_are_refused_before_any_download(
    tmp_path: Path, options: AwsOptions, message: str
) -> None:
    with pytest.raises(PackagingError, match=message):
        build_aws(AwsOptions(tmp_path, options.python, options.arch))
    assert not any(tmp_path.iterdir())


def test_boto3_joins_the_layer_only_when_asked() -> None:
    project = Project.locate()
    names = [r.split(">")[0].split("<")[0] for r in layer_requirements(project)]
    assert {"pydantic", "orjson", "msgspec"} <= set(names) and "boto3" not in names
    assert any(r.startswith("boto3") for r in layer_requirements(project, with_boto3=True))


def test_pins_cover_the_whole_dependency_tree_at_installed_versions() -> None:
    pins = installed_pins(layer_requirements(Project.locate()))
    for name in ("pydantic", "pydantic-core", "orjson", "msgspec", "annotated-types"):
        assert pins[name] == metadata.version(name)
