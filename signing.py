"""The request-signing scheme shared with the frontend: what is signed, and how.

Version 1 (the older scheme, still accepted by default) signs `{METHOD}|{body}|{x-timestamp}`
and sends the lower-case hex HMAC-SHA256 in `x-signature`. Version 2, what this repository's
signers send by default, is a profile of RFC 9421 HTTP Message Signatures: `Signature-Input` and
`Signature` (label `sig1`, `hmac-sha256`), with an RFC 9530 `Content-Digest` of the body.
`signing-vectors.json` holds worked examples of both.
"""

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from http_message_signatures._algorithms import HMAC_SHA256
from http_message_signatures.digests import ContentDigest
from http_message_signatures.resolvers import MappingKeyResolver
from http_message_signatures.signatures import HTTPMessageSigner
from http_message_signatures.structures import CaseInsensitiveDict, PreparedSignature

type Version = Literal[1, 2]
VERSIONS: tuple[Version, ...] = (1, 2)

LABEL = "sig1"
ALGORITHM = HMAC_SHA256.algorithm_id
# The URL the signature base is built from: only its path and query are covered, never the host.
ORIGIN = "http://backoffice.invalid"
TARGET_COMPONENTS = ("@method", "@path", "@query")
# Header fields a version 2 signature covers whenever the request carries them, in this order.
BOUND_HEADERS = ("content-type", "if-match", "if-none-match", "idempotency-key", "content-digest")
V1_HEADERS = ("x-timestamp", "x-signature", "x-signature-version")
V2_HEADERS = ("signature-input", "signature", "content-digest")


def signed_bytes(method: str, body: bytes, timestamp: str) -> bytes:
    """The exact bytes a version 1 signature covers."""
    return b"|".join([method.upper().encode(), body, timestamp.encode()])


def digest(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(method: str, body: bytes | str, timestamp: str, key: bytes | str) -> str:
    """The version 1 `x-signature` value for a request."""
    return digest(_bytes(key), signed_bytes(method, _bytes(body), timestamp)).hex()


def key_id(key: bytes | str) -> str:
    """The `keyid` of a key: the first 16 hex digits of its SHA-256, so no secret is named."""
    return hashlib.sha256(_bytes(key)).hexdigest()[:16]


def content_digest(body: bytes) -> str:
    """The RFC 9530 `Content-Digest` of the body bytes, in SHA-256."""
    return ContentDigest.create(body)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Message:
    """A request as RFC 9421 sees it: method, URL and header fields (as Latin-1 strings)."""

    def __init__(self, method: str, path_and_query: str, headers: Mapping[str, str]) -> None:
        self.method = method.upper()
        self.url = ORIGIN + path_and_query
        self.headers = CaseInsensitiveDict(headers)


def covered_components(headers: Mapping[str, str]) -> list[str]:
    """What version 2 covers: the method and target, and each bound header the request has."""
    carried = {name.lower() for name in headers}
    return [*TARGET_COMPONENTS, *(name for name in BOUND_HEADERS if name in carried)]


def _prepared(
    method: str,
    path_and_query: str,
    body: bytes,
    key: bytes,
    headers: Mapping[str, str] | None,
    created: int,
    nonce: str | None,
) -> tuple[Message, HTTPMessageSigner, PreparedSignature]:
    fields = {name.lower(): value for name, value in (headers or {}).items()}
    fields = {name: value for name, value in fields.items() if name in BOUND_HEADERS[:-1]}
    message = Message(method, path_and_query, fields)
    keyid = key_id(key)
    signer = HTTPMessageSigner(
        signature_algorithm=HMAC_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={keyid: key}),
    )
    prepared = signer.prepare(
        message,
        key_id=keyid,
        created=datetime.fromtimestamp(created, UTC),
        nonce=nonce,
        label=LABEL,
        covered_component_ids=covered_components(fields),
        # With a body, the library adds Content-Digest and covers it, last.
        body=body or None,
    )
    return message, signer, prepared


def signature_base(
    method: str,
    path_and_query: str,
    body: bytes,
    key: bytes | str,
    *,
    headers: Mapping[str, str] | None = None,
    created: int,
    nonce: str | None = None,
) -> bytes:
    """The RFC 9421 signature base a version 2 signature is the HMAC of."""
    return _prepared(method, path_and_query, body, _bytes(key), headers, created, nonce)[
        2
    ].signature_base


def version_2_headers(
    method: str,
    path_and_query: str,
    body: bytes,
    key: bytes | str,
    *,
    headers: Mapping[str, str] | None = None,
    created: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """`Signature-Input`, `Signature` and (with a body) `Content-Digest` for a request.

    `headers` are the other fields the request will carry: each bound one is signed. `created`
    is in Unix seconds. A `nonce` tells apart two identical requests signed in the same second.
    """
    raw_key = _bytes(key)
    message, signer, prepared = _prepared(
        method, path_and_query, body, raw_key, headers, created, nonce
    )
    signer.apply(message, prepared, digest(raw_key, prepared.signature_base))
    signed = {name: message.headers[name] for name in ("Signature-Input", "Signature")}
    if body:
        signed["Content-Digest"] = message.headers["Content-Digest"]
    return signed


def signed_headers(
    method: str,
    path_and_query: str,
    body: bytes | str,
    key: bytes | str,
    version: Version = 2,
    timestamp: int | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    unique: bool = True,
) -> dict[str, str]:
    """The headers that sign a request now (or at `timestamp`, in ms; version 2 keeps seconds).

    Version 2 signs the bound `headers` the request carries, and with `unique` a random nonce,
    so that the same request sent twice in one second is not a replay.
    """
    stamp = now_ms() if timestamp is None else timestamp
    raw_body = _bytes(body)
    if version == 1:
        return {"x-timestamp": str(stamp), "x-signature": sign(method, raw_body, str(stamp), key)}
    return version_2_headers(
        method,
        path_and_query,
        raw_body,
        key,
        headers=headers,
        created=stamp // 1000,
        nonce=secrets.token_hex(8) if unique else None,
    )
