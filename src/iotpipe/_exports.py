"""Lazy package exports (PEP 562): a package names what it offers; each name loads on first use.

A Lambda or Cloud Function that imports ``iotpipe.entrypoints.aws.process`` runs the
``__init__`` of every package on the way (``iotpipe``, ``iotpipe.application``, ...). With eager
re-exports those would load the local runtime, the HTTP API and the rest on every cold start,
for names the function never uses. With these, ``from iotpipe import in_memory_pipeline`` still
works, and costs only what it uses.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], moved: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``exports`` (name ->
    module) is imported from its module when first asked for, then kept in the package.

    ``moved`` (name -> module) are former names of the package, still served from their new
    module, each with a :class:`DeprecationWarning` that says where to import it from.
    """
    namespace = sys.modules[package].__dict__
    moved = moved or {}

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module protocol's name
        module = exports.get(name)
        if module is None and name in moved:
            module = moved[name]
            message = f"{package}.{name} is deprecated: import it from {module}"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
