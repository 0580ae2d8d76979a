"""The report accumulator shared by replay and the stream-file summary: batch reports summed."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotpipe.application import FileReport, ProcessReport
from iotpipe.application.process import ReportTotals

pytestmark = pytest.mark.unit

SUMMED = (
    "records",
    "received",
    "accepted",
    "duplicates",
    "windows_updated",
    "unapplied",
    "store_retries",
)

small = st.integers(min_value=0, max_value=50)
reports = st.builds(
    ProcessReport,
    batch_id=st.text("abc", min_size=1, max_size=3),
    records=small,
    received=small,
    accepted=small,
    duplicates=small,
    rejected=st.dictionaries(st.sampled_from(["too_late", "malformed_json"]), small),
    windows_updated=small,
    unapplied=small,
    store_retries=small,
    failed_records=st.lists(st.text("0123", min_size=1), max_size=3).map(tuple),
    errors=st.lists(st.sampled_from(["store busy", "throttled"]), max_size=2).map(tuple),
)


@given(st.lists(reports, max_size=6))
def test_every_count_is_the_sum_of_the_reports(batch_reports: list[ProcessReport]) -> None:
    totals = ReportTotals.of(batch_reports)
    assert totals.batches == len(batch_reports)
    for key in SUMMED:
        assert getattr(totals, key) == sum(getattr(r, key) for r in batch_reports), key
    assert totals.failed_records == sum(len(r.failed_records) for r in batch_reports)
    assert totals.failed_batches == [r.batch_id for r in batch_reports if r.failed_records]
    for reason, count in totals.rejected_by_reason().items():
        assert count == sum(r.rejected.get(reason, 0) for r in batch_reports)
    assert list(totals.rejected_by_reason()) == sorted(totals.rejected)
    errors = [e for r in batch_reports for e in r.errors]
    assert totals.errors == tuple(dict.fromkeys(errors))


@given(st.lists(reports, max_size=6))
def test_a_file_summary_has_a_batch_summary_s_keys_summed(chunks: list[ProcessReport]) -> None:
    counts = FileReport("stream/f.jsonl", chunks=tuple(chunks)).counts()
    batch_keys = set(ProcessReport("b", 0, 0, 0, 0, {}, 0).counts())
    assert set(counts) == batch_keys | {"found", "chunks", "failed_chunks"}
    for key in SUMMED:
        assert counts[key] == sum(getattr(c, key) for c in chunks), key
    assert counts["failed_records"] == sum(len(c.failed_records) for c in chunks)
    assert counts["failed_chunks"] == sum(1 for c in chunks if c.failed_records)
    assert counts["rejected_total"] == sum(sum(c.rejected.values()) for c in chunks)
    assert orjson.loads(orjson.dumps(counts)) == counts  # one plain JSON log line
