"""Pre-signed request files and the `wrk` runs that replay them (see `signed.lua`)."""

import json
import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

import signing
from bench.dataset import TEAMS
from persistence.pagination import encode_cursor

LUA = Path(__file__).with_name("signed.lua")
RESULT_MARK = "BENCH_RESULT "
# Unsafe requests are accepted once each, so a run needs a signature for every request it may
# send: this many per connection-second is above what one worker serves on this hardware.
UNSAFE_PER_SECOND = 6000
GET_PATHS = 20_000
READ_SCENARIOS = ("list_first", "list_deep", "list_team_first", "list_team_deep", "get")
WRITE_SCENARIOS = ("patch", "create")
# The same requests signed with version 2, the recommended one. Only the service verifies it,
# so these runs are compared with the service's own version 1 runs.
VERSION_2_SCENARIOS = ("get_v2", "list_first_v2", "create_v2")
SCENARIOS = READ_SCENARIOS + WRITE_SCENARIOS + VERSION_2_SCENARIOS
# Between the fields of a request file's headers (`signed.lua`).
FIELD_SEPARATOR = "\x1f"


@dataclass
class RequestFile:
    """Writes signed requests as `signed.lua` reads them; unsafe bodies are unique per file."""

    key: bytes
    directory: Path
    serial: int = 0
    files: list[Path] = field(default_factory=list[Path])

    def _path(self, scenario: str) -> Path:
        self.serial += 1
        return self.directory / f"{self.serial:04d}-{scenario}.tsv"

    def safe(self, scenario: str, paths: list[str], version: signing.Version = 1) -> Path:
        """GETs, valid for the window: under one version 1 signature (which binds method and
        time only), or each under its own version 2 signature (which binds its target)."""
        stamp = signing.now_ms()
        signed: dict[str, dict[str, str]] = {}
        for path in paths:
            if path not in signed:
                signed[path] = signing.signed_headers(
                    "GET", path, b"", self.key, version, stamp, unique=False
                )
            if version == 1:  # the same headers for every path
                signed = dict.fromkeys(paths, signed[path])
                break
        target = self._path(scenario)
        target.write_text("".join(_line("GET", path, signed[path], b"") for path in paths))
        return target

    def unsafe(
        self,
        scenario: str,
        requests: list[tuple[str, str, dict[str, Any]]],
        version: signing.Version = 1,
    ) -> Path:
        """Each request under a signature of its own (each is accepted once)."""
        stamp = signing.now_ms()
        lines: list[str] = []
        for method, path, body in requests:
            raw = orjson.dumps(body)
            # The one media type the spec declares for a patch; plain Connexion refuses others.
            media = "application/merge-patch+json" if method == "PATCH" else "application/json"
            content = {"Content-Type": media}
            signed = signing.signed_headers(
                method, path, raw, self.key, version, stamp, headers=content
            )
            lines.append(_line(method, path, content | signed, raw))
        target = self._path(scenario)
        target.write_text("".join(lines))
        return target


def _line(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """One request as `signed.lua` reads it."""
    fields = FIELD_SEPARATOR.join(f"{name}: {value}" for name, value in headers.items())
    return f"{method}\t{path}\t{fields}\t{body.decode()}\n"


def scenario_requests(
    files: RequestFile, scenario: str, heroes: int, count: int, rng: random.Random
) -> Path:
    """The request file for one scenario at a data size of `heroes` (ids 1..heroes)."""
    if scenario in VERSION_2_SCENARIOS:
        return _requests(files, scenario.removesuffix("_v2"), heroes, count, rng, version=2)
    return _requests(files, scenario, heroes, count, rng, version=1)


def _requests(
    files: RequestFile,
    scenario: str,
    heroes: int,
    count: int,
    rng: random.Random,
    *,
    version: signing.Version,
) -> Path:
    team = 3
    match scenario:
        case "list_first":
            return files.safe(scenario, ["/api/heroes?limit=50"], version)
        case "list_deep":
            # 100 heroes from the end: a full page, 1000 pages deep at a million heroes.
            return files.safe(
                scenario, [f"/api/heroes?limit=50&cursor={encode_cursor(heroes - 100)}"], version
            )
        case "list_team_first":
            return files.safe(scenario, [f"/api/heroes?limit=50&team_id={team}"], version)
        case "list_team_deep":
            # Heroes are dealt to teams in turn, so about 60 of this team's are left after it.
            cursor = encode_cursor(heroes - 60 * TEAMS)
            return files.safe(
                scenario, [f"/api/heroes?limit=50&team_id={team}&cursor={cursor}"], version
            )
        case "get":
            ids = [rng.randint(1, heroes) for _ in range(GET_PATHS)]
            return files.safe(scenario, [f"/api/heroes/{hero_id}" for hero_id in ids], version)
        case "patch":
            serial = files.serial
            return files.unsafe(
                scenario,
                [
                    (
                        "PATCH",
                        f"/api/heroes/{rng.randint(1, heroes)}",
                        {"name": f"Patched {serial}-{n}", "age": n % 100},
                    )
                    for n in range(count)
                ],
                version,
            )
        case "create":
            serial = files.serial
            return files.unsafe(
                scenario,
                [
                    (
                        "POST",
                        "/api/heroes",
                        {
                            "name": f"Recruit {serial}-{n}",
                            "secret_name": f"Unknown {n}",
                            "age": n % 100,
                            "team_id": 1 + n % TEAMS,
                        },
                    )
                    for n in range(count)
                ],
                version,
            )
        case _:
            raise ValueError(f"unknown scenario {scenario!r}")


class RssSampler:
    """The peak resident set size of a process while a run lasts, from /proc."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.rss_kb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self.peak_kb = self.rss_kb()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.rss_kb())


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """`command` run on CPU `cpu` only (`taskset` execs it: same process id), or anywhere."""
    return command if cpu is None else ["taskset", "--cpu-list", str(cpu), *command]


def run_wrk(
    base_url: str,
    requests: Path,
    *,
    seconds: float,
    connections: int,
    threads: int,
    pid: int,
    cpu: int | None = None,
) -> dict[str, Any]:
    """Replay `requests` against `base_url` for `seconds`; wrk's numbers plus the server's RSS."""
    env = os.environ | {"BENCH_REQUESTS": str(requests), "BENCH_THREADS": str(threads)}
    wrk = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={LUA}",
        base_url,
    ]
    command = pinned(wrk, cpu)
    started = time.perf_counter()
    with RssSampler(pid) as rss:
        completed = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    line = next(
        (line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARK)), None
    )
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(line.removeprefix(RESULT_MARK))
    errors: dict[str, int] = raw["errors"]
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": sum(errors.values()),
        "error_kinds": {kind: n for kind, n in errors.items() if n},
        "peak_rss_mb": rss.peak_kb / 1024,
        "wall_seconds": time.perf_counter() - started,
    }
