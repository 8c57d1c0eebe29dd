"""Settings: database selection, and clear refusals of bad values."""

import pytest
from pydantic import ValidationError

from settings import Settings

KEY = "a-strong-signing-key-for-the-settings-tests-0123456789"


@pytest.fixture(autouse=True)
def no_app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("APP_SECRET_KEY", KEY)


def test_without_database_settings_the_embedded_sqlite_file_is_used() -> None:
    url = Settings(_env_file=None).database_url  # type: ignore[call-arg]

    assert url.drivername == "sqlite+aiosqlite"
    assert url.database is not None
    assert url.database.endswith("var/backoffice.db")


def test_a_database_host_selects_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB_HOST", "db.internal")
    monkeypatch.setenv("APP_DB_PASSWORD", "p@ss")

    url = Settings(_env_file=None).database_url  # type: ignore[call-arg]

    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.username) == (
        "db.internal",
        5432,
        "backoffice",
        "postgres",
    )
    assert url.password == "p@ss"


def test_a_database_url_wins_and_gets_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB_HOST", "ignored")
    monkeypatch.setenv("APP_DB_URL", "postgres://u@h:6543/d")

    url = Settings(_env_file=None).database_url  # type: ignore[call-arg]

    assert url.render_as_string() == "postgresql+asyncpg://u@h:6543/d"


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB_URL", "")

    assert Settings(_env_file=None).database_url.drivername == "sqlite+aiosqlite"  # type: ignore[call-arg]


def test_comma_separated_cors_origins_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", "http://a.test, http://b.test")

    assert Settings(_env_file=None).cors_origins == ["http://a.test", "http://b.test"]  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("written", "origin"),
    [
        ("http://localhost:3000/", "http://localhost:3000"),
        ("HTTPS://Backoffice.Example.com", "https://backoffice.example.com"),
        ("https://backoffice.example.com:443", "https://backoffice.example.com"),
        ("http://[::1]:5173/", "http://[::1]:5173"),
        ("*", "*"),
    ],
)
def test_cors_origins_are_kept_as_a_browser_sends_them(
    monkeypatch: pytest.MonkeyPatch, written: str, origin: str
) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", written)

    assert Settings(_env_file=None).cors_origins == [origin]  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("backoffice.example.com", "no http:// or https://"),
        ("localhost:3000", "no http:// or https://"),
        ("https://backoffice.example.com/app", "it has more than a host"),
        ("https://backoffice.example.com/?x=1", "it has more than a host"),
        ("https://user@backoffice.example.com", "it has more than a host"),
    ],
)
def test_a_cors_origin_that_could_never_match_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, written: str, why: str
) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", f"http://ok.test,{written}")

    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)  # type: ignore[call-arg]

    assert error.value.errors()[0]["loc"] == ("cors_origins",)
    assert f"{written!r} is not an origin ({why})" in str(error.value)


def test_credentials_with_any_origin_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", "*")
    monkeypatch.setenv("APP_CORS_ALLOW_CREDENTIALS", "true")

    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)  # type: ignore[call-arg]

    assert "APP_CORS_ALLOW_CREDENTIALS=true needs APP_CORS_ORIGINS to name each origin" in str(
        error.value
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("APP_DB_PORT", "abc", "db_port"),
        ("APP_DB_POOL_SIZE", "0", "db_pool_size"),
        ("APP_REPLAY_PROTECTION", "sometimes", "replay_protection"),
        ("APP_SIGNATURE_MIN_VERSION", "3", "signature_min_version"),
        ("APP_TIMESTAMP_SIGNING_THRESHOLD", "-5", "timestamp_signing_threshold"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)  # type: ignore[call-arg]

    assert error.value.errors()[0]["loc"] == (message,)
