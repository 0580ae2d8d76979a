"""The docs' runnable blocks run; their commands, make targets and routes are real.

A fenced block whose info string holds the word ``run`` (```` ```bash run ````,
```` ```python run ````) is executed, in page order, against a local server started here (what
``iotpipe serve --data ./iotpipe-data`` starts), in a fresh temporary directory per page:

- bash blocks run with ``bash -euo pipefail``, ``.venv/bin`` first on ``PATH``, ``$URL`` (the
  server's base URL) and ``$KEY`` (its API key); what a block ``export``s, later blocks see;
- python blocks run in one namespace per page, with the same environment and directory.

Before each block the server's worker finishes what is on its stream. Other blocks are not run,
but every ``iotpipe`` command line in a bash block must parse with the real CLI parser, and
every ``make`` target named must exist.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.markdown import Block, blocks, documents
from tests.docs.support import DOCS, REPO

pytestmark = pytest.mark.unit

KEY = "docs-test-key"
BLOCK_TIMEOUT_S = 60
RUNNABLE = {p: [b for b in blocks(p) if b.runnable] for p in documents()}
PAGES = [p for p, runnable in RUNNABLE.items() if runnable]


def test_runnable_blocks_are_bash_or_python() -> None:
    wrong = [b.where for bs in RUNNABLE.values() for b in bs if b.lang not in {"bash", "python"}]
    assert not wrong, f"only bash and python blocks can be marked run: {wrong}"
    assert PAGES, "no runnable block found: the marker changed?"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[object]:
    from iotpipe.entrypoints.local_runtime import LocalRuntime

    runtime = LocalRuntime.start(tmp_path / "iotpipe-data", port=0, keys=[KEY])
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_runnable_blocks_run(
    page: Path, server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.url  # type: ignore[attr-defined]
    venv_bin = str(Path(sys.executable).parent)
    monkeypatch.setenv("URL", url)
    monkeypatch.setenv("KEY", KEY)
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("IOTPIPE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    state = tmp_path / ".exported"
    state.write_text("")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in RUNNABLE[page]:
        server.wait_idle(30)  # type: ignore[attr-defined]
        if block.lang == "bash":
            _run_bash(block, state, tmp_path)
        else:
            _run_python(block, namespace)


def _run_bash(block: Block, state: Path, cwd: Path) -> None:
    script = (
        f'source "{state}"\n{block.text}\n'
        f"export -p | grep -v '^declare -[a-zA-Z]*r' > \"{state}\" || true\n"
    )
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: still running after {BLOCK_TIMEOUT_S} s")
    if done.returncode:
        pytest.fail(
            f"{block.where}: exit {done.returncode}\n--- block\n{block.text}--- stdout\n"
            f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )


def _run_python(block: Block, namespace: dict[str, object]) -> None:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block.text, block.where, "exec"), namespace)
    except Exception as exc:
        pytest.fail(f"{block.where}: {exc!r}\n--- block\n{block.text}--- stdout\n{out.getvalue()}")


# --- commands that are shown but not run --------------------------------------------------------

_CONTINUATION = re.compile(r"\\\n\s*")
_CUT = re.compile(r"\s(?:#|\||&&|;|>|<|2>)")


def _command_lines(block: Block) -> Iterator[str]:
    for raw in _CONTINUATION.sub(" ", block.text).splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            yield line


def _iotpipe_commands() -> list[tuple[str, str]]:
    found = []
    for page in documents():
        for block in blocks(page):
            if block.lang not in {"bash", "sh", "shell", "console"}:
                continue
            for line in _command_lines(block):
                for part in re.split(r"\s(?:&&|;|\|)\s", line):
                    match = re.match(r"^(?:\S+=\S+\s+)*(?:\S*/)?iotpipe\s(.*)$", part.strip())
                    if match:
                        found.append((block.where, _CUT.split(" " + match[1])[0].strip()))
    return found


COMMANDS = _iotpipe_commands()


def test_the_docs_show_iotpipe_commands() -> None:
    assert len(COMMANDS) > 10


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[f"{w} {a}" for w, a in COMMANDS])
def test_every_iotpipe_command_parses(where: str, args: str) -> None:
    from iotpipe.entrypoints.cli import _parser

    argv = shlex.split(args)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _parser().parse_args(argv)
    except SystemExit as exit_:
        if exit_.code:  # --help exits 0
            pytest.fail(f"{where}: `iotpipe {args}` does not parse with the CLI")


def _makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*)\s*:(?!=)", text, flags=re.M))


def test_every_make_target_named_exists() -> None:
    targets = _makefile_targets()
    missing = []
    for page in documents():
        for block in blocks(page):
            for line in _command_lines(block):
                for target in re.findall(r"(?:^|\s|\()make\s+([a-z][a-z0-9-]*)", line):
                    if target not in targets:
                        missing.append(f"{block.where}: make {target}")
    assert not missing, f"targets not in the Makefile: {missing}"


# --- every route has a runnable curl in the usage guide ----------------------------------------


def test_every_route_has_a_runnable_curl_in_the_usage_guide() -> None:
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.adapters.memory import MemoryStore, MemoryStream
    from iotpipe.application import IngestService, QueryService
    from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys

    ingest = IngestService(MemoryStream(SystemClock()), SystemClock())
    api = AnalyticsApi(QueryService(MemoryStore()), ingest, ApiKeys(["k"]))
    usage = [b.text for b in RUNNABLE[DOCS / "usage.md"] if b.lang == "bash"]
    missing = []
    for route in api.routes:
        path = re.sub(r"\\\{[^}]*\\\}", r"[^/?\\s\"']+", re.escape(route.path))
        pattern = re.compile(r"curl\b[^\n]*(?:\\\n[^\n]*)*\"\$URL" + path + r"(?=[?\"])")
        posts = [t for t in usage if pattern.search(t)]
        if route.method == "POST":
            posts = [t for t in posts if re.search(r"\s(?:-d|--data)\b", t)]
        if not posts:
            missing.append(f"{route.method} {route.path}")
    assert not missing, f"routes without a runnable curl in docs/usage.md: {missing}"
