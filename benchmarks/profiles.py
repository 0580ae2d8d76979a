"""The load profiles of the store benchmarks (issue #9), shared by dynamodb_ops and firestore_ops,
with the archive measure both report.

- ``fleet``: 1,000 devices, one reading every 10 s each, 1-minute batches (100 readings/s);
- ``high-rate``: 100 devices at 10 readings/s each, 1-minute batches (1,000 readings/s);
- ``per-second``: 100 devices at 1 reading/s each, 1-minute batches: one device of
  docs/scaling.md's fleet (100,000 devices at 1 reading/s, each posting its last minute once a
  minute), 100 of them standing for all.

A profile fills in whichever of ``--devices``, ``--interval`` and ``--batch-minutes`` were not
given, so ``--profile high-rate --devices 5`` is the high-rate profile on a smaller fleet (per
1,000 readings the figures do not depend on the fleet's size).
"""

from __future__ import annotations

import argparse

from iotpipe.adapters.memory import MemoryArchive

PROFILES = {
    "fleet": {"devices": 1000, "interval": 10.0, "batch_minutes": 1},
    "high-rate": {"devices": 100, "interval": 0.1, "batch_minutes": 1},
    "per-second": {"devices": 100, "interval": 1.0, "batch_minutes": 1},
}


def profile_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--profile`` and the options it fills in."""
    parser.add_argument("--profile", choices=sorted(PROFILES), default="fleet")
    parser.add_argument("--devices", type=int, help="default: the profile's")
    parser.add_argument("--interval", type=float, help="seconds between a device's readings")
    parser.add_argument("--batch-minutes", type=int, help="minutes of arrivals per batch")


def apply_profile(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from the chosen profile."""
    for name, value in PROFILES[args.profile].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def archived(archive: MemoryArchive) -> dict[str, int]:
    """Objects in the archive, and their bytes."""
    names = archive.objects.names()
    return {"objects": len(names), "bytes": sum(len(archive.objects.get(n)) for n in names)}
