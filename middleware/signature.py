"""Verifies the request signature of every `/api` request before Connexion's security stage.

Connexion's security handlers never see the body, so this ASGI middleware does the work: it
checks the headers (present, well-formed, fresh, a version accepted), then reads the body (up
to `APP_MAX_BODY_BYTES`), checks the HMAC, records unsafe requests' signatures so each is
accepted once, and replays the body downstream for validation and the handler.
"""

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

import signing
from contract.problems import Problem
from middleware.request_body import check_declared_length, read_body, replaying
from persistence.database import LONE_STATEMENTS, Opener
from persistence.signatures import record_signature
from settings import Settings

SIGNED_PREFIX = "/api"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TIMESTAMP = re.compile(r"[0-9]{1,15}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
# The scope key that tells the security stage this request's signature was verified.
VERIFIED = "signature_version"


class SignatureRejected(Problem):
    """A 401 whose `reason` (a short code) is counted in the metrics."""

    def __init__(self, reason: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(401, detail, field=field)
        self.reason = reason


def _single_header(headers: Headers, name: str, *, required: bool = True) -> str | None:
    """The header's one value; an optional header may be absent, but never sent empty."""
    values = headers.getlist(name)
    if len(values) > 1:
        raise SignatureRejected("duplicated_header", f"{name} is sent more than once", field=name)
    if values and (values[0] or not required):
        return values[0]
    if required:
        raise SignatureRejected("missing_header", f"the {name} header is missing", field=name)
    return None


@dataclass(frozen=True, slots=True)
class Claim:
    """What the headers claim, well-formed and fresh, before the body is read."""

    timestamp: str
    signature: bytes
    version: signing.Version


class Verifier:
    """The checks, in order; each failure names what failed and never the expected value."""

    def __init__(self, settings: Settings, clock: Callable[[], int] = signing.now_ms) -> None:
        self.keys = settings.verification_keys
        self.window_ms = settings.timestamp_signing_threshold
        self.min_version = settings.signature_min_version
        self.clock = clock
        self.replay_methods = {
            "unsafe": UNSAFE_METHODS,
            "all": None,
            "off": frozenset[str](),
        }[settings.replay_protection]

    def check_headers(self, scope: Scope) -> Claim:
        """The cheap checks: a request nobody signed is refused before its body is read."""
        headers = Headers(scope=scope)
        timestamp = _single_header(headers, "x-timestamp")
        signature = _single_header(headers, "x-signature")
        version_header = _single_header(headers, "x-signature-version", required=False)
        assert timestamp is not None
        assert signature is not None
        if not TIMESTAMP.fullmatch(timestamp):
            raise SignatureRejected(
                "malformed_timestamp",
                "x-timestamp must be the Unix time in milliseconds, in decimal digits",
                field="x-timestamp",
            )
        if abs(self.clock() - int(timestamp)) > self.window_ms:
            raise SignatureRejected(
                "stale_timestamp",
                f"x-timestamp is outside the accepted window of {self.window_ms} ms "
                "(check the client's clock)",
                field="x-timestamp",
            )
        version = self._version(version_header)
        if not SIGNATURE.fullmatch(signature):
            raise SignatureRejected(
                "malformed_signature",
                "x-signature must be 64 hexadecimal digits",
                field="x-signature",
            )
        return Claim(timestamp, bytes.fromhex(signature), version)

    def check_signature(self, scope: Scope, claim: Claim, body: bytes) -> None:
        message = signing.signed_bytes(
            scope["method"], _path_and_query(scope), body, claim.timestamp, claim.version
        )
        # Check every key (no early exit), so timing does not tell which key is current.
        matches = [
            hmac.compare_digest(signing.digest(key, message), claim.signature) for key in self.keys
        ]
        if not any(matches):
            raise SignatureRejected(
                "bad_signature",
                f"x-signature does not match this request (signature version {claim.version})",
                field="x-signature",
            )

    def _version(self, header: str | None) -> signing.Version:
        if header is None:
            version: signing.Version = 1
        elif header in ("1", "2"):
            version = 1 if header == "1" else 2
        else:
            raise SignatureRejected(
                "unsupported_version",
                "x-signature-version must be 1 or 2",
                field="x-signature-version",
            )
        if version < self.min_version:
            raise SignatureRejected(
                "version_too_low",
                f"signature version {version} is no longer accepted: sign with version "
                f"{self.min_version} (x-signature-version: {self.min_version})",
                field="x-signature-version",
            )
        return version

    def needs_replay_check(self, method: str) -> bool:
        return self.replay_methods is None or method in self.replay_methods


def _path_and_query(scope: Scope) -> bytes:
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return path + b"?" + query if query else path


def _with_content_length(scope: Scope, length: int) -> Scope:
    """The body is now known in full: state its length (a chunked upload has none)."""
    headers = [
        (k, v) for k, v in scope["headers"] if k not in (b"content-length", b"transfer-encoding")
    ]
    if length or scope["method"] in UNSAFE_METHODS:
        headers.append((b"content-length", str(length).encode()))
    return {**scope, "headers": headers}


class SignatureMiddleware:
    def __init__(
        self, app: ASGIApp, *, settings: Settings, clock: Callable[[], int] = signing.now_ms
    ) -> None:
        """`clock` gives the current Unix time in ms (tests fix it to verify recorded requests)."""
        self.app = app
        self.verifier = Verifier(settings, clock)
        self.max_body_bytes = settings.max_body_bytes
        self.window = timedelta(milliseconds=settings.timestamp_signing_threshold)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        check_declared_length(Headers(scope=scope), self.max_body_bytes)
        path: str = scope["path"]
        is_api = path == SIGNED_PREFIX or path.startswith(SIGNED_PREFIX + "/")
        claim = (
            self.verifier.check_headers(scope) if is_api and scope["method"] != "OPTIONS" else None
        )
        body = await read_body(receive, self.max_body_bytes)
        scope = _with_content_length(scope, len(body))
        if claim is not None:
            self.verifier.check_signature(scope, claim, body)
            if self.verifier.needs_replay_check(scope["method"]):
                await self._accept_once(scope["state"], claim)
            scope[VERIFIED] = claim.version
        await self.app(scope, replaying(body, receive), send)

    async def _accept_once(self, state: Mapping[str, Any], claim: Claim) -> None:
        connect: Opener = state[LONE_STATEMENTS]
        # A signature stays acceptable until its timestamp leaves the window; remember it as long.
        expires_at = datetime.fromtimestamp(int(claim.timestamp) / 1000, UTC) + self.window
        # The digest of the decoded bytes: the same signature in upper-case hex is the same key.
        async with connect() as conn:
            first_use = await record_signature(
                conn=conn, digest=hashlib.sha256(claim.signature).digest(), expires_at=expires_at
            )
        if not first_use:
            raise SignatureRejected(
                "replayed_signature",
                "this signature was already used: sign each request afresh",
                field="x-signature",
            )


def signature_info(
    api_key: str, required_scopes: object = None, request: Any = None
) -> dict[str, object] | None:
    """Connexion's check for the `signature` scheme: passes only what the middleware verified."""
    version = request.scope.get(VERIFIED) if request is not None else None
    return {"sub": "signed-request", "signature_version": version} if version else None


def timestamp_info(
    api_key: str, required_scopes: object = None, request: Any = None
) -> dict[str, object] | None:
    """Connexion's check for the `timestamp` scheme: the middleware has checked freshness."""
    return signature_info(api_key, required_scopes, request)
