"""Shared helpers of the documentation checks: the repository, the generator, HCL values."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SCHEMA = DOCS / "schema"


@cache
def generator() -> ModuleType:
    """docs/schema/generate.py, imported from its path (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("iotpipe_docs_schema", SCHEMA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_hcl(path: Path) -> dict[str, Any]:
    """A Terraform file parsed by python-hcl2, with the quotes some versions keep removed."""
    import hcl2

    with path.open() as handle:
        return _unquote(hcl2.load(handle))


def _unquote(value: Any) -> Any:
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def blocks(parsed: dict[str, Any], kind: str) -> dict[str, Any]:
    """``{name: body}`` of the top-level blocks of one kind (``variable``, ``output``...)."""
    found: dict[str, Any] = {}
    for entry in parsed.get(kind, []):
        found.update(entry)
    return found
