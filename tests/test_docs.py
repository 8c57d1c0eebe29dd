"""The documentation: a front page a newcomer can hold, a site that builds, nothing that points
nowhere, and no command block that nobody runs.

Each shell block in README.md and docs/ is either run by the test file named in the
`<!-- run by tests/... -->` comment right before it (which must read that Markdown file), or
starts with `# Not run by the tests: <why>`, which the reader sees.
"""

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from alembic.config import Config
from alembic.script import ScriptDirectory

from settings import ROOT, Settings
from tests.markdown_docs import (
    DOCS,
    MARKDOWN_FILES,
    NOT_RUN,
    SHELLS,
    anchors,
    blocks,
    command_lines,
    headings,
    links,
    relative,
    section,
    shell_blocks,
)
from tests.node_packages import after_npm_ci

README = ROOT / "README.md"
INDEX = ROOT / "docs/index.md"
HOWTO = ROOT / "docs/howto-add-a-field.md"
CONFIGURATION = ROOT / "docs/configuration.md"
OPERATIONS = ROOT / "docs/operations.md"
README_LINES = 300
README_SECTIONS = [
    "Quick start",
    "Commands",
    "Configuration",
    "The API",
    "Swagger UI",
    "Development",
    "Project layout",
    "Documentation",
]
BUILD_SECONDS = 300
CHECK_SECONDS = 180
IDS = [relative(path) for path in MARKDOWN_FILES]


class TestTheFrontPage:
    def test_the_readme_is_at_most_300_lines(self) -> None:
        count = len(README.read_text(encoding="utf-8").splitlines())

        assert count <= README_LINES, (
            f"README.md has {count} lines: move detail to a page under docs/ and link to it"
        )

    def test_the_readme_has_the_front_page_sections_in_order(self) -> None:
        assert [text for level, text in headings(README) if level == 2] == README_SECTIONS

    def test_the_readme_links_every_page_of_the_site(self) -> None:
        linked = {target.split("#")[0] for target in links(README)}

        assert {relative(page) for page in DOCS.glob("*.md")} - {"docs/index.md"} <= linked


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=IDS)
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    """On GitHub (from the file's folder, GitHub's anchors) and, for a page, on the site too:
    within docs/, with an anchor both GitHub and MkDocs make."""
    in_site = path.parent == DOCS
    broken: list[str] = []
    for target in links(path):
        parts = urlsplit(target)
        if parts.scheme or target.startswith("//"):
            continue
        file = (path.parent / unquote(parts.path)).resolve() if parts.path else path
        if not file.exists():
            broken.append(f"{target}: no such file")
            continue
        if in_site and not file.is_relative_to(DOCS):
            broken.append(f"{target}: outside docs/, so not on the site (name it in `code`)")
            continue
        if parts.fragment:
            if file.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
                continue
            github, mkdocs = anchors(file)
            if parts.fragment not in github or (in_site and parts.fragment not in mkdocs):
                broken.append(f"{target}: no such heading")

    assert broken == [], f"{relative(path)}: " + "; ".join(broken)


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=IDS)
def test_every_fenced_block_names_its_language(path: Path) -> None:
    assert [block.line for block in blocks(path) if not block.language] == []


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=IDS)
def test_every_shell_block_is_run_by_a_named_test_or_says_why_not(path: Path) -> None:
    unaccounted: list[str] = []
    for block in blocks(path):
        if block.language not in SHELLS:
            continue
        if block.run_by is None:
            first = block.text.splitlines()[0] if block.text else ""
            if not (first.startswith(NOT_RUN) and first.removeprefix(NOT_RUN).strip()):
                unaccounted.append(f"line {block.line}: neither run by a test nor says why not")
            continue
        runner = ROOT / block.run_by
        if not runner.exists():
            unaccounted.append(f"line {block.line}: {block.run_by} does not exist")
        elif relative(path) not in runner.read_text(encoding="utf-8"):
            unaccounted.append(f"line {block.line}: {block.run_by} never reads {relative(path)}")

    assert unaccounted == [], f"{relative(path)}: " + "; ".join(unaccounted)


def test_the_site_builds_strictly_as_the_readme_says() -> None:
    (build,) = shell_blocks(README, "tests/test_docs.py")
    assert shell_blocks(INDEX, "tests/test_docs.py") == [build]
    (command,) = command_lines(build)
    assert command == "uv run mkdocs build --strict"

    built = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )

    assert built.returncode == 0, built.stderr
    assert "WARNING -" not in built.stderr, built.stderr
    pages = {relative(page).removeprefix("docs/").removesuffix(".md") for page in DOCS.glob("*.md")}
    for page in pages - {"index"}:
        assert (ROOT / "site" / page / "index.html").exists(), page


def test_the_site_navigation_lists_every_page_once() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(entries: list[object]) -> list[str]:
        found: list[str] = []
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            found += pages(value) if isinstance(value, list) else [str(value)]
        return found

    listed = pages(config["nav"])
    assert sorted(listed) == sorted(page.name for page in DOCS.glob("*.md"))


def test_the_howto_checks_pass_on_the_tree_as_committed() -> None:
    (checks,) = shell_blocks(HOWTO, "tests/test_docs.py")
    for command in command_lines(checks):
        ran = subprocess.run(
            ["bash", "-c", after_npm_ci(command, ROOT)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CHECK_SECONDS,
            env={**os.environ, "REDOCLY_TELEMETRY": "off"},
            check=False,
        )
        assert ran.returncode == 0, f"{command}:\n{ran.stdout}\n{ran.stderr}"


def test_every_path_the_howto_names_exists() -> None:
    """The files a change touches, as the page names them in code spans."""
    text = HOWTO.read_text(encoding="utf-8")
    named = set(
        re.findall(
            r"`((?:bench|clients|docs|handlers|migrations|persistence|tests)/[^`\s]*)`", text
        )
    )

    assert len(named) >= 15
    missing = [path for path in sorted(named) if not any(ROOT.glob(path.rstrip("/")))]
    assert missing == []


def test_the_configuration_page_lists_every_setting() -> None:
    table = section(CONFIGURATION, "Configuration")
    listed = set(re.findall(r"^\| (.*?) \|", table, flags=re.MULTILINE))
    documented = {name for row in listed for name in re.findall(r"`(APP_\w+)`", row)}
    settings = {f"APP_{name.upper()}" for name in Settings.model_fields}

    assert documented == settings


def test_the_health_example_is_what_the_probe_reports_now() -> None:
    (example,) = [
        b.text for b in blocks(OPERATIONS) if b.language == "json" and '"checks"' in b.text
    ]
    report = json.loads(example)
    config = Config(str(ROOT / "alembic.ini"))
    heads = list(ScriptDirectory.from_config(config).get_heads())
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert report["checks"]["migrations"]["current"] == heads
    assert report["checks"]["migrations"]["head"] == heads
    assert report["contract"] == spec["info"]["version"]
    assert report["version"] == project["version"]
