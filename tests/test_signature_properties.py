"""Property: any single change to a validly signed request gets it refused with 401.

Each example sends the mutated request (refused), then the original (accepted), so the refusal
is the mutation's doing. The app runs on PostgreSQL with its clock stopped, and replay
protection off so that the original can still be sent after its mutant (replay has its own tests).
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import signing
from settings import Settings
from tests.conftest import TEST_KEY, make_settings, truncate_all
from tests.signature_support import fixed_clock, running_app

NOW = 1_764_158_400_000
WINDOW = 120_000
PREFIX = "/api/"
HEX = "0123456789abcdef"
PATH_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789"
# The methods each route serves: a mutated method stays routable, so only the signature can fail.
METHODS = {
    re.compile(r"/api/(teams|heroes)(\?.*)?"): ("GET", "POST"),
    re.compile(r"/api/(teams|heroes)/\d+"): ("GET", "PATCH", "DELETE"),
}


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    body: bytes
    version: signing.Version
    timestamp: str
    signature: str
    omitted: str | None = None

    def send(self, client: TestClient) -> httpx.Response:
        headers = {"x-timestamp": self.timestamp, "x-signature": self.signature}
        if self.version == 2:
            headers["x-signature-version"] = "2"
        headers.pop(self.omitted or "", None)
        if self.body:
            headers["content-type"] = "application/json"
        return client.request(self.method, self.target, content=self.body, headers=headers)


def _signed(
    method: str, target: str, body: bytes, version: signing.Version, offset: int
) -> Request:
    timestamp = str(NOW + offset)
    signature = signing.sign(method, target, body, timestamp, TEST_KEY, version)
    return Request(method, target, body, version, timestamp, signature)


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _swap[T: (str, bytes)](value: T, i: int, new: T) -> T:
    return value[:i] + new + value[i + 1 :]


type Unsigned = tuple[str, str, bytes]

names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30
)
reads: st.SearchStrategy[Unsigned] = st.one_of(
    st.builds(lambda n: f"/api/heroes?limit={n}", st.integers(1, 100)),
    st.builds(lambda i: f"/api/teams/{i}", st.integers(1, 3)),
    st.just("/api/teams"),
).map(lambda target: ("GET", target, b""))
writes: st.SearchStrategy[Unsigned] = st.one_of(
    names.map(
        lambda name: (
            "POST",
            "/api/teams",
            f'{{"name":{_json(name)},"headquarters":"HQ"}}'.encode(),
        )
    ),
    st.builds(
        lambda i, hq: ("PATCH", f"/api/teams/{i}", f'{{"headquarters":{_json(hq)}}}'.encode()),
        st.integers(1, 3),
        names,
    ),
    st.integers(1, 50).map(lambda i: ("DELETE", f"/api/heroes/{i}", b"")),
)


def _sign_now(request: Unsigned, version: signing.Version, offset: int) -> Request:
    method, target, body = request
    return _signed(method, target, body, version, offset)


valid_requests = st.builds(
    _sign_now,
    st.one_of(reads, writes),
    st.sampled_from([1, 2]),
    st.integers(-WINDOW, WINDOW),
)


def _other(alphabet: str, current: str) -> st.SearchStrategy[str]:
    """Another character of `alphabet`; hex digits differing only in case are the same value."""
    return st.sampled_from([c for c in alphabet if c.lower() != current.lower()])


@st.composite
def mutants(draw: st.DrawFn, request: Request) -> tuple[str, Request]:
    """One change to `request`, named for the failure report."""
    kinds = ["method", "timestamp digit", "signature character", "header removal"]
    if request.body:
        kinds.append("body byte")
    if request.version == 2:
        kinds.append("path or query")
    kind = draw(st.sampled_from(kinds))
    if kind == "method":
        allowed = next(m for route, m in METHODS.items() if route.fullmatch(request.target))
        method = draw(st.sampled_from([m for m in allowed if m != request.method]))
        return kind, replace(request, method=method)
    if kind == "timestamp digit":
        i = draw(st.integers(0, len(request.timestamp) - 1))
        digit = draw(_other("0123456789", request.timestamp[i]))
        return kind, replace(request, timestamp=_swap(request.timestamp, i, digit))
    if kind == "signature character":
        i = draw(st.integers(0, len(request.signature) - 1))
        char = draw(_other(HEX + HEX.upper(), request.signature[i]))
        return kind, replace(request, signature=_swap(request.signature, i, char))
    if kind == "body byte":
        i = draw(st.integers(0, len(request.body) - 1))
        byte = draw(st.integers(0, 255).filter(lambda b: b != request.body[i]))
        return kind, replace(request, body=_swap(request.body, i, bytes([byte])))
    if kind == "path or query":
        i = draw(st.integers(len(PREFIX), len(request.target) - 1))
        char = draw(_other(PATH_CHARACTERS, request.target[i]))
        return kind, replace(request, target=_swap(request.target, i, char))
    removable = ["x-timestamp", "x-signature"]
    if request.version == 2:
        removable.append("x-signature-version")
    removed = draw(st.sampled_from(removable))
    return f"{kind}: {removed}", replace(request, omitted=removed)


@pytest.fixture(scope="module")
def frozen_app(backend_settings: dict[str, Settings]) -> Iterator[TestClient]:
    base = backend_settings["postgresql"]
    truncate_all(base)
    app_settings = make_settings(base.database_url, replay_protection="off")
    with running_app(app_settings, clock=fixed_clock(NOW)) as client:
        for name in ("One", "Two", "Three"):
            request = _signed(
                "POST", "/api/teams", f'{{"name":"{name}","headquarters":"HQ"}}'.encode(), 2, 0
            )
            assert request.send(client).status_code == 201
        yield client


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data(), request=valid_requests)
def test_any_single_mutation_of_a_signed_request_is_refused_with_401(
    frozen_app: TestClient, data: st.DataObject, request: Request
) -> None:
    kind, mutant = data.draw(mutants(request), label="mutation")
    assert mutant != request, kind

    refused = mutant.send(frozen_app)
    accepted = request.send(frozen_app)

    assert refused.status_code == 401, (kind, refused.text)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/invalid-signature"
    assert accepted.status_code != 401, accepted.text
