"""Verifies the request signature of every `/api` request before Connexion routes it.

Connexion's security handlers never see the body, so this ASGI middleware does the work, the
cheapest checks first: the headers (present, well-formed, fresh, a version and key accepted);
a version 2 signature base, which needs no body; then, only for an operation that takes a body,
the body (up to `APP_MAX_BODY_BYTES`) against the version 1 HMAC or the version 2
Content-Digest. It records unsafe requests' signatures so each is accepted once, and replays
the body downstream for validation and the handler.
"""

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import http_sf
from http_message_signatures.digests import ContentDigest
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

import signing
from contract.problems import Problem
from contract.routes import ROUTE, Route
from middleware import rfc9421
from middleware.request_body import (
    check_content_type,
    check_declared_length,
    read_body,
    replaying,
)
from persistence.database import lone_statement
from persistence.signatures import record_signature
from settings import Settings

SIGNED_PREFIX = "/api"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TIMESTAMP = re.compile(r"[0-9]{1,15}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
# A 10-digit x-timestamp within the window of now in seconds was meant as seconds.
SECONDS = re.compile(r"[0-9]{10}")
# The scope key that tells the security stage this request's signature was verified.
VERIFIED = "signature_version"
# Every component version 2 may cover; anything else is refused rather than resolved.
COMPONENTS = frozenset({*signing.TARGET_COMPONENTS, *signing.BOUND_HEADERS})
COVERABLE = " ".join(f'"{name}"' for name in (*signing.TARGET_COMPONENTS, *signing.BOUND_HEADERS))
PARAMETERS = frozenset({"created", "keyid", "alg", "nonce"})

# On a read, If-None-Match only chooses 304 over 200, and a browser's HTTP cache adds it to a
# request after the page signed it: there it may be left out of the signature (if covered, it
# must still be the value signed). On unsafe methods it must be covered, as every bound header.
SAFE_METHODS = frozenset({"GET", "HEAD"})
OPTIONAL_ON_READS = frozenset({"if-none-match"})
MAX_NONCE = 128
SCHEMES = "Signature-Input and Signature (version 2, RFC 9421)"


class SignatureRejected(Problem):
    """A 401 whose `reason` (a short code) is counted in the metrics."""

    def __init__(self, reason: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(401, detail, field=field)
        self.reason = reason


type Fields = Mapping[str, list[str]]
# The header fields the checks read, as raw ASGI names: one pass over a request's headers
# collects them (Starlette's Headers scans the whole list for each name asked).
READ_FIELDS = frozenset(
    name.encode() for name in (*signing.V1_HEADERS, *signing.V2_HEADERS, *signing.BOUND_HEADERS)
)


def _fields(scope: Scope) -> Fields:
    found: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        if name in READ_FIELDS:
            found.setdefault(name.decode(), []).append(value.decode("latin-1"))
    return found


def _single_header(headers: Fields, name: str, *, required: bool = True) -> str | None:
    """The header's one value; an optional header may be absent, but never sent empty."""
    values = headers.get(name.lower(), [])
    if len(values) > 1:
        raise SignatureRejected("duplicated_header", f"{name} is sent more than once", field=name)
    if values and (values[0] or not required):
        return values[0]
    if required:
        raise SignatureRejected("missing_header", f"the {name} header is missing", field=name)
    return None


# Header fields that a signature covers or a handler reads as one value. Sent as two field
# lines, a verifier and a handler could each read another value (RFC 9421 joins the lines;
# the handler took the first), so a repeated line is refused rather than interpreted.
SINGLE_LINE_HEADERS = (
    "content-type",
    "content-digest",
    "if-match",
    "if-none-match",
    "idempotency-key",
)


def check_single_lines(scope: Scope) -> None:
    seen: set[bytes] = set()
    for name, _ in scope["headers"]:
        if name in seen and name.decode() in SINGLE_LINE_HEADERS:
            header = name.decode().title()
            raise Problem(
                400,
                f"{header} is sent more than once: send one field line (join several entity "
                "tags with commas)"
                if header.startswith("If-")
                else f"{header} is sent more than once: send one field line",
                field=header,
            )
        seen.add(name)


@dataclass(frozen=True, slots=True)
class Claim:
    """What the headers claim, well-formed and fresh, before the body is read.

    `signature` is the HMAC the request carries (the replay record's key), `signed_at_ms`
    the instant it claims, and `covered` the components a version 2 signature covers.
    """

    version: signing.Version
    signature: bytes
    signed_at_ms: int
    timestamp: str = ""
    covered: frozenset[str] = frozenset()
    # Version 2's member as received: the names it covers and its parameters, in order, the
    # member serialized (the base's "@signature-params"), and the bound fields the request has.
    names: tuple[str, ...] = ()
    parameters: tuple[rfc9421.Parameter, ...] = ()
    serialized: str = ""
    fields: Mapping[str, str] = field(default_factory=dict[str, str])


class Verifier:
    """The checks, in order; each failure names what failed and never the expected value."""

    def __init__(self, settings: Settings, clock: Callable[[], int] = signing.now_ms) -> None:
        self.keys = settings.verification_keys
        self.keys_by_id = {signing.key_id(key): key for key in reversed(self.keys)}
        self.window_ms = settings.timestamp_signing_threshold
        self.min_version = settings.signature_min_version
        self.clock = clock
        self.replay_methods = {
            "unsafe": UNSAFE_METHODS,
            "all": None,
            "off": frozenset[str](),
        }[settings.replay_protection]
        # What depends only on a key is done once: the HMAC keyed by it, copied per request.
        self.macs = {
            keyid: hmac.new(key, digestmod=hashlib.sha256) for keyid, key in self.keys_by_id.items()
        }

    def check_headers(self, scope: Scope) -> Claim:
        """The cheap checks: a request nobody signed is refused before its body is read."""
        headers = _fields(scope)
        version_1 = [name for name in signing.V1_HEADERS if name in headers]
        version_2 = [name for name in signing.V2_HEADERS if name in headers]
        if version_1 and version_2:
            raise SignatureRejected(
                "mixed_schemes",
                f"the request carries {version_1[0]} (version 1) and {version_2[0]} (version 2):"
                " sign it with one scheme only",
                field=version_1[0],
            )
        if version_2:
            return self._check_version_2(headers, scope["method"])
        if version_1:
            return self._check_version_1(headers)
        accepted = SCHEMES if self.min_version == 2 else SCHEMES + " or x-timestamp and x-signature"
        raise SignatureRejected(
            "missing_header", f"the request is not signed: sign it with {accepted}"
        )

    def _check_version_1(self, headers: Fields) -> Claim:
        timestamp = _single_header(headers, "x-timestamp")
        signature = _single_header(headers, "x-signature")
        version = _single_header(headers, "x-signature-version", required=False)
        assert timestamp is not None
        assert signature is not None
        if version is not None and version != "1":
            raise SignatureRejected(
                "unsupported_version",
                f"x-signature-version must be 1 (or absent): version 2 is signed with {SCHEMES}",
                field="x-signature-version",
            )
        if self.min_version > 1:
            raise SignatureRejected(
                "version_too_low",
                f"signature version 1 is no longer accepted: sign with {SCHEMES}",
                field="x-signature",
            )
        if not TIMESTAMP.fullmatch(timestamp):
            raise SignatureRejected(
                "malformed_timestamp",
                "x-timestamp must be the Unix time in milliseconds, in decimal digits",
                field="x-timestamp",
            )
        self._check_fresh(int(timestamp), "x-timestamp", seconds=SECONDS.fullmatch(timestamp))
        if not SIGNATURE.fullmatch(signature):
            raise SignatureRejected(
                "malformed_signature",
                "x-signature must be 64 hexadecimal digits",
                field="x-signature",
            )
        return Claim(1, bytes.fromhex(signature), int(timestamp), timestamp)

    def _check_fresh(self, signed_at_ms: int, field: str, *, seconds: object = None) -> None:
        now = self.clock()
        if abs(now - signed_at_ms) <= self.window_ms:
            return
        if seconds and abs(now - signed_at_ms * 1000) <= self.window_ms:
            raise SignatureRejected(
                "timestamp_in_seconds",
                "x-timestamp looks like Unix time in seconds: send it in milliseconds "
                "(e.g. Date.now() in JavaScript)",
                field=field,
            )
        unit = "created" if field == "Signature-Input" else "x-timestamp"
        raise SignatureRejected(
            "stale_timestamp",
            f"{unit} is outside the accepted window of {self.window_ms} ms "
            "(check the client's clock)",
            field=field,
        )

    def _check_version_2(self, headers: Fields, method: str) -> Claim:
        input_value = _single_header(headers, "Signature-Input")
        signature_value = _single_header(headers, "Signature")
        assert input_value is not None
        assert signature_value is not None
        _single_header(headers, "content-digest", required=False)
        member = rfc9421.parse_signature_input(input_value)
        value: object = rfc9421.parse_signature(signature_value)
        if member is None or value is None:
            # Not in the canonical form every signer sends: RFC 8941's full parser decides.
            names, parameter_items, value = _parsed_slowly(input_value, signature_value)
            serialized = rfc9421.serialize(names, parameter_items)
        else:
            names, parameter_items = member
            # Canonical as received: its serialization is what was sent after the label.
            serialized = input_value.removeprefix(f"{signing.LABEL}=")
        covered = _covered(names)
        parameters = dict(parameter_items)
        carried = {name for name in signing.BOUND_HEADERS if name in headers}
        required = carried - OPTIONAL_ON_READS if method in SAFE_METHODS else carried
        left_out = [
            name for name in (*signing.TARGET_COMPONENTS, *sorted(required)) if name not in covered
        ]
        if left_out:
            raise SignatureRejected(
                "uncovered_component",
                f'the signature must cover "{left_out[0]}"'
                + ("" if left_out[0].startswith("@") else ", which the request carries"),
                field="Signature-Input",
            )
        missing = sorted(covered - carried - set(signing.TARGET_COMPONENTS))
        if missing:
            raise SignatureRejected(
                "uncovered_component",
                f'the signature covers "{missing[0]}", which the request does not carry',
                field="Signature-Input",
            )
        created = self._check_parameters(parameters)
        if not isinstance(value, bytes) or len(value) != hashlib.sha256().digest_size:
            raise SignatureRejected(
                "malformed_signature",
                f"Signature must be {signing.LABEL}=:<the base64 of a 32-byte HMAC-SHA256>:",
                field="Signature",
            )
        return Claim(
            2,
            value,
            created * 1000,
            covered=covered,
            names=names,
            parameters=parameter_items,
            serialized=serialized,
            fields={name: headers[name][0] for name in carried},
        )

    def _check_parameters(self, parameters: Mapping[str, object]) -> int:
        """`created` (fresh), `keyid` (of a key held), `alg` if stated; the time it claims."""
        unknown = sorted(set(parameters) - PARAMETERS)
        if unknown:
            raise SignatureRejected(
                "malformed_signature",
                f'Signature-Input has the parameter "{unknown[0]}": only created, keyid, alg '
                "and nonce are accepted",
                field="Signature-Input",
            )
        created = parameters.get("created")
        if type(created) is not int:
            raise SignatureRejected(
                "malformed_timestamp",
                "Signature-Input must state created, the Unix time in seconds, as an integer",
                field="Signature-Input",
            )
        self._check_fresh(created * 1000, "Signature-Input")
        keyid = parameters.get("keyid")
        if not isinstance(keyid, str) or keyid not in self.keys_by_id:
            raise SignatureRejected(
                "unknown_key",
                "keyid names no key of this service: it is the first 16 hex digits of the "
                "SHA-256 of the key",
                field="Signature-Input",
            )
        if parameters.get("alg", signing.ALGORITHM) != signing.ALGORITHM:
            raise SignatureRejected(
                "malformed_signature",
                f'alg must be "{signing.ALGORITHM}"',
                field="Signature-Input",
            )
        nonce = parameters.get("nonce", "")
        if not isinstance(nonce, str) or len(nonce) > MAX_NONCE:
            raise SignatureRejected(
                "malformed_signature",
                f"nonce must be a string of at most {MAX_NONCE} characters",
                field="Signature-Input",
            )
        return created

    def check_before_body(self, scope: Scope, claim: Claim, *, body_follows: bool) -> None:
        """Version 2's signature base, which covers the body's digest but not the body."""
        if claim.version != 2:
            return
        if body_follows and "content-digest" not in claim.covered:
            raise SignatureRejected(
                "uncovered_component",
                "a request with a body must carry Content-Digest, covered by the signature",
                field="Content-Digest",
            )
        base = rfc9421.signature_base(
            scope["method"],
            (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
            scope.get("query_string", b"").decode("latin-1"),
            claim.fields,
            claim.names,
            claim.serialized,
        )
        mac = self.macs[str(dict(claim.parameters)["keyid"])].copy()
        if base is not None:
            mac.update(base)
        if base is None or not hmac.compare_digest(mac.digest(), claim.signature):
            raise SignatureRejected(
                "bad_signature",
                "Signature does not match this request (signature version 2)",
                field="Signature",
            )

    def check_signature(self, scope: Scope, claim: Claim, body: bytes) -> None:
        """The whole check, for a request whose body is at hand."""
        self.check_before_body(scope, claim, body_follows=bool(body))
        self.check_body(scope, claim, body)

    def check_body(self, scope: Scope, claim: Claim, body: bytes) -> None:
        """The body, against the version 1 HMAC or the version 2 Content-Digest (after
        `check_before_body`)."""
        if claim.version == 2:
            self._check_version_2_body(scope, claim, body)
            return
        message = signing.signed_bytes(scope["method"], body, claim.timestamp)
        # Check every key (no early exit), so timing does not tell which key is current.
        matches = [
            hmac.compare_digest(signing.digest(key, message), claim.signature) for key in self.keys
        ]
        if not any(matches):
            raise SignatureRejected(
                "bad_signature",
                "x-signature does not match this request (signature version 1)",
                field="x-signature",
            )

    def _check_version_2_body(self, scope: Scope, claim: Claim, body: bytes) -> None:
        if "content-digest" not in claim.covered:
            if body:
                raise SignatureRejected(
                    "uncovered_component",
                    "a request with a body must carry Content-Digest, covered by the signature",
                    field="Content-Digest",
                )
            return
        try:
            # The covered field, checked against the exact bytes received (the library's
            # verify_body would parse the covered components a second time to find it).
            ContentDigest.verify(Headers(scope=scope)["content-digest"], body)
        except HTTPMessageSignaturesException:
            raise SignatureRejected(
                "bad_digest",
                "Content-Digest does not match the body",
                field="Content-Digest",
            ) from None

    def needs_replay_check(self, method: str) -> bool:
        return self.replay_methods is None or method in self.replay_methods


def _structured(name: str, value: str) -> Mapping[str, tuple[Any, dict[str, Any]]]:
    """A dictionary structured field (RFC 8941), parsed by http-sf."""
    try:
        parsed: object = http_sf.parse(value.encode("latin-1"), tltype="dictionary")
    except Exception:  # http-sf raises ValueError, and others, for any malformed input
        parsed = None
    if not isinstance(parsed, dict):
        raise SignatureRejected(
            "malformed_signature",
            f"{name} is not a valid structured field dictionary (RFC 8941)",
            field=name,
        )
    return cast(Mapping[str, tuple[Any, dict[str, Any]]], parsed)


def _parsed_slowly(
    input_value: str, signature_value: str
) -> tuple[tuple[str, ...], tuple[rfc9421.Parameter, ...], object]:
    """Both fields by RFC 8941's full parser: the covered names (judged as names), the
    parameters, and the signature's value."""
    signature_input = _structured("Signature-Input", input_value)
    signature = _structured("Signature", signature_value)
    if set(signature_input) != {signing.LABEL} or set(signature) != {signing.LABEL}:
        raise SignatureRejected(
            "malformed_signature",
            f"Signature-Input and Signature must each hold one signature, labelled {signing.LABEL}",
            field="Signature-Input",
        )
    components, parameters = signature_input[signing.LABEL]
    if not isinstance(components, list):
        raise SignatureRejected(
            "malformed_signature",
            f"Signature-Input's {signing.LABEL} must be a list of components",
            field="Signature-Input",
        )
    names: list[str] = []
    for component in cast(list[Any], components):
        name, component_parameters = component if isinstance(component, tuple) else (None, None)
        if not isinstance(name, str) or component_parameters:
            raise SignatureRejected(
                "malformed_signature",
                f"Signature-Input may cover only {COVERABLE}",
                field="Signature-Input",
            )
        names.append(name)
    value, _ = signature[signing.LABEL]
    return tuple(names), tuple(parameters.items()), value


def _covered(names: tuple[str, ...]) -> frozenset[str]:
    """The components a Signature-Input member covers: plain names this profile signs."""
    if any(name not in COMPONENTS for name in names):
        raise SignatureRejected(
            "malformed_signature",
            f"Signature-Input may cover only {COVERABLE}",
            field="Signature-Input",
        )
    covered = frozenset(names)
    if len(covered) != len(names):
        raise SignatureRejected(
            "malformed_signature",
            "Signature-Input covers a component twice",
            field="Signature-Input",
        )
    return covered


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
        headers = Headers(scope=scope)
        check_declared_length(headers, self.max_body_bytes)
        check_content_type(headers)
        path: str = scope["path"]
        is_api = path == SIGNED_PREFIX or path.startswith(SIGNED_PREFIX + "/")
        if not is_api or scope["method"] == "OPTIONS":
            # Nothing here reads the body: a request that takes none never has it read.
            await self.app(scope, receive, send)
            return
        # The cheap checks first: a request nobody signed is refused before anything else.
        claim = self.verifier.check_headers(scope)
        check_single_lines(scope)
        route: Route | None = scope.get(ROUTE)
        takes_body = route is not None and route.takes_body
        announced = bool(headers.get("content-length", "").strip("0 ")) or (
            "transfer-encoding" in headers
        )
        # Version 2 covers the body through Content-Digest, a header: its signature is
        # verified before a byte of the body is read.
        self.verifier.check_before_body(scope, claim, body_follows=announced)
        if takes_body:
            body = await read_body(receive, self.max_body_bytes) if announced else b""
            scope = _with_content_length(scope, len(body))
            self.verifier.check_body(scope, claim, body)
        else:
            # Never read: the body that a signature of such a request covers is empty. (A body
            # sent to no operation is not read either, so its version 1 HMAC cannot be checked;
            # nothing runs for it.)
            body = b""
            if claim.version == 1 and not (announced and route is None):
                self.verifier.check_body(scope, claim, body)
        if route is None:
            if path.endswith("/"):
                # No /api path ends in "/": answered here, not redirected by the router to a
                # Location built from the client's Host header.
                raise Problem(404, f"no resource at {path}")
            # The router answers 404 or 405.
            await self.app(scope, receive, send)
            return
        route.check_path(path)
        if announced and not takes_body:
            raise Problem(400, f"{scope['method']} {path} takes no request body")
        if not takes_body:
            scope = _with_content_length(scope, 0)
        if self.verifier.needs_replay_check(scope["method"]):
            await self._accept_once(scope, claim)
        scope[VERIFIED] = claim.version
        await self.app(scope, replaying(body, receive), send)

    async def _accept_once(self, scope: Scope, claim: Claim) -> None:
        """Record the signature in a statement of its own, committed before the handler runs
        (no transaction is open yet at this layer): a request that then fails has still used it.
        """
        # A signature stays acceptable until its timestamp leaves the window; remember it as long.
        expires_at = datetime.fromtimestamp(claim.signed_at_ms / 1000, UTC) + self.window
        # The digest of the decoded bytes: the same signature in upper-case hex (version 1), or
        # with other whitespace or parameters (version 2), is the same key.
        async with lone_statement(scope) as conn:
            first_use = await record_signature(
                conn=conn, digest=hashlib.sha256(claim.signature).digest(), expires_at=expires_at
            )
        if not first_use:
            raise SignatureRejected(
                "replayed_signature",
                "this signature was already used: sign each request afresh",
                field="x-signature" if claim.version == 1 else "Signature",
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
