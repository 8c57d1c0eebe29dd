"""What the HTTP server accepts from a client, over real sockets to `backoffice serve`.

Oversized or endless headers, bodies in a thousand pieces, a flood of connections and bodies
nobody asked for are refused cheaply, in problem+json, and the connection is closed; the
server goes on serving everyone else. Forwarded headers are believed only from named proxies.
"""

import contextlib
import json
import socket
import time
from collections.abc import Generator, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

import signing
from contract.problems import TYPES
from settings import Settings
from tests.backoffice_process import BackofficeServer, signed_server_environment
from tests.conftest import TEST_KEY

HEADER_TIMEOUT = 2
READ_TIMEOUT = 20


def _database(settings: Settings) -> str:
    return settings.database_url.render_as_string(hide_password=False)


@contextlib.contextmanager
def _server(settings: Settings, log: Path, **environment: str) -> Generator[BackofficeServer]:
    variables = signed_server_environment(
        _database(settings),
        TEST_KEY,
        APP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        APP_LOG_LEVEL="INFO",
        **environment,
    )
    with BackofficeServer(variables, log) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    backend_settings: dict[str, Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackofficeServer]:
    log = tmp_path_factory.mktemp("limits") / "server.log"
    with _server(backend_settings["postgresql"], log) as running:
        yield running


class Answer:
    """What came back on a raw connection: a response, or nothing (`closed`)."""

    def __init__(self, raw: bytes, error: OSError | None) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if raw.startswith(b"HTTP/1.1 ") else None
        self.headers = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        self.error = error

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json"
        body: dict[str, Any] = json.loads(self.body)
        body.pop("request_id", None)
        return body


def problem(status: int, detail: str) -> dict[str, Any]:
    return {
        "type": TYPES[status],
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }


def connect(server: BackofficeServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT)


def exchange(server: BackofficeServer, *pieces: bytes, pause: float = 0.0) -> Answer:
    """Send `pieces` (pausing between them), then read until the server closes."""
    received = b""
    error: OSError | None = None
    with connect(server) as connection:
        try:
            for piece in pieces:
                connection.sendall(piece)
                time.sleep(pause)
            while chunk := connection.recv(65_536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError) as reset:
            error = reset
    return Answer(received, error)


def still_serves(server: BackofficeServer) -> None:
    assert httpx.get(f"{server.url}/health/live", timeout=READ_TIMEOUT).status_code == 200


def test_one_header_of_8_mib_gets_431_or_a_closed_connection(server: BackofficeServer) -> None:
    answer = exchange(
        server, b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8 * 2**20 + b"\r\n\r\n"
    )

    if answer.status is None:
        assert answer.error is not None  # refused while the client was still sending
    else:
        assert answer.status == 431
        assert answer.problem() == problem(
            431, "the request's header fields are larger than 32768 bytes"
        )
        assert answer.headers["connection"] == "close"
    still_serves(server)


def test_twenty_thousand_headers_get_431(server: BackofficeServer) -> None:
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(20_000))

    answer = exchange(server, b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")

    if answer.status is None:
        assert answer.error is not None
    else:
        assert answer.problem() == problem(431, "the request has more than 100 header fields")
    still_serves(server)


def test_a_request_line_over_8_kib_gets_414(server: BackofficeServer) -> None:
    answer = exchange(server, b"GET /health/live?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    assert answer.problem() == problem(414, "the request target is longer than 8192")
    assert answer.headers["connection"] == "close"


def test_headers_trickled_past_the_timeout_get_408_and_a_closed_connection(
    server: BackofficeServer,
) -> None:
    started = time.monotonic()

    answer = exchange(server, b"GET /health/live HTTP/1.1\r\n", b"X-Slow: 1\r\n", pause=0.5)

    assert answer.problem() == problem(
        408, f"the request's header fields did not arrive within {HEADER_TIMEOUT} s"
    )
    assert HEADER_TIMEOUT <= time.monotonic() - started < READ_TIMEOUT


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    server: BackofficeServer,
) -> None:
    answer = exchange(server)

    assert answer.status is None
    assert answer.body == b""


def test_four_hundred_trickling_connections_are_closed_and_others_are_served(
    server: BackofficeServer,
) -> None:
    trickling = [connect(server) for _ in range(400)]
    try:
        for connection in trickling:
            connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")

        still_serves(server)
        time.sleep(HEADER_TIMEOUT + 1)

        for connection in trickling:
            with contextlib.suppress(ConnectionResetError):
                received = b""
                while chunk := connection.recv(65_536):
                    received += chunk
                assert received.startswith(b"HTTP/1.1 408 ")
    finally:
        for connection in trickling:
            connection.close()


def test_a_body_in_more_than_1024_chunks_is_refused_with_400(server: BackofficeServer) -> None:
    chunks = b"1\r\nx\r\n" * 5000 + b"0\r\n\r\n"
    head = b"POST /api/teams HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    signed = signing.signed_headers("POST", "/api/teams", b"x" * 5000, TEST_KEY, 1)
    head += b"".join(f"{k}: {v}\r\n".encode() for k, v in signed.items())

    answer = exchange(server, head + b"Content-Type: application/json\r\n\r\n" + chunks)

    assert answer.problem() == problem(
        400,
        "the request body came in more than 1024 chunks: send it with Content-Length, or in "
        "larger chunks",
    )
    still_serves(server)


def test_a_body_in_a_few_chunks_is_still_accepted(server: BackofficeServer) -> None:
    body = b'{"name":"Chunked twice","headquarters":"HQ"}'
    signed = signing.signed_headers("POST", "/api/teams", body, TEST_KEY, 1)

    response = httpx.post(
        f"{server.url}/api/teams",
        content=iter([body[:10], body[10:]]),
        headers={**signed, "Content-Type": "application/json"},
        timeout=READ_TIMEOUT,
    )

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code in (201, 409), response.text


def test_bytes_that_are_not_http_get_a_400_problem(server: BackofficeServer) -> None:
    answer = exchange(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")

    assert answer.problem() == problem(400, "the request is not valid HTTP/1.1")


# --- bodies nobody reads --------------------------------------------------------------------


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/health/live", 200), ("GET", "/metrics", 200), ("OPTIONS", "/api/heroes", 405)],
)
def test_a_body_announced_where_none_is_taken_is_never_waited_for(
    server: BackofficeServer, method: str, path: str, status: int
) -> None:
    """The body never comes: the answer does not wait for it, and the connection closes."""
    answer = exchange(server, _head(method, path, {"Content-Length": "1000"}))

    assert answer.status == status
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (1, problem(400, "GET /api/heroes takes no request body")),
        (
            2,
            problem(
                401, "a request with a body must carry Content-Digest, covered by the signature"
            )
            | {"field": "Content-Digest"},
        ),
    ],
)
def test_a_signed_get_announcing_a_body_is_refused_without_reading_it(
    server: BackofficeServer, version: signing.Version, expected: dict[str, Any]
) -> None:
    signed = signing.signed_headers("GET", "/api/heroes", b"", TEST_KEY, version)

    answer = exchange(server, _head("GET", "/api/heroes", {**signed, "Content-Length": "1000"}))

    assert answer.problem() == expected
    assert answer.headers["connection"] == "close"


def test_a_bogus_v2_signature_is_refused_before_its_body_arrives(
    server: BackofficeServer,
) -> None:
    body = b'{"name":"Never sent","headquarters":"HQ"}'
    signed = signing.signed_headers(
        "POST", "/api/teams", body, TEST_KEY, 2, headers={"Content-Type": "application/json"}
    )
    forged = signed | {"Signature": "sig1=:" + "A" * 43 + "=:"}
    headers = {**forged, "Content-Type": "application/json", "Content-Length": str(len(body))}

    answer = exchange(server, _head("POST", "/api/teams", headers))

    assert answer.problem() == problem(
        401, "Signature does not match this request (signature version 2)"
    ) | {"field": "Signature"}
    assert answer.headers["connection"] == "close"


# --- limits that need a server of their own -------------------------------------------------


def test_over_the_concurrency_limit_a_request_gets_503_with_retry_after(
    backend_settings: dict[str, Settings], tmp_path: Path
) -> None:
    with _server(
        backend_settings["postgresql"], tmp_path / "server.log", APP_LIMIT_CONCURRENCY="2"
    ) as limited:
        idle = [connect(limited) for _ in range(2)]
        try:
            answer = exchange(limited, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        finally:
            for connection in idle:
                connection.close()
        time.sleep(0.5)
        served = httpx.get(f"{limited.url}/health/live", timeout=READ_TIMEOUT)
        metrics = httpx.get(f"{limited.url}/metrics", timeout=READ_TIMEOUT).text

    assert answer.status == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.problem() == problem(
        503, "the server is at its limit of concurrent connections and requests; retry later"
    )
    assert served.status_code == 200
    assert 'operations_http_connection_refusals_total{reason="over_capacity"} 1.0' in metrics


@pytest.mark.parametrize(("trusted", "logged"), [(None, "127.0.0.1"), ("127.0.0.1", "203.0.113.9")])
def test_x_forwarded_for_is_believed_only_from_the_proxies_named(
    backend_settings: dict[str, Settings], tmp_path: Path, trusted: str | None, logged: str
) -> None:
    log = tmp_path / "server.log"
    extra = {"APP_FORWARDED_ALLOW_IPS": trusted} if trusted else {}
    with _server(backend_settings["postgresql"], log, **extra) as running:
        httpx.get(
            f"{running.url}/health/live",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "forwarded-check"},
            timeout=READ_TIMEOUT,
        )

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    (access,) = [line for line in lines if line.get("request_id") == "forwarded-check"]
    assert access["client"] == logged
