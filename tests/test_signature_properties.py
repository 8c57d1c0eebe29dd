"""Properties of the two signing versions, over generated requests, with the real verifier.

- No signature that verifies for a request under one version verifies for any request under
  the other: a version 2 signature base begins with `"` (the first component's name) and a
  version 1 string with the method, an HTTP token, which never holds `"`. The signed messages
  of the two versions are disjoint sets, so an HMAC of one is never the HMAC of the other.
- Any change to one element a version 2 signature covers (method, path, query, each bound
  header including its addition or removal, body, created, keyid) gets the request refused.

The verifier runs in process with its clock stopped (no database: replay is not at stake); a
last property sends mutated requests through the app on PostgreSQL.
"""

import base64
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import signing
from middleware.signature import SignatureRejected, Verifier
from settings import Settings
from tests.conftest import TEST_KEY, make_settings, truncate_all
from tests.signature_support import fixed_clock, running_app

NOW = 1_764_158_400_000
WINDOW = 120_000
PREVIOUS_KEY = "the-previous-signing-key-0123456789abcdef"
VERIFIER = Verifier(
    make_settings(
        "sqlite+aiosqlite:///unused.db", secret_key_previous=[PREVIOUS_KEY], replay_protection="off"
    ),
    fixed_clock(NOW),
)
FAST = settings(max_examples=100, deadline=None, database=None)

# RFC 9110 token characters: what a method is made of.
TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# No ".": a client resolves dot segments, so "/api/.." would leave /api before it is sent.
PATH_CHARACTERS = string.ascii_letters + string.digits + "-_~!$&'()*+,;=:@/"
# Percent-encoded octets too: "|" (the version 1 separator), space, "%", "/" and "?".
ESCAPES = ["%7C", "%20", "%25", "%2F", "%3F", "%C3%A9"]
QUERY_CHARACTERS = [*PATH_CHARACTERS, "?", *ESCAPES]
# What an HTTP parser keeps of a field value that RFC 9421 can sign: visible ASCII, with
# inner spaces (leading and trailing whitespace is not part of a field value).
FIELD_VALUE = (
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)
HEADERS = ("if-match", "if-none-match", "idempotency-key")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict[str, str])

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def scope(self, signed: dict[str, str]) -> dict[str, object]:
        headers = self.headers | signed
        return {
            "type": "http",
            "method": self.method,
            "path": unquote(self.path),
            "raw_path": self.path.encode(),
            "query_string": self.query.encode(),
            "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
        }


def verifies(request: Request, signed: dict[str, str]) -> bool:
    """Whether the service's verifier accepts `request` carrying the `signed` headers."""
    scope = request.scope(signed)
    try:
        claim = VERIFIER.check_headers(scope)
        VERIFIER.check_signature(scope, claim, request.body)
    except SignatureRejected:
        return False
    return True


def sign_2(request: Request, created_s: int, key: str = TEST_KEY) -> dict[str, str]:
    return signing.version_2_headers(
        request.method,
        request.target,
        request.body,
        key,
        headers=request.headers,
        created=created_s,
    )


def sign_1(request: Request, timestamp_ms: int) -> dict[str, str]:
    stamp = str(timestamp_ms)
    return {
        "x-timestamp": stamp,
        "x-signature": signing.sign(request.method, request.body, stamp, TEST_KEY),
    }


methods = st.one_of(
    st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"]),
    st.text(st.sampled_from(TOKEN), min_size=1, max_size=8).map(str.upper),
).filter(lambda method: method != "OPTIONS")  # a preflight is never signed
paths = st.lists(st.sampled_from([*PATH_CHARACTERS, *ESCAPES]), max_size=30).map(
    lambda tail: "/api/" + "".join(tail)
)
queries = st.lists(st.sampled_from(QUERY_CHARACTERS), max_size=30).map("".join)
bodies = st.binary(max_size=64)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    body = draw(bodies)
    headers = {name: draw(FIELD_VALUE) for name in HEADERS if draw(st.booleans())}
    if body or draw(st.booleans()):
        headers["content-type"] = draw(st.sampled_from(["application/json", "text/plain"]))
    return Request(draw(methods), draw(paths), draw(queries), body, headers)


# Seconds from NOW (a whole second): created, and a version 1 timestamp, stay in the window.
offsets = st.integers(-WINDOW // 1000, WINDOW // 1000)


@FAST
@given(request=requests(), offset=offsets)
def test_a_version_2_request_signed_by_our_signer_verifies(request: Request, offset: int) -> None:
    assert verifies(request, sign_2(request, NOW // 1000 + offset))


@FAST
@given(signed_2=requests(), other=requests(), offset=offsets, as_base=st.booleans())
def test_no_version_2_signature_verifies_as_version_1_for_any_request(
    signed_2: Request, other: Request, offset: int, as_base: bool
) -> None:
    created = NOW // 1000 + offset
    headers = sign_2(signed_2, created)
    if as_base:  # the review's attack: the version 2 base sent as a version 1 body
        base = signing.signature_base(
            signed_2.method,
            signed_2.target,
            signed_2.body,
            TEST_KEY,
            headers=signed_2.headers,
            created=created,
        )
        other = replace(other, body=base)
    hmac_2 = base64.b64decode(headers["Signature"].removeprefix("sig1=:").removesuffix(":"))

    for stamp in (created * 1000, NOW + offset * 1000 + 999):
        assert not verifies(other, {"x-timestamp": str(stamp), "x-signature": hmac_2.hex()})


@FAST
@given(signed_1=requests(), other=requests(), offset=offsets)
def test_no_version_1_signature_verifies_as_version_2_for_any_request(
    signed_1: Request, other: Request, offset: int
) -> None:
    hmac_1 = sign_1(signed_1, NOW + offset * 1000)["x-signature"]
    # The other request's own Signature-Input, well-formed and fresh, with the v1 HMAC in it.
    headers = sign_2(other, NOW // 1000 + offset)
    headers["Signature"] = f"sig1=:{base64.b64encode(bytes.fromhex(hmac_1)).decode()}:"

    assert not verifies(other, headers)


@FAST
@given(signed_2=requests(), signed_1=requests(), offset=offsets)
def test_the_signed_messages_of_the_two_versions_are_disjoint(
    signed_2: Request, signed_1: Request, offset: int
) -> None:
    base = signing.signature_base(
        signed_2.method,
        signed_2.target,
        signed_2.body,
        TEST_KEY,
        headers=signed_2.headers,
        created=NOW // 1000 + offset,
    )
    string_1 = signing.signed_bytes(signed_1.method, signed_1.body, str(NOW + offset * 1000))

    assert base.startswith(b'"')
    assert not string_1.startswith(b'"')
    assert base != string_1


def _edit_input(
    headers: dict[str, str], pattern: str, new: str | Callable[[re.Match[str]], str]
) -> dict[str, str]:
    edited = re.sub(pattern, new, headers["Signature-Input"], count=1)
    assert edited != headers["Signature-Input"]
    return headers | {"Signature-Input": edited}


@st.composite
def mutations(
    draw: st.DrawFn, request: Request, headers: dict[str, str]
) -> tuple[str, Request, dict[str, str]]:
    """One change to a covered element of a signed request, named for the failure report."""
    unsafe = request.method not in ("GET", "HEAD")
    kinds = ["method", "path", "query", "body", "created", "keyid", "add header"]
    kinds += [f"change {name}" for name in request.headers]
    kinds += [f"remove {name}" for name in request.headers]
    kind = draw(st.sampled_from(kinds))
    if kind == "method":
        method = draw(methods.filter(lambda m: m != request.method))
        return kind, replace(request, method=method), headers
    if kind == "path":
        path = draw(paths.filter(lambda p: p != request.path))
        return kind, replace(request, path=path), headers
    if kind == "query":
        query = draw(queries.filter(lambda q: q != request.query))
        return kind, replace(request, query=query), headers
    if kind == "body":
        body = draw(bodies.filter(lambda b: b != request.body))
        return kind, replace(request, body=body), headers
    if kind == "created":
        shift = draw(st.integers(-30, 30).filter(bool))
        edited = _edit_input(headers, r"created=(\d+)", lambda m: f"created={int(m[1]) + shift}")
        return kind, request, edited
    if kind == "keyid":
        keyid = draw(st.sampled_from([signing.key_id(PREVIOUS_KEY), "0123456789abcdef"]))
        return kind, request, _edit_input(headers, r'keyid="[0-9a-f]+"', f'keyid="{keyid}"')
    if kind == "add header":
        # On a read an uncovered If-None-Match is accepted (a browser's cache adds it after
        # signing): adding it is no change to what the signature covers.
        addable = [n for n in (*HEADERS, "content-type") if n != "if-none-match" or unsafe]
        missing = [name for name in addable if name not in request.headers]
        if not missing:
            name = draw(st.sampled_from([n for n in HEADERS if n in request.headers]))
            value = draw(FIELD_VALUE.filter(lambda v: v != request.headers[name]))
            return (
                f"change {name}",
                replace(request, headers=request.headers | {name: value}),
                headers,
            )
        name = draw(st.sampled_from(missing))
        return kind, replace(request, headers=request.headers | {name: draw(FIELD_VALUE)}), headers
    action, name = kind.split(" ", 1)
    if action == "remove":
        carried = {k: v for k, v in request.headers.items() if k != name}
        return kind, replace(request, headers=carried), headers
    value = draw(FIELD_VALUE.filter(lambda v: v != request.headers[name]))
    return kind, replace(request, headers=request.headers | {name: value}), headers


@settings(max_examples=200, deadline=None, database=None)
@given(
    data=st.data(),
    request=requests(),
    offset=st.integers(-WINDOW // 1000 + 31, WINDOW // 1000 - 31),
)
def test_changing_any_one_covered_element_makes_version_2_verification_fail(
    data: st.DataObject, request: Request, offset: int
) -> None:
    headers = sign_2(request, NOW // 1000 + offset)
    assert verifies(request, headers)

    kind, mutant, mutant_headers = data.draw(mutations(request, headers), label="mutation")

    assert not verifies(mutant, mutant_headers), kind


# --- through the app, on PostgreSQL --------------------------------------------------------


@pytest.fixture(scope="module")
def frozen_app(backend_settings: dict[str, Settings]) -> Iterator[TestClient]:
    """The app on PostgreSQL, its clock stopped, replay off (each original is sent again)."""
    base = backend_settings["postgresql"]
    truncate_all(base)
    app_settings = make_settings(base.database_url, replay_protection="off")
    with running_app(app_settings, clock=fixed_clock(NOW)) as client:
        for name in ("One", "Two", "Three"):
            body = f'{{"name":"{name}","headquarters":"HQ"}}'.encode()
            request = Request("POST", "/api/teams", "", body, {"content-type": "application/json"})
            assert send(client, request, sign_2(request, NOW // 1000)).status_code == 201
        yield client


def send(client: TestClient, request: Request, signed: dict[str, str]) -> httpx.Response:
    return client.request(
        request.method, request.target, content=request.body, headers=request.headers | signed
    )


app_requests = st.one_of(
    st.builds(lambda i: Request("GET", f"/api/teams/{i}", "", b""), st.integers(1, 3)),
    st.builds(lambda n: Request("GET", "/api/heroes", f"limit={n}", b""), st.integers(1, 100)),
    st.builds(
        lambda i, tag: Request("GET", f"/api/teams/{i}", "", b"", {"if-none-match": tag}),
        st.integers(1, 3),
        st.sampled_from(['"1"', '"2"', "*"]),
    ),
    st.builds(
        lambda i, hq: Request(
            "PATCH",
            f"/api/teams/{i}",
            "",
            f'{{"headquarters":"{hq}"}}'.encode(),
            {"content-type": "application/merge-patch+json", "if-match": '"1"'},
        ),
        st.integers(1, 3),
        st.text(string.ascii_letters, min_size=1, max_size=10),
    ),
)


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=st.data(),
    request=app_requests,
    offset=st.integers(-WINDOW // 1000 + 31, WINDOW // 1000 - 31),
)
def test_the_app_refuses_any_mutant_of_a_version_2_request_with_401(
    frozen_app: TestClient, data: st.DataObject, request: Request, offset: int
) -> None:
    headers = sign_2(request, NOW // 1000 + offset)
    kind, mutant, mutant_headers = data.draw(mutations(request, headers), label="mutation")
    refused = send(frozen_app, mutant, mutant_headers)
    accepted = send(frozen_app, request, headers)

    assert refused.status_code == 401, (kind, refused.text)
    assert refused.headers["content-type"] == "application/problem+json"
    if mutant.method != "HEAD":  # a HEAD answer has no body
        assert refused.json()["type"] == "/problems/invalid-signature"
    # Signed as sent: answered (412 once an earlier PATCH moved the team's version on).
    assert accepted.status_code in (200, 304, 412), accepted.text
