"""Signing secrets: weak keys stop the service outside development, and no key, signature or
body is ever echoed, neither by a refused setting nor in the logs of a request."""

import json
import logging
import os
import secrets
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import signing
from settings import (
    DEVELOPMENT_SECRET_KEY,
    MIN_SECRET_KEY_BYTES,
    ROOT,
    WORKED_EXAMPLE_SECRET_KEY,
    Settings,
    guessable,
)
from tests.conftest import make_settings
from tests.signature_support import running_app

STRONG_KEY = "a-strong-signing-key-for-these-tests-0123456789"
ENV_EXAMPLE = ROOT / ".env.example"


def env_example_value(variable: str) -> str:
    """The value `.env.example` gives `variable` (what a careless copy would deploy)."""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if name.strip() == variable and not line.lstrip().startswith("#"):
            return value.strip()
    raise AssertionError(f"{variable} is not in .env.example")


@pytest.fixture(autouse=True)
def no_app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)


def settings_from_environment(**variables: str) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        return Settings(_env_file=None)  # type: ignore[call-arg]


def refusal(**variables: str) -> str:
    with pytest.raises(ValidationError) as error:
        settings_from_environment(**variables)
    return str(error.value)


def test_a_missing_key_is_refused_outside_debug() -> None:
    message = refusal()

    assert "APP_SECRET_KEY is not set" in message


def test_an_empty_key_counts_as_missing() -> None:
    assert "APP_SECRET_KEY is not set" in refusal(APP_SECRET_KEY="")


def test_a_key_one_byte_short_is_refused_and_not_echoed() -> None:
    key = "s" * (MIN_SECRET_KEY_BYTES - 1)

    message = refusal(APP_SECRET_KEY=key)

    assert f"APP_SECRET_KEY is shorter than {MIN_SECRET_KEY_BYTES} bytes" in message
    assert key not in message


def test_the_minimum_length_counts_bytes_not_characters() -> None:
    sixteen_characters_of_two_bytes = "äöüßéèêëîïôûçñáó"

    settings = settings_from_environment(APP_SECRET_KEY=sixteen_characters_of_two_bytes)

    assert settings.signing_key == sixteen_characters_of_two_bytes.encode()
    assert "shorter" in refusal(APP_SECRET_KEY=sixteen_characters_of_two_bytes[:15] + "u")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("k" * 32, "it repeats a sequence of 1 bytes"),
        ("ab" * 20, "it repeats a sequence of 2 bytes"),
        ("0123456789abcdef" * 2, "it repeats a sequence of 16 bytes"),
        ("abcdefg" * 4 + "zzzz", "it is mostly repeated sequences"),
        ("0101100111010010" * 2 + "1", "33 bytes of only 2 distinct values hold at most 33 bits"),
    ],
    ids=["one character", "two characters", "a repeated alphabet", "near repeats", "binary"],
)
@pytest.mark.parametrize("variable", ["APP_SECRET_KEY", "APP_SECRET_KEY_PREVIOUS"])
def test_a_predictable_key_is_refused_naming_the_variable_and_not_echoed(
    key: str, why: str, variable: str
) -> None:
    variables = {"APP_SECRET_KEY": STRONG_KEY, variable: key}

    message = refusal(**variables)

    assert f"{variable} is too predictable for a key ({why}" in message
    assert "secrets.token_urlsafe(48)" in message
    assert key not in message


@pytest.mark.parametrize(
    "generate",
    [
        lambda: secrets.token_hex(16),  # openssl rand -hex 16: 32 hex digits
        lambda: secrets.token_hex(32),  # openssl rand -hex 32
        lambda: secrets.token_urlsafe(24),
        lambda: secrets.token_urlsafe(48),  # what the README and the refusal suggest
    ],
    ids=["hex 16 bytes", "hex 32 bytes", "base64url 24 bytes", "base64url 48 bytes"],
)
def test_random_keys_as_people_generate_them_are_never_refused(
    generate: Callable[[], str],
) -> None:
    refused = [key for key in (generate() for _ in range(20_000)) if guessable(key.encode())]

    assert refused == []


@given(
    unit=st.text(st.characters(codec="utf-8"), min_size=1, max_size=16),
    extra=st.integers(0, 3),
)
@settings(max_examples=300, database=None)
def test_any_key_that_repeats_a_shorter_sequence_is_refused(unit: str, extra: int) -> None:
    times = -(-MIN_SECRET_KEY_BYTES // len(unit.encode())) + max(1, extra)
    key = (unit * times).encode()

    assert guessable(key) is not None


def test_a_previous_key_equal_to_the_current_one_is_refused() -> None:
    message = refusal(
        APP_SECRET_KEY=STRONG_KEY, APP_SECRET_KEY_PREVIOUS=f"{STRONG_KEY}-old,{STRONG_KEY}"
    )

    assert (
        "APP_SECRET_KEY_PREVIOUS repeats APP_SECRET_KEY: list only the keys that are no longer "
        "current" in message
    )
    assert STRONG_KEY not in message


def test_a_previous_key_listed_twice_is_refused() -> None:
    old = f"{STRONG_KEY}-old"

    message = refusal(APP_SECRET_KEY=STRONG_KEY, APP_SECRET_KEY_PREVIOUS=f"{old}, {old}")

    assert "APP_SECRET_KEY_PREVIOUS lists the same key twice" in message
    assert old not in message


@pytest.mark.parametrize(
    "key",
    [env_example_value("APP_SECRET_KEY"), DEVELOPMENT_SECRET_KEY, WORKED_EXAMPLE_SECRET_KEY],
    ids=[".env.example placeholder", "development key", "README worked example key"],
)
def test_a_published_example_key_is_refused_and_not_echoed(key: str) -> None:
    message = refusal(APP_SECRET_KEY=key)

    assert "APP_SECRET_KEY is the example value: generate a real secret" in message
    assert key not in message


def test_the_env_example_file_as_shipped_does_not_start_the_service() -> None:
    variables = {
        name: value
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.startswith("APP_") and "=" in line
        for name, _, value in [line.partition("=")]
    }

    message = refusal(**variables)

    assert "APP_SECRET_KEY is the example value" in message


@pytest.mark.parametrize(
    ("previous", "problem"),
    [
        ("short-old-key", "is shorter than 32 bytes"),
        (env_example_value("APP_SECRET_KEY"), "is the example value"),
        (f"{STRONG_KEY}-old, {DEVELOPMENT_SECRET_KEY}", "is the example value"),
    ],
    ids=["short", ".env.example placeholder", "second of two"],
)
def test_a_weak_previous_key_is_refused_and_not_echoed(previous: str, problem: str) -> None:
    message = refusal(APP_SECRET_KEY=STRONG_KEY, APP_SECRET_KEY_PREVIOUS=previous)

    assert f"APP_SECRET_KEY_PREVIOUS {problem}" in message
    for key in previous.split(","):
        assert key.strip() not in message


def test_previous_keys_verify_after_the_current_one() -> None:
    settings = settings_from_environment(
        APP_SECRET_KEY=STRONG_KEY, APP_SECRET_KEY_PREVIOUS=f" {STRONG_KEY}-1 ,, {STRONG_KEY}-2 "
    )

    assert settings.signing_key == STRONG_KEY.encode()
    assert settings.verification_keys == (
        STRONG_KEY.encode(),
        f"{STRONG_KEY}-1".encode(),
        f"{STRONG_KEY}-2".encode(),
    )


def test_in_debug_the_development_key_signs_when_none_is_set() -> None:
    settings = settings_from_environment(APP_DEBUG="true")

    assert settings.signing_key == DEVELOPMENT_SECRET_KEY.encode()
    assert settings.verification_keys == (DEVELOPMENT_SECRET_KEY.encode(),)


def test_in_debug_a_short_key_is_allowed() -> None:
    assert settings_from_environment(APP_DEBUG="1", APP_SECRET_KEY="dev").signing_key == b"dev"


def test_the_signing_settings_are_read_from_environment_strings() -> None:
    settings = settings_from_environment(
        APP_SECRET_KEY=STRONG_KEY,
        APP_SIGNATURE_MIN_VERSION="2",
        APP_REPLAY_PROTECTION="all",
        APP_TIMESTAMP_SIGNING_THRESHOLD="30000",
        APP_MAX_BODY_BYTES="2048",
    )

    assert (
        settings.signature_min_version,
        settings.replay_protection,
        settings.timestamp_signing_threshold,
        settings.max_body_bytes,
    ) == (2, "all", 30_000, 2048)


def test_the_settings_never_show_a_key_in_their_repr() -> None:
    settings = settings_from_environment(
        APP_SECRET_KEY=STRONG_KEY, APP_SECRET_KEY_PREVIOUS=f"{STRONG_KEY}-old"
    )

    assert STRONG_KEY not in repr(settings)
    assert STRONG_KEY not in str(settings.model_dump())


def test_requests_accepted_or_refused_log_no_key_signature_or_body(
    backend_settings: dict[str, Settings],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    base = backend_settings["postgresql"]
    settings = make_settings(
        base.database_url,
        secret_key=STRONG_KEY,
        secret_key_previous=[f"{STRONG_KEY}-previous"],
        log_level="DEBUG",
    )
    body = json.dumps({"name": "Body-Name-Marker", "headquarters": "Body-HQ-Marker"})
    content = {"content-type": "application/json"}
    accepted = signing.signed_headers("POST", "/api/teams", body, STRONG_KEY, 2, headers=content)
    refused = signing.signed_headers("POST", "/api/teams", body, "x" * 40, 2, headers=content)
    caplog.set_level(logging.DEBUG)

    with running_app(settings) as client:
        responses = [
            client.post(
                "/api/teams",
                content=body,
                headers={**headers, "content-type": "application/json"},
            )
            for headers in (refused, accepted)
        ]

    assert [response.status_code for response in responses] == [401, 201]
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert "/api/teams" in logged  # the requests were logged...
    for secret in (
        STRONG_KEY,  # ...but never a key (current or previous),
        accepted["Signature"].split(":")[1],  # a signature, accepted
        refused["Signature"].split(":")[1],  # or refused,
        "Body-Name-Marker",  # or a body (sent or returned).
        "Body-HQ-Marker",
    ):
        assert secret not in logged
        assert secret.upper() not in logged
