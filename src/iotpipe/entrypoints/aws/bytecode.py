"""Bytecode for the Lambda zips, so that a cold start compiles no module.

``/var/task`` and ``/opt`` are read-only on Lambda: CPython cannot write the ``__pycache__`` it
would compile there, so without shipped bytecode every cold start compiles every module it
imports: ~40% of a handler's import instructions (``benchmarks/cold_import.py --bytecode
--instructions``: the process handler's 390 M instructions are 241 M with its bytecode).

The ``.pyc`` files are PEP 552 *unchecked-hash* ones: their validity depends on no file time
(the zips date every entry 1980-01-01, and Lambda unpacks them with its own times), and the
import system loads them without reading, hashing or comparing the source. That is safe
because a zip is never edited in place: the source and its bytecode are always built together.

A ``.pyc`` is valid only for the minor version of CPython that wrote it (its magic number and
its ``cpython-3XY`` file name say which), so bytecode is compiled only when the interpreter
running ``iotpipe package aws`` is the target's. For another target there is no way to compile
it here: the zips then hold none, and the build says so (:func:`mismatch`) rather than ship
files the runtime would ignore.

The compiling is :mod:`compileall`'s, run in a fresh interpreter (``-I``) over a copy of the
entries: the bytes a code object marshals to depend on the reference counts of its strings,
which depend on what else the process has loaded, so compiling in the building process would
make two builds differ; a fresh interpreter that loads only ``compileall`` writes the same bytes
every time.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from iotpipe.entrypoints.bundling import Entry, PackagingError


def running_python() -> str:
    """This interpreter's ``major.minor`` version, as ``--python`` spells it."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def mismatch(python: str) -> str | None:
    """Why this interpreter cannot compile bytecode for Python ``python`` (``None``: it can)."""
    running = running_python()
    if sys.implementation.name != "cpython" or sys.implementation.cache_tag is None:
        return f"no bytecode in the zips: {sys.implementation.name} writes none for CPython"
    if running == python:
        return None
    return (
        f"no bytecode in the zips: they target Python {python} and this is Python {running}, "
        f"whose .pyc files Python {python} would not load; each cold start compiles the modules "
        f"it imports instead. Run `iotpipe package aws` with Python {python} to ship bytecode "
        f"(or target --python {running} with lambda_runtime python{running})"
    )


def pyc_name(source: str) -> str:
    """Where the import system looks for the bytecode of a ``.py`` entry of the zip."""
    path = PurePosixPath(source)
    tag = sys.implementation.cache_tag
    return str(path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc")


def compiled(entries: Iterable[Entry], require_all: bool = False) -> list[Entry]:
    """The unchecked-hash ``.pyc`` entries of the ``.py`` entries, compiled by this interpreter.

    A file that does not compile gets none (as pip's install does), unless ``require_all``:
    then the build fails and says which (the iotpipe package must compile whole).
    """
    sources = [e for e in entries if e.name.endswith(".py")]
    with tempfile.TemporaryDirectory(prefix="iotpipe-pyc-") as tmp:
        root = Path(tmp)
        for entry in sources:
            (root / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (root / entry.name).write_bytes(entry.data)
        output = _compileall(root)
        found = [(e, root / pyc_name(e.name)) for e in sources]
        missing = [e.name for e, pyc in found if not pyc.is_file()]
        if missing and require_all:
            raise PackagingError(f"cannot compile {', '.join(missing)}:\n{output}")
        return [Entry(pyc_name(e.name), pyc.read_bytes()) for e, pyc in found if pyc.is_file()]


def _compileall(root: Path) -> str:
    """Compile every ``.py`` under ``root`` in a fresh interpreter; what it printed."""
    command = [
        *(sys.executable, "-I", "-m", "compileall", "-q"),
        *("--invalidation-mode", "unchecked-hash"),
        # Code objects name their file relative to the zip's root (``iotpipe/...``), not the
        # build's temporary directory; the import system sets the real path when it loads them.
        *("-s", str(root), str(root)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip()
