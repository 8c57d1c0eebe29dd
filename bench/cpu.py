"""CPU per request, in process: `uv run python -m bench.cpu get list_first create`.

The wrk runs of `bench.run` share two cores between the load generator, PostgreSQL and the
server, so their requests/s move by 10-20% between runs. This drives the ASGI apps of the
service, the FastAPI peer, the floor and the ceiling directly, with no network and no HTTP
parsing, and reports the server's own CPU time per request (`time.process_time`), which repeats
within a few percent on a quiet machine: the number to compare when changing the stack.
`--profile` prints where that time goes (cProfile).

Each app runs in a process of its own (the service's start-up configures logging and freezes
the garbage collector, which would otherwise carry over), with the service at its production
log level: its access lines go to /dev/null, as in `bench.run`.
"""

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import pstats
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, TextIO, cast

import orjson
from pydantic import SecretStr

import signing
from app import create_app
from bench import ceiling, floor, peer
from bench.dataset import bench_url, create_database, load_heroes, plain_dsn
from bench.run import WINDOW_MS, _environment
from settings import Settings

type ASGI = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]
type Request = tuple[str, str, bytes]

SCENARIOS = ("list_first", "list_team_first", "get", "create", "patch")
TARGETS = ("service", "peer", "floor", "ceiling")


def _requests(scenario: str, count: int, heroes: int) -> list[Request]:
    if scenario == "list_first":
        return [("GET", "/api/heroes?limit=50", b"")] * count
    if scenario == "list_team_first":
        return [("GET", "/api/heroes?limit=50&team_id=3", b"")] * count
    if scenario == "get":
        return [("GET", f"/api/heroes/{1 + n % heroes}", b"") for n in range(count)]
    if scenario == "create":
        return [
            ("POST", "/api/heroes", orjson.dumps({"name": f"Bench {n}", "secret_name": "S"}))
            for n in range(count)
        ]
    return [
        ("PATCH", f"/api/heroes/{1 + n % heroes}", orjson.dumps({"name": f"P {n}", "age": 30}))
        for n in range(count)
    ]


class Driver:
    """Calls an ASGI app as uvicorn would, signing each request at the moment it is sent."""

    def __init__(self, app: ASGI, key: bytes, version: signing.Version = 1) -> None:
        self.app = app
        self.key = key
        self.version: signing.Version = version
        self.statuses: dict[int, int] = {}
        self.lifespan_events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lifespan_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        started = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, Any]:
            return await self.lifespan_events.get()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set_result(None)
            elif message["type"] == "lifespan.startup.failed":
                started.set_exception(RuntimeError(message.get("message")))

        self.state: dict[str, Any] = {}
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self.lifespan_task = asyncio.create_task(self.app(scope, receive, send))
        await self.lifespan_events.put({"type": "lifespan.startup"})
        await started

    async def stop(self) -> None:
        await self.lifespan_events.put({"type": "lifespan.shutdown"})
        assert self.lifespan_task is not None
        await self.lifespan_task

    def sign(self, method: str, target: str, body: bytes) -> list[tuple[bytes, bytes]]:
        """The request's headers, signed now (version 2 covers its Content-Type)."""
        media = "application/merge-patch+json" if method == "PATCH" else "application/json"
        content = {"content-type": media} if body else {}
        headers = content | signing.signed_headers(
            method, target, body, self.key, self.version, headers=content
        )
        raw_headers: list[tuple[bytes, bytes]] = [(b"host", b"127.0.0.1")]
        raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        if body:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        return raw_headers

    async def call(
        self, method: str, target: str, body: bytes, raw_headers: list[tuple[bytes, bytes]]
    ) -> None:
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": dict(self.state),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] = self.statuses.get(message["status"], 0) + 1

        await self.app(scope, receive, send)

    def signed(self, requests: list[Request]) -> list[tuple[str, str, bytes, Any]]:
        """Signed before the clock starts: what is measured is the server's work, not the
        client's (a run lasts far less than the signature window)."""
        return [(m, t, b, self.sign(m, t, b)) for m, t, b in requests]

    async def run(self, requests: list[tuple[str, str, bytes, Any]], concurrency: int) -> None:
        pending = iter(requests)

        async def worker() -> None:
            for method, target, body, headers in pending:
                await self.call(method, target, body, headers)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _app(target: str, settings: Settings) -> ASGI:
    if target == "service":
        return cast(ASGI, create_app(settings))
    return cast(ASGI, {"peer": peer, "floor": floor, "ceiling": ceiling}[target].create_app())


def _settings(key: str, dsn: str) -> Settings:
    """The service's production settings, as `bench.run` starts it."""
    return Settings(
        db_url=dsn,
        secret_key=SecretStr(key),
        debug=False,
        validate_responses=False,
        timestamp_signing_threshold=WINDOW_MS,
    )


def _in_own_process(target: str, args: argparse.Namespace, key: str, dsn: str) -> None:
    """Measure `target`, printing to the console while the app's own stdout goes to /dev/null."""
    report = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    asyncio.run(_measure(target, args, key, _settings(key, dsn), report))


async def _measure(
    target: str, args: argparse.Namespace, key: str, settings: Settings, report: TextIO
) -> None:
    driver = Driver(_app(target, settings), key.encode(), args.signature_version)
    await driver.start()
    try:
        for scenario in args.scenarios:
            warmup = driver.signed(_requests(scenario, args.warmup, args.heroes))
            await driver.run(warmup, args.concurrency)
            driver.statuses.clear()
            requests = driver.signed(_requests(scenario, args.requests, args.heroes))
            profiler = cProfile.Profile() if args.profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            await driver.run(requests, args.concurrency)
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            per_request = cpu / len(requests) * 1e6
            print(
                f"{target:8} v{driver.version} {scenario:16} {per_request:7.0f} us CPU/request  "
                f"{len(requests) / wall:6.0f} req/s in process  statuses {driver.statuses}",
                file=report,
            )
            if profiler:
                stats = pstats.Stats(profiler, stream=report)
                stats.sort_stats(args.profile).print_stats(args.top)
    finally:
        await driver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU time per request, in process.")
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--heroes", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--targets", default=",".join(TARGETS), help="any of " + ",".join(TARGETS))
    parser.add_argument("--profile", choices=("tottime", "cumulative"), help="cProfile sort key")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--signature-version",
        type=int,
        choices=signing.VERSIONS,
        default=1,
        help="sign with version 1 or 2 (the peer, the floor and the ceiling verify version 1 only)",
    )
    parser.add_argument("--no-load", action="store_true", help="reuse the loaded database")
    args = parser.parse_args()
    url = bench_url()
    key = secrets.token_urlsafe(48)
    dsn = plain_dsn(url)
    os.environ.update(_environment(key, dsn))
    if not args.no_load:
        create_database(url, _settings(key, dsn))
        load_heroes(url, args.heroes)
    spawn = multiprocessing.get_context("spawn")
    for target in args.targets.split(","):
        child = spawn.Process(target=_in_own_process, args=(target, args, key, dsn))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"{target} failed (exit code {child.exitcode})")


if __name__ == "__main__":
    main()
