"""Secrets read from mounted files (`APP_*_FILE`), as Docker secrets and Kubernetes Secret
volumes provide them: never in an environment variable, and rotated without a rebuild."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import URL

from settings import Settings
from tests.backoffice_process import AsyncSignedClient, BackofficeServer
from tests.conftest import fresh_postgres_database

OLD_KEY = "the-key-in-service-before-rotation-0123456789"
NEW_KEY = "the-key-in-service-after-rotation-9876543210"
HERO = {"name": "Deadpond", "secret_name": "Dive Wilson", "age": 30}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n", encoding="utf-8")
    return path


class TestReadingSecretFiles:
    def test_the_signing_keys_come_from_files_without_their_final_newline(
        self, tmp_path: Path
    ) -> None:
        found = settings(
            secret_key_file=secret(tmp_path, "key", NEW_KEY),
            secret_key_previous_file=secret(tmp_path, "previous", f"{OLD_KEY},{OLD_KEY}x"),
        )

        assert found.verification_keys == (
            NEW_KEY.encode(),
            OLD_KEY.encode(),
            b"%sx" % OLD_KEY.encode(),
        )

    def test_a_database_password_file_selects_postgresql_with_that_password(
        self, tmp_path: Path
    ) -> None:
        found = settings(debug=True, db_password_file=secret(tmp_path, "db", "s3cret"))

        assert found.database_url.password == "s3cret"
        assert found.database_url.get_backend_name() == "postgresql"

    def test_an_empty_previous_key_file_means_no_previous_key(self, tmp_path: Path) -> None:
        found = settings(
            secret_key=NEW_KEY, secret_key_previous_file=secret(tmp_path, "previous", "")
        )

        assert found.verification_keys == (NEW_KEY.encode(),)

    def test_a_value_and_a_file_for_the_same_secret_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError) as error:
            settings(secret_key=NEW_KEY, secret_key_file=secret(tmp_path, "key", NEW_KEY))

        assert "set APP_SECRET_KEY or APP_SECRET_KEY_FILE, not both" in str(error.value)
        assert NEW_KEY not in str(error.value)

    def test_a_missing_file_is_refused_naming_the_variable_and_the_path(
        self, tmp_path: Path
    ) -> None:
        with pytest.raises(ValidationError) as error:
            settings(secret_key_file=tmp_path / "absent")

        assert (
            f"APP_SECRET_KEY_FILE: cannot read {tmp_path / 'absent'}: No such file or directory"
            in str(error.value)
        )

    def test_a_weak_key_in_a_file_is_refused_like_one_in_the_environment(
        self, tmp_path: Path
    ) -> None:
        with pytest.raises(ValidationError) as error:
            settings(secret_key_file=secret(tmp_path, "key", "short"))

        assert "APP_SECRET_KEY is shorter than 32 bytes" in str(error.value)


@pytest.fixture(scope="module")
def database(postgres_server: URL) -> Iterator[str]:
    for url in fresh_postgres_database(postgres_server):
        yield url.set(drivername="postgresql").render_as_string(hide_password=False)


def status_signed_with(url: str, key: str) -> int:
    async def once() -> int:
        client = AsyncSignedClient(url, key, timeout=10)
        try:
            return (await client.post("/api/heroes", json=HERO)).status_code
        finally:
            await client.aclose()

    return asyncio.run(once())


@pytest.mark.slow
def test_a_server_with_its_key_only_in_a_file_is_rotated_by_a_restart_without_a_rebuild(
    database: str, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    key_file = secret(secrets, "app_secret_key", OLD_KEY)
    previous_file = secret(secrets, "app_secret_key_previous", "")
    environment = {
        "APP_DB_URL": database,
        "APP_DEBUG": "false",
        "APP_SECRET_KEY": "",
        "APP_SECRET_KEY_PREVIOUS": "",
        "APP_SECRET_KEY_FILE": str(key_file),
        "APP_SECRET_KEY_PREVIOUS_FILE": str(previous_file),
    }
    with BackofficeServer(environment, tmp_path / "before.log") as server:
        before = {key: status_signed_with(server.url, key) for key in (OLD_KEY, NEW_KEY)}
    secret(secrets, "app_secret_key", NEW_KEY)
    secret(secrets, "app_secret_key_previous", OLD_KEY)
    with BackofficeServer(environment, tmp_path / "after.log") as server:
        after = {key: status_signed_with(server.url, key) for key in (OLD_KEY, NEW_KEY)}
        assert httpx.get(f"{server.url}/health/ready").status_code == 200

    assert before == {OLD_KEY: 201, NEW_KEY: 401}
    assert after == {OLD_KEY: 201, NEW_KEY: 201}
