"""The developer workflow the README promises: local pre-commit hooks and Conventional Commits."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from settings import ROOT

PRE_COMMIT = str(Path(sys.executable).parent / "pre-commit")


def hooks() -> list[dict[str, object]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_every_hook_is_local_so_installing_them_fetches_nothing() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())

    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert {hook["language"] for hook in hooks()} == {"system"}
    assert {hook["id"] for hook in hooks()} == {
        "ruff-check",
        "ruff-format",
        "pyright",
        "openapi-lint",
        "conventional-commits",
    }


def check_message(message: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    message_file = tmp_path / "COMMIT_EDITMSG"
    message_file.write_text(message)
    return subprocess.run(
        [
            PRE_COMMIT,
            "run",
            "conventional-commits",
            "--hook-stage",
            "commit-msg",
            "--commit-msg-filename",
            str(message_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "message",
    [
        "feat(cli): create a missing database\n\nWhy it matters.\n",
        "fix: no 500 on a hostile If-Match\n",
        "docs!: the signing section, rewritten\n",
    ],
)
def test_a_conventional_commit_message_passes_the_commit_msg_hook(
    message: str, tmp_path: Path
) -> None:
    result = check_message(message, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "message", ["Fix the thing\n", "feature: not a known type\n", "fix:missing space\n"]
)
def test_any_other_message_is_refused_by_the_commit_msg_hook(message: str, tmp_path: Path) -> None:
    result = check_message(message, tmp_path)

    assert result.returncode == 1
    assert "Conventional Commits" in result.stdout
