"""What a request nobody signed costs the server: `uv run python -m bench.hostile`.

Issue #21's targets, measured over real sockets against `backoffice serve` with production
settings (one worker, pinned to the first core; this client on the second): the server
process's own CPU time (utime + stime from /proc) per request, for

- each spec document (target: at most 1 ms), `/metrics`, the `/docs` page and a liveness probe;
- a bogus version 1 or version 2 signature on a POST, with bodies of 0 B to 1 MiB (target:
  refused in at most 0.3 ms whatever the body);
- a 1 MiB body sent to what takes none (a probe, a preflight), or to a create in one-byte
  chunks, or announced and never sent: what it costs, and whether the answer waited for it.

`--tree PATH` measures another checkout's `backoffice` (its own `.venv`), for a before/after
in one sitting: `git worktree add ../before <rev> && (cd ../before && uv sync)`.
"""

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
from sqlalchemy import URL

import signing
from bench.dataset import bench_url, plain_dsn
from bench.run import cpus
from settings import ROOT

MIB = 1 << 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTUP_SECONDS = 60


@dataclass(frozen=True)
class Case:
    name: str
    requests: Callable[[], Iterator[bytes]]
    count: int
    target_ms: float | None = None


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    fields = {"Host": "bench", **headers}
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _bogus_v1(body: bytes) -> dict[str, str]:
    return {"x-timestamp": str(signing.now_ms()), "x-signature": secrets.token_hex(32)}


def _bogus_v2(body: bytes, key: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    signed = signing.signed_headers("POST", "/api/teams", body, key, 2, headers=headers)
    forged = base64.b64encode(secrets.token_bytes(32)).decode()
    return signed | {"Signature": f"sig1=:{forged}:"}


def _chunked(body: bytes, size: int) -> bytes:
    pieces = [b"%x\r\n%s\r\n" % (size, body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(pieces) + b"0\r\n\r\n"


def cases(key: str) -> list[Case]:
    def repeat(request: Callable[[], bytes]) -> Callable[[], Iterator[bytes]]:
        def requests() -> Iterator[bytes]:
            while True:
                yield request()

        return requests

    found = [
        Case("GET /openapi.json", repeat(lambda: _head("GET", "/openapi.json", {})), 1000, 1.0),
        Case("GET /openapi.yaml", repeat(lambda: _head("GET", "/openapi.yaml", {})), 100, 1.0),
        Case("GET /metrics", repeat(lambda: _head("GET", "/metrics", {})), 300),
        Case("GET /docs/", repeat(lambda: _head("GET", "/docs/", {})), 1000),
        Case("GET /health/live", repeat(lambda: _head("GET", "/health/live", {})), 2000),
    ]
    for size in (0, 1024, 64 * 1024, MIB):
        body = b"x" * size
        length = {"Content-Type": "application/json", "Content-Length": str(size)}
        found.append(
            Case(
                f"bogus v1 signature, {size} B body",
                repeat(lambda b=body, h=length: _head("POST", "/api/teams", h | _bogus_v1(b)) + b),
                1000 if size < MIB else 100,
                0.3,
            )
        )
        found.append(
            Case(
                f"bogus v2 signature, {size} B body",
                repeat(
                    lambda b=body, h=length: _head("POST", "/api/teams", h | _bogus_v2(b, key)) + b
                ),
                1000 if size < MIB else 100,
                0.3,
            )
        )
    one_byte = _chunked(b"x" * MIB, 1)
    chunked = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    found += [
        Case(
            "1 MiB in 1-byte chunks to GET /health/live",
            repeat(lambda: _head("GET", "/health/live", chunked) + one_byte),
            5,
        ),
        Case(
            "1 MiB in 1-byte chunks to OPTIONS /api/heroes",
            repeat(lambda: _head("OPTIONS", "/api/heroes", chunked) + one_byte),
            5,
        ),
        Case(
            "1 MiB in 1-byte chunks to POST /api/teams (unsigned)",
            repeat(lambda: _head("POST", "/api/teams", chunked) + one_byte),
            5,
        ),
        Case(
            "1 MiB in 1-byte chunks to POST /api/teams (bogus v1)",
            repeat(lambda: _head("POST", "/api/teams", chunked | _bogus_v1(b"")) + one_byte),
            5,
        ),
        Case(
            "1 MiB body to GET /health/live",
            repeat(lambda: _head("GET", "/health/live", {"Content-Length": str(MIB)}) + b"x" * MIB),
            50,
        ),
    ]
    return found


async def _drop(url: URL) -> None:
    admin = await asyncpg.connect(plain_dsn(url.set(database="postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await admin.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Connection:
    """A keep-alive connection, as a client reuses one; opened again after the server closes
    it (as it does after refusing a body it did not read)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socket: socket.socket | None = None

    def exchange(self, request: bytes) -> tuple[str, float]:
        """Send one request and read its whole response: the status, and the seconds it took."""
        started = time.perf_counter()
        if self.socket is None:
            self.socket = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        connection = self.socket
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            connection.sendall(request)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n\r\n" not in received and (chunk := connection.recv(65_536)):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(fields.get("content-length", "0"))
        with contextlib.suppress(ConnectionResetError):
            while len(body) < length and (chunk := connection.recv(65_536)):
                body += chunk
        if fields.get("connection") == "close" or not received:
            connection.close()
            self.socket = None
        status = lines[0].partition(" ")[2] if received else "closed"
        return status, time.perf_counter() - started

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()


@contextlib.contextmanager
def served(tree: Path, key: str, dsn: str, cpu: int | None) -> Generator[tuple[int, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("APP_")} | {
        "APP_DB_URL": dsn,
        "APP_SECRET_KEY": key,
        "APP_SHUTDOWN_LAME_DUCK_SECONDS": "0",
    }
    command = [str(tree / ".venv" / "bin" / "backoffice"), "serve", "--port", str(port)]
    if cpu is not None:
        command = ["taskset", "--cpu-list", str(cpu), *command]
    server = subprocess.Popen(
        command, cwd=tree, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        probe = _head("GET", "/health/live", {"Connection": "close"})
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if Connection(port).exchange(probe)[0].startswith("200"):
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{tree}: the server did not answer in {STARTUP_SECONDS} s")
        yield server.pid, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def measure(tree: Path, key: str, dsn: str) -> list[dict[str, object]]:
    server_cpu, client_cpu = cpus()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    results: list[dict[str, object]] = []
    with served(tree, key, dsn, server_cpu) as (pid, port):
        for case in cases(key):
            requests = case.requests()
            connection = Connection(port)
            connection.exchange(next(requests))  # the first renders and caches what it needs
            before = _cpu_seconds(pid)
            statuses: set[str] = set()
            longest = 0.0
            reopened = 0
            for _ in range(case.count):
                reopened += connection.socket is None
                status, seconds = connection.exchange(next(requests))
                statuses.add(status)
                longest = max(longest, seconds)
            connection.close()
            time.sleep(0.2)  # the server finishes what it read after answering
            per_request = (_cpu_seconds(pid) - before) / case.count * 1000
            results.append(
                {
                    "case": case.name,
                    "cpu_ms": round(per_request, 3),
                    "target_ms": case.target_ms,
                    "answers": sorted(statuses),
                    "new_connections": reopened,
                    "slowest_s": round(longest, 3),
                }
            )
            print(f"  {case.name}: {per_request:.3f} ms CPU, {sorted(statuses)}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="What a request nobody signed costs the server.")
    parser.add_argument("--tree", type=Path, action="append", help="a checkout (default: this)")
    args = parser.parse_args()
    trees: list[Path] = args.tree or [ROOT]
    key = secrets.token_urlsafe(48)
    report: dict[str, list[dict[str, object]]] = {}
    for tree in trees:
        print(f"{tree}:", file=sys.stderr)
        # An empty database of its own: each tree's `serve` builds it with its own migrations.
        url = bench_url()
        url = url.set(database=f"{url.database}_hostile")
        asyncio.run(_drop(url))
        report[str(tree)] = measure(tree.resolve(), key, plain_dsn(url))
    names = [str(tree) for tree in trees]
    print(
        "| case | "
        + " | ".join(f"CPU ms ({Path(n).resolve().name})" for n in names)
        + " | target |"
    )
    print("|---|" + "---:|" * len(names) + "---:|")
    for index, row in enumerate(report[names[0]]):
        cells = [
            f"{report[name][index]['cpu_ms']} {report[name][index]['answers']}" for name in names
        ]
        target = row["target_ms"]
        print(f"| {row['case']} | " + " | ".join(cells) + f" | {target if target else ''} |")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (results / f"hostile-{stamp}.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2)
    )


if __name__ == "__main__":
    main()
