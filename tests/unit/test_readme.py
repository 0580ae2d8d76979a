"""The README's embedding example runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_embedding_example_runs_as_documented() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "2 [(2, 'invalid_timestamp')]"
    assert lines[1] == "1 1"
    assert "'hour': '2025-08-31T10:00:00Z'" in lines[2] and "'count': 1" in lines[2]
