"""The `backoffice` command: migrations, demo data, and a configuration error's message."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import cli

runner = CliRunner()


@pytest.fixture
def sqlite_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(__import__("os").environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("APP_DEBUG", "true")
    monkeypatch.setenv("APP_SQLITE_PATH", str(tmp_path / "cli.db"))
    return tmp_path / "cli.db"


def test_migrate_upgrade_then_current_shows_the_head(sqlite_env: Path) -> None:
    upgraded = runner.invoke(cli, ["migrate", "upgrade"])
    current = runner.invoke(cli, ["migrate", "current"])

    assert upgraded.exit_code == 0, upgraded.output
    assert sqlite_env.exists()
    assert current.exit_code == 0, current.output
    assert "(head)" in current.output


def test_seed_adds_demo_data_once(sqlite_env: Path) -> None:
    runner.invoke(cli, ["migrate", "upgrade"])

    first = runner.invoke(cli, ["seed"])
    second = runner.invoke(cli, ["seed"])

    assert first.output.strip() == "demo data added"
    assert second.output.strip() == "the database already has teams: nothing added"


def test_a_bad_setting_stops_with_a_message_naming_the_variable(
    sqlite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DB_PORT", "not-a-port")

    result = runner.invoke(cli, ["migrate", "current"])

    assert result.exit_code == 2
    assert "APP_DB_PORT" in result.output


def test_a_missing_secret_key_outside_debug_stops_the_service(
    sqlite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APP_DEBUG")

    result = runner.invoke(cli, ["serve"])

    assert result.exit_code == 2
    assert "APP_SECRET_KEY is not set" in result.output


def test_database_commands_need_no_signing_key(
    sqlite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations and demo data neither sign nor verify: a migration job needs no secret."""
    monkeypatch.delenv("APP_DEBUG")

    upgraded = runner.invoke(cli, ["migrate", "upgrade"])
    seeded = runner.invoke(cli, ["seed"])

    assert upgraded.exit_code == 0, upgraded.output
    assert seeded.output.strip() == "demo data added"
