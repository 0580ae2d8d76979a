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
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from results import json_option, write

HANDLERS = (
    "iotpipe.entrypoints.aws.ingest",
    "iotpipe.entrypoints.aws.process",
    "iotpipe.entrypoints.aws.api",
    "iotpipe.entrypoints.aws.authorizer",
)
TARGET = 1.5


def import_ms(modules: list[str], repeat: int, cwd: Path | None = None) -> float:
    """Median ms of importing ``modules`` (cumulative, top level) in fresh interpreters."""
    statement = "import " + ", ".join(modules)
    samples = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            check=True,
            capture_output=True,
            text=True,
            cwd=cwd,
        ).stderr
        samples.append(_total_us(out, modules) / 1000)
    return statistics.median(samples)


def import_instructions(modules: list[str]) -> float:
    """Millions of instructions (valgrind) of a fresh interpreter importing ``modules``, less
    those of a bare interpreter's start-up."""
    return _instructions("import " + ", ".join(modules)) - _instructions("pass")


VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


def _instructions(statement: str) -> float:
    out = subprocess.run(
        [*VALGRIND, sys.executable, "-c", statement],
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
            return _instructions(FIRST_BATCH.format(path=str(measured))) - _instructions("pass")
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
