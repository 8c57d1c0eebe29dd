"""The signing scheme reproduces the shared vectors byte for byte, in Python and on the server.

The README's worked examples are parsed and checked too, so the documentation cannot drift.
"""

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import signing
from settings import ROOT, Settings
from tests.conftest import make_settings, truncate_all
from tests.signature_support import (
    VECTOR_KEY,
    Vector,
    fixed_clock,
    insert_hero,
    running_app,
    vector_file,
    vectors,
)

VECTORS = vectors()
# Every vector's timestamp is within a second of this instant: a server whose clock reads it
# accepts them all, as it would have when they were recorded.
RECORDED_AT_MS = 1_764_158_400_500
README = ROOT / "README.md"


def _ids(vector: Vector) -> str:
    return vector.label


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_signed_bytes_are_the_vectors_signed_string(vector: Vector) -> None:
    signed = signing.signed_bytes(
        vector.method,
        vector.path_and_query,
        vector.body.encode(),
        vector.x_timestamp,
        vector.version,
    )

    assert signed == vector.signed_string.encode()


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_sign_gives_the_vectors_signature(vector: Vector) -> None:
    signature = signing.sign(
        vector.method,
        vector.path_and_query,
        vector.body,
        vector.x_timestamp,
        VECTOR_KEY,
        vector.version,
    )

    assert signature == vector.x_signature


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_signed_headers_carry_the_vectors_values(vector: Vector) -> None:
    headers = signing.signed_headers(
        vector.method,
        vector.path_and_query,
        vector.body.encode(),
        VECTOR_KEY.encode(),
        vector.version,
        int(vector.x_timestamp),
    )

    expected = {"x-timestamp": vector.x_timestamp, "x-signature": vector.x_signature}
    if vector.version == 2:
        expected["x-signature-version"] = "2"
    assert headers == expected


def test_the_vectors_cover_both_versions_bodies_and_queries() -> None:
    assert {vector.version for vector in VECTORS} == {1, 2}
    assert any(vector.body and not vector.body.isascii() for vector in VECTORS)
    assert any("?" in vector.path_and_query and vector.version == 2 for vector in VECTORS)


@pytest.fixture(scope="module")
def recorded_clock_app(backend_settings: dict[str, Settings]) -> Iterator[TestClient]:
    """The app on PostgreSQL with the vectors' key, its clock stopped when they were recorded."""
    # The vectors' key is public, so only development mode accepts it.
    url = backend_settings["postgresql"].database_url
    settings = make_settings(url, secret_key=VECTOR_KEY, debug=True)
    with running_app(settings, clock=fixed_clock(RECORDED_AT_MS)) as client:
        yield client


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_the_server_accepts_each_vector_exactly_as_recorded(
    vector: Vector, recorded_clock_app: TestClient, backend_settings: dict[str, Settings]
) -> None:
    settings = backend_settings["postgresql"]
    truncate_all(settings)
    insert_hero(settings, 42)  # the hero the vectors' PATCH and DELETE address
    headers = {"x-timestamp": vector.x_timestamp, "x-signature": vector.x_signature}
    if vector.body:
        headers["content-type"] = "application/json"
    if vector.version == 2:
        headers["x-signature-version"] = "2"

    response = recorded_clock_app.request(
        vector.method, vector.path_and_query, content=vector.body.encode(), headers=headers
    )

    expected_status = {"GET": 200, "POST": 201, "PATCH": 200, "DELETE": 204}[vector.method]
    assert response.status_code == expected_status, response.text


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _worked_examples() -> list[dict[str, str]]:
    """The `text` blocks of the README's worked example, as field -> value."""
    section = _readme_section("Request signing")
    blocks = re.findall(r"```text\n(key .*?)```", section, flags=re.DOTALL)
    return [dict(line.split(maxsplit=1) for line in block.strip().splitlines()) for block in blocks]


def test_the_readme_shows_a_worked_example_of_each_version() -> None:
    assert sorted(example["version"] for example in _worked_examples()) == ["1", "2"]


@pytest.mark.parametrize("example", _worked_examples(), ids=lambda e: f"version {e['version']}")
def test_the_readme_worked_example_is_correct_and_is_a_shared_vector(
    example: dict[str, str],
) -> None:
    version: signing.Version = 2 if example["version"] == "2" else 1
    inputs = (example["method"], example["path?query"], example["body"], example["x-timestamp"])

    signed = signing.signed_bytes(*inputs[:2], inputs[2].encode(), inputs[3], version)
    signature = signing.sign(*inputs, example["key"], version)

    assert signed.decode() == example["signed"]
    assert signature == example["x-signature"]
    assert example["key"] == vector_file()["key"]
    assert any(
        (v.method, v.path_and_query, v.body, v.x_timestamp, v.x_signature) == (*inputs, signature)
        for v in VECTORS
    )
