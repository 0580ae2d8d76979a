"""Reproducible AWS Lambda deployment zips: ``iotpipe package aws``.

Three files are written to ``--out`` (default ``dist/aws``):

- ``iotpipe-code.zip``: the ``iotpipe`` package alone, with its package data (``py.typed``, the
  dashboard HTML). The four functions (ingest, process, api, authorizer) share it; each sets
  its own handler (see ``HANDLERS``).
- ``iotpipe-deps-layer.zip``: a Lambda layer (``python/`` prefix) holding the runtime
  dependencies (``[project] dependencies`` of pyproject.toml: pydantic and its dependencies,
  orjson, msgspec) built for the target platform from binary wheels only.
- ``manifest.json``: each zip's sha256, size, unzipped size and entry count, the target Python
  and architecture, the handlers and the exact dependency versions in the layer.

Decisions:

- **arm64 (Graviton) by default.** Lambda bills arm64 about 20% less per GB-second than x86_64
  and runs this kind of pure-Python plus native-extension work (pydantic-core, orjson,
  msgspec) at least as fast; all three publish manylinux aarch64 wheels, so nothing is
  compiled. ``--arch x86_64`` builds for the other architecture (the zips then differ only in
  the layer).
- **boto3/botocore are not in the layer.** Every Lambda Python runtime ships them. Bundling them
  adds about 23 MiB unzipped and 17 MiB zipped (three times the rest of the layer, 2,200 more
  files) that every cold start must fetch and unpack, for APIs (Kinesis, DynamoDB, S3) that are
  long stable. The price is that the SDK version moves on AWS's schedule. ``--with-boto3`` bundles
  the ``aws`` extra (pinned like the rest) for those who prefer pinning: a layer comes before the
  runtime's own copy on ``sys.path``, so the bundled one is used.
- **Pinned to what was tested.** Each layer distribution that is installed in the building
  environment is pinned (as a pip constraint) to its installed version, the one the test suite
  ran against; the same source and environment give the same zips, whenever built.
  ``--latest`` resolves the newest versions pyproject.toml allows instead.
- **Byte-for-byte reproducible.** Entries are sorted, dated 1980-01-01, stored with mode 0644
  (0755 if the file had any execute bit), without directory entries, extra fields or absolute
  paths, deflated at level 9 (identical bytes need the same zlib, recorded in the manifest).
- **Bytecode when it can be used.** ``/var/task`` and ``/opt`` are read-only on Lambda, so
  without shipped bytecode every cold start compiles the modules it imports (~40% of a
  handler's import instructions). When this command runs on the target's Python version,
  both zips hold a PEP 552 unchecked-hash ``.pyc`` for each ``.py``
  (:mod:`iotpipe.entrypoints.aws.bytecode`); on another version a ``.pyc`` would be ignored
  by the runtime, so the zips hold none and the build warns. pip runs with ``--no-compile``
  either way: its bytecode would be the building interpreter's, and checked against file
  times the zips do not keep.
- **Little stripping.** Only what cannot work on Lambda is left out of the layer: pip's bytecode
  and the console scripts pip writes to ``bin/`` (their shebang is an absolute path on the build
  machine; their rows are dropped from the ``RECORD`` files so those stay true). Type stubs
  (``*.pyi``), ``py.typed``, licences and ``*.dist-info`` are kept: the stubs weigh under 1% of
  the layer, and removing files would make ``RECORD`` lie.
- The code zip is built from the source tree (the files setuptools puts in the wheel: every
  ``.py`` of a package with ``__init__.py``, plus ``[tool.setuptools.package-data]``), without
  running a build backend, which would write ``build/`` into the tree.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from iotpipe.entrypoints.aws import bytecode
from iotpipe.entrypoints.bundling import (
    Entry,
    PackagingError,
    Project,
    ZipSummary,
    code_entries,
    installed_pins,
    is_executable,
    normalised_name,
    schema_entries,
    schema_manifest,
    write_zip,
)

CODE_ZIP = "iotpipe-code.zip"
LAYER_ZIP = "iotpipe-deps-layer.zip"
MANIFEST = "manifest.json"
DEFAULT_OUT = Path("dist/aws")
DEFAULT_PYTHON = "3.12"
DEFAULT_ARCH = "arm64"
#: Lambda architecture -> the manylinux platform tag of its wheels.
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
#: Each function's Lambda handler in the shared code zip.
HANDLERS = {
    "ingest": "iotpipe.entrypoints.aws.ingest.handler",
    "process": "iotpipe.entrypoints.aws.process.handler",
    "api": "iotpipe.entrypoints.aws.api.handler",
    "authorizer": "iotpipe.entrypoints.aws.authorizer.handler",
    "fleet": "iotpipe.entrypoints.aws.fleet.handler",
}
#: Lambda's limit on a function's unzipped code plus all its layers (AWS's "250 MB").
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
BOTO3_EXTRA = "aws"
_LAYER_PREFIX = "python/"


@dataclass(frozen=True)
class AwsOptions:
    """What ``iotpipe package aws`` builds, and where."""

    out: Path = DEFAULT_OUT
    python: str = DEFAULT_PYTHON
    arch: str = DEFAULT_ARCH
    with_boto3: bool = False
    pinned: bool = True
    schema: Path | None = None
    """The deployment's telemetry schema file, packaged in the code zip (default payload
    without it; see :mod:`iotpipe.entrypoints.deployed_schema`)."""


@dataclass(frozen=True)
class PackageReport:
    """The result of a build: the zips, the layer's dependency versions and any warnings."""

    out: Path
    options: AwsOptions
    zips: tuple[ZipSummary, ...]
    dependencies: dict[str, str]
    warnings: tuple[str, ...] = ()

    @property
    def unzipped_total(self) -> int:
        """Bytes of the code and the layer once unpacked (what Lambda's limit counts)."""
        return sum(z.unzipped for z in self.zips)


# --- the project --------------------------------------------------------------------------------


def layer_requirements(project: Project, with_boto3: bool = False) -> tuple[str, ...]:
    """The requirements the layer installs: the core dependencies, plus the ``aws`` extra."""
    extra = project.extras.get(BOTO3_EXTRA, ()) if with_boto3 else ()
    return (*project.dependencies, *extra)


# --- the build ----------------------------------------------------------------------------------


def build_aws(options: AwsOptions, log: Callable[[str], None] | None = None) -> PackageReport:
    """Build the code zip, the dependency layer zip and the manifest into ``options.out``."""
    project = Project.locate()
    _check_options(options, project)
    say = log or (lambda _message: None)
    code = code_entries(project) + schema_entries(options.schema)
    say(f"installing the layer's dependencies for {_target(options)}")
    layer = layer_entries(project, options)
    no_bytecode = bytecode.mismatch(options.python)
    if no_bytecode is None:
        say(f"compiling bytecode ({sys.implementation.cache_tag}, unchecked hash)")
        code += bytecode.compiled(code, require_all=True)
        layer += bytecode.compiled(layer)
    options.out.mkdir(parents=True, exist_ok=True)
    zips = (
        write_zip(options.out / CODE_ZIP, code),
        write_zip(options.out / LAYER_ZIP, layer),
    )
    report = PackageReport(
        out=options.out,
        options=options,
        zips=zips,
        dependencies=layer_versions(layer),
        warnings=_warnings(code, zips) + ((no_bytecode,) if no_bytecode else ()),
    )
    _write_atomically(options.out / MANIFEST, manifest_bytes(report, project))
    return report


def _check_options(options: AwsOptions, project: Project) -> None:
    if options.arch not in PLATFORMS:
        raise PackagingError(f"--arch must be one of {', '.join(PLATFORMS)}, not {options.arch!r}")
    version = re.fullmatch(r"3\.(\d{1,2})", options.python)
    if version is None:
        raise PackagingError(f"--python must look like 3.12, not {options.python!r}")
    floor = re.fullmatch(r">=\s*3\.(\d+)", project.requires_python.strip())
    if floor and int(version.group(1)) < int(floor.group(1)):
        raise PackagingError(
            f"iotpipe requires Python {project.requires_python}, not {options.python}"
        )


def _target(options: AwsOptions) -> str:
    return f"python{options.python} {options.arch} ({PLATFORMS[options.arch]})"


def layer_entries(project: Project, options: AwsOptions) -> list[Entry]:
    """The layer's files under ``python/``: pip's install for the target, but bytecode, bin/."""
    with tempfile.TemporaryDirectory(prefix="iotpipe-layer-") as tmp:
        site = Path(tmp) / "site"
        _pip_install(project, options, site, Path(tmp) / "constraints.txt")
        shipped = {p.relative_to(site).as_posix(): p for p in _layer_files(site)}
        return [
            Entry(_LAYER_PREFIX + name, _layer_bytes(name, path, shipped), is_executable(path))
            for name, path in sorted(shipped.items())
        ]


def _pip_install(project: Project, options: AwsOptions, site: Path, constraints: Path) -> None:
    requirements = layer_requirements(project, options.with_boto3)
    pins = installed_pins(requirements) if options.pinned else {}
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()), encoding="utf-8")
    command = [
        *(sys.executable, "-m", "pip", "install", "--target", str(site)),
        *("--platform", PLATFORMS[options.arch], "--implementation", "cp"),
        *("--python-version", options.python, "--only-binary=:all:", "--no-compile"),
        *("--no-input", "--disable-pip-version-check", "--constraint", str(constraints)),
        "--",
        *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackagingError(_pip_failure(done.stderr or done.stdout, options, bool(pins)))


def _pip_failure(output: str, options: AwsOptions, pinned: bool) -> str:
    tail = "\n".join(output.strip().splitlines()[-12:])
    hint = " at the version installed here (--latest lifts those pins)" if pinned else ""
    return (
        f"pip could not install the layer's dependencies for {_target(options)}.\n"
        "The wheels come from the package index (PyPI) or pip's cache: check that the index "
        f"is reachable and that every dependency has a binary wheel for the target{hint}.\n"
        f"pip said:\n{tail}"
    )


def _layer_files(site: Path) -> Iterator[Path]:
    """Installed files but console scripts (``bin/``) and bytecode."""
    for path in site.rglob("*"):
        parts = path.relative_to(site).parts
        if parts[0] == "bin" or "__pycache__" in parts or path.suffix in {".pyc", ".pyo"}:
            continue
        if path.is_file():
            yield path


def _layer_bytes(name: str, path: Path, shipped: dict[str, Path]) -> bytes:
    """A file's bytes; a ``RECORD`` loses the rows of files the layer leaves out."""
    data = path.read_bytes()
    if not name.endswith(".dist-info/RECORD"):
        return data
    rows = data.decode("utf-8").splitlines(keepends=True)
    kept = [row for row in rows if _record_path(row) in shipped or not row.strip()]
    return "".join(kept).encode("utf-8")


def _record_path(row: str) -> str:
    fields = next(csv.reader([row]), [""])
    return fields[0] if fields else ""


def layer_versions(layer: Iterable[Entry]) -> dict[str, str]:
    """Each distribution in the layer and its version, read from its ``METADATA``."""
    versions: dict[str, str] = {}
    for entry in layer:
        if entry.name.count("/") == 2 and entry.name.endswith(".dist-info/METADATA"):
            headers = _metadata_headers(entry.data)
            versions[normalised_name(headers["Name"])] = headers["Version"]
    return dict(sorted(versions.items()))


def _metadata_headers(data: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            break  # the headers end at the first blank line; the description follows
        key, colon, value = line.partition(":")
        if colon and key in {"Name", "Version"}:
            headers[key] = value.strip()
    return headers


# --- zips and the manifest ----------------------------------------------------------------------


def manifest_bytes(report: PackageReport, project: Project) -> bytes:
    """The manifest: deterministic JSON (sorted keys, no timestamps)."""
    options = report.options
    manifest: dict[str, Any] = {
        "iotpipe": project.version,
        "runtime": f"python{options.python}",
        "python": options.python,
        "architecture": options.arch,
        "bytecode": _bytecode_manifest(report),
        "platform": PLATFORMS[options.arch],
        "handlers": HANDLERS,
        "boto3": "bundled in the layer" if options.with_boto3 else "the Lambda runtime's",
        "pinned_to_installed": options.pinned,
        "telemetry_schema": schema_manifest(options.schema),
        "dependencies": report.dependencies,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "unzipped_total": report.unzipped_total,
        "zips": {
            z.name: {
                "sha256": z.sha256,
                "size": z.size,
                "unzipped": z.unzipped,
                "entries": z.entries,
            }
            for z in report.zips
        },
    }
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _bytecode_manifest(report: PackageReport) -> str:
    """What bytecode the zips hold: a cache tag (e.g. ``cpython-312``) or ``none``."""
    if bytecode.mismatch(report.options.python) is not None:
        return "none"
    return f"{sys.implementation.cache_tag} unchecked-hash"


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def handler_module(handler: str) -> str:
    """The file in the code zip that defines a handler: ``a.b.handler`` -> ``a/b.py``."""
    return handler.rpartition(".")[0].replace(".", "/") + ".py"


def _warnings(code: list[Entry], zips: tuple[ZipSummary, ...]) -> tuple[str, ...]:
    names = {e.name for e in code}
    warnings = [
        f"the {function} handler's module {handler_module(handler)} is not in {CODE_ZIP}"
        for function, handler in HANDLERS.items()
        if handler_module(handler) not in names
    ]
    total = sum(z.unzipped for z in zips)
    if total > LAMBDA_UNZIPPED_LIMIT:
        warnings.append(
            f"unzipped, the code and layer take {_size(total)}: over Lambda's limit of "
            f"{_size(LAMBDA_UNZIPPED_LIMIT)} for a function and all its layers"
        )
    return tuple(warnings)


# --- the report ---------------------------------------------------------------------------------


def format_report(report: PackageReport) -> str:
    """A short table of the zips' sizes, compressed and unzipped, and the manifest's path."""
    rows = [(z.name, _size(z.size), _size(z.unzipped), str(z.entries)) for z in report.zips]
    total = sum(z.size for z in report.zips)
    rows.append(("total", _size(total), _size(report.unzipped_total), ""))
    header = ("zip", "compressed", "unzipped", "entries")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        f"iotpipe package aws: {_target(report.options)} -> {report.out}",
        *(_row(r, widths) for r in [header, *rows]),
        f"unzipped total {_size(report.unzipped_total)} of Lambda's "
        f"{_size(LAMBDA_UNZIPPED_LIMIT)} limit (function code + layers)",
        f"manifest: {report.out / MANIFEST}",
    ]
    return "\n".join(lines)


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    first, *rest = cells
    cells_text = "".join("  " + c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))
    return ("  " + first.ljust(widths[0]) + cells_text).rstrip()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"
