"""A local scale-out rig: replicas of `backoffice serve` behind HAProxy, PgBouncer in front of
PostgreSQL, all on 127.0.0.1 and free ports, every process bounded in time.

    uv run python -m bench.scaleout                  # serve until Ctrl-C (or --seconds)
    uv run python -m bench.scaleout --measure 10     # wrk through HAProxy with 1, 2, 3 replicas

HAProxy checks `/health/ready` every 300 ms and PgBouncer pools in transaction mode; the
replicas run with `APP_DB_PGBOUNCER=true`. Everything started is stopped on exit, Ctrl-C
included. Needs Debian's `haproxy` and `pgbouncer`.
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import URL, make_url

from settings import ROOT

BACKOFFICE = str(Path(sys.executable).parent / "backoffice")
LIFETIME_SECONDS = 900
# Generous: five engineers share two cores here, and a replica can take a minute to import.
STARTUP_SECONDS = 240
# HAProxy marks a replica down after two failed checks, 0.6 s apart when the machine is idle;
# a check answers slower on a busy one, so the lame duck leaves room for several.
CHECK_INTERVAL_MS = 300
LAME_DUCK_SECONDS = 3.0
INSTALL_HINT = "apt-get update && apt-get install -y haproxy pgbouncer (Debian packages)"
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
# Below the replicas' pools (5 each): a saturated replica's readiness check times out.
CONNECTIONS = 8


def missing_programs() -> list[str]:
    return [name for name in ("haproxy", "pgbouncer") if shutil.which(name) is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited at start-up:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {STARTUP_SECONDS} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes] | None, seconds: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Replica:
    """One `backoffice serve` (one worker) on its own port."""

    def __init__(self, number: int, environment: dict[str, str], log: Path) -> None:
        self.number = number
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.environment = environment
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.spawn()
        self.wait_until_ready()

    def spawn(self) -> None:
        command = [
            *("timeout", str(LIFETIME_SECONDS), BACKOFFICE, "serve"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
        ]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.environment, stdout=output, stderr=subprocess.STDOUT
            )

    def wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.number} exited:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"replica {self.number} not ready:\n{self.log.read_text()}")

    def stop(self) -> int | None:
        """SIGTERM, as an orchestrator sends it; waits for the lame duck and the drain."""
        _stop(self.process)
        return None if self.process is None else self.process.returncode


class Rig:
    """PgBouncer (transaction pooling) → PostgreSQL, replicas → PgBouncer, HAProxy → replicas.

    `upstream` is the PostgreSQL database the rig uses; it is migrated once, directly, before
    any replica starts (as a Kubernetes Job or compose's `migrate` service does).
    """

    def __init__(
        self,
        upstream: URL | str,
        key: str,
        *,
        replicas: int = 3,
        pgbouncer: bool = True,
        environment: dict[str, str] | None = None,
    ) -> None:
        if missing := missing_programs():
            raise RuntimeError(f"{', '.join(missing)} not found: install with {INSTALL_HINT}")
        self.upstream = make_url(upstream).set(drivername="postgresql")
        self.key = key
        self.use_pgbouncer = pgbouncer
        self.directory = Path(tempfile.mkdtemp(prefix="backoffice-rig-"))
        if AS_POSTGRES:
            shutil.chown(self.directory, "postgres", "postgres")
        self.pgbouncer_port = free_port()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.pgbouncer: subprocess.Popen[bytes] | None = None
        database = (
            self.upstream.set(host="127.0.0.1", port=self.pgbouncer_port)
            if pgbouncer
            else self.upstream
        )
        self.environment = {
            **os.environ,
            "APP_DB_URL": database.render_as_string(hide_password=False),
            "APP_DB_PGBOUNCER": "true" if pgbouncer else "false",
            "APP_SECRET_KEY": key,
            "APP_DEBUG": "false",
            "APP_LOG_LEVEL": "WARNING",
            "APP_DB_POOL_SIZE": "5",
            "APP_FORWARDED_ALLOW_IPS": "127.0.0.1",
            "APP_SHUTDOWN_LAME_DUCK_SECONDS": str(LAME_DUCK_SECONDS),
            **(environment or {}),
        }
        self.replicas = [
            Replica(n, self.environment, self.directory / f"replica-{n}.log")
            for n in range(1, replicas + 1)
        ]

    # --- PgBouncer --------------------------------------------------------------------------
    def _pgbouncer_config(self) -> Path:
        upstream = self.upstream
        users = self.directory / "userlist.txt"
        users.write_text(f'"{upstream.username}" "{upstream.password or ""}"\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={upstream.host or '127.0.0.1'} port={upstream.port or 5432}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.pgbouncer_port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {users}",
                    "pool_mode = transaction",
                    "max_client_conn = 500",
                    "default_pool_size = 10",
                    # asyncpg sends it in every startup packet; PgBouncer may ignore it.
                    "ignore_startup_parameters = extra_float_digits",
                    # While PostgreSQL restarts, clients wait in PgBouncer instead of failing.
                    "server_login_retry = 1",
                    "query_wait_timeout = 5",
                    f"logfile = {self.directory / 'pgbouncer.log'}",
                    "",
                ]
            )
        )
        for path in (users, config):
            if AS_POSTGRES:
                shutil.chown(path, "postgres", "postgres")
        return config

    def start_pgbouncer(self) -> None:
        config = self._pgbouncer_config()
        log = self.directory / "pgbouncer.out"
        with log.open("ab") as output:
            # PgBouncer refuses to run as root.
            self.pgbouncer = subprocess.Popen(
                [*AS_POSTGRES, "timeout", str(LIFETIME_SECONDS), "pgbouncer", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        _wait_for_port(self.pgbouncer_port, self.pgbouncer, log)

    # --- HAProxy ----------------------------------------------------------------------------
    def _haproxy_config(self) -> Path:
        servers = [
            f"    server replica-{r.number} 127.0.0.1:{r.port} check"
            f" inter {CHECK_INTERVAL_MS} fall 2 rise 2"
            for r in self.replicas
        ]
        # With no replica ready, HAProxy's own 503 says when to retry, as the service's do.
        unavailable = self.directory / "503.http"
        problem = (
            b'{"type":"about:blank","title":"Service Unavailable","status":503,'
            b'"detail":"no replica is ready, retry later"}'
        )
        unavailable.write_bytes(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
            b"Retry-After: 1\r\nCache-Control: no-cache\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(problem), problem)
        )
        config = self.directory / "haproxy.cfg"
        config.write_text(
            "\n".join(
                [
                    "global",
                    "    maxconn 2000",
                    "defaults",
                    "    mode http",
                    "    timeout connect 2s",
                    "    timeout client 30s",
                    "    timeout server 30s",
                    # What only a proxy does well: a client gets 10 s for its whole request
                    # head and 5 s idle between keep-alive requests, and a slow one holds no
                    # replica's connection meanwhile (the replicas bound it too).
                    "    timeout http-request 10s",
                    "    timeout http-keep-alive 5s",
                    # The replicas believe X-Forwarded-For from this proxy alone
                    # (APP_FORWARDED_ALLOW_IPS), so the client it names is the one HAProxy saw.
                    "    option forwardfor",
                    # Without it a check times out after `inter` (300 ms): on a busy machine
                    # every replica was marked down now and then, though each was ready.
                    "    timeout check 3s",
                    # A connection refused before the request went out is tried elsewhere;
                    # a request once sent is never replayed (a POST may not be).
                    "    retries 3",
                    "    option redispatch",
                    "    retry-on conn-failure",
                    f"    errorfile 503 {unavailable}",
                    "frontend api",
                    f"    bind 127.0.0.1:{self.port}",
                    "    default_backend replicas",
                    "backend replicas",
                    "    balance roundrobin",
                    "    option httpchk GET /health/ready",
                    "    http-check expect status 200",
                    *servers,
                    "",
                ]
            )
        )
        return config

    def start_haproxy(self) -> None:
        log = self.directory / "haproxy.log"
        with log.open("ab") as output:
            self.haproxy = subprocess.Popen(
                [
                    "timeout",
                    str(LIFETIME_SECONDS),
                    "haproxy",
                    "-db",
                    "-f",
                    str(self._haproxy_config()),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        _wait_for_port(self.port, self.haproxy, log)

    def wait_until_balanced(self, replicas: int | None = None, seconds: float = 30) -> None:
        """Until HAProxy sends requests to `replicas` (all by default) replicas."""
        wanted = len(self.replicas) if replicas is None else replicas
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.servers_up() >= wanted:
                return
            time.sleep(0.1)
        raise RuntimeError(f"HAProxy did not see {wanted} replicas up in {seconds} s")

    def servers_up(self) -> int:
        """How many replicas answer readiness now (what HAProxy's checks see)."""
        up = 0
        for replica in self.replicas:
            with contextlib.suppress(httpx.TransportError):
                up += httpx.get(f"{replica.url}/health/ready", timeout=1).status_code == 200
        return up

    # --- the whole rig ----------------------------------------------------------------------
    def migrate(self) -> None:
        environment = self.environment | {
            "APP_DB_URL": self.upstream.render_as_string(hide_password=False),
            "APP_DB_PGBOUNCER": "false",
        }
        subprocess.run(
            [BACKOFFICE, "migrate", "upgrade"],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
            timeout=STARTUP_SECONDS,
        )

    def start(self) -> "Rig":
        try:
            if self.use_pgbouncer:
                self.start_pgbouncer()
            self.migrate()
            # Side by side: each takes seconds to import on a busy machine.
            for replica in self.replicas:
                replica.spawn()
            for replica in self.replicas:
                replica.wait_until_ready()
            self.start_haproxy()
            # HAProxy starts every server as up; wait for its first checks to have passed.
            time.sleep(2 * CHECK_INTERVAL_MS / 1000)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, replica: Replica) -> int | None:
        """SIGTERM one replica, wait for it to exit, start it again on its port."""
        code = replica.stop()
        replica.start()
        return code

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.stop()
        _stop(self.haproxy, 10)
        _stop(self.pgbouncer, 10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.directory.glob("*.log"))
        )

    def __enter__(self) -> "Rig":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def interrupted_cleanly() -> Generator[None]:
    """Ctrl-C and SIGTERM both leave through the rig's `stop`."""

    def raise_interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        print("stopping the rig")
    finally:
        signal.signal(signal.SIGTERM, previous)


def measure(rig: Rig, seconds: float) -> list[dict[str, Any]]:
    """wrk through HAProxy with 1, 2, ... replicas up: signed GETs of the first page."""
    from bench.load import RequestFile, run_wrk

    requests = RequestFile(rig.key.encode(), rig.directory)
    results: list[dict[str, Any]] = []
    stopped = list(reversed(rig.replicas[1:]))
    for replica in stopped:
        replica.stop()
    for count in range(1, len(rig.replicas) + 1):
        if count > 1:
            stopped.pop().start()
        rig.wait_until_balanced(count)
        time.sleep(1)
        assert rig.haproxy is not None
        paths = requests.safe("list", ["/api/heroes?limit=20"] * 200)
        result = run_wrk(
            rig.url, paths, seconds=seconds, connections=32, threads=2, pid=rig.haproxy.pid
        )
        results.append({"replicas": count} | result)
        print(
            f"{count} replica(s): {result['rps']:.0f} requests/s, p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']} {result['error_kinds']}",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/backoffice_rig")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=600, help="stop after this long")
    parser.add_argument("--direct", action="store_true", help="no PgBouncer")
    parser.add_argument(
        "--measure", type=float, metavar="SECONDS", help="wrk run per replica count"
    )
    arguments = parser.parse_args()
    key = os.environ.get("APP_SECRET_KEY") or "a-local-rig-key-never-used-elsewhere-0123456789"
    _create_database(arguments.database)
    rig = Rig(arguments.database, key, replicas=arguments.replicas, pgbouncer=not arguments.direct)
    with interrupted_cleanly(), rig:
        print(f"HAProxy: {rig.url} ; replicas: {[r.url for r in rig.replicas]}")
        if rig.use_pgbouncer:
            print(f"PgBouncer (transaction pooling): 127.0.0.1:{rig.pgbouncer_port}")
        if arguments.measure:
            measure(rig, arguments.measure)
            return
        print(f"serving for {arguments.seconds:g} s; Ctrl-C stops everything", flush=True)
        time.sleep(arguments.seconds)


def _create_database(url: str) -> None:
    import psycopg

    target = make_url(url)
    maintenance = target.set(drivername="postgresql", database="postgres")
    with psycopg.connect(
        maintenance.render_as_string(hide_password=False), autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,))
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{target.database}"')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
