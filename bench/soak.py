"""A bounded soak: mixed signed traffic against a real `backoffice serve` on PostgreSQL.

    uv run python -m bench.soak --seconds 600

It starts the server on 127.0.0.1 with a fresh database, runs `--clients` concurrent clients for
`--seconds`, then checks what a long run can break: no 5xx at all, every acknowledged write in
the database exactly as acknowledged (compared with the clients' own log), no lost update on
contended rows, and a resident set size that stops growing after warm-up. Exit status 1 if any
check fails. It is not part of the test suite.
"""

import argparse
import asyncio
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

import signing
from settings import ROOT

SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "backoffice_soak"
CONTENDED_HEROES = 5
CREATE_ATTEMPTS = 3
RSS_SAMPLE_SECONDS = 2.0
# Memory is judged after warm-up (pools filled, caches built): the first fifth of the run.
WARM_UP_FRACTION = 0.2
# Growth allowed from the warmed-up median to the final median before memory counts as leaking.
RSS_GROWTH_LIMIT = 0.10


@dataclass
class Log:
    """What the clients were told: the truth the database is checked against afterwards."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    heroes: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    teams: set[int] = field(default_factory=set)
    contended: set[int] = field(default_factory=set)
    contended_wins: Counter[int] = field(default_factory=Counter)
    contended_last: dict[int, tuple[int, int]] = field(default_factory=dict)
    replays: int = 0


_last_timestamp = 0


def next_timestamp() -> int:
    """Distinct across all clients: two identical requests signed in the same millisecond would
    carry the same signature, and the server accepts each signature once (replay protection)."""
    global _last_timestamp
    _last_timestamp = max(_last_timestamp + 1, signing.now_ms())
    return _last_timestamp


class Client:
    def __init__(self, url: str, key: str, log: Log) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self.key = key
        self.log = log

    async def send(
        self, op: str, method: str, path: str, body: Any = None, **headers: str
    ) -> httpx.Response | None:
        content = b"" if body is None else orjson.dumps(body)
        stamp = next_timestamp()
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        all_headers |= {name.replace("_", "-"): value for name, value in headers.items()}
        all_headers |= signing.signed_headers(
            method, path, content, self.key, 2, stamp, headers=all_headers
        )
        try:
            response = await self.http.request(method, path, content=content, headers=all_headers)
        except httpx.TransportError as error:
            self.log.transport_errors[type(error).__name__] += 1
            return None
        self.log.statuses[(op, response.status_code)] += 1
        return response

    async def create(self, op: str, path: str, body: Any, key: str) -> httpx.Response | None:
        """POST with an Idempotency-Key, retried with the same key while the outcome is unknown
        (a dropped connection or a 5xx), as a careful client does: it can never create twice."""
        for _ in range(CREATE_ATTEMPTS):
            response = await self.send(op, "POST", path, body, Idempotency_Key=key)
            if response is not None and response.status_code < 500:
                return response
            await asyncio.sleep(1)
        return None


async def create_hero(client: Client, owned: list[int], team_ids: list[int]) -> None:
    hero = {
        "name": f"soak {uuid.uuid4().hex[:12]}",
        "secret_name": "unknown",
        "age": random.randint(0, 100),
        "team_id": random.choice(team_ids) if team_ids and random.random() < 0.5 else None,
    }
    key = str(uuid.uuid4())
    response = await client.create("create_hero", "/api/heroes", hero, key)
    if response is None or response.status_code != 201:
        return
    created = response.json()
    client.log.heroes[created["id"]] = created
    owned.append(created["id"])
    if random.random() < 0.2:
        replay = await client.send("replay", "POST", "/api/heroes", hero, Idempotency_Key=key)
        assert replay is None or replay.json()["id"] == created["id"], "a replay created anew"
        client.log.replays += replay is not None


async def update_hero(client: Client, owned: list[int]) -> None:
    hero_id = random.choice(owned)
    current = await client.send("get_hero", "GET", f"/api/heroes/{hero_id}")
    if current is None or current.status_code != 200:
        return
    response = await client.send(
        "update_hero",
        "PATCH",
        f"/api/heroes/{hero_id}",
        {"age": random.randint(0, 100)},
        If_Match=current.headers["etag"],
    )
    if response is not None and response.status_code == 200:
        client.log.heroes[hero_id] = response.json()


async def delete_hero(client: Client, owned: list[int]) -> None:
    hero_id = owned.pop(random.randrange(len(owned)))
    response = await client.send("delete_hero", "DELETE", f"/api/heroes/{hero_id}")
    if response is not None and response.status_code == 204:
        client.log.deleted.add(hero_id)
        client.log.heroes.pop(hero_id, None)
    else:
        owned.append(hero_id)


async def bump_contended(client: Client, contended: list[int]) -> None:
    """Read-modify-write with If-Match on rows every client shares: 412s, never a lost update."""
    hero_id = random.choice(contended)
    current = await client.send("get_contended", "GET", f"/api/heroes/{hero_id}")
    if current is None or current.status_code != 200:
        return
    age = current.json()["age"] + 1
    response = await client.send(
        "bump_contended",
        "PATCH",
        f"/api/heroes/{hero_id}",
        {"age": age},
        If_Match=current.headers["etag"],
    )
    if response is not None and response.status_code == 200:
        client.log.contended_wins[hero_id] += 1
        version = int(response.headers["etag"].strip('"'))
        if version > client.log.contended_last.get(hero_id, (0, 0))[0]:
            client.log.contended_last[hero_id] = (version, response.json()["age"])


async def browse(client: Client, team_ids: list[int]) -> None:
    if team_ids and random.random() < 0.3:
        await client.send("list_team_heroes", "GET", f"/api/teams/{random.choice(team_ids)}/heroes")
        return
    page = await client.send("list_heroes", "GET", "/api/heroes?limit=20")
    if page is not None and page.status_code == 200 and page.json()["next_cursor"]:
        cursor = page.json()["next_cursor"]
        await client.send("list_heroes", "GET", f"/api/heroes?limit=20&cursor={cursor}")


async def create_team(client: Client, team_ids: list[int]) -> None:
    team = {"name": f"team {uuid.uuid4().hex[:12]}", "headquarters": "Soak Tower"}
    response = await client.create("create_team", "/api/teams", team, str(uuid.uuid4()))
    if response is not None and response.status_code == 201:
        team_ids.append(response.json()["id"])
        client.log.teams.add(response.json()["id"])


async def run_client(
    client: Client, deadline: float, team_ids: list[int], contended: list[int]
) -> None:
    owned: list[int] = []
    while time.monotonic() < deadline:
        roll = random.random()
        if roll < 0.05:
            await create_team(client, team_ids)
        elif roll < 0.30 or len(owned) < 3:
            await create_hero(client, owned, team_ids)
        elif roll < 0.45:
            await update_hero(client, owned)
        elif roll < 0.52:
            await delete_hero(client, owned)
        elif roll < 0.67:
            await bump_contended(client, contended)
        else:
            await browse(client, team_ids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def server_pids(root: int) -> list[int]:
    """The server's processes: `timeout`'s child and its workers, if any."""
    found: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        children = Path(f"/proc/{pid}/task/{pid}/children")
        kids = [int(child) for child in children.read_text().split()] if children.exists() else []
        found += kids
        frontier += kids
    return found


async def sample_rss(root: int, deadline: float, samples: list[tuple[float, int]]) -> None:
    started = time.monotonic()
    while time.monotonic() < deadline:
        total = 0
        for pid in server_pids(root):
            try:
                total += rss_kib(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
        samples.append((time.monotonic() - started, total))
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


async def fresh_database(server_url: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    return server_url.rsplit("/", 1)[0] + f"/{DATABASE}"


def start_server(database_url: str, key: str, port: int, seconds: float, workers: int) -> Any:
    environment = {
        **os.environ,
        "APP_DB_URL": database_url,
        "APP_SECRET_KEY": key,
        "APP_DEBUG": "false",
        "APP_LOG_LEVEL": "WARNING",
    }
    log_path = ROOT / "var" / "soak-server.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("wb")
    backoffice = str(Path(sys.executable).parent / "backoffice")
    # `timeout` stops the server even if this script is killed.
    command = ["timeout", str(int(seconds) + 300), backoffice, "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited at start-up: see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not become ready in 90 s: see {log.name}")


async def check_database(database_url: str, log: Log) -> list[str]:
    """Every acknowledged write, as acknowledged; nothing acknowledged as deleted remains."""
    problems: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, name, age, team_id, version FROM heroes")
        teams = {row["id"] for row in await conn.fetch("SELECT id FROM teams")}
    finally:
        await conn.close()
    stored = {row["id"]: dict(row) for row in rows}
    for hero_id, acknowledged in log.heroes.items():
        row = stored.get(hero_id)
        if row is None:
            problems.append(f"hero {hero_id} was acknowledged but is missing")
            continue
        for column in ("name", "age", "team_id"):
            if row[column] != acknowledged[column]:
                stored_value, told = row[column], acknowledged[column]
                problems.append(f"hero {hero_id}: {column} is {stored_value!r}, not {told!r}")
    problems += [f"hero {hero_id} was deleted but remains" for hero_id in log.deleted & set(stored)]
    problems += [f"team {team_id} was acknowledged but is missing" for team_id in log.teams - teams]
    for hero_id in log.contended:
        row, wins = stored[hero_id], log.contended_wins[hero_id]
        if row["version"] != wins + 1:
            problems.append(
                f"contended hero {hero_id}: version {row['version']}, {wins} acknowledged updates"
            )
        if row["age"] != log.contended_last[hero_id][1]:
            problems.append(
                f"contended hero {hero_id}: age {row['age']} is not the last acknowledged"
            )
    unexpected = set(stored) - set(log.heroes) - log.deleted - log.contended
    problems += [f"hero {hero_id} exists but was never acknowledged" for hero_id in unexpected]
    return problems


def memory_verdict(samples: list[tuple[float, int]], seconds: float) -> tuple[dict[str, Any], bool]:
    warm = [rss for at, rss in samples if at >= seconds * WARM_UP_FRACTION]
    if len(warm) < 6:
        return {"samples": len(samples)}, False
    third = len(warm) // 3
    first, last = sorted(warm[:third]), sorted(warm[-third:])
    baseline, final = first[len(first) // 2], last[len(last) // 2]
    growth = (final - baseline) / baseline
    report = {
        "samples": len(samples),
        "rss_mib_after_warm_up": round(baseline / 1024, 1),
        "rss_mib_at_end": round(final / 1024, 1),
        "rss_mib_max": round(max(rss for _, rss in samples) / 1024, 1),
        "growth_kib": final - baseline,
        "growth_percent": round(growth * 100, 2),
    }
    return report, growth <= RSS_GROWTH_LIMIT


async def soak(arguments: argparse.Namespace) -> int:
    key = secrets.token_urlsafe(48)
    database_url = await fresh_database(arguments.server_url)
    port = free_port()
    process = start_server(database_url, key, port, arguments.seconds, arguments.workers)
    log = Log()
    samples: list[tuple[float, int]] = []
    url = f"http://127.0.0.1:{port}"
    try:
        setup = Client(url, key, log)
        contended = []
        for n in range(CONTENDED_HEROES):
            hero = {"name": f"contended {n}", "secret_name": "shared", "age": 0}
            response = await setup.send("setup", "POST", "/api/heroes", hero)
            if response is None or response.status_code != 201:
                raise SystemExit("could not create the contended heroes")
            contended.append(response.json()["id"])
            log.contended.add(contended[-1])
            log.contended_last[contended[-1]] = (1, 0)
        started = time.monotonic()
        deadline = started + arguments.seconds
        clients = [Client(url, key, log) for _ in range(arguments.clients)]
        team_ids: list[int] = []
        await asyncio.gather(
            sample_rss(process.pid, deadline, samples),
            *(run_client(client, deadline, team_ids, contended) for client in clients),
        )
        elapsed = time.monotonic() - started
        for client in [setup, *clients]:
            await client.http.aclose()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    problems = await check_database(database_url, log)
    memory, memory_stable = memory_verdict(samples, arguments.seconds)
    total = sum(log.statuses.values())
    by_status: Counter[int] = Counter()
    for (_, status), n in log.statuses.items():
        by_status[status] += n
    server_errors = {
        f"{op} {status}": n for (op, status), n in log.statuses.items() if status >= 500
    }
    # Every client error here is a bug: the traffic is valid, and only 412 is a fair refusal.
    client_errors = {
        f"{op} {status}": n
        for (op, status), n in log.statuses.items()
        if 400 <= status < 500 and status != 412
    }
    report = {
        "seconds": round(elapsed, 1),
        "clients": arguments.clients,
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "statuses": {str(status): n for status, n in sorted(by_status.items())},
        "by_operation": {f"{op} {status}": n for (op, status), n in sorted(log.statuses.items())},
        "server_errors": server_errors,
        "unexpected_client_errors": client_errors,
        "transport_errors": dict(log.transport_errors),
        "acknowledged_heroes": len(log.heroes),
        "acknowledged_deletes": len(log.deleted),
        "acknowledged_teams": len(log.teams),
        "idempotent_replays": log.replays,
        "contended_updates": sum(log.contended_wins.values()),
        "lost_or_wrong_writes": problems[:20],
        "memory": memory,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    passed = not (server_errors or client_errors or log.transport_errors or problems)
    passed = passed and memory_stable
    print("PASS" if passed else "FAIL: see the errors, lost_or_wrong_writes and memory above")
    return 0 if passed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description="A bounded soak of a real backoffice server.")
    parser.add_argument("--seconds", type=float, default=600, help="how long to soak")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("APP_SOAK_SERVER_URL", SERVER_URL),
        help=f"a PostgreSQL server; the soak (re)creates database {DATABASE} on it",
    )
    sys.exit(asyncio.run(soak(parser.parse_args())))


if __name__ == "__main__":
    main()
