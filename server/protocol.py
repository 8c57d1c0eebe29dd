"""How a connection is read: uvicorn's httptools protocol, with the limits it lacks.

uvicorn's httptools protocol (the fast one, `uvicorn[standard]`) accepts a request line and
headers of any size and number, waits forever for a client that sends its headers a byte at a
time (or nothing at all), and parses a body in one-byte chunks at the same cost per chunk as in
large ones; `h11_max_incomplete_event_size` applies to h11 only. This subclass refuses, before
the application is called and with an RFC 9457 problem like every other refusal:

- a request line over `MAX_URL_BYTES` (414) and a header section over `APP_MAX_HEADER_BYTES` or
  `MAX_HEADERS` fields (431), counted as the bytes arrive rather than once they are complete;
- headers not complete within `APP_HEADER_TIMEOUT_SECONDS` of the connection opening or of the
  request's first byte (408, or a plain close when nothing at all was sent);
- a body in more than `MAX_BODY_CHUNKS` chunks (400), which bounds the parsing a small body
  can cost;
- a request beyond `APP_LIMIT_CONCURRENCY` connections or requests in the worker (503 with
  `Retry-After`), where uvicorn's own limit answers in plain text;
- a request that is not HTTP at all (400), where uvicorn answers in plain text.

Each refusal closes the connection, is logged on one line and counted in
`http_connection_refusals_total`. The limits come from the application's lifespan state
(`LIMITS`), which the protocol receives as uvicorn's `app_state`.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from contract.problems import MEDIA_TYPE, RETRY_AFTER_SECONDS, Problem, document

logger = logging.getLogger(__name__)

# Where the application's lifespan state holds the `Limits` (uvicorn hands it to each protocol).
LIMITS = "server_limits"
# Browsers cap a URL near 2 MB, but no URL of this API is longer than a few hundred bytes.
MAX_URL_BYTES = 8192
# A browser sends about 20; proxies and gateways add a handful.
MAX_HEADERS = 100
# A JSON body sent by any client of ours comes in one piece or a few large chunks; 1 MiB in
# 1-byte chunks cost 195 ms of parsing.
MAX_BODY_CHUNKS = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 32_768
    header_timeout_seconds: float = 10.0
    limit_concurrency: int = 1000


class Refused(Exception):
    """Raised in a parser callback: parsing stops, and `problem` is the answer."""

    def __init__(self, reason: str, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.reason = reason
        self.problem = problem


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: Limits = app_state.get(LIMITS) or Limits()
        # Ours replaces uvicorn's, which answers in plain text.
        self.limit_concurrency = None
        self.served_app = self.app
        self.head_timer: asyncio.TimerHandle | None = None
        self.in_head = True
        self.head_bytes = 0
        self.url_bytes = 0
        self.header_count = 0
        self.chunks = 0

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with refusals of our own; and the header section counted as it arrives."""
        self._unset_keepalive_if_required()
        if self.in_head:
            self.head_bytes += len(data)
        parser: httptools.HttpRequestParser | None = self.parser
        if parser is None:  # the connection is already lost
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            refused = error.__context__
            if isinstance(refused, Refused):
                self._refuse(refused.reason, refused.problem)
            else:
                self.send_400_response("the request is not valid HTTP/1.1")
            return
        # Still in the head after all of it: every byte counted belongs to the head.
        if self.in_head and self.head_bytes > self.limits.max_header_bytes:
            self._refuse("header_too_large", self._headers_too_large())

    def send_400_response(self, msg: str) -> None:
        self._refuse("invalid_http", Problem(400, msg))

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.url_bytes = self.header_count = self.chunks = 0
        if self.head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self.url_bytes += len(url)
        if self.url_bytes > MAX_URL_BYTES:
            raise Refused(
                "url_too_long", Problem(414, f"the request target is longer than {MAX_URL_BYTES}")
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > MAX_HEADERS:
            raise Refused(
                "too_many_headers",
                Problem(431, f"the request has more than {MAX_HEADERS} header fields"),
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self._disarm_head_timer()
        limit = self.limits.limit_concurrency
        if len(self.connections) > limit or len(self.tasks) >= limit:
            logger.warning(
                "refused a request (over_capacity): %d connections, %d requests",
                len(self.connections),
                len(self.tasks),
            )
            self._count("over_capacity")
            self.app = _over_capacity
        try:
            super().on_headers_complete()
        finally:
            self.app = self.served_app

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on this connection is the next request's head.
        self.in_head = True
        self.head_bytes = 0

    def on_chunk_header(self) -> None:
        self.chunks += 1
        if self.chunks > MAX_BODY_CHUNKS:
            raise Refused(
                "too_many_chunks",
                Problem(
                    400,
                    f"the request body came in more than {MAX_BODY_CHUNKS} chunks: send it "
                    "with Content-Length, or in larger chunks",
                ),
            )

    # --- refusals ---------------------------------------------------------------------------

    def _headers_too_large(self) -> Problem:
        return Problem(
            431, f"the request's header fields are larger than {self.limits.max_header_bytes} bytes"
        )

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self.head_timer = self.loop.call_later(
            self.limits.header_timeout_seconds, self._head_timed_out
        )

    def _disarm_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        started = self.parser is not None and (self.url_bytes or self.head_bytes)
        if not started:
            # Nothing was asked (a preconnect, an idle client): nothing to answer.
            self._count("header_timeout")
            self.transport.close()
            return
        seconds = self.limits.header_timeout_seconds
        self._refuse(
            "header_timeout",
            Problem(408, f"the request's header fields did not arrive within {seconds:g} s"),
        )

    def _refuse(self, reason: str, problem: Problem) -> None:
        """Answer `problem` unless a response has begun, close, and end the request's cycle."""
        self._disarm_head_timer()
        # None until the first request's headers are complete (uvicorn types it otherwise).
        cycle = cast(RequestResponseCycle | None, self.cycle)
        if not self.transport.is_closing() and (cycle is None or not cycle.response_started):
            self.transport.write(_response(problem))
        self.transport.close()
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        logger.warning("refused a request from %s (%s): %s", client, reason, problem.detail)
        self._count(reason)

    def _count(self, reason: str) -> None:
        metrics = self.app_state.get("metrics")
        if metrics is not None:
            metrics.count_connection_refusal(reason)


def _response(problem: Problem) -> bytes:
    body = document(problem, {})
    head = [
        f"HTTP/1.1 {problem.status} {problem.title}",
        f"content-type: {MEDIA_TYPE}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in (problem.headers or {}).items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    problem = Problem(
        503,
        "the server is at its limit of concurrent connections and requests; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
    body = document(problem, {})
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
