"""Reproducible zips of the iotpipe source: what every cloud's packaging shares.

:mod:`iotpipe.entrypoints.aws.packaging` (Lambda zips) and
:mod:`iotpipe.entrypoints.gcp.packaging` (the Cloud Functions source archive) build on these:
the source tree and its pyproject settings (:class:`Project`), the package's files as the wheel
holds them (:func:`code_entries`), the pins of what the tests ran against
(:func:`installed_pins`) and byte-for-byte reproducible zips (:func:`write_zip`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 9
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PackagingError(Exception):
    """The package cannot be built: a bad option, no source tree, or pip failed."""


@dataclass(frozen=True)
class Entry:
    """One file of a zip: its archive name, its bytes and whether it is executable."""

    name: str
    data: bytes
    executable: bool = False


@dataclass(frozen=True)
class ZipSummary:
    """A written zip as the manifest describes it."""

    name: str
    sha256: str
    size: int
    unzipped: int
    entries: int


@dataclass(frozen=True)
class Project:
    """The iotpipe source checkout: its package directory and pyproject.toml settings."""

    package_dir: Path
    version: str
    requires_python: str
    dependencies: tuple[str, ...]
    extras: dict[str, tuple[str, ...]]
    package_data: tuple[str, ...]

    @classmethod
    def locate(cls) -> Project:
        """The checkout this module is imported from (``src/iotpipe`` beside pyproject.toml)."""
        package_dir = Path(__file__).resolve().parents[1]  # src/iotpipe
        pyproject = package_dir.parents[1] / "pyproject.toml"
        try:
            config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PackagingError(
                f"packaging needs the iotpipe source tree (pip install -e .): {pyproject}: {exc}"
            ) from None
        project = config.get("project", {})
        if project.get("name") != "iotpipe":
            raise PackagingError(f"{pyproject} is not iotpipe's pyproject.toml")
        data = config.get("tool", {}).get("setuptools", {}).get("package-data", {})
        return cls(
            package_dir=package_dir,
            version=str(project["version"]),
            requires_python=str(project.get("requires-python", "")),
            dependencies=tuple(project.get("dependencies", ())),
            extras={k: tuple(v) for k, v in project.get("optional-dependencies", {}).items()},
            package_data=tuple(data.get("iotpipe", ())),
        )


def installed_pins(requirements: Iterable[str]) -> dict[str, str]:
    """Installed versions of the requirements and everything they need (extras aside)."""
    pending = [_requirement_name(r) for r in requirements]
    visited: set[str] = set()
    pins: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in visited:
            continue
        visited.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pins[name] = dist.version
        pending += [_requirement_name(r) for r in dist.requires or () if not _for_extra(r)]
    return dict(sorted(pins.items()))


def _requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise PackagingError(f"cannot read the requirement {requirement!r}")
    return normalised_name(match.group(1))


def normalised_name(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _for_extra(requirement: str) -> bool:
    return "extra" in requirement.partition(";")[2]


def code_entries(project: Project) -> list[Entry]:
    """The iotpipe package's files, as setuptools puts them in the wheel, under ``iotpipe/``."""
    root = project.package_dir
    paths = {p for p in root.rglob("*.py") if _in_package(p, root)}
    for pattern in project.package_data:
        paths.update(p for p in root.glob(pattern) if p.is_file())
    return [_entry(f"iotpipe/{p.relative_to(root).as_posix()}", p) for p in sorted(paths)]


def schema_entries(schema_file: Path | None) -> list[Entry]:
    """The deployment's telemetry schema file, packaged where the functions read it
    (:mod:`iotpipe.entrypoints.deployed_schema`), checked first; none without a file."""
    if schema_file is None:
        return []
    from iotpipe.adapters.schema_file import load_schema
    from iotpipe.domain import InvalidSchema
    from iotpipe.entrypoints.deployed_schema import PACKAGED

    try:
        load_schema(schema_file)
    except InvalidSchema as exc:
        raise PackagingError(f"--schema {exc}") from None
    return [Entry(f"iotpipe/{PACKAGED}", schema_file.read_bytes())]


def schema_manifest(schema_file: Path | None) -> dict[str, Any]:
    """What a manifest says of the packaged schema (``packaged`` false: the default payload);
    Terraform compares its sha256 with ``var.telemetry_schema_file``."""
    if schema_file is None:
        return {"packaged": False}
    data = schema_file.read_bytes()
    return {"packaged": True, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _in_package(path: Path, root: Path) -> bool:
    """Whether every directory from ``root`` down to the file is a package (setuptools' rule)."""
    directory = path.parent
    while directory != root:
        if not (directory / "__init__.py").is_file():
            return False
        directory = directory.parent
    return (root / "__init__.py").is_file()


def _entry(name: str, path: Path) -> Entry:
    return Entry(name, path.read_bytes(), is_executable(path))


def is_executable(path: Path) -> bool:
    """Whether the file has any execute bit (a zip entry keeps it)."""
    return bool(path.stat().st_mode & 0o111)


def write_zip(path: Path, entries: Iterable[Entry]) -> ZipSummary:
    """Write a deterministic zip (sorted, fixed dates and modes, deflate level 9)."""
    ordered = sorted(entries, key=lambda e: e.name)
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for entry in ordered:
            archive.writestr(_zip_info(entry), entry.data, compresslevel=COMPRESS_LEVEL)
    os.replace(partial, path)
    data = path.read_bytes()
    return ZipSummary(
        name=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        unzipped=sum(len(e.data) for e in ordered),
        entries=len(ordered),
    )


def _zip_info(entry: Entry) -> zipfile.ZipInfo:
    if entry.name.startswith("/") or ".." in entry.name.split("/"):
        raise PackagingError(f"refusing a zip entry outside the archive root: {entry.name}")
    info = zipfile.ZipInfo(entry.name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so that external_attr holds the file mode
    info.external_attr = (0o100755 if entry.executable else 0o100644) << 16
    return info
