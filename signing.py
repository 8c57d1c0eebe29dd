"""The request-signing scheme shared with the frontend: what is signed, and how.

Version 1 signs `{METHOD}|{body}|{timestamp}`; version 2 also binds the target,
`{METHOD}|{path}[?{query}]|{body}|{timestamp}`. The signature is the lower-case hex
HMAC-SHA256 of those bytes. `signing-vectors.json` holds worked examples.
"""

import hashlib
import hmac
import time
from typing import Literal

type Version = Literal[1, 2]
VERSIONS: tuple[Version, ...] = (1, 2)


def signed_bytes(
    method: str, path_and_query: str | bytes, body: bytes, timestamp: str, version: Version = 1
) -> bytes:
    """The exact bytes a signature covers; `path_and_query` is ignored by version 1."""
    parts = [method.upper().encode()]
    if version == 2:
        parts.append(
            path_and_query if isinstance(path_and_query, bytes) else path_and_query.encode()
        )
    parts += [body, timestamp.encode()]
    return b"|".join(parts)


def digest(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def sign(
    method: str,
    path_and_query: str,
    body: bytes | str,
    timestamp: str,
    key: bytes | str,
    version: Version = 1,
) -> str:
    """The `x-signature` value for a request."""
    raw_body = body.encode() if isinstance(body, str) else body
    raw_key = key.encode() if isinstance(key, str) else key
    return digest(raw_key, signed_bytes(method, path_and_query, raw_body, timestamp, version)).hex()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def signed_headers(
    method: str,
    path_and_query: str,
    body: bytes | str,
    key: bytes | str,
    version: Version = 1,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers that sign a request now (or at `timestamp`, in ms)."""
    stamp = str(now_ms() if timestamp is None else timestamp)
    headers = {
        "x-timestamp": stamp,
        "x-signature": sign(method, path_and_query, body, stamp, key, version),
    }
    if version != 1:
        headers["x-signature-version"] = str(version)
    return headers
