"""The one-pass version 2 verifier (`middleware.rfc9421`) against the library it replaces.

`http-message-signatures` builds every base our signers sign and stays the reference: over
generated requests, field values, parameters and mutations, the service builds the same base
byte for byte, accepts nothing the library's verifier refuses, and its quick parse of the two
fields reads what RFC 8941's full parser (http-sf) reads, or leaves the field to it.
"""

import string
from typing import Any, cast

import http_sf
from http_message_signatures._algorithms import HMAC_SHA256
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from http_message_signatures.resolvers import MappingKeyResolver
from http_message_signatures.signatures import HTTPMessageVerifier
from http_message_signatures.structures import CaseInsensitiveDict
from hypothesis import given, settings
from hypothesis import strategies as st

import signing
from middleware import rfc9421
from middleware.signature import SignatureRejected
from tests.conftest import TEST_KEY
from tests.test_signature_properties import (
    FIELD_VALUE,
    HEADERS,
    NOW,
    VERIFIER,
    Request,
    mutations,
    requests,
)

ENOUGH = settings(max_examples=300, deadline=None, database=None)
KEYID = signing.key_id(TEST_KEY)


class _Library(HTTPMessageVerifier):
    """The library's verifier, its clock out of the way (the service judges freshness)."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


LIBRARY = _Library(
    signature_algorithm=HMAC_SHA256,
    key_resolver=MappingKeyResolver(public_keys={KEYID: TEST_KEY.encode()}, private_keys={}),
)


class _Message:
    def __init__(self, request: Request, signed: dict[str, str]) -> None:
        self.method = request.method
        self.url = signing.ORIGIN + request.target
        self.headers = CaseInsensitiveDict(request.headers | signed)


def library_accepts(request: Request, signed: dict[str, str]) -> bool:
    try:
        LIBRARY.verify(_Message(request, signed), max_age=None)
    except HTTPMessageSignaturesException:
        return False
    return True


def service_accepts(request: Request, signed: dict[str, str]) -> bool:
    scope = request.scope(signed)
    try:
        claim = VERIFIER.check_headers(cast(Any, scope))
        VERIFIER.check_before_body(cast(Any, scope), claim, body_follows=False)
    except SignatureRejected:
        return False
    return True


nonces = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


def sign(request: Request, created: int, nonce: str | None = None) -> dict[str, str]:
    """What our signer sends for `request`: the library builds its base and its headers."""
    return signing.version_2_headers(
        request.method,
        request.target,
        request.body,
        TEST_KEY,
        headers=request.headers,
        created=created,
        nonce=nonce,
    )


@ENOUGH
@given(request=requests(), nonce=st.none() | nonces, offset=st.integers(-100, 100))
def test_the_service_builds_the_librarys_base_byte_for_byte(
    request: Request, nonce: str | None, offset: int
) -> None:
    created = NOW // 1000 + offset
    signed = sign(request, created, nonce)
    parsed = rfc9421.parse_signature_input(signed["Signature-Input"])
    assert parsed is not None, signed["Signature-Input"]
    names, parameters = parsed
    fields = {k.lower(): v for k, v in (request.headers | signed).items()}
    path, _, query = request.target.partition("?")

    member = signed["Signature-Input"].removeprefix("sig1=")
    assert rfc9421.serialize(names, parameters) == member

    built = rfc9421.signature_base(request.method, path, query, fields, names, member)

    assert built == signing.signature_base(
        request.method,
        request.target,
        request.body,
        TEST_KEY,
        headers=request.headers,
        created=created,
        nonce=nonce,
    )


@ENOUGH
@given(data=st.data(), request=requests(), offset=st.integers(-100, 100))
def test_the_service_accepts_nothing_the_library_refuses(
    data: st.DataObject, request: Request, offset: int
) -> None:
    """Our signer's requests pass both; of their mutants, the service accepts only what the
    library's verifier accepts (it refuses more: what the profile leaves out, a header the
    signature does not cover)."""
    signed = sign(request, NOW // 1000 + offset)
    kind, mutant, mutant_headers = data.draw(mutations(request, signed), label="mutation")
    body_free = {k: v for k, v in mutant_headers.items() if k != "Content-Digest"}

    assert service_accepts(request, signed) is library_accepts(request, signed) is True
    if service_accepts(mutant, body_free):
        assert library_accepts(mutant, body_free), kind


# --- the two fields, read quickly or by http-sf -------------------------------------------------

names = st.lists(
    st.sampled_from([*signing.TARGET_COMPONENTS, *signing.BOUND_HEADERS, "host", "@Path"]),
    max_size=6,
)
parameter_values = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    nonces,
    st.booleans(),
    st.text(st.sampled_from(string.ascii_letters + "*"), min_size=1, max_size=5).map(http_sf.Token),
)
parameter_names = st.sampled_from(["created", "keyid", "alg", "nonce", "expires", "tag", "a*b"])
spacing = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def signature_inputs(draw: st.DrawFn) -> str:
    """Members as any signer (or attacker) might write them, canonical or not."""
    label = draw(st.sampled_from(["sig1", "sig1", "sig2"]))
    items = draw(names)
    separator = draw(st.sampled_from([" ", " ", "  "]))
    parameters = draw(st.lists(st.tuples(parameter_names, parameter_values), max_size=5))
    rendered = "".join(
        f";{name}" if value is True else f";{name}={http_sf.ser(cast(Any, value))}"
        for name, value in parameters
    )
    inner = separator.join(f'"{item}"' for item in items)
    value = f"{label}=({inner}){rendered}"
    if draw(st.booleans()):
        value += draw(spacing) + "," + draw(spacing) + 'sig2=("@method")'
    return draw(spacing) + value + draw(spacing)


@ENOUGH
@given(value=signature_inputs())
def test_a_quickly_read_signature_input_reads_as_http_sf_reads_it(value: str) -> None:
    quick = rfc9421.parse_signature_input(value)
    if quick is None:
        return  # left to http-sf
    parsed: Any = http_sf.parse(value.encode(), tltype="dictionary")
    assert isinstance(parsed, dict)
    assert list(cast(dict[str, Any], parsed)) == ["sig1"]
    members, parameters = parsed["sig1"]
    assert quick == (
        tuple(name for name, _ in members),
        tuple((name, parameter) for name, parameter in parameters.items()),
    )
    assert all(not item_parameters for _, item_parameters in members)
    # What the service relies on: a member read quickly is its own serialization.
    assert rfc9421.serialize(*quick) == http_sf.ser(parsed).removeprefix("sig1=")
    assert rfc9421.serialize(*quick) == value.removeprefix("sig1=")


@ENOUGH
@given(value=st.binary(max_size=40), suffix=st.sampled_from(["", "=", ";x", " "]))
def test_a_quickly_read_signature_reads_as_http_sf_reads_it(value: bytes, suffix: str) -> None:
    field = "sig1=" + http_sf.ser(value) + suffix
    quick = rfc9421.parse_signature(field)
    if quick is None:
        return
    parsed: Any = http_sf.parse(field.encode(), tltype="dictionary")
    assert isinstance(parsed, dict)
    assert quick == parsed["sig1"][0] == value


@ENOUGH
@given(value=FIELD_VALUE, name=st.sampled_from(HEADERS))
def test_a_field_value_is_signed_as_the_library_signs_it(value: str, name: str) -> None:
    request = Request("GET", "/api/heroes", "", b"", {name: value})

    assert service_accepts(request, sign(request, NOW // 1000))
