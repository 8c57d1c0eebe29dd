"""The signing scheme reproduces the shared vectors byte for byte, in Python and on the server.

The documentation's worked examples (docs/signing.md) are parsed and checked too, and its
commands run, so the documentation cannot drift.
"""

import ast
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import signing
from settings import ROOT, Settings
from tests.conftest import TEST_KEY, make_settings, truncate_all
from tests.markdown_docs import blocks, command_lines, shell_blocks
from tests.problem_assertions import assert_problem
from tests.signature_support import (
    VECTOR_KEY,
    Vector,
    Vector2,
    fixed_clock,
    insert_hero,
    running_app,
    vector_file,
    vectors,
    vectors_2,
)

VECTORS = vectors()
VECTORS_2 = vectors_2()
MUST_NOT_VERIFY = vector_file()["must_not_verify"]
# Every vector's timestamp is within a few seconds of this instant: a server whose clock reads
# it accepts them all, as it would have when they were recorded.
RECORDED_AT_MS = 1_764_158_400_500
SIGNING_PAGE = ROOT / "docs/signing.md"
TROUBLESHOOTING = ROOT / "docs/troubleshooting.md"
# The vectors' hero 42 is at version 3: their If-Match and If-None-Match name it.
HERO_VERSION = 3


def _ids(vector: Vector | Vector2) -> str:
    return vector.label


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_signed_bytes_are_the_vectors_signed_string(vector: Vector) -> None:
    signed = signing.signed_bytes(vector.method, vector.body.encode(), vector.x_timestamp)

    assert signed == vector.signed_string.encode()


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_sign_gives_the_vectors_signature(vector: Vector) -> None:
    signature = signing.sign(vector.method, vector.body, vector.x_timestamp, VECTOR_KEY)

    assert signature == vector.x_signature


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_version_1_signed_headers_carry_the_vectors_values(vector: Vector) -> None:
    headers = signing.signed_headers(
        vector.method,
        vector.path_and_query,
        vector.body.encode(),
        VECTOR_KEY.encode(),
        1,
        int(vector.x_timestamp),
    )

    assert headers == {"x-timestamp": vector.x_timestamp, "x-signature": vector.x_signature}


def test_the_keyid_is_the_vectors_keyid_of_the_key() -> None:
    assert signing.key_id(VECTOR_KEY) == vector_file()["scheme"]["keyid_of_key"]
    assert {vector.keyid for vector in VECTORS_2} == {signing.key_id(VECTOR_KEY)}


@pytest.mark.parametrize("vector", VECTORS_2, ids=_ids)
def test_the_version_2_signature_base_is_the_vectors(vector: Vector2) -> None:
    base = signing.signature_base(
        vector.method,
        vector.path_and_query,
        vector.body.encode(),
        VECTOR_KEY,
        headers=vector.headers,
        created=vector.created,
    )

    assert base == vector.signature_base.encode()


@pytest.mark.parametrize("vector", VECTORS_2, ids=_ids)
def test_version_2_signed_headers_are_the_vectors_headers(vector: Vector2) -> None:
    headers = signing.signed_headers(
        vector.method,
        vector.path_and_query,
        vector.body,
        VECTOR_KEY,
        2,
        vector.created * 1000 + 999,
        headers=vector.headers,
        unique=False,
    )

    assert headers == vector.signed_headers


def test_a_unique_version_2_signature_adds_a_nonce_and_differs_each_time() -> None:
    signatures = [
        signing.signed_headers("DELETE", "/api/heroes/42", b"", VECTOR_KEY, 2, 1_764_158_402_000)
        for _ in range(2)
    ]

    assert signatures[0]["Signature"] != signatures[1]["Signature"]
    assert all(";nonce=" in headers["Signature-Input"] for headers in signatures)


def test_the_vectors_cover_both_versions_bodies_queries_and_bound_headers() -> None:
    assert {vector.version for vector in VECTORS} == {1}
    assert {vector.version for vector in VECTORS_2} == {2}
    assert any(vector.body and not vector.body.isascii() for vector in VECTORS + VECTORS_2)
    assert any(vector.query for vector in VECTORS_2)
    carried = {name for vector in VECTORS_2 for name in vector.headers}
    assert carried == {"content-type", "if-match", "if-none-match", "idempotency-key"}


@pytest.fixture(scope="module")
def recorded_clock_app(backend_settings: dict[str, Settings]) -> Iterator[TestClient]:
    """The app on PostgreSQL with the vectors' key, its clock stopped when they were recorded."""
    # The vectors' key is public, so only development mode accepts it.
    url = backend_settings["postgresql"].database_url
    settings = make_settings(url, secret_key=VECTOR_KEY, debug=True)
    with running_app(settings, clock=fixed_clock(RECORDED_AT_MS)) as client:
        yield client


@pytest.fixture
def hero_42(backend_settings: dict[str, Settings]) -> None:
    settings = backend_settings["postgresql"]
    truncate_all(settings)
    insert_hero(settings, 42, HERO_VERSION)


EXPECTED_STATUS = {"GET": 200, "POST": 201, "PATCH": 200, "DELETE": 204}


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_the_server_accepts_each_version_1_vector_exactly_as_recorded(
    vector: Vector, recorded_clock_app: TestClient, hero_42: None
) -> None:
    headers = {"x-timestamp": vector.x_timestamp, "x-signature": vector.x_signature}
    if vector.body:
        headers["content-type"] = "application/json"

    response = recorded_clock_app.request(
        vector.method, vector.path_and_query, content=vector.body.encode(), headers=headers
    )

    assert response.status_code == EXPECTED_STATUS[vector.method], response.text


@pytest.mark.parametrize("vector", VECTORS_2, ids=_ids)
def test_the_server_accepts_each_version_2_vector_exactly_as_recorded(
    vector: Vector2, recorded_clock_app: TestClient, hero_42: None
) -> None:
    headers = vector.headers | vector.signed_headers

    response = recorded_clock_app.request(
        vector.method, vector.path_and_query, content=vector.body.encode(), headers=headers
    )

    not_modified = "if-none-match" in vector.headers
    expected = 304 if not_modified else EXPECTED_STATUS[vector.method]
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("case", MUST_NOT_VERIFY, ids=lambda case: case["label"])
def test_the_must_not_verify_case_is_refused(
    case: dict[str, str], recorded_clock_app: TestClient, hero_42: None
) -> None:
    body = case["body"].encode()
    assert (
        signing.sign(case["method"], body, case["x_timestamp"], VECTOR_KEY) != (case["x_signature"])
    )

    response = recorded_clock_app.request(
        case["method"],
        case["path"],
        content=body,
        headers={"x-timestamp": case["x_timestamp"], "x-signature": case["x_signature"]},
    )

    assert_problem(
        response,
        401,
        "x-signature does not match this request (signature version 1)",
        "x-signature",
    )


def _signing_page() -> str:
    return SIGNING_PAGE.read_text(encoding="utf-8")


def _worked_examples() -> dict[str, dict[str, str]]:
    """The `text` blocks of the page's worked examples, as field -> value, by version."""
    section = _signing_page()
    blocks = re.findall(r"```text\n(key .*?)```", section, flags=re.DOTALL)
    examples = [
        dict(line.split(maxsplit=1) for line in block.strip().splitlines()) for block in blocks
    ]
    return {example["version"]: example for example in examples}


def test_the_page_shows_a_worked_example_of_each_version() -> None:
    assert sorted(_worked_examples()) == ["1", "2"]


def test_the_version_1_example_is_correct_and_is_a_shared_vector() -> None:
    example = _worked_examples()["1"]
    inputs = (example["method"], example["body"], example["x-timestamp"])

    signed = signing.signed_bytes(inputs[0], inputs[1].encode(), inputs[2])
    signature = signing.sign(*inputs, example["key"])

    assert signed.decode() == example["signed"]
    assert signature == example["x-signature"]
    assert example["key"] == VECTOR_KEY
    assert any(
        (v.method, v.body, v.x_timestamp, v.x_signature) == (*inputs, signature) for v in VECTORS
    )


def test_the_version_2_example_is_correct_and_is_a_shared_vector() -> None:
    example = _worked_examples()["2"]
    bound = {name: example[name] for name in signing.BOUND_HEADERS if name in example}
    vector = next(
        v
        for v in VECTORS_2
        if (v.method, v.path_and_query) == (example["method"], example["path?query"])
        and v.body == example["body"]
    )

    headers = signing.signed_headers(
        example["method"],
        example["path?query"],
        example["body"],
        example["key"],
        2,
        int(example["created"]) * 1000,
        headers=bound,
        unique=False,
    )

    assert example["key"] == VECTOR_KEY
    assert headers == {
        name: example[name] for name in ("Signature-Input", "Signature", "Content-Digest")
    }
    assert headers == vector.signed_headers
    base = _signing_page().split('```text\n"@method"', 1)[1]
    assert '"@method"' + base.split("```", 1)[0].rstrip("\n") == vector.signature_base


def _documented_python_example() -> str:
    (code,) = [
        b.text
        for b in blocks(SIGNING_PAGE)
        if b.run_by == "tests/test_signing_scheme.py" and b.language == "python"
    ]
    return code


def test_the_documented_python_example_creates_a_team_on_a_running_server(
    live_server: str,
) -> None:
    script = _documented_python_example()
    assert "http://127.0.0.1:8000" in script
    name = f"Defenders {uuid.uuid4().hex[:8]}"
    script = script.replace("http://127.0.0.1:8000", live_server).replace("Defenders", name)

    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "APP_SECRET_KEY": TEST_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    created = ast.literal_eval(run.stdout)
    assert (created["name"], created["headquarters"]) == (name, "Hell's Kitchen")


def _run_shell(command: str) -> str:
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_the_openssl_line_reproduces_the_version_1_example() -> None:
    (block,) = shell_blocks(SIGNING_PAGE, "tests/test_signing_scheme.py")
    (command,) = command_lines(block)

    printed = _run_shell(command)

    assert printed.split()[-1] == _worked_examples()["1"]["x-signature"]


def test_the_troubleshooting_keyid_line_prints_the_worked_examples_keyid() -> None:
    (block,) = shell_blocks(TROUBLESHOOTING, "tests/test_signing_scheme.py")
    (command,) = command_lines(block)

    printed = _run_shell(command)

    keyid = re.search(r'keyid="([0-9a-f]{16})"', _worked_examples()["2"]["Signature-Input"])
    assert keyid is not None
    assert printed == f"{keyid.group(1)}\n"
    assert f"`{keyid.group(1)}`" in TROUBLESHOOTING.read_text(encoding="utf-8")
