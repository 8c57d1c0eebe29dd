"""The migrations build the whole schema from empty, and take it back down, on both backends."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import URL, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from cli import alembic_config
from settings import Settings
from tests.conftest import fresh_postgres_database, make_settings

TABLES = {"heroes", "teams", "used_signatures"}


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(
    request: pytest.FixtureRequest, postgres_server: URL, tmp_path: Path
) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield make_settings(URL.create("sqlite+aiosqlite", database=str(tmp_path / "m.db")))
    else:
        for url in fresh_postgres_database(postgres_server):
            yield make_settings(url)


def table_names(settings: Settings) -> set[str]:
    url = settings.database_url
    sync_driver = "postgresql+psycopg" if url.get_backend_name() == "postgresql" else "sqlite"
    engine = create_engine(url.set(drivername=sync_driver))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(empty_database: Settings) -> None:
    command.upgrade(alembic_config(empty_database), "head")

    assert table_names(empty_database) >= TABLES


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(
    empty_database: Settings,
) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "head")

    command.downgrade(config, "base")
    assert table_names(empty_database) == set()

    command.upgrade(config, "head")
    assert table_names(empty_database) >= TABLES


def test_tables_match_the_migrations(empty_database: Settings) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "head")

    # Raises if autogenerate would find a difference between persistence/tables.py and the DB.
    command.check(config)


def test_migration_history_is_linear() -> None:
    script = ScriptDirectory.from_config(alembic_config(make_settings("sqlite+aiosqlite://")))

    assert len(script.get_heads()) == 1


def sqlite_schema_and_heroes(path: Path) -> tuple[dict[str, str], list[tuple[int, int | None]]]:
    engine = create_engine(URL.create("sqlite", database=str(path)))
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE name IN ('heroes', 'teams')")
            ).all()
            heroes = connection.execute(text("SELECT id, team_id FROM heroes ORDER BY id")).all()
    finally:
        engine.dispose()
    return {row[0]: row[1] for row in tables}, [(row[0], row[1]) for row in heroes]


def test_sqlite_tables_become_autoincrement_keeping_every_row_and_team(tmp_path: Path) -> None:
    path = tmp_path / "existing.db"
    config = alembic_config(make_settings(URL.create("sqlite+aiosqlite", database=str(path))))
    command.upgrade(config, "fed12c2faf10")
    engine = create_engine(URL.create("sqlite", database=str(path)))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO teams (id, name, headquarters, version, created_at, updated_at) "
                "VALUES (1, 'Preventers', 'Sharp Tower', 1, '2026-11-26', '2026-11-26')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO heroes (id, name, secret_name, team_id, version, created_at, "
                "updated_at) VALUES (1, 'Deadpond', 'Dive Wilson', 1, 1, '2026-11-26', "
                "'2026-11-26'), (2, 'Rusty-Man', 'Tommy', NULL, 1, '2026-11-26', '2026-11-26')"
            )
        )
    engine.dispose()

    command.upgrade(config, "head")
    upgraded, heroes = sqlite_schema_and_heroes(path)
    command.downgrade(config, "fed12c2faf10")
    downgraded, heroes_after_downgrade = sqlite_schema_and_heroes(path)

    assert all("AUTOINCREMENT" in sql for sql in upgraded.values()), upgraded
    assert heroes == [(1, 1), (2, None)]
    assert not any("AUTOINCREMENT" in sql for sql in downgraded.values()), downgraded
    assert heroes_after_downgrade == [(1, 1), (2, None)]


def _team_rows(settings: Settings) -> Iterator[Any]:
    url = settings.database_url
    sync_driver = "postgresql+psycopg" if url.get_backend_name() == "postgresql" else "sqlite"
    engine = create_engine(url.set(drivername=sync_driver))
    try:
        yield engine
    finally:
        engine.dispose()


def test_teams_whose_names_clash_as_read_stop_the_upgrade_naming_them_and_change_nothing(
    empty_database: Settings,
) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "5b1d2c7e9a40")
    for engine in _team_rows(empty_database):
        with engine.begin() as connection:
            for team_id, name in enumerate(
                ["Avengers", "avengers ", "X-Force", "Unique", "\uff38-force"], start=1
            ):
                connection.execute(
                    text(
                        "INSERT INTO teams (id, name, headquarters, version, created_at, "
                        "updated_at) VALUES (:id, :name, 'HQ', 1, '2026-11-26', '2026-11-26')"
                    ),
                    {"id": team_id, "name": name},
                )

        with pytest.raises(RuntimeError) as refused:
            command.upgrade(config, "head")

        assert str(refused.value) == (
            "2 set(s) of teams have names that differ only in case, white space or Unicode "
            "form: team 1 'Avengers', team 2 'avengers '; team 3 'X-Force', team 5 '\uff38-force'. "
            "Rename all but one of each (PATCH /api/teams/{id}), then upgrade again; nothing was "
            "changed."
        )
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert revision.scalar_one() == "5b1d2c7e9a40"
            columns = {column["name"] for column in inspect(connection).get_columns("teams")}
            assert "name_key" not in columns
        with engine.begin() as connection:
            connection.execute(text("UPDATE teams SET name = 'Avengers B' WHERE id = 2"))
            connection.execute(text("UPDATE teams SET name = 'Y-Force' WHERE id = 5"))

        command.upgrade(config, "head")

        with engine.connect() as connection:
            keys = connection.execute(text("SELECT count(DISTINCT name_key) FROM teams"))
            assert keys.scalar_one() == 5
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO teams (name, name_key, headquarters, version, created_at, "
                    "updated_at) SELECT 'AVENGERS', name_key, 'HQ', 1, created_at, updated_at "
                    "FROM teams WHERE id = 1"
                )
            )
