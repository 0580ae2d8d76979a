"""The ``iotpipe`` command line: batch processing, simulation and the local demo."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import IO

import orjson

from iotpipe.adapters.clock import SystemClock
from iotpipe.adapters.memory import MemoryStore
from iotpipe.application import Pipeline, ProcessReport
from iotpipe.application.views import stats_json, window_json
from iotpipe.bootstrap import in_memory_pipeline
from iotpipe.domain import LatenessPolicy
from iotpipe.domain.time import MS_PER_HOUR, format_instant, hour_start, parse_instant
from iotpipe.ports import RawRecord, Rejection
from iotpipe.simulator import Faults, Fleet


class CliError(Exception):
    """A problem with the command's arguments or inputs, shown as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"iotpipe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


# --- iotpipe process --------------------------------------------------------------------------


def _process(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        source = _open_in(stack, args.input)
        output = _open_out(stack, args.output) if args.output else sys.stdout.buffer
        rejects = _RejectsFile(_open_out(stack, args.rejects)) if args.rejects else None
        pipeline = Pipeline(
            store=MemoryStore(),
            clock=SystemClock(),
            quarantine=rejects,
            lateness=LatenessPolicy.backfill(),
        )
        totals = _Totals()
        for report in pipeline.process_records(
            _lines(source), batch_size=args.batch_size, source="cli"
        ):
            totals.add(report)
        for window in pipeline.query.every_window():
            output.write(orjson.dumps(window_json(window), option=orjson.OPT_APPEND_NEWLINE))
        output.flush()
    print(totals.summary(), file=sys.stderr)
    return 0


def _lines(source: IO[bytes]) -> Iterator[RawRecord]:
    for number, line in enumerate(source, start=1):
        if line.strip():
            yield RawRecord(str(number), line.rstrip(b"\r\n"))


class _RejectsFile:
    """A quarantine that appends rejections to a JSON lines file, with input line numbers."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink

    def put(self, batch_id: str, partition_ms: int, rejections: Sequence[Rejection]) -> None:
        for r in rejections:
            line = {"line": int(r.record_id), "reason": r.reason.value, "message": r.message}
            if r.index:
                line["index"] = r.index
            self._sink.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


class _Totals:
    def __init__(self) -> None:
        self.received = self.accepted = self.duplicates = 0
        self.rejected: Counter[str] = Counter()

    def add(self, report: ProcessReport) -> None:
        self.received += report.received
        self.accepted += report.accepted
        self.duplicates += report.duplicates
        self.rejected.update(report.rejected)

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items()))
        rejected = sum(self.rejected.values())
        return (
            f"iotpipe process: {self.received} readings, {self.accepted} counted, "
            f"{self.duplicates} duplicates, {rejected} rejected"
            + (f" ({reasons})" if reasons else "")
        )


# --- iotpipe simulate -------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    fleet = Fleet(args.devices, args.interval, args.seed)
    start, end = _time_range(args)
    faults = Faults(args.duplicates, args.disorder, args.malformed)
    out = sys.stdout
    for line in fleet.payloads(start, end, faults):
        out.write(line + "\n")
    out.flush()
    return 0


def _time_range(args: argparse.Namespace) -> tuple[int, int]:
    end = _instant(args.end) if args.end else hour_start(SystemClock().now_ms())
    start = _instant(args.start) if args.start else end - round(args.hours * MS_PER_HOUR)
    if start >= end:
        raise CliError("the time range is empty: --start must be before --end")
    return start, end


# --- iotpipe demo -----------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    fleet = Fleet(args.devices, args.interval, args.seed)
    now = SystemClock().now_ms()
    start = hour_start(now) - args.hours * MS_PER_HOUR
    faults = Faults(duplicates=0.05, disorder=0.05, malformed=0.01)
    pipeline = in_memory_pipeline(lateness=LatenessPolicy(horizon=None))
    payloads = [line.encode() for line in fleet.payloads(start, now, faults)]
    print(
        f"Simulated {len(fleet.devices)} devices from {format_instant(start)} to "
        f"{format_instant(now)}: {len(payloads)} payloads, with resends, disorder and bad data.\n"
    )
    totals = _Totals()
    for report in pipeline.process_payloads(payloads, batch_size=250, source="demo"):
        totals.add(report)
    # Deliver everything a second time, as a retrying stream would: nothing may change.
    before = [window_json(w) for w in pipeline.query.every_window()]
    for _ in pipeline.process_payloads(payloads, batch_size=97, source="demo-retry"):
        pass
    after = [window_json(w) for w in pipeline.query.every_window()]
    _print_table(after)
    print("\n" + totals.summary().replace("iotpipe process", "pipeline"))
    print(
        "redelivered every payload in different batches: aggregates "
        + ("unchanged (exactly once)" if before == after else "CHANGED (this is a bug)")
    )
    fleet_now = pipeline.query.fleet_hour(hour_start(now) - MS_PER_HOUR, limit=1).fleet
    print(f"fleet, last full hour: {orjson.dumps(stats_json(fleet_now)).decode()}")
    return 0 if before == after else 1


def _print_table(rows: list[dict[str, object]]) -> None:
    print(
        f"{'device':<16} {'hour (UTC)':<21} {'n':>4}  {'temp mean':>9} {'min':>7} {'max':>7} "
        f"{'sd':>5}  {'hum mean':>8}"
    )
    for row in rows:
        t, h = row["temperature"], row["humidity"]
        assert isinstance(t, dict) and isinstance(h, dict)
        print(
            f"{row['device_id']!s:<16} {row['hour']!s:<21} {row['count']!s:>4}  "
            f"{_num(t['mean']):>9} {_num(t['min']):>7} {_num(t['max']):>7} {_num(t['stddev']):>5}  "
            f"{_num(h['mean']):>8}"
        )


def _num(value: object) -> str:
    return "-" if value is None else f"{value:.2f}"


# --- argument parsing -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotpipe",
        description="Exact, delivery-independent hourly aggregates of IoT readings.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    process = commands.add_parser(
        "process",
        help="aggregate a JSON lines file of readings into hourly aggregates",
        description="Run the pipeline over INPUT (one JSON reading per line; '-' for stdin) and "
        "write hourly aggregates as JSON lines sorted by device_id and hour. Duplicate lines and "
        "any input order give byte-identical output. No lateness horizon (a backfill).",
    )
    process.add_argument("input", metavar="INPUT", help="JSON lines file, or - for stdin")
    process.add_argument(
        "-o", "--output", metavar="FILE", help="write aggregates here (default: stdout)"
    )
    process.add_argument("--rejects", metavar="FILE", help="write rejected lines with reasons here")
    process.add_argument(
        "--batch-size", type=_positive, default=5000, help="lines per batch (default: 5000)"
    )
    process.set_defaults(run=_process)

    simulate = commands.add_parser(
        "simulate",
        help="print simulated device readings as JSON lines",
        description="Simulate a fleet deterministically (same seed, same output).",
    )
    _fleet_options(simulate)
    simulate.add_argument(
        "--hours", type=float, default=1.0, help="duration before --end (default: 1)"
    )
    simulate.add_argument("--start", help="first instant, RFC 3339 (default: --end minus --hours)")
    simulate.add_argument(
        "--end", help="end instant, RFC 3339, exclusive (default: this hour's start)"
    )
    simulate.add_argument("--duplicates", type=_rate, default=0.0, help="rate of device resends")
    simulate.add_argument(
        "--disorder", type=_rate, default=0.0, help="rate of out-of-order readings"
    )
    simulate.add_argument("--malformed", type=_rate, default=0.0, help="rate of malformed payloads")
    simulate.set_defaults(run=_simulate)

    demo = commands.add_parser(
        "demo",
        help="simulate a small fleet, run the in-memory pipeline, print hourly aggregates",
        description="Simulate a fleet over the last hours with resends, disorder and bad data, run "
        "it through the in-memory pipeline twice, and print the hourly aggregates.",
    )
    _fleet_options(demo, devices=5, interval=60.0)
    demo.add_argument("--hours", type=_positive, default=3, help="hours of history (default: 3)")
    demo.set_defaults(run=_demo)
    return parser


def _fleet_options(
    parser: argparse.ArgumentParser, devices: int = 20, interval: float = 60.0
) -> None:
    parser.add_argument(
        "--devices", type=_positive, default=devices, help=f"number of devices (default: {devices})"
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=interval,
        help=f"seconds between readings (default: {interval:g})",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")


def _open_in(stack: ExitStack, path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return stack.enter_context(open(path, "rb"))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _open_out(stack: ExitStack, path: str) -> IO[bytes]:
    try:
        return stack.enter_context(open(path, "wb"))
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _instant(text: str) -> int:
    try:
        return parse_instant(text)
    except ValueError:
        raise CliError(f"not an RFC 3339 instant with an offset: {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1: {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
