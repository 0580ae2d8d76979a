"""The shape of the code: no import cycles, no module reaching into another's private names.

import-linter (``make lint``) holds the layers and the plain domain's independence from the
kernel; these two rules it cannot state.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

import iotpipe

pytestmark = pytest.mark.unit

SRC = Path(iotpipe.__file__).parent


def test_there_is_no_import_cycle() -> None:
    graph = grimp.build_graph("iotpipe", cache_dir=None)
    cycles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported != module and graph.find_shortest_chain(importer=imported, imported=module)
    )
    assert cycles == []


def test_no_module_imports_the_private_names_of_another() -> None:
    reaching = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("iotpipe"):
                private = [a.name for a in node.names if _private(a.name)]
                if private:
                    reaching.append((path.relative_to(SRC).as_posix(), node.module, private))
    assert reaching == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")  # __version__ and kin are public
