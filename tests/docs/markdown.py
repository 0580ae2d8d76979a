"""Reading the docs: fenced blocks, links, headings and their GitHub anchors, tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.docs.support import DOCS, REPO

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"`+[^`]*`+")


def documents() -> list[Path]:
    """Every Markdown page the checks cover: the README, docs/ and the deploy READMEs."""
    pages = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
    pages += sorted((REPO / "deploy").glob("*/README.md"))
    return [p for p in pages if "node_modules" not in p.parts]


@dataclass(frozen=True)
class Block:
    """A fenced code block: where it starts, its language, the other words of its info
    string, and its text."""

    path: Path
    line: int
    lang: str
    words: tuple[str, ...]
    text: str

    @property
    def runnable(self) -> bool:
        """Marked to be executed by tests/docs (the word ``run`` in the info string)."""
        return "run" in self.words

    @property
    def where(self) -> str:
        """``path:line`` relative to the repository."""
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a page, in order."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match["fence"], match["info"].strip().split()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence[0] * len(fence))
            and not lines[j].strip(fence[0]).strip()
        ):
            body.append(lines[j])
            j += 1
        lang = info[0].lower() if info else ""
        found.append(Block(path, i + 1, lang, tuple(info[1:]), "\n".join(body) + "\n"))
        i = j + 1
    return found


def prose(path: Path) -> list[tuple[int, str]]:
    """The lines outside fenced blocks, numbered, with inline code removed."""
    inside: set[int] = set()
    text = path.read_text().splitlines()
    for block in blocks(path):
        end = block.line + block.text.count("\n")
        inside.update(range(block.line, end + 1))
    return [
        (n, _INLINE_CODE.sub("", line)) for n, line in enumerate(text, start=1) if n not in inside
    ]


def links(path: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every Markdown link outside code."""
    return [(n, m["target"]) for n, line in prose(path) for m in _LINK.finditer(line)]


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (duplicates get ``-1``, ``-2``...)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_with_code(path):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = slugify(match["text"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _prose_with_code(path: Path) -> list[tuple[int, str]]:
    inside: set[int] = set()
    for block in blocks(path):
        inside.update(range(block.line, block.line + block.text.count("\n") + 1))
    lines = path.read_text().splitlines()
    return [(n, line) for n, line in enumerate(lines, start=1) if n not in inside]


def slugify(heading: str) -> str:
    """GitHub's heading anchor: link text kept, lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def section(path: Path, heading: str) -> str:
    """The text under a heading (exact text), up to the next heading of the same or a higher
    level."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        match = _HEADING.match(line)
        if match and match["text"] == heading:
            level = len(match["level"])
            body = []
            for following in lines[i + 1 :]:
                other = _HEADING.match(following)
                if other and len(other["level"]) <= level:
                    break
                body.append(following)
            return "\n".join(body)
    raise AssertionError(f"{path.relative_to(REPO)} has no heading {heading!r}")


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (header and separator rows dropped)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if all(set(c) <= set("-: ") for c in cells):
            continue
        rows.append(cells)
    return rows[1:] if rows else rows
