"""Hostile but well-formed requests, through the app on PostgreSQL: never a 5xx, a redirect or a
secret in a log line.

- Any bytes an HTTP parser accepts in a header that signing or preconditions read get a
  documented 4xx or a success. An entity tag the service never issued matches nothing.
- No /api path is redirected: unsigned, with any Host, it gets 401; signed, at worst 404.
- A database error on a write leaves `secret_name` in no log line, response or metric.
"""

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from starlette.testclient import TestClient

import signing
from observability import logs
from settings import Settings
from tests.conftest import TEST_KEY, truncate_all
from tests.problem_assertions import assert_problem
from tests.signature_support import sync_engine
from tests.signed_client import SignedClient

UNSIGNED = (
    "the request is not signed: sign it with Signature-Input and Signature (version 2, "
    "RFC 9421) or x-timestamp and x-signature"
)
# Every status the contract documents for /api operations.
DOCUMENTED = {200, 201, 204, 304, 400, 401, 404, 405, 409, 412, 413, 415, 422}
HOSTILE_HEADERS = (
    "if-match",
    "if-none-match",
    "idempotency-key",
    "x-timestamp",
    "x-signature",
    "x-signature-version",
    "signature-input",
    "signature",
    "content-digest",
    "content-type",
)
BOUND = frozenset(signing.BOUND_HEADERS) - {"content-digest"}
ENOUGH = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# RFC 9110 field-value: visible ASCII and obs-text (0x80-0xFF), with spaces and tabs inside.
field_octet = st.one_of(st.integers(0x21, 0x7E), st.integers(0x80, 0xFF))
field_values = st.builds(
    lambda first, inner, last: bytes([first, *inner, last]) if inner is not None else b"",
    field_octet,
    st.lists(st.one_of(field_octet, st.sampled_from([0x20, 0x09])), max_size=40),
    field_octet,
) | st.sampled_from(
    [
        b"",
        b'"99999999999"',
        '"³"'.encode("latin-1"),
        b'"0"',
        b'"01"',
        b'W/"1"',
        b"*",
        b'"1", "2"',
        b"sig1=:" + b"A" * 43 + b"=:",
        b'sig1=("@method");created=99999999999999999;keyid="x"',
        b"sha-256=:" + b"A" * 43 + b"=:",
        b"9" * 15,
        b"1764158400",
    ]
)

TARGETS = [
    ("GET", "/api/teams/1", b""),
    ("GET", "/api/heroes", b""),
    ("PATCH", "/api/teams/1", b'{"headquarters":"Moon"}'),
    ("POST", "/api/teams", b'{"name":"Hostile","headquarters":"HQ"}'),
    ("DELETE", "/api/heroes/1", b""),
]


def _with_targets(app: TestClient, settings: Settings) -> TestClient:
    truncate_all(settings)
    client = SignedClient(app, TEST_KEY, version=2)
    team = client.post("/api/teams", json={"name": "Target", "headquarters": "HQ"})
    hero = client.post("/api/heroes", json={"name": "Target", "secret_name": "Hidden"})
    assert (team.status_code, hero.status_code) == (201, 201)
    return app


@pytest.fixture(scope="module")
def pg_app(app_clients: dict[str, TestClient], backend_settings: dict[str, Settings]) -> TestClient:
    """The session's app on PostgreSQL, with team 1 and hero 1 to aim at."""
    return _with_targets(app_clients["postgresql"], backend_settings["postgresql"])


@pytest.fixture
def targets(
    app_clients: dict[str, TestClient], backend_settings: dict[str, Settings]
) -> TestClient:
    """The same, afresh for one test (others truncate the database in between)."""
    return _with_targets(app_clients["postgresql"], backend_settings["postgresql"])


def _signed(
    method: str, path: str, body: bytes, headers: dict[str, bytes], version: signing.Version
) -> list[tuple[str, bytes]]:
    """The request's headers, signed over the bound ones when they are signable as text."""
    content = (
        {
            "content-type": b"application/merge-patch+json"
            if method == "PATCH"
            else b"application/json"
        }
        if body
        else {}
    )
    carried = content | headers
    bound = {name: value.decode("latin-1") for name, value in carried.items() if name in BOUND}
    if version == 2 and all(value.isascii() for value in bound.values()):
        signed = signing.signed_headers(method, path, body, TEST_KEY, 2, headers=bound)
    else:
        signed = signing.signed_headers(method, path, body, TEST_KEY, 1)
    return [*carried.items(), *((name, value.encode()) for name, value in signed.items())]


def _is_answer_of_the_contract(response: httpx.Response) -> bool:
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text
    return response.is_success or response.status_code in DOCUMENTED


@ENOUGH
@given(
    target=st.sampled_from(TARGETS),
    name=st.sampled_from(HOSTILE_HEADERS),
    value=field_values,
    version=st.sampled_from([1, 2]),
    sign_over_it=st.booleans(),
)
def test_any_parsable_value_of_a_signing_or_precondition_header_never_gets_a_5xx(
    pg_app: TestClient,
    target: tuple[str, str, bytes],
    name: str,
    value: bytes,
    version: signing.Version,
    sign_over_it: bool,
) -> None:
    method, path, body = target
    extra = {name: value} if sign_over_it and name in BOUND else {}
    headers = [(k, v) for k, v in _signed(method, path, body, extra, version) if k.lower() != name]
    headers.append((name, value))

    response = pg_app.request(method, path, content=body, headers=headers)

    assert response.status_code < 500, response.text
    assert _is_answer_of_the_contract(response), response.text


@pytest.mark.parametrize(
    "tag",
    [b'"99999999999"', '"³"'.encode("latin-1"), '"\u0661"'.encode(), b'"0"', b'"01"', b'W/"1"'],
    ids=[
        "larger than the column",
        "a Latin-1 superscript",
        "Arabic-Indic",
        "zero",
        "padded",
        "weak",
    ],
)
def test_an_if_match_the_service_never_issued_matches_nothing_and_gets_412(
    tag: bytes, pg_client: SignedClient
) -> None:
    team = pg_client.post("/api/teams", json={"name": "Tagged", "headquarters": "HQ"})
    team_id = team.json()["id"]
    signed = signing.signed_headers("DELETE", f"/api/teams/{team_id}", b"", TEST_KEY, 1)

    response = pg_client.raw.delete(
        f"/api/teams/{team_id}", headers=[*signed.items(), ("if-match", tag)]
    )

    assert_problem(response, 412, f'team {team_id} has changed: its ETag is now "1"')
    assert pg_client.get(f"/api/teams/{team_id}").status_code == 200


@pytest.mark.parametrize("tag", [b'"99999999999"', '"³"'.encode("latin-1"), b'"01"'])
def test_an_if_none_match_the_service_never_issued_matches_nothing_and_gets_200(
    tag: bytes, pg_client: SignedClient
) -> None:
    team = pg_client.post("/api/teams", json={"name": "Fresh", "headquarters": "HQ"})
    path = f"/api/teams/{team.json()['id']}"
    signed = signing.signed_headers("GET", path, b"", TEST_KEY, 1)

    response = pg_client.raw.get(path, headers=[*signed.items(), ("if-none-match", tag)])

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Fresh"


# --- no redirect ----------------------------------------------------------------------------

path_tails = st.lists(
    st.sampled_from([*"abcxyz0129-_~", "heroes", "teams", "42", "/", "%2F", "%20", "//"]),
    max_size=8,
).map("".join)
hosts = st.one_of(
    st.sampled_from(["evil.example", "localhost:1", "[::1]", "a" * 300, "testserver"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
)


@ENOUGH
@given(tail=path_tails, host=hosts, method=st.sampled_from(["GET", "DELETE", "POST", "PATCH"]))
def test_an_unsigned_request_to_any_api_path_with_any_host_gets_401_and_no_redirect(
    pg_app: TestClient, tail: str, host: str, method: str
) -> None:
    path = "/api/" + tail

    response = pg_app.request(method, path, headers={"host": host}, follow_redirects=False)

    assert_problem(response, 401, UNSIGNED)
    assert "location" not in response.headers


@ENOUGH
@given(tail=path_tails, host=hosts)
def test_a_signed_request_to_any_api_path_is_never_redirected(
    pg_app: TestClient, tail: str, host: str
) -> None:
    path = "/api/" + tail
    signed = signing.signed_headers("GET", path, b"", TEST_KEY, 2)

    response = pg_app.get(path, headers={"host": host, **signed}, follow_redirects=False)

    assert not response.is_redirect, (path, response.headers.get("location"))
    assert "location" not in response.headers
    assert response.status_code in (200, 400, 404, 405), response.text


def test_a_trailing_slash_gets_401_unsigned_and_404_once_signed(pg_client: SignedClient) -> None:
    unsigned = pg_client.raw.get("/api/heroes/", follow_redirects=False)
    signed = pg_client.get("/api/heroes/", version=2)

    assert_problem(unsigned, 401, UNSIGNED)
    assert_problem(signed, 404, "no resource at /api/heroes/")


# --- secret_name in a failed write ----------------------------------------------------------

SECRET = "Wade-Winston-Wilson-3b9f"
FAILING_NAME = "Fails in the database"


@pytest.fixture
def failing_hero_insert(backend_settings: dict[str, Settings]) -> Iterator[None]:
    """A trigger that makes PostgreSQL refuse one hero's insert with an unexpected error."""
    engine = sync_engine(backend_settings["postgresql"])
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION refuse_hero() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.name = '{FAILING_NAME}' THEN RAISE EXCEPTION 'refused by a test'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse_hero BEFORE INSERT OR UPDATE ON heroes "
                "FOR EACH ROW EXECUTE FUNCTION refuse_hero()"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_hero ON heroes"))
            conn.execute(text("DROP FUNCTION refuse_hero()"))
        engine.dispose()


@pytest.mark.usefixtures("failing_hero_insert")
def test_a_database_error_on_a_write_leaves_secret_name_in_no_log_response_or_metric(
    pg_client: SignedClient,
    backend_settings: dict[str, Settings],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs.configure_logging(backend_settings["postgresql"])
    try:
        capsys.readouterr()
        created = pg_client.post("/api/heroes", json={"name": FAILING_NAME, "secret_name": SECRET})
        hero = pg_client.post("/api/heroes", json={"name": "Kept", "secret_name": "Kept"})
        patched = pg_client.patch(
            f"/api/heroes/{hero.json()['id']}",
            json={"name": FAILING_NAME, "secret_name": SECRET},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        metrics = pg_client.raw.get("/metrics")
        printed = capsys.readouterr()
    finally:
        logs.configure_logging(backend_settings["postgresql"])

    assert_problem(created, 500, "an unexpected error occurred; it has been logged")
    assert_problem(patched, 500, "an unexpected error occurred; it has been logged")
    logged = printed.out + printed.err + caplog.text
    errors = [json.loads(line) for line in printed.out.splitlines() if '"error"' in line]
    assert errors, "the unexpected error was logged"
    assert "refused by a test" in logged
    for where in (logged, created.text, patched.text, metrics.text):
        assert SECRET not in where
    assert "[parameters hidden" not in created.text


def test_the_engine_hides_statement_parameters(pg_settings_engine: Any) -> None:
    assert pg_settings_engine.hide_parameters is True


@pytest.fixture
def pg_settings_engine(backend_settings: dict[str, Settings]) -> Iterator[Any]:
    from persistence.database import create_engine

    engine = create_engine(backend_settings["postgresql"])
    yield engine.sync_engine
    engine.sync_engine.dispose()


# --- media types, whatever their case ---------------------------------------------------------


@st.composite
def spelled(draw: st.DrawFn, media_type: str) -> str:
    """`media_type` in any case, with optional whitespace and a charset parameter."""
    letters = [draw(st.sampled_from([c.lower(), c.upper()])) for c in media_type]
    text = "".join(letters)
    if draw(st.booleans()):
        name = "".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in "charset")
        text += draw(st.sampled_from([";", "; ", " ; "])) + name + "=utf-8"
    return draw(st.sampled_from(["", " "])) + text


@ENOUGH
@given(
    content_type=spelled("application/json"),
    version=st.sampled_from([1, 2]),
    valid=st.booleans(),
    n=st.integers(0, 10**9),
)
def test_a_json_body_in_any_case_of_its_media_type_is_validated_as_json(
    targets: TestClient, content_type: str, version: signing.Version, valid: bool, n: int
) -> None:
    body = (
        json.dumps({"name": f"Cased {n}", "headquarters": "HQ"})
        if valid
        else json.dumps({"name": n, "headquarters": "HQ"})
    ).encode()
    headers = {"Content-Type": content_type}
    headers |= signing.signed_headers(
        "POST", "/api/teams", body, TEST_KEY, version, headers=headers
    )

    response = targets.post("/api/teams", content=body, headers=headers)

    if valid:
        assert response.status_code in (201, 409), response.text
        assert response.status_code == 409 or response.json()["headquarters"] == "HQ"
    else:
        assert_problem(response, 400, f"'name': {n} is not of type 'string'", "name")


@ENOUGH
@given(
    content_type=spelled("application/merge-patch+json") | spelled("application/json"),
    version=st.sampled_from([1, 2]),
)
def test_a_patch_in_any_case_of_its_media_type_is_validated_as_a_merge_patch(
    targets: TestClient, content_type: str, version: signing.Version
) -> None:
    body = b'{"headquarters": 7}'
    headers = {"Content-Type": content_type}
    headers |= signing.signed_headers(
        "PATCH", "/api/teams/1", body, TEST_KEY, version, headers=headers
    )

    response = targets.patch("/api/teams/1", content=body, headers=headers)

    assert_problem(response, 400, "'headquarters': 7 is not of type 'string'", "headquarters")


def test_a_body_of_a_media_type_the_operation_does_not_take_is_refused_with_415(
    pg_client: SignedClient,
) -> None:
    response = pg_client.post(
        "/api/teams",
        content=b'{"name": 5}',
        headers={"Content-Type": "TEXT/plain"},
    )

    assert_problem(
        response, 415, "Invalid Content-type (text/plain), expected ['application/json']"
    )


# --- integers in 1 to 19 plain ASCII digits -------------------------------------------------

not_plain_digits = st.one_of(
    st.sampled_from(
        [
            "1_0",
            "+2",
            " 2",
            "2 ",
            "\u0661\u0662",
            "\uff11\uff12",
            "0x1f",
            "1e3",
            "2.0",
            "",
            "9" * 5000,
        ]
    ),
    st.text(min_size=1, max_size=30).filter(
        lambda value: not re.fullmatch(r"-?[0-9]{1,19}", value)
    ),
    st.integers(10**19, 10**40).map(str),
)


@ENOUGH
@given(value=not_plain_digits, version=st.sampled_from([1, 2]))
def test_a_path_id_that_is_not_plain_ascii_digits_names_no_resource(
    targets: TestClient, value: str, version: signing.Version
) -> None:
    path = "/api/heroes/" + quote(value, safe="")
    signed = signing.signed_headers("GET", path, b"", TEST_KEY, version)

    response = targets.get(path, headers=signed)

    if "/" in value or value == "":
        assert response.status_code == 404, response.text
        return
    assert_problem(
        response,
        404,
        f"no resource at /api/heroes/{value}: hero_id is an integer written in 1 to 19 ASCII "
        "digits",
        "hero_id",
    )


@ENOUGH
@given(
    value=not_plain_digits,
    name=st.sampled_from(["limit", "team_id"]),
    version=st.sampled_from([1, 2]),
)
def test_an_integer_query_value_that_is_not_plain_ascii_digits_is_refused_naming_it(
    targets: TestClient, value: str, name: str, version: signing.Version
) -> None:
    path = f"/api/heroes?{name}=" + quote(value, safe="")
    signed = signing.signed_headers("GET", path, b"", TEST_KEY, version)

    response = targets.get(path, headers=signed)

    assert_problem(
        response,
        400,
        f"query parameter '{name}' must be an integer written in 1 to 19 ASCII digits, "
        f"not {value[:40]!r}",
        name,
    )


@ENOUGH
@given(value=st.integers(1, 2**63 - 1), version=st.sampled_from([1, 2]))
def test_any_id_in_plain_digits_within_int64_reaches_the_handler(
    targets: TestClient, value: int, version: signing.Version
) -> None:
    path = f"/api/teams/{value:0{len(str(value))}d}"
    signed = signing.signed_headers("GET", path, b"", TEST_KEY, version)

    response = targets.get(path, headers=signed)

    if value == 1:
        assert response.status_code == 200
    else:
        assert_problem(response, 404, f"team {value} does not exist")


# --- one field line for each header a signature or a handler reads -------------------------


@pytest.mark.parametrize(
    ("name", "first", "second", "detail"),
    [
        (
            "If-Match",
            "*",
            '"1"',
            "If-Match is sent more than once: send one field line (join "
            "several entity tags with commas)",
        ),
        (
            "If-None-Match",
            '"1"',
            '"2"',
            "If-None-Match is sent more than once: send one field "
            "line (join several entity tags with commas)",
        ),
        (
            "Idempotency-Key",
            "a",
            "b",
            "Idempotency-Key is sent more than once: send one field line",
        ),
        (
            "Content-Type",
            "application/json",
            "text/plain",
            "Content-Type is sent more than once: send one field line",
        ),
    ],
)
@pytest.mark.parametrize("version", [1, 2])
def test_a_header_sent_as_two_field_lines_is_refused_whatever_the_signature_covers(
    targets: TestClient,
    name: str,
    first: str,
    second: str,
    detail: str,
    version: signing.Version,
    backend_settings: dict[str, Settings],
) -> None:
    """RFC 9421 signs the lines joined ("*, \\"1\\""), which a handler reading one never sees."""
    body = b'{"headquarters":"Twice"}'
    joined = {name: f"{first}, {second}", "Content-Type": "application/merge-patch+json"}
    signed = signing.signed_headers(
        "PATCH", "/api/teams/1", body, TEST_KEY, version, headers=joined
    )
    lines = [
        *((k, v) for k, v in joined.items() if k != name),
        (name, first),
        (name, second),
        *signed.items(),
    ]

    response = targets.patch("/api/teams/1", content=body, headers=lines)

    assert_problem(response, 400, detail, name)
    engine = sync_engine(backend_settings["postgresql"])
    try:
        with engine.connect() as conn:
            headquarters = conn.execute(text("SELECT headquarters FROM teams WHERE id = 1"))
            assert headquarters.scalar_one() != "Twice"
    finally:
        engine.dispose()
