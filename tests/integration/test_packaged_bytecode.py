"""Bytecode in the Lambda zips: built for this interpreter's Python, every module of iotpipe has
an unchecked-hash ``.pyc`` that the import system uses, from a read-only directory, without
compiling anything; built for another Python, the zips hold none and the build says so.

Like tests/integration/test_packaging.py, the layer's wheels come from the package index (or
pip's cache): these tests fail, never skip, without it.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import platform
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import orjson
import pytest

from iotpipe.entrypoints.aws import bytecode
from iotpipe.entrypoints.aws.packaging import CODE_ZIP, HANDLERS, LAYER_ZIP, MANIFEST
from iotpipe.entrypoints.bundling import Project, code_entries
from tests.integration.test_packaging import HOST_ARCH, entries, package

pytestmark = pytest.mark.integration

RUNNING = bytecode.running_python()

#: Imports every iotpipe module it can from the directories on its command line (those needing
#: what the zips do not hold, e.g. boto3 or the Google clients, fail to import and are
#: counted), and reports which source files the import system compiled: it compiles one
#: through ``SourceFileLoader.source_to_code`` when no usable bytecode is found.
PROBE = textwrap.dedent(
    """
    import importlib, importlib.machinery, json, pkgutil, sys
    compiled = []
    original = importlib.machinery.SourceFileLoader.source_to_code
    def spy(self, data, path, *, _optimize=-1):
        compiled.append(path)
        return original(self, data, path, _optimize=_optimize)
    importlib.machinery.SourceFileLoader.source_to_code = spy
    sys.path[:0] = sys.argv[1:]
    import iotpipe
    failed = []
    for info in pkgutil.walk_packages(iotpipe.__path__, "iotpipe.", onerror=failed.append):
        try:
            importlib.import_module(info.name)
        except ImportError:
            failed.append(info.name)
    loaded = {
        name: [module.__file__, module.__cached__]
        for name, module in sys.modules.items()
        if (name == "iotpipe" or name.startswith("iotpipe.")) and getattr(module, "__file__", None)
    }
    for name in ("msgspec.json", "pydantic.main", "typing_extensions"):  # from the layer
        module = importlib.import_module(name)
        loaded[name] = [module.__file__, module.__cached__]
    print(json.dumps({"compiled": compiled, "loaded": loaded, "failed": failed}))
    """
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``iotpipe package aws`` for this interpreter's Python and this machine's architecture."""
    out = tmp_path_factory.mktemp("bytecode") / "aws"
    package(out, "--python", RUNNING, "--arch", HOST_ARCH[platform.machine().lower()])
    return out


def test_every_module_of_iotpipe_has_an_unchecked_hash_pyc(built: Path) -> None:
    code = entries(built / CODE_ZIP)
    sources = {n: d for n, d in code.items() if n.endswith(".py")}
    pycs = {n: d for n, d in code.items() if n.endswith(".pyc")}
    assert len(sources) > 100
    assert set(pycs) == {bytecode.pyc_name(n) for n in sources}
    for name, source in sources.items():
        pyc = pycs[bytecode.pyc_name(name)]
        # Where the import system looks for it.
        assert bytecode.pyc_name(name) == importlib.util.cache_from_source(name, optimization="")
        assert pyc[:4] == importlib.util.MAGIC_NUMBER, name
        # PEP 552: flags 0b01 = hash-based, not checked; then the source's hash.
        assert int.from_bytes(pyc[4:8], "little") == 0b01, name
        assert pyc[8:16] == importlib.util.source_hash(source), name
    manifest = orjson.loads((built / MANIFEST).read_bytes())
    assert manifest["bytecode"] == f"{sys.implementation.cache_tag} unchecked-hash"


def test_the_layer_s_modules_have_bytecode_too(built: Path) -> None:
    layer = entries(built / LAYER_ZIP)
    sources = [n for n in layer if n.endswith(".py")]
    assert any(n.startswith("python/pydantic/") for n in sources)
    assert [n for n in sources if bytecode.pyc_name(n) not in layer] == []


def _extract(zips: Path, target: Path, with_bytecode: bool) -> tuple[Path, Path]:
    """Both zips unpacked as Lambda does (code in task/, the layer in opt/), read-only."""
    task, opt = target / "task", target / "opt"
    for zip_name, folder in ((CODE_ZIP, task), (LAYER_ZIP, opt)):
        with zipfile.ZipFile(zips / zip_name) as archive:
            names = [n for n in archive.namelist() if with_bytecode or "__pycache__" not in n]
            archive.extractall(folder, names)
    for folder, _dirs, files in os.walk(target):
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
        os.chmod(folder, 0o555)
    return task, opt / "python"


def _probe(task: Path, layer: Path) -> dict[str, object]:
    # -I -S: only the unpacked directories, no site-packages; -B: write no bytecode (the
    # directories are read-only too, but a test running as root could still write there).
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", PROBE, str(task), str(layer)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = orjson.loads(done.stdout)
    return result


@pytest.mark.skipif(sys.platform != "linux", reason="manylinux wheels load on Linux only")
def test_imports_from_the_read_only_zips_compile_nothing(built: Path, tmp_path: Path) -> None:
    task, layer = _extract(built, tmp_path / "with", with_bytecode=True)
    found = _probe(task, layer)
    assert found["compiled"] == []
    loaded = found["loaded"]
    assert isinstance(loaded, dict)
    for handler in HANDLERS.values():
        assert handler.rpartition(".")[0] in loaded
    assert len(loaded) > 100, found["failed"]
    for name, (file, cached) in loaded.items():
        assert file.startswith((str(task), str(layer))), name
        assert Path(cached).is_file(), name
    # The control: the same imports from the zips without their bytecode compile every module.
    task, layer = _extract(built, tmp_path / "without", with_bytecode=False)
    bare = _probe(task, layer)
    assert isinstance(bare["compiled"], list) and isinstance(bare["loaded"], dict)
    assert len(bare["loaded"]) == len(loaded)
    assert {file for file, _cached in bare["loaded"].values()} <= set(bare["compiled"])
    assert not any((tmp_path / "without").rglob("*.pyc"))  # and nothing was written


def test_compiling_twice_gives_the_same_bytes() -> None:
    # The bytes of a marshalled code object depend on the compiling process's state; each
    # compile runs in a fresh interpreter, so that two builds are byte-identical.
    code = code_entries(Project.locate())
    first, second = bytecode.compiled(code), bytecode.compiled(code)
    assert first == second and len(first) == sum(e.name.endswith(".py") for e in code)
    # Each code object names its file as the zip does, not the build's temporary directory.
    names = {marshal.loads(e.data[16:]).co_filename for e in first}
    assert names == {e.name for e in code if e.name.endswith(".py")}


def test_another_python_gets_no_bytecode_and_a_warning() -> None:
    other = "3.13" if RUNNING != "3.13" else "3.12"
    warning = bytecode.mismatch(other)
    assert warning is not None
    assert f"target Python {other} and this is Python {RUNNING}" in warning
    assert f"Run `iotpipe package aws` with Python {other}" in warning
    assert bytecode.mismatch(RUNNING) is None


def test_a_source_that_does_not_compile_is_named() -> None:
    from iotpipe.entrypoints.bundling import Entry, PackagingError

    good, bad = Entry("pkg/good.py", b"x = 1\n"), Entry("pkg/bad.py", b"def (:\n")
    assert [e.name for e in bytecode.compiled([good, bad])] == [bytecode.pyc_name(good.name)]
    with pytest.raises(PackagingError, match=r"cannot compile pkg/bad\.py"):
        bytecode.compiled([good, bad], require_all=True)
