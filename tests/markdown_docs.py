"""The repository's Markdown as the tests read it: its files, headings, links and fenced blocks.

Parsed with markdown-it-py (CommonMark, as GitHub and MkDocs read it), so a block inside a list
or a link inside a table is found where a reader sees it.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from settings import ROOT

DOCS = ROOT / "docs"
# What the docs test reads: the front page, the changelog, every page of the site, and the
# performance history that the site links to by name.
MARKDOWN_FILES = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "bench" / "results" / "HISTORY.md",
    *sorted(DOCS.glob("*.md")),
]
SHELLS = {"bash", "sh", "shell", "console"}
RUN_BY = re.compile(r"<!-- run by (tests/[\w/]+\.py) -->")
NOT_RUN = "# Not run by the tests: "


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, its text, the line it starts on, and its marker."""

    language: str
    text: str
    line: int
    run_by: str | None


@cache
def tokens(path: Path) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(path.read_text(encoding="utf-8"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def blocks(path: Path) -> list[Block]:
    """Every fenced block, with the `<!-- run by tests/... -->` comment right before it, if any."""
    found: list[Block] = []
    parsed = tokens(path)
    for index, token in enumerate(parsed):
        if token.type != "fence":
            continue
        before = parsed[index - 1] if index else None
        marker = (
            RUN_BY.fullmatch(before.content.strip())
            if before and before.type == "html_block"
            else None
        )
        line = (token.map or [0])[0] + 1
        found.append(Block(token.info.strip(), token.content, line, marker and marker.group(1)))
    return found


def shell_blocks(path: Path, run_by: str) -> list[str]:
    """The shell blocks of `path` marked as run by the test file `run_by`, in order."""
    return [b.text for b in blocks(path) if b.language in SHELLS and b.run_by == run_by]


def command_lines(block: str) -> list[str]:
    """A shell block's commands: its lines without comments, continuations joined."""
    joined = block.replace("\\\n", " ")
    commands = (re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines())
    return [command for command in commands if command and not command.startswith("#")]


def heading_text(inline: Token) -> str:
    """A heading as a reader sees it: the text of its words and code spans, without marks."""
    return "".join(child.content for child in inline.children or [] if child.content)


def headings(path: Path) -> list[tuple[int, str]]:
    parsed = tokens(path)
    return [
        (int(token.tag[1]), heading_text(parsed[index + 1]))
        for index, token in enumerate(parsed)
        if token.type == "heading_open"
    ]


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def mkdocs_slug(heading: str) -> str:
    """Python-Markdown's (MkDocs'): ASCII only, punctuation dropped, runs of - and space one -."""
    ascii_only = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_only).strip().lower())


def anchors(path: Path) -> tuple[set[str], set[str]]:
    """Each heading's anchor as GitHub makes it and as MkDocs does (a repeated one numbered)."""
    github: set[str] = set()
    mkdocs: set[str] = set()
    for _, text in headings(path):
        for found, slugify, separator in ((github, github_slug, "-"), (mkdocs, mkdocs_slug, "_")):
            anchor = base = slugify(text)
            count = 0
            while anchor in found:
                count += 1
                anchor = f"{base}{separator}{count}"
            found.add(anchor)
    return github, mkdocs


def links(path: Path) -> list[str]:
    """The target of every link and image, in the order they appear."""
    targets: list[str] = []
    for token in tokens(path):
        for child in token.children or []:
            if child.type == "link_open":
                targets.append(str(child.attrs["href"]))
            elif child.type == "image":
                targets.append(str(child.attrs["src"]))
    return targets


def section(path: Path, heading: str) -> str:
    """The Markdown under `heading` (any level), up to the next heading of its level or above."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    parsed = tokens(path)
    opens = [
        (int(token.tag[1]), heading_text(parsed[index + 1]), (token.map or [0])[0])
        for index, token in enumerate(parsed)
        if token.type == "heading_open"
    ]
    for number, (level, text, start) in enumerate(opens):
        if text == heading:
            end = next((line for lvl, _, line in opens[number + 1 :] if lvl <= level), len(lines))
            return "".join(lines[start:end])
    raise AssertionError(f"{relative(path)} has no heading {heading!r}")
