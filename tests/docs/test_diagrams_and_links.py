"""Mermaid diagrams parse, and links between the docs (and to repository files) resolve.

The real parse uses mermaid's own parser (the npm package, under jsdom, in tests/docs/mermaid/),
installed with ``npm ci`` on first use. Without node and npm that test skips, or fails under
``IOTPIPE_REQUIRE_EMULATORS=1`` (CI); the structural check runs everywhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs.markdown import anchors, blocks, documents, links
from tests.docs.support import REPO

pytestmark = pytest.mark.unit

MERMAID_DIR = Path(__file__).parent / "mermaid"
DIAGRAMS = [b for page in documents() for b in blocks(page) if b.lang == "mermaid"]
KINDS = ("flowchart", "graph", "sequenceDiagram")


def test_the_docs_have_diagrams() -> None:
    assert len(DIAGRAMS) >= 5


@pytest.mark.parametrize("diagram", DIAGRAMS, ids=[d.where for d in DIAGRAMS])
def test_each_diagram_is_well_formed(diagram: object) -> None:
    text: str = diagram.text  # type: ignore[attr-defined]
    where: str = diagram.where  # type: ignore[attr-defined]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines, f"{where}: empty diagram"
    kind = lines[0].split()[0]
    assert kind in KINDS, f"{where}: starts with {kind!r}, not one of {KINDS}"
    outside_quotes = re.sub(r'"[^"\n]*"', '""', text)
    for pair in ("()", "[]", "{}"):
        assert outside_quotes.count(pair[0]) == outside_quotes.count(pair[1]), (
            f"{where}: unbalanced {pair}"
        )
    assert text.count('"') % 2 == 0, f"{where}: unbalanced quotes"
    if kind in {"flowchart", "graph"}:
        opened = sum(1 for line in lines if line.startswith("subgraph"))
        closed = sum(1 for line in lines if line == "end")
        assert opened == closed, f"{where}: {opened} subgraph(s), {closed} end(s)"


def _require(reason: str) -> None:
    if os.environ.get("IOTPIPE_REQUIRE_EMULATORS") == "1":
        pytest.fail(f"{reason}; IOTPIPE_REQUIRE_EMULATORS=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mermaid_parser() -> list[str]:
    """The command that parses diagrams (node + parse.mjs), its packages installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _require("node and npm are needed to parse the mermaid diagrams")
    assert node and npm
    with (MERMAID_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (MERMAID_DIR / "node_modules" / "mermaid" / "package.json").exists():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--silent"],
                cwd=MERMAID_DIR,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode:
                _require(f"npm ci in {MERMAID_DIR} failed: {done.stderr[-500:]}")
    return [node, str(MERMAID_DIR / "parse.mjs")]


def test_each_diagram_parses_with_mermaid(mermaid_parser: list[str]) -> None:
    texts = [d.text for d in DIAGRAMS]
    done = subprocess.run(
        mermaid_parser,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(done.stdout)
    failures = [
        f"{d.where}: {r['error']}" for d, r in zip(DIAGRAMS, results, strict=True) if not r["ok"]
    ]
    assert not failures, "\n\n".join(failures)


# --- links -------------------------------------------------------------------------------------

LINKS = [(page, line, target) for page in documents() for line, target in links(page)]


def test_the_docs_link_to_each_other() -> None:
    assert len(LINKS) > 30


@pytest.mark.parametrize(
    ("page", "line", "target"),
    LINKS,
    ids=[f"{p.relative_to(REPO)}:{n} {t}" for p, n, t in LINKS],
)
def test_each_link_resolves(page: Path, line: int, target: str) -> None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...: not checked
        return
    path_part, _, anchor = target.partition("#")
    where = f"{page.relative_to(REPO)}:{line}"
    resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
    assert resolved.exists(), f"{where}: {target} -> {resolved} does not exist"
    assert REPO in resolved.parents or resolved == REPO, f"{where}: {target} leaves the repo"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), (
            f"{where}: no heading of {resolved.relative_to(REPO)} has the anchor #{anchor}"
        )
