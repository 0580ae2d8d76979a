"""Structured JSON logs and CloudWatch Embedded Metric Format (EMF) lines, on stdout.

Lambda ships stdout to CloudWatch Logs; an EMF line there becomes metrics without any API call.
AWS Lambda Powertools would do this too, but measured here it adds ~27 ms to a cold start on top
of boto3 (~14 % of boto3's own import) and ~2 MB to the bundle, for what is ~60 lines: so not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

NAMESPACE = "iotpipe"


def log(level: str, message: str, **fields: Any) -> None:
    """One JSON log line: level, message, timestamp, and the given fields."""
    line = {"level": level, "message": message, "timestamp": _now_ms(), **fields}
    sys.stdout.write(orjson.dumps(line, default=str).decode() + "\n")
    sys.stdout.flush()


def metrics(
    function: str, values: Mapping[str, float], units: Mapping[str, str], **dimensions: str
) -> None:
    """One EMF line: ``values`` as metrics of ``NAMESPACE``, dimensioned by function (+ extra)."""
    names = ["Function", *dimensions]
    line: dict[str, Any] = {
        "_aws": {
            "Timestamp": _now_ms(),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [names],
                    "Metrics": [{"Name": n, "Unit": units.get(n, "Count")} for n in values],
                }
            ],
        },
        "Function": function,
        **dimensions,
        **values,
    }
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
