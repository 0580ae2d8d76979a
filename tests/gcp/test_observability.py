"""Cloud Logging's structured format: severity, message, trace correlation and labels."""

from __future__ import annotations

import logging

import orjson
import pytest

from iotpipe.entrypoints.gcp import observability as obs

pytestmark = pytest.mark.unit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, (TRACE, "00f067aa0ba902b7", True)),
        ({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-00"}, (TRACE, "00f067aa0ba902b7", False)),
        ({"x-cloud-trace-context": f"{TRACE.upper()}/123;o=1"}, (TRACE, f"{123:016x}", True)),
        ({"x-cloud-trace-context": TRACE}, (TRACE, None, False)),
        # traceparent wins over the older header
        (
            {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "x-cloud-trace-context": "1" * 32},
            (TRACE, "00f067aa0ba902b7", True),
        ),
    ],
)
def test_traces_are_read_from_either_header(
    headers: dict[str, str], expected: tuple[str, str | None, bool]
) -> None:
    assert obs.trace_from_headers(headers) == obs.Trace(*expected)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "garbage"},
        {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},  # the invalid all-zero id
        {"x-cloud-trace-context": "not-hex/1"},
    ],
)
def test_no_usable_trace_is_none(headers: dict[str, str]) -> None:
    assert obs.trace_from_headers(headers) is None


def test_a_line_is_one_json_object_with_the_special_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    trace = obs.Trace(TRACE, "00f067aa0ba902b7", True)
    with obs.serving("process", "my-project", trace):
        obs.log("WARNING", "batch processed", accepted=3, rejected={"too_late": 1})
    obs.log("INFO", "outside a request")
    first, second = (orjson.loads(x) for x in capsys.readouterr().out.splitlines())
    assert first["severity"] == "WARNING" and first["message"] == "batch processed"
    assert first["accepted"] == 3 and first["rejected"] == {"too_late": 1}
    assert first["logging.googleapis.com/trace"] == f"projects/my-project/traces/{TRACE}"
    assert first["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert first["logging.googleapis.com/trace_sampled"] is True
    assert first["logging.googleapis.com/labels"] == {"function": "process"}
    assert first["time"].endswith("Z") and len(first["time"]) == 30
    assert set(second) == {"severity", "message", "time"}


def test_logging_records_become_structured_lines_with_their_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    obs.configure_logging()
    obs.configure_logging()  # idempotent: one handler
    logger = logging.getLogger("iotpipe.http")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("unexpected error answering %r", "GET")
    [line] = capsys.readouterr().out.splitlines()
    entry = orjson.loads(line)
    assert entry["severity"] == "ERROR" and entry["logger"] == "iotpipe.http"
    assert entry["message"].startswith("unexpected error answering 'GET'\nTraceback")
    assert "ValueError: boom" in entry["message"]
