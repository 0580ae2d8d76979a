"""Cold import time of each Lambda handler module beside ``import boto3``, in fresh processes.

Each figure is the median of ``--repeat`` fresh interpreters (``python -X importtime``, total
of the top-level import). Handler modules import boto3 lazily, on their first invocation, so
two figures are shown per handler: the module alone, and the module plus boto3 (what a cold
start pays before the first request is handled). Target: the latter at most 1.5x boto3 alone.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
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
    write(args.json, {"boto3": boto3, "target": TARGET, "handlers": handlers})


if __name__ == "__main__":
    main()
