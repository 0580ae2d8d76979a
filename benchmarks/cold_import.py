"""Cold import time of each Lambda handler module beside ``import boto3``, in fresh processes.

Each figure is the median of ``--repeat`` fresh interpreters (``python -X importtime``, total
of the top-level import). Handler modules import boto3 lazily, on their first invocation, so
two figures are shown per handler: the module alone, and the module plus boto3 (what a cold
start pays before the import of the handler is done). Target: the latter at most 1.5x boto3 alone.

Wall times are noisy on a shared machine. ``--instructions`` adds a load-independent figure:
the instructions each import executes (valgrind's cachegrind, once per import; the bare
interpreter's start-up subtracted), with the same ratio. The handler modules load the store
adapters and use cases in their composition root, on the first invocation, not at import:
these figures are the import alone (Lambda's init phase), not the first batch. So it also
counts the whole cold start of the process function: the import, boto3's and the first batch
(:func:`first_batch_instructions`: the composition root built, the store's schema record read,
60 readings of 10 devices written to DynamoDB on a moto server), the cost that moving an import
from the module to the composition root does not change.

The figures above import the handlers from this checkout, whose ``__pycache__`` Python has
written. On Lambda the code and its layer are unpacked read-only, so only the bytecode shipped
in the zips is used. ``--bytecode`` builds the zips (``iotpipe package aws`` for this
interpreter's Python and architecture), unpacks them twice into read-only directories, once
whole and once without their ``__pycache__``, and imports each handler from each (``python -I
-S -B``: no site-packages, no bytecode written): milliseconds (median of ``--repeat``, the two
alternating) and, with ``--instructions``, instructions, with the ratio of the two in the same
run; and the zips' sizes with and without the bytecode.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from results import json_option, write

HANDLERS = (
    "iotpipe.entrypoints.aws.ingest",
    "iotpipe.entrypoints.aws.process",
    "iotpipe.entrypoints.aws.api",
    "iotpipe.entrypoints.aws.authorizer",
)
TARGET = 1.5


def import_ms(
    modules: list[str], repeat: int, cwd: Path | None = None, path: tuple[Path, ...] = ()
) -> float:
    """Median ms of importing ``modules`` (cumulative, top level) in fresh interpreters; with
    ``path``, from those directories only (see :func:`_isolated`)."""
    return statistics.median(_import_ms(modules, cwd, path) for _ in range(repeat))


def _import_ms(modules: list[str], cwd: Path | None, path: tuple[Path, ...]) -> float:
    flags, statement = _isolated(path, "import " + ", ".join(modules))
    out = subprocess.run(
        [sys.executable, *flags, "-X", "importtime", "-c", statement],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
    ).stderr
    return _total_us(out, modules) / 1000


def _isolated(path: tuple[Path, ...], statement: str) -> tuple[tuple[str, ...], str]:
    """Interpreter flags and statement that import from ``path`` alone, as Lambda does from its
    read-only directories: no site-packages (-I -S) and no bytecode written (-B)."""
    if not path:
        return (), statement
    return ("-I", "-S", "-B"), f"import sys; sys.path[:0] = {[str(p) for p in path]!r}; {statement}"


def import_instructions(modules: list[str], path: tuple[Path, ...] = ()) -> float:
    """Millions of instructions (valgrind) of a fresh interpreter importing ``modules``, less
    those of a bare interpreter's start-up (with the same ``path``: see :func:`_isolated`)."""
    statement = "import " + ", ".join(modules)
    return _instructions(*_isolated(path, statement)) - _instructions(*_isolated(path, "pass"))


VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


def _instructions(flags: tuple[str, ...], statement: str) -> float:
    out = subprocess.run(
        [*VALGRIND, sys.executable, *flags, "-c", statement],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    match = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {out[-500:]}")
    return int(match.group(1).replace(",", "")) / 1e6


def _total_us(importtime: str, modules: list[str]) -> float:
    """Sum of the cumulative times of the top-level imports of ``modules``."""
    total = 0.0
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and match.group(3) in modules and len(match.group(2)) == 1:
            total += float(match.group(1))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions (valgrind; skipped if missing)",
    )
    parser.add_argument(
        "--bytecode",
        action="store_true",
        help="also import the handlers from the built zips, read-only, with and without bytecode",
    )
    json_option(parser)
    args = parser.parse_args()
    boto3 = import_ms(["boto3"], args.repeat)
    handlers: dict[str, dict[str, float]] = {}
    print(f"{'module':40} {'alone':>9} {'+ boto3':>9} {'ratio':>6}")
    print(f"{'boto3 (baseline)':40} {boto3:>7.0f}ms {'':>9} {1:>6.2f}")
    worst = 0.0
    for module in HANDLERS:
        alone = import_ms([module], args.repeat)
        both = import_ms([module, "boto3"], args.repeat)
        worst = max(worst, both / boto3)
        handlers[module] = {"alone": alone, "with_boto3": both}
        print(f"{module:40} {alone:>7.0f}ms {both:>7.0f}ms {both / boto3:>6.2f}")
    verdict = "met" if worst <= TARGET else "NOT met"
    print(f"target: handler + boto3 <= {TARGET}x boto3 alone: {verdict} (worst {worst:.2f}x)")
    result: dict[str, object] = {"boto3": boto3, "target": TARGET, "handlers": handlers}
    if args.instructions and shutil.which("valgrind") is None:
        print("instructions not counted: valgrind is not installed (apt-get install valgrind)")
    elif args.instructions:
        result["instructions"] = _show_instructions()
    if args.bytecode:
        counting = args.instructions and shutil.which("valgrind") is not None
        result["bytecode"] = _show_bytecode(args.repeat, counting)
    write(args.json, result)


def _show_instructions() -> dict[str, float]:
    """Print and return each handler's import (+ boto3) in millions of instructions."""
    boto3 = import_instructions(["boto3"])
    counts = {"boto3": boto3}
    print(f"instructions: boto3 {boto3:.0f} M")
    for module in HANDLERS:
        both = import_instructions([module, "boto3"])
        counts[module] = both
        print(f"{module:40} {both:>7.0f} M {'':>9} {both / boto3:>6.2f}")
    first = first_batch_instructions()
    counts["process first batch"] = first
    label = "process + boto3 + first batch"
    print(f"{label:40} {first:>7.0f} M {'':>9} {first / boto3:>6.2f}")
    return counts


def _show_bytecode(repeat: int, instructions: bool) -> dict[str, Any]:
    """Print and return the handlers' imports from the zips, with and without bytecode."""
    with tempfile.TemporaryDirectory(prefix="cold-import-") as folder:
        zips = _build_zips(Path(folder) / "aws")
        trees = {kind: _unpack(zips, Path(folder) / kind, kind == "with") for kind in KINDS}
        sizes = {name: _zip_sizes(zips / name) for name in (CODE_ZIP, LAYER_ZIP)}
        print(f"from the zips, read-only ({_python()}): {'with':>9} {'without':>9} {'ratio':>6}")
        handlers = {module: _bytecode_times(module, trees, repeat) for module in HANDLERS}
        for module, times in handlers.items():
            print(_bytecode_line(module, times["ms"], "ms"))
        if instructions:
            for module, times in handlers.items():
                counts = {k: import_instructions([module], trees[k]) for k in KINDS}
                times["instructions"] = counts
                print(_bytecode_line(module, counts, "M"))
    for name, size in sizes.items():
        print(
            f"{name:24} zipped {size['with'] / MIB:.2f} MiB with bytecode, "
            f"{size['without'] / MIB:.2f} MiB without; unzipped "
            f"{size['unzipped_with'] / MIB:.2f} MiB, {size['unzipped_without'] / MIB:.2f} MiB"
        )
    return {"python": _python(), "handlers": handlers, "zips": sizes}


KINDS = ("with", "without")
MIB = 1024 * 1024
CODE_ZIP, LAYER_ZIP = "iotpipe-code.zip", "iotpipe-deps-layer.zip"


def _python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _build_zips(out: Path) -> Path:
    """``iotpipe package aws`` for this interpreter and machine, which ships bytecode."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
    command = [str(Path(sys.executable).parent / "iotpipe"), "package", "aws", "--out", str(out)]
    command += ["--python", _python(), "--arch", arch[platform.machine().lower()]]
    subprocess.run(command, check=True, capture_output=True)
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["bytecode"] == "none":
        raise RuntimeError("the zips were built without bytecode")
    return out


def _unpack(zips: Path, target: Path, with_bytecode: bool) -> tuple[Path, ...]:
    """The code (task/) and the layer (opt/python) unpacked read-only, as on Lambda."""
    for name, folder in ((CODE_ZIP, "task"), (LAYER_ZIP, "opt")):
        with zipfile.ZipFile(zips / name) as archive:
            names = [n for n in archive.namelist() if with_bytecode or "__pycache__" not in n]
            archive.extractall(target / folder, names)
    for directory, _subdirectories, files in os.walk(target):
        for file in files:
            os.chmod(Path(directory) / file, 0o444)
        os.chmod(directory, 0o555)
    return target / "task", target / "opt" / "python"


def _zip_sizes(path: Path) -> dict[str, int]:
    """The zip's size and unzipped size, and both again without its bytecode (re-zipped)."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        bare = [i for i in infos if "__pycache__" not in i.filename]
        rezipped = io.BytesIO()
        with zipfile.ZipFile(rezipped, "w") as out:
            for info in bare:
                out.writestr(info, archive.read(info), compresslevel=9)
    return {
        "with": path.stat().st_size,
        "without": len(rezipped.getvalue()),
        "unzipped_with": sum(i.file_size for i in infos),
        "unzipped_without": sum(i.file_size for i in bare),
    }


def _bytecode_times(
    module: str, trees: dict[str, tuple[Path, ...]], repeat: int
) -> dict[str, dict[str, float]]:
    """Median ms of importing ``module`` from each tree, the trees alternating."""
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(repeat):
        for kind in KINDS:
            samples[kind].append(_import_ms([module], None, trees[kind]))
    return {"ms": {kind: statistics.median(values) for kind, values in samples.items()}}


def _bytecode_line(module: str, figures: dict[str, float], unit: str) -> str:
    with_, without = figures["with"], figures["without"]
    ratio = with_ / without if without else float("nan")
    return f"  {module:38} {with_:>7.1f}{unit:2} {without:>7.1f}{unit:2} {ratio:>6.2f}"


#: The process function's first batch, handled in a fresh interpreter.
FIRST_BATCH = (
    "import json, iotpipe.entrypoints.aws.process as handler, boto3\n"
    "out = handler.handler(json.load(open({path!r})), None)\n"
    "assert out == {{'batchItemFailures': []}}, out"
)


def first_batch_instructions() -> float:
    """Millions of instructions of the process function's cold start: a fresh interpreter
    importing the handler and boto3 and handling its first batch against a moto server (whose
    table already holds the schema record, as a deployment's does after its first start)."""
    from dynamodb_ops import deploy, moto_server

    server, endpoint = moto_server()
    try:
        deploy(endpoint, 8)  # the table, the bucket and the handler's environment
        with tempfile.TemporaryDirectory() as folder:
            warm, measured = (_event_file(Path(folder), n) for n in range(2))
            # The first start writes the store's schema record; the one measured reads it.
            statement = FIRST_BATCH.format(path=str(warm))
            subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
            measured_batch = FIRST_BATCH.format(path=str(measured))
            return _instructions((), measured_batch) - _instructions((), "pass")
    finally:
        server.stop()


def _event_file(folder: Path, n: int) -> Path:
    """A Kinesis event of 60 readings of 10 new devices (``n`` names them), in a file."""
    from dynamodb_ops import START, kinesis_event
    from iotpipe.domain.time import format_instant, parse_instant

    start = parse_instant(START)
    readings = [
        (
            json.dumps(
                {
                    "device_id": f"d{n}-{i % 10}",
                    "timestamp": format_instant(start + i * 1000),
                    "temperature": 20.5,
                    "humidity": 40.1,
                }
            ).encode(),
            start + i * 1000,
        )
        for i in range(60)
    ]
    path = folder / f"event{n}.json"
    path.write_text(json.dumps(kinesis_event(readings, 60 * n)))
    return path


if __name__ == "__main__":
    main()
