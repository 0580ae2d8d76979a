"""What the benchmark scripts share with the suite: the results file, and the repository root.

Each script prints its own figures for a reader and, given ``--json FILE``, also writes them
there as one JSON object, which ``benchmarks/suite.py`` turns into rows of its table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def json_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json FILE`` (the figures as one JSON object, for the suite)."""
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")


def write(path: Path | None, figures: dict[str, Any]) -> None:
    """Write ``figures`` to ``path`` (if given) as JSON."""
    if path is not None:
        path.write_text(json.dumps(figures, indent=1, default=str))


def use_test_helpers() -> None:
    """Make ``tests.*`` importable: the end-to-end benchmarks drive the runtimes with the same
    helpers as the tests (moto and emulator set-up, event shapes, the Kinesis poller)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
