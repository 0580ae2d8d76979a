"""``iotpipe redrive``: process again the batches Lambda gave up on, from the S3 on-failure
destination of the Kinesis event source mapping (``deploy/aws/failures.tf``).

Each invocation record holds the batch the process function failed on (see
:mod:`iotpipe.adapters.aws.failures`). Redrive runs the same process use case on it, with the
deployed table, archive and quarantine and the same lateness policy, judged against the records'
own arrival times: so the result is what the first delivery would have done, and running it
again changes nothing (the windows absorb a reading they hold as a duplicate). A batch fully
applied is reported ``done``; ``--delete`` then removes its object. A batch with readings still
unapplied (the store still failing) is kept and reported: run redrive again later.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iotpipe.application import ProcessService
from iotpipe.domain import ArchiveUnavailable, LatenessPolicy

if TYPE_CHECKING:
    from iotpipe.adapters.aws.failures import S3FailureDestination

#: The exit status of ``iotpipe redrive`` when anything is left to redrive.
LEFT_BEHIND = 1


@dataclass(slots=True)
class RedriveReport:
    """Objects redriven, by outcome, and the readings they applied."""

    done: list[str] = field(default_factory=list)
    unapplied: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0

    @property
    def ok(self) -> bool:
        """Whether every object was read and its batch fully applied."""
        return not self.unapplied and not self.unreadable


def redrive(
    destination: S3FailureDestination, processor: ProcessService, delete: bool = False
) -> RedriveReport:
    """Process every failed batch ``destination`` holds."""
    from iotpipe.adapters.aws.failures import NotAFailureRecord

    report = RedriveReport()
    for key in destination.object_keys():
        try:
            failed = destination.read(key)
        except NotAFailureRecord as exc:
            report.unreadable.append((key, str(exc)))
            continue
        outcome = processor.process(failed.batch)
        report.accepted += outcome.accepted
        report.duplicates += outcome.duplicates
        report.rejected += sum(outcome.rejected.values())
        if outcome.failed_records:
            report.unapplied.append(key)
            continue
        report.done.append(key)
        if delete:
            destination.remove(key)
    return report


def register(commands: Any) -> None:
    """Add ``redrive`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "redrive",
        help="process again the batches the AWS process function gave up on (S3 destination)",
        description="Read the invocation records of the Kinesis event source mapping's S3 "
        "on-failure destination (terraform output failure_destination) and process each "
        "batch again into the deployed table, archive and quarantine, idempotently. With "
        "--delete, objects whose batch is fully applied are removed. Uses your AWS "
        "credentials (environment, profile); exits 1 if anything is left to redrive.",
    )
    parser.add_argument("--bucket", required=True, help="the failure destination's bucket")
    parser.add_argument("--prefix", default="aws/lambda/", help="its key prefix (aws/lambda/)")
    parser.add_argument("--table", required=True, help="the DynamoDB table of the windows")
    parser.add_argument(
        "--archive-bucket", help="the raw archive and quarantine bucket (default: --bucket)"
    )
    parser.add_argument(
        "--fleet-shards", type=int, default=16, help="the deployment's fleet_shards (16)"
    )
    parser.add_argument(
        "--lateness-horizon-hours",
        type=float,
        default=168.0,
        help="the deployment's lateness_horizon_hours (168; 0: accept any age)",
    )
    parser.add_argument("--delete", action="store_true", help="remove objects once applied")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The ``redrive`` command: one line per object, a summary on stderr."""
    from iotpipe.entrypoints.aws.bootstrap import redrive_job

    destination, processor = redrive_job(
        table=args.table,
        bucket=args.bucket,
        prefix=args.prefix,
        archive_bucket=args.archive_bucket or args.bucket,
        fleet_shards=args.fleet_shards,
        lateness=_lateness(args.lateness_horizon_hours),
    )
    try:
        report = redrive(destination, processor, delete=args.delete)
    except ArchiveUnavailable as exc:
        print(f"iotpipe: error: {exc}", file=sys.stderr)
        return 2
    for line in _lines(report):
        print(line)
    print(
        f"redrive: {len(report.done)} batches applied, {len(report.unapplied)} still unapplied, "
        f"{len(report.unreadable)} unreadable; readings: {report.accepted} accepted, "
        f"{report.duplicates} duplicates, {report.rejected} rejected",
        file=sys.stderr,
    )
    return 0 if report.ok else LEFT_BEHIND


def _lateness(hours: float) -> LatenessPolicy:
    from datetime import timedelta

    return LatenessPolicy(horizon=None if hours == 0 else timedelta(hours=hours))


def _lines(report: RedriveReport) -> Iterator[str]:
    yield from (f"done\t{key}" for key in report.done)
    yield from (f"unapplied\t{key}" for key in report.unapplied)
    yield from (f"unreadable\t{key}\t{why}" for key, why in report.unreadable)
