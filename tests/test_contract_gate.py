"""The contract gate: no break since the last release lands unless the changelog approves it.

Each test builds a small repository at release 1.0.0 (`releases/openapi-1.0.0.yaml` and a dated
changelog section), edits its contract in commits, and runs the command CI runs.
"""

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import semver
import yaml

from settings import ROOT
from tests.markdown_docs import command_lines, shell_blocks
from tests.test_spec_diff import (
    BASE,
    CREATE_BODY,
    DELETE,
    HEROES,
    Edit,
    Spec,
    add_optional_body_field,
    add_optional_parameter,
    git,
    lower_a_maximum,
    remove_operation,
)
from tools import spec_diff
from tools.spec_diff import gate

RELEASED = """# Changelog

## [1.0.0] - 2026-11-30

The first release.
"""
MAXIMUM = f"{HEROES} > query parameter limit: maximum 500 -> 100"
MAXIMUM_APPROVAL = f"- breaks callers on the wire: `{MAXIMUM}`"
REMOVED_APPROVAL = f"- breaks callers on the wire: `{DELETE}: operation removed`"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository at release 1.0.0, with no tag: the release is a file."""
    root = tmp_path / "project"
    (root / "releases").mkdir(parents=True)
    (root / "openapi.yaml").write_text(yaml.safe_dump(BASE))
    shutil.copyfile(root / "openapi.yaml", root / "releases" / "openapi-1.0.0.yaml")
    (root / "CHANGELOG.md").write_text(RELEASED)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "release 1.0.0")
    monkeypatch.chdir(root)
    return root


def spec_of(root: Path) -> Spec:
    return yaml.safe_load((root / "openapi.yaml").read_text())


def commit(root: Path, edit: Edit, message: str) -> None:
    spec = spec_of(root)
    edit(spec)
    (root / "openapi.yaml").write_text(yaml.safe_dump(spec))
    git(root, "commit", "-q", "-am", message)


def version(number: str) -> Edit:
    def bump(spec: Spec) -> None:
        spec["info"]["version"] = number

    return bump


def add_section(root: Path, number: str, *lines: str) -> None:
    """A changelog section for `number`, above the released ones, holding `lines`."""
    changelog = (root / "CHANGELOG.md").read_text()
    section = "\n".join([f"## [{number}]", "", "### Breaking", "", *lines, "", ""])
    (root / "CHANGELOG.md").write_text(changelog.replace("## [1.0.0]", section + "## [1.0.0]"))
    git(root, "commit", "-q", "-am", f"changelog {number}")


def gate_output(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = spec_diff.main(list(args))
    return code, capsys.readouterr().out.splitlines()


class TestTheRepository:
    def test_its_contract_passes_its_own_gate(self) -> None:
        verdict = gate.judge(ROOT)

        assert verdict.problems == []
        assert verdict.unapproved == []
        assert verdict.release.version >= semver.Version.parse("1.0.0")

    def test_release_1_0_0_is_the_contract_served_before_operation_ids_were_renamed(self) -> None:
        released = yaml.safe_load((ROOT / "releases" / "openapi-1.0.0.yaml").read_text())

        assert released["info"]["version"] == "1.0.0"
        assert released["paths"]["/api/heroes"]["get"]["operationId"] == (
            "handlers.heroes.list_heroes"
        )


class TestTheGate:
    def test_a_repository_at_its_release_passes(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert gate_output(capsys) == (
            0,
            [
                "openapi.yaml (info.version 1.0.0) against release 1.0.0 "
                "(releases/openapi-1.0.0.yaml): 0 change(s)",
                "gate passed: no break",
            ],
        )

    def test_an_unapproved_break_two_commits_back_fails_with_the_line_to_approve_it(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, add_optional_parameter, "add a filter")

        code, lines = gate_output(capsys)

        assert code == 1
        assert lines == [
            "openapi.yaml (info.version 1.0.0) against release 1.0.0 "
            "(releases/openapi-1.0.0.yaml): 2 change(s) (breaks callers on the wire: 1, "
            "compatible: 1)",
            f"  WIRE     {MAXIMUM}  (not approved)",
            f"  ok       {HEROES} > query parameter team_id: added",
            "gate FAILED: 1 break(s) not approved, and 1 problem(s):",
            "  - a break needs a new major version: info.version is 1.0.0 and the released "
            "contract is 1.0.0; set info.version to 2.0.0 and approve each break under "
            "`## [2.0.0]` in CHANGELOG.md",
            "To approve a break, add its line to CHANGELOG.md under ## [2.0.0], then say why "
            "and what callers should do:",
            MAXIMUM_APPROVAL,
        ]

    def test_comparing_with_the_previous_commit_alone_would_miss_that_break(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, add_optional_parameter, "add a filter")

        assert gate_output(capsys, "--base", "HEAD~1")[0] == 0
        assert gate_output(capsys)[0] == 1

    def test_the_break_passes_once_the_changelog_names_it_under_a_new_major(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        printed = [line for line in gate_output(capsys)[1] if line.startswith("- breaks")]
        commit(project, version("2.0.0"), "2.0.0")
        add_section(project, "2.0.0", *printed)

        code, lines = gate_output(capsys)

        assert code == 0
        assert f"  WIRE     {MAXIMUM}  (approved)" in lines
        assert lines[-1] == "gate passed: every break is approved in CHANGELOG.md under 2.0.0"

    def test_a_major_bump_alone_approves_no_break(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, version("2.0.0"), "2.0.0")
        add_section(project, "2.0.0", "- Lower limits, for everyone's good.")

        code, lines = gate_output(capsys)

        assert code == 1
        assert lines[-1] == MAXIMUM_APPROVAL

    def test_an_approved_break_still_needs_a_new_major(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, version("1.1.0"), "1.1.0")
        add_section(project, "1.1.0", MAXIMUM_APPROVAL)

        code, lines = gate_output(capsys)

        assert code == 1
        assert f"  WIRE     {MAXIMUM}  (approved)" in lines
        assert "gate FAILED: 0 break(s) not approved, and 1 problem(s):" in lines
        assert any("set info.version to 2.0.0" in line for line in lines)

    def test_a_new_unlisted_break_fails_though_the_major_is_bumped(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, version("2.0.0"), "2.0.0")
        add_section(project, "2.0.0", MAXIMUM_APPROVAL)
        commit(project, remove_operation, "remove an operation")

        code, lines = gate_output(capsys)

        assert code == 1
        assert f"  WIRE     {MAXIMUM}  (approved)" in lines
        assert f"  WIRE     {DELETE}: operation removed  (not approved)" in lines
        assert lines[-2:] == [
            "To approve a break, add its line to CHANGELOG.md under ## [2.0.0], then say why "
            "and what callers should do:",
            REMOVED_APPROVAL,
        ]

    def test_an_approval_for_a_change_no_longer_made_is_pointed_out(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, add_optional_body_field, "a motto")
        commit(project, version("2.0.0"), "2.0.0")
        add_section(project, "2.0.0", MAXIMUM_APPROVAL)

        code, lines = gate_output(capsys)

        assert code == 0
        assert lines[-1] == (
            f"note: CHANGELOG.md 2.0.0 names `{MAXIMUM}`, which is not among the changes"
        )

    def test_a_compatible_change_needs_a_version_above_the_release(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, add_optional_body_field, "a motto")

        code, lines = gate_output(capsys)

        assert code == 1
        assert lines[-1] == (
            "  - openapi.yaml changed since release 1.0.0 but info.version is still 1.0.0: bump "
            "it (1.0.1 for documentation, 1.1.0 for additions) and add its section to CHANGELOG.md"
        )
        commit(project, version("1.1.0"), "1.1.0")
        assert gate_output(capsys)[1][-1] == (
            "  - CHANGELOG.md has no section for 1.1.0 (`## [1.1.0]`)"
        )
        add_section(project, "1.1.0", f"- `{CREATE_BODY} > motto: added`")
        assert gate_output(capsys)[0] == 0

    def test_a_release_file_must_hold_the_version_it_is_named_after(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        shutil.copyfile(project / "openapi.yaml", project / "releases" / "openapi-1.1.0.yaml")

        assert gate_output(capsys) == (
            1,
            ["gate FAILED: releases/openapi-1.1.0.yaml holds info.version 1.0.0, not 1.1.0"],
        )

    def test_the_markdown_report_marks_each_break_and_gives_the_lines_to_add(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, remove_operation, "remove an operation")
        commit(project, version("2.0.0"), "2.0.0")
        add_section(project, "2.0.0", MAXIMUM_APPROVAL)

        code, lines = gate_output(capsys, "--format", "markdown")

        assert code == 1
        assert "\n".join(lines) == "\n".join(
            [
                "### openapi.yaml (info.version 2.0.0) against release 1.0.0 "
                "(releases/openapi-1.0.0.yaml)",
                "",
                "3 change(s) (breaks callers on the wire: 2, compatible: 1).",
                "",
                "**The contract as a whole, and its components**",
                "",
                "- compatible · `info: version '1.0.0' -> '2.0.0'`",
                "",
                "**`delete_hero` · `DELETE /api/heroes/{hero_id}`**",
                "",
                "- breaks callers on the wire · `operation removed` · **not approved**",
                "",
                "**`list_heroes` · `GET /api/heroes`**",
                "",
                "- breaks callers on the wire · `query parameter limit: maximum 500 -> 100` · "
                "approved",
                "",
                "**gate FAILED: 1 break(s) not approved**",
                "",
                "To approve a break, add its line to `CHANGELOG.md` under `## [2.0.0]`, then say "
                "why and what callers should do:",
                "",
                "```markdown",
                REMOVED_APPROVAL,
                "```",
            ]
        )


class TestAFreshCopy:
    def test_a_clone_without_tags_finds_the_release(
        self,
        project: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        git(tmp_path, "clone", "-q", "--no-hardlinks", str(project), "clone")
        monkeypatch.chdir(tmp_path / "clone")

        assert git(tmp_path / "clone", "tag") == ""
        assert gate_output(capsys)[1][-1] == MAXIMUM_APPROVAL

    def test_a_copy_without_any_git_history_finds_the_release(
        self,
        project: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        shutil.copytree(project, tmp_path / "copy", ignore=shutil.ignore_patterns(".git"))
        monkeypatch.chdir(tmp_path / "copy")

        assert not (tmp_path / "copy" / ".git").exists()
        assert gate_output(capsys)[1][-1] == MAXIMUM_APPROVAL


class TestRelease:
    def test_release_keeps_the_contract_and_dates_its_section(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, version("2.0.0"), "2.0.0")
        add_section(project, "2.0.0", MAXIMUM_APPROVAL)
        today = datetime.now(UTC).date().isoformat()

        assert gate_output(capsys, "--release") == (
            0,
            [
                f"released 2.0.0: releases/openapi-2.0.0.yaml written, CHANGELOG.md section "
                f"dated {today}; commit both"
            ],
        )
        released = project / "releases" / "openapi-2.0.0.yaml"
        assert released.read_bytes() == (project / "openapi.yaml").read_bytes()
        assert f"## [2.0.0] - {today}\n" in (project / "CHANGELOG.md").read_text()
        assert gate_output(capsys) == (
            0,
            [
                "openapi.yaml (info.version 2.0.0) against release 2.0.0 "
                "(releases/openapi-2.0.0.yaml): 0 change(s)",
                "gate passed: no break",
            ],
        )

    def test_release_refuses_while_the_gate_fails(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit(project, lower_a_maximum, "lower the maximum")
        commit(project, version("2.0.0"), "2.0.0")
        add_section(project, "2.0.0")

        assert gate_output(capsys, "--release") == (
            1,
            [
                "gate FAILED: the gate fails; run `python -m tools.spec_diff` and settle what it "
                "says first"
            ],
        )
        assert not (project / "releases" / "openapi-2.0.0.yaml").exists()

    def test_a_released_version_is_not_released_again(
        self, project: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert gate_output(capsys, "--release") == (
            1,
            ["gate FAILED: 1.0.0 is already released (releases/openapi-1.0.0.yaml)"],
        )


class TestTheContractPage:
    def test_its_commands_run_as_written_on_a_change_ready_to_release(self, project: Path) -> None:
        """docs/contract.md's four spec_diff lines, in order, on a repository whose HEAD adds an
        optional parameter under 1.1.0: the gate, its Markdown, a base revision, the release."""
        (block,) = shell_blocks(ROOT / "docs/contract.md", "tests/test_contract_gate.py")
        commit(project, add_optional_parameter, "an optional parameter")
        commit(project, version("1.1.0"), "1.1.0")
        add_section(project, "1.1.0", "- an optional `team_id` filter on the heroes")
        # `uv run python` is this test's Python; the tool is imported from this repository.
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}

        runs = [
            subprocess.run(
                ["bash", "-c", line.replace("uv run python", sys.executable, 1)],
                cwd=project,
                env=environment,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            for line in command_lines(block)
        ]

        assert [line.split("#")[0].split()[-1] for line in command_lines(block)] == [
            "tools.spec_diff",
            "markdown",
            "HEAD~1",
            "--release",
        ]
        assert [run.returncode for run in runs] == [0, 0, 0, 0], [r.stdout + r.stderr for r in runs]
        assert runs[0].stdout.splitlines()[-1] == "gate passed: no break"
        assert (project / "releases" / "openapi-1.1.0.yaml").exists()
