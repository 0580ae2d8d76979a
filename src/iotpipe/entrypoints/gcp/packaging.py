"""A reproducible Cloud Functions (2nd gen) source archive: :func:`build_gcp`.

Two files are written to ``out`` (default ``dist/gcp``):

- ``iotpipe-gcf-source.zip``: what ``gcloud functions deploy --source`` (or Terraform's
  ``google_cloudfunctions2_function`` ``source.storage_source``) takes: ``main.py`` at the top
  (:mod:`iotpipe.entrypoints.gcp.main`, the entry module), ``requirements.txt``, and the
  ``iotpipe`` package with its package data. The three functions share it; each is deployed
  with its own entry point (:data:`ENTRY_POINTS`).
- ``manifest.json``: the zip's sha256, size, unzipped size and entry count, the entry points
  and the pinned requirements.

Decisions:

- **Source, not wheels.** Cloud Functions builds the environment itself (Cloud Build runs
  ``pip install -r requirements.txt`` for the runtime's Python and platform), so the archive
  holds no compiled code: it is the same for every runtime and a few hundred kilobytes.
- **Pinned to what was tested.** ``requirements.txt`` pins the core dependencies, the ``gcp``
  extra (the three client libraries and functions-framework) and everything they need to the
  versions installed here, the ones the test suite ran against; ``pinned=False`` lists
  pyproject.toml's ranges instead.
- **Byte-for-byte reproducible**, like the AWS zips (the same writer: sorted entries, fixed
  dates and modes, no bytecode): the same source and environment give the same archive, so its
  hash tells Terraform whether to redeploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from iotpipe.entrypoints import bundling as common

SOURCE_ZIP = "iotpipe-gcf-source.zip"
MANIFEST = "manifest.json"
DEFAULT_OUT = Path("dist/gcp")
GCP_EXTRA = "gcp"
#: Each function's entry point in ``main.py`` and its functions-framework signature type.
ENTRY_POINTS = {
    "ingest": {"entry_point": "ingest", "signature_type": "http"},
    "process": {"entry_point": "process", "signature_type": "http"},
    "api": {"entry_point": "api", "signature_type": "http"},
}


@dataclass(frozen=True)
class GcpPackage:
    """The result of a build: the archive's summary and the requirements it declares."""

    out: Path
    archive: common.ZipSummary
    requirements: tuple[str, ...]
    schema: Path | None = None


def requirements(project: common.Project, pinned: bool = True) -> tuple[str, ...]:
    """``requirements.txt`` lines: the core dependencies and the ``gcp`` extra, pinned (with
    everything they need) to the installed versions, or as pyproject.toml states them."""
    wanted = (*project.dependencies, *project.extras.get(GCP_EXTRA, ()))
    if not pinned:
        return tuple(wanted)
    missing = [r for r in wanted if not _installed(r)]
    if missing:
        raise common.PackagingError(
            f"cannot pin {', '.join(missing)}: not installed here (pip install -e '.[gcp]', "
            "or build with pinned=False)"
        )
    pins = common.installed_pins(wanted)
    return tuple(f"{name}=={version}" for name, version in pins.items())


def source_entries(project: common.Project, lines: tuple[str, ...]) -> list[common.Entry]:
    """The archive's files: ``main.py``, ``requirements.txt`` and the ``iotpipe`` package."""
    main = project.package_dir / "entrypoints" / "gcp" / "main.py"
    text = "".join(f"{line}\n" for line in lines).encode()
    return [
        common.Entry("main.py", main.read_bytes()),
        common.Entry("requirements.txt", text),
        *common.code_entries(project),
    ]


def build_gcp(
    out: Path = DEFAULT_OUT, *, pinned: bool = True, schema: Path | None = None
) -> GcpPackage:
    """Write the source archive and its manifest into ``out``; ``schema`` is the deployment's
    telemetry schema file, packaged with the code (see
    :mod:`iotpipe.entrypoints.deployed_schema`)."""
    project = common.Project.locate()
    lines = requirements(project, pinned)
    entries = source_entries(project, lines) + common.schema_entries(schema)
    out.mkdir(parents=True, exist_ok=True)
    summary = common.write_zip(out / SOURCE_ZIP, entries)
    package = GcpPackage(out, summary, lines, schema)
    (out / MANIFEST).write_bytes(manifest_bytes(package, project))
    return package


def manifest_bytes(package: GcpPackage, project: common.Project) -> bytes:
    """The manifest: deterministic JSON (sorted keys, no timestamps)."""
    archive = package.archive
    manifest: dict[str, Any] = {
        "iotpipe": project.version,
        "entry_points": ENTRY_POINTS,
        "requirements": list(package.requirements),
        "telemetry_schema": common.schema_manifest(package.schema),
        "zips": {
            archive.name: {
                "sha256": archive.sha256,
                "size": archive.size,
                "unzipped": archive.unzipped,
                "entries": archive.entries,
            }
        },
    }
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def format_report(package: GcpPackage) -> str:
    """A short summary of the archive for the command line."""
    archive = package.archive
    return (
        f"iotpipe package gcp -> {package.out}\n"
        f"  {archive.name}: {archive.size} bytes ({archive.unzipped} unzipped, "
        f"{archive.entries} entries), sha256 {archive.sha256}\n"
        f"  requirements.txt: {len(package.requirements)} pinned distributions\n"
        f"  manifest: {package.out / MANIFEST}"
    )


def _installed(requirement: str) -> bool:
    name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
