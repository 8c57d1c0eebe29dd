"""Attacks on request signing, against the running app on PostgreSQL.

Every attack gets its exact 401 (or 413) problem+json and leaves the database as it was. The
table runs on an instance whose clock is stopped at `NOW`, so that the window's edges are exact
to the millisecond; replay runs on the real clock, because expired records are purged.
"""

import asyncio
import base64
import hashlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, text
from starlette.testclient import TestClient

import app as app_module
import signing
from persistence.database import create_engine
from persistence.signatures import purge_expired_signatures, record_signature
from persistence.tables import used_signatures
from settings import Settings
from tests.conftest import TEST_KEY, make_settings, truncate_all
from tests.problem_assertions import assert_problem
from tests.signature_support import fixed_clock, row_counts, running_app, sync_engine

NOW = 1_764_158_400_000
WINDOW = 120_000
MAX_BODY = 1_048_576
OTHER_KEY = "another-environments-key-0123456789abcdef"
NEW_KEY = "the-new-signing-key-after-rotation-0123456789"
TEAM = {"name": "Defenders", "headquarters": "Hell's Kitchen"}

MISSING = "the {} header is missing"
DUPLICATED = "{} is sent more than once"
MALFORMED_TIMESTAMP = "x-timestamp must be the Unix time in milliseconds, in decimal digits"
STALE = f"x-timestamp is outside the accepted window of {WINDOW} ms (check the client's clock)"
V2 = "Signature-Input and Signature (version 2, RFC 9421)"
UNSIGNED = f"the request is not signed: sign it with {V2} or x-timestamp and x-signature"
BAD_VERSION = f"x-signature-version must be 1 (or absent): version 2 is signed with {V2}"
IN_SECONDS = (
    "x-timestamp looks like Unix time in seconds: send it in milliseconds "
    "(e.g. Date.now() in JavaScript)"
)
STALE_CREATED = f"created is outside the accepted window of {WINDOW} ms (check the client's clock)"
MIXED = (
    "the request carries x-timestamp (version 1) and {} (version 2): sign it with one scheme only"
)
UNKNOWN_KEY = (
    "keyid names no key of this service: it is the first 16 hex digits of the SHA-256 of the key"
)
BAD_DIGEST = "Content-Digest does not match the body"
MALFORMED_SIGNATURE = "x-signature must be 64 hexadecimal digits"
BAD_SIGNATURE = "x-signature does not match this request (signature version 1)"
BAD_SIGNATURE_2 = "Signature does not match this request (signature version 2)"
REPLAYED = "this signature was already used: sign each request afresh"
TOO_LOW = f"signature version 1 is no longer accepted: sign with {V2}"
TOO_LARGE = f"the request body is larger than {MAX_BODY} bytes"

type Header = tuple[str, str | bytes]


@dataclass(frozen=True)
class Signed:
    """A request and the headers that sign it; attacks change one part or the other."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[Header, ...] = field(default=())

    def send(self, client: TestClient) -> httpx.Response:
        content_type = (("content-type", "application/json"),) if self.body else ()
        return client.request(
            self.method, self.path, content=self.body, headers=[*content_type, *self.headers]
        )

    def without(self, name: str) -> "Signed":
        return replace(self, headers=tuple(h for h in self.headers if h[0].lower() != name.lower()))

    def with_header(self, name: str, value: str | bytes) -> "Signed":
        return replace(self, headers=(*self.without(name).headers, (name, value)))

    def header(self, name: str) -> str:
        value = {key.lower(): value for key, value in self.headers}[name.lower()]
        assert isinstance(value, str)
        return value


def signed(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key: str = TEST_KEY,
    version: signing.Version = 1,
    timestamp: int | str = NOW,
    sign_method: str | None = None,
    sign_body: bytes | None = None,
) -> Signed:
    """`method path body` signed at `timestamp`; `sign_*` sign something else than is sent."""
    stamp = str(timestamp)
    if version == 2:
        signed_headers = signing.signed_headers(
            sign_method or method,
            path,
            body if sign_body is None else sign_body,
            key,
            2,
            int(stamp),
            headers={"content-type": "application/json"} if body else None,
        )
        return Signed(method, path, body, tuple(signed_headers.items()))
    signature = signing.sign(
        sign_method or method, body if sign_body is None else sign_body, stamp, key
    )
    headers: tuple[Header, ...] = (("x-timestamp", stamp), ("x-signature", signature))
    return Signed(method, path, body, headers)


def team_body(**changes: Any) -> bytes:
    return json.dumps(TEAM | changes, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Attack:
    name: str
    request: Callable[[], Signed]
    status: int
    detail: str
    field: str | None = None


def team(**signing_options: Any) -> Signed:
    """A signed request creating a team: the base of most attacks."""
    return signed("POST", "/api/teams", team_body(), **signing_options)


def team_signature() -> str:
    return team().header("x-signature")


def team_with(name: str, value: str | bytes) -> Callable[[], Signed]:
    return lambda: team().with_header(name, value)


def team_with_signature(value: Callable[[str], str | bytes]) -> Callable[[], Signed]:
    return lambda: team().with_header("x-signature", value(team_signature()))


def v2_as_v1(request: Signed) -> Signed:
    """A version 2 signature's HMAC, sent as a version 1 x-signature of its created time."""
    value = request.header("Signature").removeprefix("sig1=:").removesuffix(":")
    created = re.search(r"created=(\d+)", request.header("Signature-Input"))
    assert created is not None
    return replace(
        request,
        headers=(
            ("x-timestamp", str(int(created[1]) * 1000)),
            ("x-signature", base64.b64decode(value).hex()),
        ),
    )


def v2_with(method: str, path: str, body: bytes, **headers: str) -> Signed:
    """A version 2 request carrying `headers`, signed over them."""
    content = {"content-type": "application/json"} if body else {}
    signed_headers = signing.signed_headers(
        method, path, body, TEST_KEY, 2, NOW, headers=content | headers
    )
    return Signed(method, path, body, (*headers.items(), *signed_headers.items()))


def edit_input(request: Signed, old: str, new: str) -> Signed:
    """The request with its Signature-Input edited (its signature no longer matches)."""
    value = request.header("Signature-Input")
    assert old in value
    return request.with_header("Signature-Input", value.replace(old, new))


def relabel(request: Signed, label: str) -> Signed:
    request = request.with_header(
        "Signature-Input", request.header("Signature-Input").replace("sig1=", f"{label}=", 1)
    )
    return request.with_header(
        "Signature", request.header("Signature").replace("sig1=", f"{label}=", 1)
    )


def team_sent_twice_with(header: Header, version: signing.Version = 1) -> Callable[[], Signed]:
    return lambda: replace(team(version=version), headers=(*team(version=version).headers, header))


def missing(name: str) -> dict[str, Any]:
    return {"status": 401, "detail": f"the {name} header is missing", "field": name}


def duplicated(name: str) -> dict[str, Any]:
    return {"status": 401, "detail": f"{name} is sent more than once", "field": name}


def refused(detail: str, field: str) -> dict[str, Any]:
    return {"status": 401, "detail": detail, "field": field}


MALFORMED_TIMESTAMPS = {
    "non-numeric": "yesterday",
    "negative": f"-{NOW}",
    "with a plus sign": f"+{NOW}",
    "huge (16 digits)": "1" * 16,
    "float": f"{NOW}.0",
    "in scientific notation": "1.7641584e12",
    "hexadecimal": hex(NOW),
    "in ISO 8601": "2025-11-26T12:00:00Z",
}
BAD_V1 = refused(BAD_SIGNATURE, "x-signature")
BAD_V2 = refused(BAD_SIGNATURE_2, "Signature")
NOT_SIGNED: dict[str, Any] = {"status": 401, "detail": UNSIGNED}
MALFORMED = refused(MALFORMED_SIGNATURE, "x-signature")
OUT_OF_WINDOW = refused(STALE, "x-timestamp")

ATTACKS = [
    Attack("missing x-timestamp", lambda: team().without("x-timestamp"), **missing("x-timestamp")),
    Attack("missing x-signature", lambda: team().without("x-signature"), **missing("x-signature")),
    Attack(
        "no signing header at all",
        lambda: team().without("x-timestamp").without("x-signature"),
        **NOT_SIGNED,
    ),
    Attack("empty x-timestamp", team_with("x-timestamp", ""), **missing("x-timestamp")),
    Attack("empty x-signature", team_with("x-signature", ""), **missing("x-signature")),
    Attack(
        "empty x-signature-version",
        team_with("x-signature-version", ""),
        **refused(BAD_VERSION, "x-signature-version"),
    ),
    Attack(
        "duplicated x-timestamp",
        team_sent_twice_with(("x-timestamp", str(NOW))),
        **duplicated("x-timestamp"),
    ),
    Attack(
        "duplicated x-signature",
        lambda: team_sent_twice_with(("x-signature", team_signature()))(),
        **duplicated("x-signature"),
    ),
    Attack(
        "duplicated x-signature-version",
        lambda: replace(team(), headers=(*team().headers, *[("x-signature-version", "1")] * 2)),
        **duplicated("x-signature-version"),
    ),
    *[
        Attack(
            f"timestamp {label}",
            lambda stamp=stamp: team(timestamp=stamp),
            **refused(MALFORMED_TIMESTAMP, "x-timestamp"),
        )
        for label, stamp in MALFORMED_TIMESTAMPS.items()
    ],
    Attack(
        "timestamp in non-ASCII digits",
        team_with("x-timestamp", "١٧٦٤١٥٨٤٠٠٠٠٠".encode()),
        **refused(MALFORMED_TIMESTAMP, "x-timestamp"),
    ),
    Attack(
        "timestamp in seconds",
        lambda: team(timestamp=NOW // 1000),
        **refused(IN_SECONDS, "x-timestamp"),
    ),
    Attack(
        "timestamp in seconds, but not of now",
        lambda: team(timestamp=NOW // 1000 - 3600),
        **OUT_OF_WINDOW,
    ),
    Attack("huge timestamp (15 digits)", lambda: team(timestamp="9" * 15), **OUT_OF_WINDOW),
    Attack("stale by 1 ms", lambda: team(timestamp=NOW - WINDOW - 1), **OUT_OF_WINDOW),
    Attack("future by 1 ms", lambda: team(timestamp=NOW + WINDOW + 1), **OUT_OF_WINDOW),
    Attack(
        "non-ASCII signature version",
        team_with("x-signature-version", "²".encode("latin-1")),
        **refused(BAD_VERSION, "x-signature-version"),
    ),
    Attack(
        "unknown signature version",
        team_with("x-signature-version", "3"),
        **refused(BAD_VERSION, "x-signature-version"),
    ),
    Attack("wrong method", lambda: team(sign_method="PATCH"), **BAD_V1),
    Attack(
        "tampered body (one byte)",
        lambda: replace(team(), body=team_body(name="Avengerz")),
        **BAD_V1,
    ),
    Attack(
        "whitespace-reformatted JSON",
        lambda: replace(team(), body=json.dumps(TEAM, indent=2).encode()),
        **BAD_V1,
    ),
    Attack("body added to a request signed without", lambda: team(sign_body=b""), **BAD_V1),
    Attack("another key's signature", lambda: team(key=OTHER_KEY), **BAD_V1),
    Attack(
        "v1 signature sent with x-signature-version 2",
        team_with("x-signature-version", "2"),
        **refused(BAD_VERSION, "x-signature-version"),
    ),
    Attack("v2 signature sent as a v1 x-signature", lambda: v2_as_v1(team(version=2)), **BAD_V1),
    *[
        Attack(
            f"v2 headers with {name} too",
            lambda name=name: team(version=2).with_header("x-timestamp", str(NOW)),
            **refused(MIXED.format("signature-input"), "x-timestamp"),
        )
        for name in ("x-timestamp",)
    ],
    Attack(
        "v1 headers with a Content-Digest",
        team_with("content-digest", signing.content_digest(team_body())),
        **refused(MIXED.format("content-digest"), "x-timestamp"),
    ),
    Attack(
        "v2 body tampered (one byte), digest kept",
        lambda: replace(team(version=2), body=team_body(name="Avengerz")),
        **refused(BAD_DIGEST, "Content-Digest"),
    ),
    Attack(
        "v2 body tampered, digest recomputed",
        lambda: replace(
            team(version=2).with_header(
                "content-digest", signing.content_digest(team_body(name="Avengerz"))
            ),
            body=team_body(name="Avengerz"),
        ),
        **BAD_V2,
    ),
    Attack(
        "v2 body without a Content-Digest",
        lambda: team(version=2).without("content-digest"),
        **refused(
            'the signature covers "content-digest", which the request does not carry',
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 POST sent with another Idempotency-Key",
        lambda: v2_with(
            "POST", "/api/teams", team_body(), **{"idempotency-key": "key-1"}
        ).with_header("idempotency-key", "key-2"),
        **BAD_V2,
    ),
    Attack(
        "v2 POST with an Idempotency-Key added after signing",
        lambda: team(version=2).with_header("idempotency-key", "key-3"),
        **refused(
            'the signature must cover "idempotency-key", which the request carries',
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 PATCH replayed without its If-Match",
        lambda: v2_with(
            "PATCH", "/api/teams/1", b'{"headquarters":"Moon"}', **{"if-match": '"1"'}
        ).without("if-match"),
        **refused(
            'the signature covers "if-match", which the request does not carry',
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 PATCH sent with another If-Match",
        lambda: v2_with(
            "PATCH", "/api/teams/1", b'{"headquarters":"Moon"}', **{"if-match": '"1"'}
        ).with_header("if-match", "*"),
        **BAD_V2,
    ),
    Attack(
        "v2 PATCH with an If-None-Match the signature leaves out",
        lambda: v2_with("PATCH", "/api/teams/1", b'{"headquarters":"Moon"}').with_header(
            "if-none-match", '"1"'
        ),
        **refused(
            'the signature must cover "if-none-match", which the request carries',
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 DELETE with an If-None-Match the signature leaves out",
        lambda: signed("DELETE", "/api/teams/1", version=2).with_header("if-none-match", "*"),
        **refused(
            'the signature must cover "if-none-match", which the request carries',
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 GET whose covered If-None-Match is changed",
        lambda: v2_with("GET", "/api/teams/1", b"", **{"if-none-match": '"1"'}).with_header(
            "if-none-match", '"2"'
        ),
        **BAD_V2,
    ),
    Attack(
        "v2 signature that leaves out @query",
        lambda: edit_input(signed("GET", "/api/teams?limit=1", version=2), ' "@query"', ""),
        **refused('the signature must cover "@query"', "Signature-Input"),
    ),
    Attack(
        "v2 signature covering an unknown component",
        lambda: edit_input(signed("GET", "/api/teams", version=2), '"@path"', '"@path" "host"'),
        **refused(
            'Signature-Input may cover only "@method" "@path" "@query" "content-type" '
            '"if-match" "if-none-match" "idempotency-key" "content-digest"',
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 signature with another label",
        lambda: relabel(signed("GET", "/api/teams", version=2), "sig2"),
        **refused(
            "Signature-Input and Signature must each hold one signature, labelled sig1",
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 signature with an expires parameter",
        lambda: edit_input(signed("GET", "/api/teams", version=2), ";alg=", ";expires=1;alg="),
        **refused(
            'Signature-Input has the parameter "expires": only created, keyid, alg and nonce '
            "are accepted",
            "Signature-Input",
        ),
    ),
    Attack(
        "v2 signature with another alg",
        lambda: edit_input(signed("GET", "/api/teams", version=2), "hmac-sha256", "ed25519"),
        **refused('alg must be "hmac-sha256"', "Signature-Input"),
    ),
    Attack(
        "v2 signature in ms instead of seconds",
        lambda: edit_input(
            signed("GET", "/api/teams", version=2), f"created={NOW // 1000}", f"created={NOW}"
        ),
        **refused(STALE_CREATED, "Signature-Input"),
    ),
    Attack(
        "v2 signature stale by 1 s",
        lambda: signed("GET", "/api/teams", version=2, timestamp=NOW - WINDOW - 1000),
        **refused(STALE_CREATED, "Signature-Input"),
    ),
    Attack(
        "v2 signature by another key",
        lambda: signed("GET", "/api/teams", version=2, key=OTHER_KEY),
        **refused(UNKNOWN_KEY, "Signature-Input"),
    ),
    Attack(
        "v2 signature with another key's keyid",
        lambda: edit_input(
            signed("GET", "/api/teams", version=2, key=OTHER_KEY),
            signing.key_id(OTHER_KEY),
            signing.key_id(TEST_KEY),
        ),
        **BAD_V2,
    ),
    Attack(
        "malformed Signature-Input",
        lambda: signed("GET", "/api/teams", version=2).with_header("signature-input", "sig1=("),
        **refused(
            "Signature-Input is not a valid structured field dictionary (RFC 8941)",
            "Signature-Input",
        ),
    ),
    Attack(
        "Signature of the wrong length",
        lambda: signed("GET", "/api/teams", version=2).with_header("signature", "sig1=:AAAA:"),
        **refused("Signature must be sig1=:<the base64 of a 32-byte HMAC-SHA256>:", "Signature"),
    ),
    Attack(
        "Signature missing",
        lambda: signed("GET", "/api/teams", version=2).without("signature"),
        **missing("Signature"),
    ),
    Attack(
        "Signature-Input missing",
        lambda: signed("GET", "/api/teams", version=2).without("signature-input"),
        **missing("Signature-Input"),
    ),
    Attack("truncated signature", team_with_signature(lambda s: s[:-1]), **MALFORMED),
    Attack("over-long signature", team_with_signature(lambda s: s + "0"), **MALFORMED),
    Attack("non-hex signature", team_with("x-signature", "g" * 64), **MALFORMED),
    Attack(
        "signature with a space", team_with_signature(lambda s: s[:32] + " " + s[33:]), **MALFORMED
    ),
    Attack("non-ASCII signature", team_with("x-signature", "é".encode() * 32), **MALFORMED),
    Attack(
        "signature ending in a Latin-1 byte",
        team_with_signature(lambda s: s[:-1].encode() + b"\xff"),
        **MALFORMED,
    ),
    Attack(
        "delete signed with a body, sent without",
        lambda: signed("DELETE", "/api/teams/1", sign_body=b"x"),
        **BAD_V1,
    ),
    Attack(
        "patch with a tampered body",
        lambda: replace(
            signed("PATCH", "/api/teams/1", b'{"headquarters":"Helicarrier"}'),
            body=b'{"headquarters":"HelicarrieR"}',
        ),
        **BAD_V1,
    ),
    Attack(
        "v2 delete signature sent to another id",
        lambda: replace(signed("DELETE", "/api/teams/1", version=2), path="/api/teams/2"),
        **BAD_V2,
    ),
    Attack(
        "v2 read signature with another query",
        lambda: replace(signed("GET", "/api/teams?limit=1", version=2), path="/api/teams?limit=2"),
        **BAD_V2,
    ),
    Attack("unsigned delete", lambda: Signed("DELETE", "/api/teams/1"), **NOT_SIGNED),
    Attack(
        "unsigned request to an unknown /api path",
        lambda: Signed("GET", "/api/secrets"),
        **NOT_SIGNED,
    ),
    Attack(
        "unsigned request to a path with a trailing slash",
        lambda: Signed("GET", "/api/heroes/"),
        **NOT_SIGNED,
    ),
    Attack(
        "oversized body, announced by Content-Length",
        lambda: signed("POST", "/api/teams", b"x" * (MAX_BODY + 1)),
        status=413,
        detail=TOO_LARGE,
    ),
    Attack(
        "oversized body without any signature",
        lambda: Signed("POST", "/api/teams", b"x" * (MAX_BODY + 1)),
        status=413,
        detail=TOO_LARGE,
    ),
]


@pytest.fixture(scope="module")
def pg_settings(backend_settings: dict[str, Settings]) -> Settings:
    return backend_settings["postgresql"]


@pytest.fixture(scope="module")
def frozen_app(pg_settings: Settings) -> Iterator[TestClient]:
    """The app with the default settings, its clock stopped at NOW."""
    with running_app(pg_settings, clock=fixed_clock(NOW)) as client:
        yield client


def snapshot(settings: Settings) -> dict[str, Any]:
    """Row counts of every table, and the resources' full contents (a PATCH keeps the count)."""
    engine = sync_engine(settings)
    try:
        with engine.connect() as conn:
            rows = {
                table: conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
                for table in ("teams", "heroes")
            }
    finally:
        engine.dispose()
    return {"counts": row_counts(settings), "rows": rows}


@pytest.fixture
def two_teams(pg_client: Any, pg_settings: Settings) -> Settings:
    """A clean database holding teams 1 and 2 (what the deletion and patch attacks target)."""
    for name in ("Avengers", "Preventers"):
        assert pg_client.post("/api/teams", json={"name": name, "headquarters": "HQ"}).is_success
    return pg_settings


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda attack: attack.name)
def test_each_attack_is_refused_and_changes_nothing(
    attack: Attack, frozen_app: TestClient, two_teams: Settings
) -> None:
    before = snapshot(two_teams)

    response = attack.request().send(frozen_app)

    assert_problem(response, attack.status, attack.detail, attack.field)
    assert snapshot(two_teams) == before


def test_a_chunked_oversized_body_is_refused_with_413_and_changes_nothing(
    frozen_app: TestClient, two_teams: Settings
) -> None:
    body = b"x" * (MAX_BODY + 1)
    request = signed("POST", "/api/teams", body)
    chunks = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    before = snapshot(two_teams)

    response = frozen_app.request(
        "POST", "/api/teams", content=chunks, headers=dict(request.headers)
    )

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413, TOO_LARGE)
    assert snapshot(two_teams) == before


def test_a_chunked_body_within_the_limit_is_verified_and_accepted(
    frozen_app: TestClient, two_teams: Settings
) -> None:
    request = signed("POST", "/api/teams", team_body(name="Chunked"))
    body = request.body

    response = frozen_app.request(
        "POST",
        "/api/teams",
        content=(body[i : i + 7] for i in range(0, len(body), 7)),
        headers={**dict(request.headers), "content-type": "application/json"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Chunked"


def test_a_live_server_refuses_an_announced_oversized_body_without_waiting_for_it(
    live_server: str,
) -> None:
    """413 on the headers alone: the server answers although not one body byte was sent."""
    address = httpx.URL(live_server)
    assert address.port is not None
    head = (
        "POST /api/teams HTTP/1.1\r\n"
        f"Host: {address.host}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {10 * MAX_BODY}\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection((address.host, address.port), timeout=10) as connection:
        connection.sendall(head.encode())
        answer = b""
        while chunk := connection.recv(65_536):
            answer += chunk

    status_line, _, rest = answer.partition(b"\r\n")
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert status_line.split()[1] == b"413"
    assert {k: v for k, v in body.items() if k != "request_id"} == {
        "type": "/problems/payload-too-large",
        "title": HTTPStatus(413).phrase,
        "status": 413,
        "detail": TOO_LARGE,
    }


def test_a_live_server_refuses_a_chunked_upload_once_it_outgrows_the_limit(
    live_server: str, two_teams: Settings
) -> None:
    body = b"x" * (MAX_BODY + 1)
    request = _fresh("POST", "/api/teams", body)
    before = snapshot(two_teams)

    response = httpx.post(
        f"{live_server}/api/teams",
        content=(body[i : i + 65_536] for i in range(0, len(body), 65_536)),
        headers={
            "x-timestamp": request.header("x-timestamp"),
            "x-signature": request.header("x-signature"),
            "content-type": "application/json",
        },
        timeout=30,
    )

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413, TOO_LARGE)
    assert snapshot(two_teams) == before


@pytest.mark.parametrize("offset", [-WINDOW, WINDOW], ids=["oldest", "newest"])
def test_a_timestamp_exactly_at_the_edge_of_the_window_is_accepted(
    offset: int, frozen_app: TestClient, two_teams: Settings
) -> None:
    response = signed("POST", "/api/teams", team_body(), timestamp=NOW + offset).send(frozen_app)

    assert response.status_code == 201, response.text


def test_a_signature_in_upper_case_hex_is_accepted(
    frozen_app: TestClient, two_teams: Settings
) -> None:
    request = team()

    response = request.with_header("x-signature", request.header("x-signature").upper()).send(
        frozen_app
    )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_v2_read_accepts_the_if_none_match_a_browser_cache_adds_after_signing(
    method: str, frozen_app: TestClient, two_teams: Settings
) -> None:
    """The page signed the read; its HTTP cache then added the ETag it holds."""
    request = signed(method, "/api/teams/1", version=2)
    current = request.send(frozen_app).headers["etag"]

    revalidated = request.with_header("if-none-match", current).send(frozen_app)
    changed = request.with_header("if-none-match", '"999"').send(frozen_app)

    assert revalidated.status_code == 304
    assert revalidated.headers["etag"] == current
    assert changed.status_code == 200
    assert changed.headers["etag"] == current


def test_an_unsigned_cors_preflight_is_answered(pg_settings: Settings) -> None:
    settings = make_settings(pg_settings.database_url, cors_origins=["http://localhost:3000"])
    with running_app(settings) as client:
        preflight = client.options(
            "/api/teams",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-signature,x-timestamp",
            },
        )

    assert preflight.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"x-signature", "x-timestamp", "x-signature-version"} <= set(allowed.split(", "))


@pytest.mark.parametrize("path", ["/openapi.json", "/openapi.yaml", "/docs/"])
def test_the_contract_and_the_docs_are_served_unsigned(path: str, frozen_app: TestClient) -> None:
    assert frozen_app.get(path).status_code == 200


def test_only_api_paths_ask_for_a_signature(frozen_app: TestClient) -> None:
    response = frozen_app.get("/apis/teams")

    assert_problem(response, 404, "no resource at /apis/teams")


# --- replay: the real clock, since records of the past are purged -------------------------


def _fresh(method: str, path: str, body: bytes = b"", version: signing.Version = 1) -> Signed:
    return signed(method, path, body, timestamp=signing.now_ms(), version=version)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/heroes", b'{"name":"Deadpond","secret_name":"Dive Wilson"}', 201),
        ("PATCH", "/api/teams/1", b'{"headquarters":"Helicarrier"}', 200),
        ("DELETE", "/api/teams/1", b"", 204),
    ],
)
def test_a_replayed_unsafe_request_is_refused_and_changes_nothing(
    method: str, path: str, body: bytes, status: int, pg_client: Any, two_teams: Settings
) -> None:
    request = _fresh(method, path, body)
    assert request.send(pg_client.raw).status_code == status
    before = snapshot(two_teams)

    replay = request.send(pg_client.raw)

    assert_problem(replay, 401, REPLAYED, "x-signature")
    assert snapshot(two_teams) == before


@pytest.fixture(scope="module")
def second_instance(pg_settings: Settings) -> Iterator[TestClient]:
    """Another instance of the app (its own engine and pool) on the same database."""
    with running_app(pg_settings) as client:
        yield client


def test_a_post_replayed_to_another_instance_sharing_the_database_is_refused(
    pg_client: Any, second_instance: TestClient, two_teams: Settings
) -> None:
    request = _fresh("POST", "/api/teams", team_body(name="Thunderbolts"))
    assert request.send(pg_client.raw).status_code == 201
    before = snapshot(two_teams)

    replay = request.send(second_instance)

    assert_problem(replay, 401, REPLAYED, "x-signature")
    assert snapshot(two_teams) == before


def test_the_same_signature_in_upper_case_hex_is_still_a_replay(
    pg_client: Any, two_teams: Settings
) -> None:
    request = _fresh("DELETE", "/api/teams/2")
    assert request.send(pg_client.raw).status_code == 204
    before = snapshot(two_teams)

    replay = request.with_header("x-signature", request.header("x-signature").upper())
    response = replay.send(pg_client.raw)

    assert_problem(response, 401, REPLAYED, "x-signature")
    assert snapshot(two_teams) == before


def test_a_read_may_be_repeated_when_only_unsafe_methods_are_protected(
    pg_client: Any, two_teams: Settings
) -> None:
    request = _fresh("GET", "/api/teams")

    assert [request.send(pg_client.raw).status_code for _ in range(2)] == [200, 200]
    assert row_counts(two_teams)["used_signatures"] == 2  # the two team creations only


def test_with_replay_protection_for_all_methods_a_repeated_read_is_refused(
    pg_settings: Settings, two_teams: Settings
) -> None:
    settings = make_settings(pg_settings.database_url, replay_protection="all")
    with running_app(settings) as client:
        request = _fresh("GET", "/api/teams/1", version=2)
        assert request.send(client).status_code == 200

        assert_problem(request.send(client), 401, REPLAYED, "Signature")


def test_with_replay_protection_off_an_unsafe_request_is_accepted_twice(
    pg_settings: Settings, two_teams: Settings
) -> None:
    settings = make_settings(pg_settings.database_url, replay_protection="off")
    request = _fresh("POST", "/api/heroes", b'{"name":"Echo","secret_name":"Echo"}')
    with running_app(settings) as client:
        statuses = [request.send(client).status_code for _ in range(2)]

    assert statuses == [201, 201]
    assert row_counts(two_teams)["heroes"] == 2


# --- version 2 as the minimum ---------------------------------------------------------------


def test_with_min_version_1_a_v1_delete_signature_is_not_bound_to_its_target(
    pg_client: Any, two_teams: Settings
) -> None:
    """Why version 2 exists: a v1 DELETE signed for team 1 deletes team 2 just as well."""
    captured = _fresh("DELETE", "/api/teams/1")

    response = replace(captured, path="/api/teams/2").send(pg_client.raw)

    assert response.status_code == 204
    assert pg_client.get("/api/teams/2").status_code == 404
    assert pg_client.get("/api/teams/1").status_code == 200


@pytest.fixture(scope="module")
def version_2_only(pg_settings: Settings) -> Iterator[TestClient]:
    settings = make_settings(pg_settings.database_url, signature_min_version=2)
    with running_app(settings) as client:
        yield client


def test_with_min_version_2_a_v1_delete_signature_reused_on_another_id_is_refused(
    version_2_only: TestClient, two_teams: Settings
) -> None:
    captured = _fresh("DELETE", "/api/teams/1")
    before = snapshot(two_teams)

    response = replace(captured, path="/api/teams/2").send(version_2_only)

    assert_problem(response, 401, TOO_LOW, "x-signature")
    assert snapshot(two_teams) == before


def test_with_min_version_2_a_v1_signature_of_the_right_target_is_refused_too(
    version_2_only: TestClient, two_teams: Settings
) -> None:
    before = snapshot(two_teams)

    response = _fresh("DELETE", "/api/teams/1").send(version_2_only)

    assert_problem(response, 401, TOO_LOW, "x-signature")
    assert snapshot(two_teams) == before


def test_with_min_version_2_a_v2_delete_is_bound_to_its_id(
    version_2_only: TestClient, two_teams: Settings
) -> None:
    request = _fresh("DELETE", "/api/teams/1", version=2)
    before = snapshot(two_teams)

    redirected = replace(request, path="/api/teams/2").send(version_2_only)

    assert_problem(redirected, 401, BAD_SIGNATURE_2, "Signature")
    assert snapshot(two_teams) == before
    assert request.send(version_2_only).status_code == 204


# --- key rotation ---------------------------------------------------------------------------


def test_during_rotation_the_previous_key_and_the_new_key_are_both_accepted(
    pg_settings: Settings, two_teams: Settings
) -> None:
    settings = make_settings(
        pg_settings.database_url, secret_key=NEW_KEY, secret_key_previous=[TEST_KEY]
    )
    with running_app(settings) as client:
        old = signed("GET", "/api/teams", timestamp=signing.now_ms(), key=TEST_KEY).send(client)
        new = signed("GET", "/api/teams", timestamp=signing.now_ms(), key=NEW_KEY).send(client)

    assert (old.status_code, new.status_code) == (200, 200)


def test_after_rotation_the_removed_key_is_refused(
    pg_settings: Settings, two_teams: Settings
) -> None:
    settings = make_settings(pg_settings.database_url, secret_key=NEW_KEY)
    before = snapshot(two_teams)
    with running_app(settings) as client:
        response = signed("DELETE", "/api/teams/1", timestamp=signing.now_ms(), key=TEST_KEY).send(
            client
        )

    assert_problem(response, 401, BAD_SIGNATURE, "x-signature")
    assert snapshot(two_teams) == before


# --- the replay record ----------------------------------------------------------------------


def test_an_accepted_unsafe_request_records_its_signature_until_the_window_ends(
    pg_client: Any, two_teams: Settings
) -> None:
    request = _fresh("DELETE", "/api/teams/1")
    truncate_used_signatures(two_teams)
    assert request.send(pg_client.raw).status_code == 204

    engine = sync_engine(two_teams)
    with engine.connect() as conn:
        records = conn.execute(select(used_signatures)).all()
    engine.dispose()

    digest = hashlib.sha256(bytes.fromhex(request.header("x-signature"))).digest()
    signed_at = datetime.fromtimestamp(int(request.header("x-timestamp")) / 1000, UTC)
    assert [(bytes(r.digest), r.expires_at) for r in records] == [
        (digest, signed_at + timedelta(milliseconds=WINDOW))
    ]


def truncate_used_signatures(settings: Settings) -> None:
    engine = sync_engine(settings)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE used_signatures"))
    engine.dispose()


class ManualClock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def test_once_its_window_has_passed_a_replay_is_refused_as_stale(
    pg_settings: Settings, two_teams: Settings
) -> None:
    clock = ManualClock(signing.now_ms())
    request = signed("DELETE", "/api/teams/1", timestamp=clock.now_ms)
    with running_app(pg_settings, clock=clock) as client:
        assert request.send(client).status_code == 204
        clock.now_ms += WINDOW + 1

        assert_problem(request.send(client), 401, STALE, "x-timestamp")


def test_a_future_dated_signature_is_a_replay_until_it_is_stale(
    pg_settings: Settings, two_teams: Settings
) -> None:
    """Its record outlives one window after arrival: the signature stays fresh that long."""
    clock = ManualClock(signing.now_ms())
    request = signed("DELETE", "/api/teams/1", version=2, timestamp=clock.now_ms + WINDOW)
    with running_app(pg_settings, clock=clock) as client:
        assert request.send(client).status_code == 204
        clock.now_ms += 2 * WINDOW - 1000

        assert_problem(request.send(client), 401, REPLAYED, "Signature")
        clock.now_ms += 2000
        assert_problem(request.send(client), 401, STALE_CREATED, "Signature-Input")


def test_purge_removes_only_the_expired_signatures(pg_settings: Settings) -> None:
    truncate_all(pg_settings)
    now = datetime.now(UTC)

    async def purge() -> tuple[int, bool, bool]:
        engine = create_engine(pg_settings)
        try:
            async with engine.begin() as conn:
                await record_signature(
                    conn=conn, digest=b"e" * 32, expires_at=now - timedelta(seconds=1)
                )
                await record_signature(
                    conn=conn, digest=b"f" * 32, expires_at=now + timedelta(seconds=1)
                )
            async with engine.begin() as conn:
                purged = await purge_expired_signatures(conn=conn, now=now)
            async with engine.begin() as conn:
                expired_again = await record_signature(
                    conn=conn, digest=b"e" * 32, expires_at=now + timedelta(seconds=1)
                )
                fresh_again = await record_signature(
                    conn=conn, digest=b"f" * 32, expires_at=now + timedelta(seconds=1)
                )
            return purged, expired_again, fresh_again
        finally:
            await engine.dispose()

    purged, expired_recorded_again, fresh_recorded_again = asyncio.run(purge())

    assert purged == 1
    assert expired_recorded_again  # its record was gone
    assert not fresh_recorded_again  # still a replay
    assert row_counts(pg_settings)["used_signatures"] == 2


def test_the_running_app_purges_expired_signatures_by_itself(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_all(pg_settings)
    now = datetime.now(UTC)
    engine = sync_engine(pg_settings)
    with engine.begin() as conn:
        conn.execute(
            insert(used_signatures),
            [
                {"digest": b"e" * 32, "expires_at": now - timedelta(minutes=5)},
                {"digest": b"f" * 32, "expires_at": now + timedelta(minutes=5)},
            ],
        )
    monkeypatch.setattr(app_module, "PURGE_SECONDS", 0.05)

    with running_app(pg_settings):
        deadline = time.monotonic() + 10
        while row_counts(pg_settings)["used_signatures"] > 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    with engine.connect() as conn:
        left = conn.execute(select(used_signatures.c.digest)).scalars().all()
    engine.dispose()
    assert [bytes(digest) for digest in left] == [b"f" * 32]
