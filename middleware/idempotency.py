"""Safe retries of POST with an `Idempotency-Key` (the IETF httpapi draft, as Stripe does it).

A POST that carries a key runs in one transaction owned here. The key is locked first, so that
a concurrent request with the same key gets 409 at once instead of doing the work twice. A key
seen before replays its stored response (422 if the payload differs). Otherwise the handler
runs, joining this transaction (`persistence.database.joining`), and its response is stored in the
same transaction as the rows it wrote: a record exists if and only if its write committed. A
failed request (an error, a crash, a lost database) leaves nothing behind and may be retried.
"""

import hashlib
from datetime import UTC, datetime, timedelta

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.problems import Problem
from contract.routes import ROUTE
from middleware.request_body import read_body, replaying
from persistence import idempotency
from persistence.database import joining, transaction
from persistence.idempotency import StoredResponse
from settings import Settings

REPLAYED_HEADER = "idempotent-replayed"
# How long a client should wait before retrying while the first request is still in flight.
IN_FLIGHT_RETRY_AFTER_SECONDS = 1


class KeyInFlight(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "a request with this Idempotency-Key is still in progress; retry after Retry-After",
            field="Idempotency-Key",
            headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
        )


class KeyReused(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "this Idempotency-Key was used with a different request payload",
            field="Idempotency-Key",
        )


class _Superseded(Exception):
    """Another request with the same key committed first (possible only without the lock)."""


def _fingerprint(method: str, path: str, body: bytes) -> bytes:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).digest()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
        # The signature middleware has already bounded the body; the same limit holds here.
        self.max_body_bytes = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = Headers(scope=scope).get("idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST" or scope.get(ROUTE) is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, self.max_body_bytes)
        request = _Request(scope, body, receive, idempotency.Scope(key, "POST", scope["path"]))
        try:
            response = await self._respond(request)
        except _Superseded:
            # The winner has committed, so this second pass finds and replays its response.
            response = await self._respond(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in response.headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _respond(self, request: "_Request") -> StoredResponse:
        async with transaction(request.scope) as conn:
            if not await idempotency.try_lock(conn=conn, scope=request.key):
                raise KeyInFlight
            now = datetime.now(UTC)
            stored = await idempotency.find_response(conn=conn, scope=request.key, now=now)
            if stored is not None:
                if stored.fingerprint != request.fingerprint:
                    raise KeyReused
                return StoredResponse(
                    stored.fingerprint,
                    stored.status,
                    [*stored.headers, [REPLAYED_HEADER, "true"]],
                    stored.body,
                )
            response = await request.run(self.app, joining(request.scope, conn))
            if not await idempotency.store_response(
                conn=conn, scope=request.key, response=response, now=now, expires_at=now + self.ttl
            ):
                raise _Superseded
            return response


class _Request:
    """A keyed request whose body is held, so that it can run (at most) once more."""

    def __init__(self, scope: Scope, body: bytes, receive: Receive, key: idempotency.Scope) -> None:
        self.scope = scope
        self.body = body
        self.receive = receive
        self.key = key
        self.fingerprint = _fingerprint(key.method, key.path, body)

    async def run(self, app: ASGIApp, scope: Scope) -> StoredResponse:
        """Run the app and hold its whole response, so it is sent only after the commit."""
        status = 500
        headers: list[list[str]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    [name.decode("latin-1"), value.decode("latin-1")]
                    for name, value in message["headers"]
                ]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, replaying(self.body, self.receive), capture)
        return StoredResponse(self.fingerprint, status, headers, b"".join(chunks))
