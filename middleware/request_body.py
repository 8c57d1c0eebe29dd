"""The request body, buffered whole (within a limit) and replayed to the app downstream.

The signature middleware needs the raw bytes before Connexion reads them, and the idempotency
middleware needs them again to fingerprint a request and to run it; both read and replay here.
"""

import re

from starlette.datastructures import Headers
from starlette.types import Message, Receive

from contract.problems import Problem

CONTENT_LENGTH = re.compile(r"[0-9]{1,20}")


class PayloadTooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def check_declared_length(headers: Headers, limit: int) -> None:
    """Refuse a body announced too large before reading any of it."""
    declared = headers.get("content-length")
    if declared is None:
        return
    if not CONTENT_LENGTH.fullmatch(declared):
        raise Problem(400, "Content-Length must be a whole number of bytes")
    if int(declared) > limit:
        raise PayloadTooLarge(limit)


def check_content_type(headers: Headers) -> None:
    """A Content-Type that is not ASCII names no media type (and the framework would crash)."""
    content_type = headers.get("content-type")
    if content_type is not None and not content_type.isascii():
        raise Problem(415, "Content-Type must be a media type, in ASCII")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refused as soon as it grows past `limit` (a chunked upload states none)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # Nobody reads the answer, but the access line says what happened.
            raise Problem(400, "the client closed the connection before the whole body arrived")
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that yields `body` once, then whatever the client sends next."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
