"""The gate: `openapi.yaml` against the last released contract, breaks approved in the changelog.

A release of the contract is a file, `releases/openapi-X.Y.Z.yaml`: a copy of `openapi.yaml` as it
was released, so a clone without tags or history still knows what callers were promised. A break
since then is approved by a list item, under the changelog's section for the working tree's
`info.version`, that holds the change's line in backticks; and it needs a new major version.
"""

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import semver
import yaml
from markdown_it import MarkdownIt

from tools.spec_diff.changes import METHODS, SEP, Change, diff

SPEC = "openapi.yaml"
RELEASES = "releases"
CHANGELOG = "CHANGELOG.md"
RELEASE_FILE = re.compile(r"openapi-(?P<version>.+)\.yaml")
# `## [2.0.0]`, or `## [2.0.0] - 2026-12-04` once released (Keep a Changelog's headings).
SECTION = re.compile(r"\[?v?(?P<version>[^\]\s]+)\]?(?:\s+-\s+(?P<date>\d{4}-\d{2}-\d{2}))?")
# A code span that reads like a change's line: a location, then `: ` and what changed.
LOCATION = re.compile(
    rf"^(?:(?:{'|'.join(m.upper() for m in METHODS)}) /|components{SEP}|security|servers)[^`]*: "
)


class GateError(Exception):
    """The repository is not in a state the gate can judge (a message for the person)."""


@dataclass(frozen=True)
class Release:
    version: semver.Version
    path: Path

    def load(self) -> Any:
        return yaml.safe_load(self.path.read_text(encoding="utf-8"))


def releases(root: Path) -> list[Release]:
    """Every released contract in `releases/`, oldest first."""
    found: list[Release] = []
    for path in sorted((root / RELEASES).glob("*.yaml")):
        matched = RELEASE_FILE.fullmatch(path.name)
        if matched is None or not semver.Version.is_valid(matched["version"]):
            raise GateError(f"{RELEASES}/{path.name} is not named openapi-MAJOR.MINOR.PATCH.yaml")
        release = Release(semver.Version.parse(matched["version"]), path)
        declared = str(release.load()["info"]["version"])
        if declared != matched["version"]:
            raise GateError(
                f"{RELEASES}/{path.name} holds info.version {declared}, not {matched['version']}"
            )
        found.append(release)
    return sorted(found, key=lambda release: release.version)


@dataclass(frozen=True)
class Section:
    """The changelog's section for one version: where its heading is, and what it approves."""

    line: int
    released_on: str | None
    approvals: frozenset[str]


def _spans(tokens: list[Any]) -> Iterator[str]:
    """The code spans of the list items among `tokens`, whitespace folded."""
    depth = 0
    for token in tokens:
        if token.type == "list_item_open":
            depth += 1
        elif token.type == "list_item_close":
            depth -= 1
        elif token.type == "inline" and depth:
            for child in token.children or []:
                if child.type == "code_inline":
                    yield " ".join(child.content.split())


def changelog_section(text: str, version: str) -> Section | None:
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [
        index
        for index, token in enumerate(tokens)
        if token.type == "heading_open" and token.tag == "h2"
    ]
    for start, end in zip(headings, [*headings[1:], len(tokens)], strict=True):
        heading = tokens[start + 1].content
        matched = SECTION.fullmatch(heading.strip())
        if matched is None or matched["version"] != version:
            continue
        line = (tokens[start].map or [0])[0]
        approvals = frozenset(_spans(tokens[start:end]))
        return Section(line, matched["date"], approvals)
    return None


@dataclass
class Verdict:
    release: Release
    version: str
    changes: list[Change]
    # The changelog section that approves these breaks: info.version's, or the major it needs.
    approve_under: str
    approved: set[Change] = field(default_factory=set[Change])
    unapproved: list[Change] = field(default_factory=list[Change])
    problems: list[str] = field(default_factory=list[str])
    # Code spans in the section that name no change found: a break undone, or a typo.
    unmatched: list[str] = field(default_factory=list[str])

    @property
    def passed(self) -> bool:
        return not self.problems and not self.unapproved

    def changelog_lines(self) -> list[str]:
        """What to add to the changelog to approve each break not yet approved."""
        return [f"- {change.kind.value}: `{change.line}`" for change in self.unapproved]


def judge(root: Path, spec: str = SPEC) -> Verdict:
    """The working tree's contract against the last release, with the changelog's approvals."""
    released = releases(root)
    if not released:
        raise GateError(
            f"no released contract in {RELEASES}/ (openapi-X.Y.Z.yaml): nothing to compare with"
        )
    release = released[-1]
    head = yaml.safe_load((root / spec).read_text(encoding="utf-8"))
    version = str(head.get("info", {}).get("version"))
    verdict = Verdict(release, version, diff(release.load(), head), approve_under=version)
    if not semver.Version.is_valid(version):
        verdict.problems.append(f"info.version {version!r} is not a semantic version (X.Y.Z)")
        return verdict
    current = semver.Version.parse(version)
    section = _section(root, version)
    _check_version(verdict, current, section)
    # A released section approved the breaks of its own release, not what came after it.
    still_open = section is not None and current > release.version
    _approve(verdict, section.approvals if section is not None and still_open else frozenset())
    return verdict


def _check_version(verdict: Verdict, current: semver.Version, section: Section | None) -> None:
    released, version = verdict.release.version, verdict.version
    if any(change.breaking for change in verdict.changes) and current.major <= released.major:
        verdict.approve_under = str(released.bump_major())
        verdict.problems.append(
            f"a break needs a new major version: info.version is {version} and the released "
            f"contract is {released}; set info.version to {verdict.approve_under} and "
            f"approve each break under `## [{verdict.approve_under}]` in {CHANGELOG}"
        )
    elif current < released:
        verdict.problems.append(f"info.version {version} is below the released {released}")
    elif current == released and verdict.changes:
        verdict.problems.append(
            f"openapi.yaml changed since release {released} but info.version is still "
            f"{version}: bump it ({released.bump_patch()} for documentation, "
            f"{released.bump_minor()} for additions) and add its section to {CHANGELOG}"
        )
    elif current > released and section is None:
        verdict.problems.append(f"{CHANGELOG} has no section for {version} (`## [{version}]`)")
    if section is not None and section.released_on and current > released:
        verdict.problems.append(
            f"{CHANGELOG} dates {version} ({section.released_on}) but {RELEASES}/ has no "
            f"openapi-{version}.yaml: finish the release with --release"
        )


def _approve(verdict: Verdict, approvals: frozenset[str]) -> None:
    """Sorts the breaks into approved and not, by their line among the section's code spans."""
    for change in verdict.changes:
        if change.breaking and " ".join(change.line.split()) in approvals:
            verdict.approved.add(change)
        elif change.breaking:
            verdict.unapproved.append(change)
    lines = {" ".join(change.line.split()) for change in verdict.changes}
    verdict.unmatched = sorted(
        span for span in approvals if LOCATION.match(span) and span not in lines
    )


def _section(root: Path, version: str) -> Section | None:
    changelog = root / CHANGELOG
    if not changelog.exists():
        return None
    return changelog_section(changelog.read_text(encoding="utf-8"), version)


def release(root: Path, today: date, spec: str = SPEC) -> str:
    """Copies `openapi.yaml` into `releases/` and dates its changelog section; says what it did."""
    head = yaml.safe_load((root / spec).read_text(encoding="utf-8"))
    version = str(head.get("info", {}).get("version"))
    if not semver.Version.is_valid(version):
        raise GateError(f"info.version {version!r} is not a semantic version (X.Y.Z)")
    target = root / RELEASES / f"openapi-{version}.yaml"
    if target.exists():
        raise GateError(f"{version} is already released ({RELEASES}/{target.name})")
    if releases(root):
        verdict = judge(root, spec)
        if not verdict.passed:
            raise GateError(
                "the gate fails; run `python -m tools.spec_diff` and settle what it says first"
            )
    section = _section(root, version)
    if section is None:
        raise GateError(f"{CHANGELOG} has no section for {version} (`## [{version}]`)")
    changelog = root / CHANGELOG
    lines = changelog.read_text(encoding="utf-8").splitlines(keepends=True)
    ending = "\n" if lines[section.line].endswith("\n") else ""
    lines[section.line] = f"## [{version}] - {today.isoformat()}{ending}"
    changelog.write_text("".join(lines), encoding="utf-8")
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(root / spec, target)
    return (
        f"released {version}: {RELEASES}/{target.name} written, {CHANGELOG} section dated "
        f"{today.isoformat()}; commit both"
    )
