"""The benchmark: `uv run python -m bench.run --sizes 1000,100000,1000000 --seconds 20`.

For each data size it bulk-loads a dedicated PostgreSQL database, starts the service
(`backoffice serve`, one worker, production settings), the FastAPI peer (`bench/peer.py`), the
plain-Connexion floor (`bench/floor.py`) and the bare ceiling (`bench/ceiling.py`), each pinned
to one core, replays pre-signed requests against each in turn with `wrk` pinned to another, and
stops them. It prints each run and the verdict on each target of issue #25, and writes the
numbers to `bench/results/`. The `_v2` scenarios send the same requests signed with version 2,
which only the service verifies: they are compared with its version 1 runs.
"""

import argparse
import contextlib
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.dataset import bench_url, create_database, load_heroes, plain_dsn
from bench.load import (
    READ_SCENARIOS,
    SCENARIOS,
    UNSAFE_PER_SECOND,
    VERSION_2_SCENARIOS,
    RequestFile,
    RssSampler,
    pinned,
    run_wrk,
    scenario_requests,
)
from settings import ROOT, Settings

RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
# The widest window the settings allow, so that one signature per read scenario lasts the run.
WINDOW_MS = 3_600_000
# What a user compares: the FastAPI peer, plain Connexion (the floor), bare Starlette (the ceiling).
TARGETS = ("service", "peer", "floor", "ceiling")
OTHERS = TARGETS[1:]
# Each one's port is the service's plus this offset.
PORT_OFFSETS = {"service": 0, "ceiling": 1, "floor": 2, "peer": 3}
LIST_SCENARIOS = tuple(name for name in READ_SCENARIOS if name.startswith("list"))
SOAK_SCENARIOS = ("get", "list_first", "list_team_deep")
FLAT_SCENARIOS = READ_SCENARIOS[:4]
SOAK_CHUNK_SECONDS = 5


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    startup_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _environment(key: str, dsn: str) -> dict[str, str]:
    """Production settings: no debug, a real key, no response validation, the default INFO log
    level with its access line; a signature window as wide as the settings allow."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("APP_")}
    return env | {
        "APP_DB_URL": dsn,
        "APP_SECRET_KEY": key,
        "APP_DEBUG": "false",
        "APP_VALIDATE_RESPONSES": "false",
        "APP_TIMESTAMP_SIGNING_THRESHOLD": str(WINDOW_MS),
        "APP_REPLAY_PROTECTION": "unsafe",
        "BENCH_CEILING_DSN": dsn,
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (our own server)
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def cpus() -> tuple[int | None, int | None]:
    """The core for the servers and the core for wrk: the first two this process may use, or no
    pinning on a single core."""
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) > 1 else (None, None)


def start(
    name: str, command: list[str], port: int, env: dict[str, str], *, cpu: int | None = None
) -> Server:
    """Start a server on `cpu` and time it from exec to its first 200 on /openapi.json.

    Its stdout (the service's access lines) goes to /dev/null, as a container's log driver
    would take it; its stderr to the console.
    """
    started = time.perf_counter()
    process = subprocess.Popen(pinned(command, cpu), env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = started + 60
    while not _answers(f"http://127.0.0.1:{port}/openapi.json"):
        if process.poll() is not None or time.perf_counter() > deadline:
            process.kill()
            raise RuntimeError(f"{name} did not start (exit code {process.poll()})")
        time.sleep(0.01)
    return Server(name, process, port, time.perf_counter() - started)


def stop(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def command_of(name: str, port: int) -> list[str]:
    if name == "service":
        return [str(BIN / "backoffice"), "serve", "--port", str(port), "--workers", "1"]
    return [sys.executable, "-m", f"bench.{name}", str(port)]


@contextlib.contextmanager
def servers(
    env: dict[str, str], port: int, targets: list[str], cpu: int | None
) -> Generator[dict[str, Server]]:
    """The targets, in the order of `TARGETS`, each started on `cpu` and stopped on exit."""
    running: dict[str, Server] = {}
    try:
        for name in (name for name in TARGETS if name in targets):
            own = port + PORT_OFFSETS[name]
            running[name] = start(name, command_of(name, own), own, env, cpu=cpu)
        yield running
    finally:
        for server in running.values():
            stop(server)


def soak(server: Server, files: RequestFile, heroes: int, total: int, **wrk: Any) -> dict[str, Any]:
    """Reads until `total` requests are served, sampling the worker's RSS after each chunk."""
    rng = random.Random(7)
    served = 0
    samples: list[dict[str, float]] = []
    sampler = RssSampler(server.process.pid)
    while served < total:
        scenario = SOAK_SCENARIOS[len(samples) % len(SOAK_SCENARIOS)]
        requests = scenario_requests(files, scenario, heroes, 0, rng)
        result = run_wrk(
            server.url, requests, seconds=SOAK_CHUNK_SECONDS, pid=server.process.pid, **wrk
        )
        served += result["requests"]
        samples.append({"requests": served, "rss_mb": sampler.rss_kb() / 1024})
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    return {
        "requests": served,
        "samples": samples,
        "rss_first_chunk_mb": first,
        "rss_last_chunk_mb": last,
        "growth_mb": last - first,
        "peak_rss_mb": max(sample["rss_mb"] for sample in samples),
    }


def measure_size(
    heroes: int, args: argparse.Namespace, env: dict[str, str], files: RequestFile
) -> dict[str, Any]:
    rng = random.Random(heroes)
    server_cpu, load_cpu = cpus()
    wrk: dict[str, Any] = {
        "connections": args.connections,
        "threads": args.threads,
        "cpu": load_cpu,
    }
    unsafe_count = int(args.seconds * UNSAFE_PER_SECOND)
    result: dict[str, Any] = {"heroes": heroes, "scenarios": {}, "cpus": [server_cpu, load_cpu]}
    with servers(env, args.port, args.targets, server_cpu) as running:
        result["startup_seconds"] = {name: s.startup_seconds for name, s in running.items()}
        for server in running.values():
            warmup = scenario_requests(files, "list_first", heroes, 0, rng)
            run_wrk(server.url, warmup, seconds=args.warmup, pid=server.process.pid, **wrk)
        for scenario, name, server in _runs(args.scenarios, running):
            requests = scenario_requests(files, scenario, heroes, unsafe_count, rng)
            measured = result["scenarios"].setdefault(scenario, {})
            measured[name] = run_wrk(
                server.url, requests, seconds=args.seconds, pid=server.process.pid, **wrk
            )
            requests.unlink()
            _print_run(heroes, scenario, name, measured[name])
        for scenario, measured in result["scenarios"].items():
            measured["ratios"] = ratios(measured)
            version_1 = result["scenarios"].get(scenario.removesuffix("_v2"), {}).get("service")
            if scenario in VERSION_2_SCENARIOS and version_1 and "service" in measured:
                measured["ratios"]["version_1"] = measured["service"]["rps"] / version_1["rps"]
        if args.probe_seconds and "service" in running:
            # One connection: the latency of the query itself, without queueing behind 31 others.
            service = running["service"]
            for scenario in [name for name in args.scenarios if name in FLAT_SCENARIOS]:
                requests = scenario_requests(files, scenario, heroes, 0, rng)
                probe = run_wrk(
                    service.url,
                    requests,
                    seconds=args.probe_seconds,
                    pid=service.process.pid,
                    connections=1,
                    threads=1,
                    cpu=load_cpu,
                )
                result.setdefault("probe", {})[scenario] = probe
                _print_run(heroes, scenario, "1 conn", probe)
        if args.soak_requests and heroes == max(args.sizes) and "service" in running:
            service = running["service"]
            result["soak"] = soak(service, files, heroes, args.soak_requests, **wrk)
            print(
                f"soak: {result['soak']['requests']} requests, RSS "
                f"{result['soak']['rss_first_chunk_mb']:.1f} -> "
                f"{result['soak']['rss_last_chunk_mb']:.1f} MB",
                flush=True,
            )
        for name, server in running.items():
            result.setdefault("peak_rss_mb", {})[name] = _high_water_mb(server.process.pid)
    return result


def _runs(scenarios: list[str], running: dict[str, Server]) -> Generator[tuple[str, str, Server]]:
    """Each scenario against each server, in turn. Only the service verifies version 2: its
    `_v2` run comes right after its version 1 run of the same requests, so that the two are
    compared under the same conditions of a shared machine."""
    for scenario in scenarios:
        if scenario in VERSION_2_SCENARIOS and scenario.removesuffix("_v2") in scenarios:
            continue  # run beside its version 1 scenario, below
        for name, server in running.items():
            if scenario in VERSION_2_SCENARIOS and name != "service":
                continue
            yield scenario, name, server
            paired = f"{scenario}_v2"
            if name == "service" and paired in scenarios and paired in VERSION_2_SCENARIOS:
                yield paired, name, server


def ratios(runs: dict[str, Any]) -> dict[str, float]:
    """The service's req/s over each other target's, and its p99 over the ceiling's."""
    if "service" not in runs:
        return {}
    service = runs["service"]
    found = {name: service["rps"] / runs[name]["rps"] for name in OTHERS if name in runs}
    if "ceiling" in runs:
        found["p99_ceiling"] = service["p99_ms"] / runs["ceiling"]["p99_ms"]
    return found


def _high_water_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(peak.split()[1]) / 1024


def _print_run(heroes: int, scenario: str, target: str, run: dict[str, Any]) -> None:
    errors = f" ERRORS {run['error_kinds']}" if run["errors"] else ""
    print(
        f"{heroes:>9} {scenario:<16} {target:<8} {run['rps']:>8.0f} req/s  "
        f"p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:6.2f} ms  "
        f"rss {run['peak_rss_mb']:6.1f} MB{errors}",
        flush=True,
    )


def verdicts(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of issue #25, met or missed, with the number that decides it."""
    checks: list[dict[str, Any]] = []

    def check(target: str, value: float, limit: float, met: bool, where: str) -> None:
        checks.append(
            {"target": target, "where": where, "value": round(value, 3), "limit": limit, "met": met}
        )

    def at_least(target: str, value: float | None, limit: float, where: str) -> None:
        if value is not None:
            check(target, value, limit, value >= limit, where)

    for size in sizes:
        heroes = size["heroes"]
        for scenario, runs in size["scenarios"].items():
            where = f"{scenario} @ {heroes}"
            found = runs.get("ratios", {})
            at_least("req/s >= 2.0x the peer's", found.get("peer"), 2.0, where)
            if scenario in READ_SCENARIOS:
                at_least("read req/s >= 1.1x the floor's", found.get("floor"), 1.1, where)
            if scenario == "create":
                at_least("create req/s >= 0.9x the floor's", found.get("floor"), 0.9, where)
            at_least("version 2 req/s >= 0.9x version 1's", found.get("version_1"), 0.9, where)
            p99 = found.get("p99_ceiling")
            if scenario in LIST_SCENARIOS and p99 is not None:
                check("list p99 <= 2.5x the ceiling's", p99, 2.5, p99 <= 2.5, where)
            for name in TARGETS:
                if name in runs:
                    errors = runs[name]["errors"]
                    check("no errors", errors, 0, errors == 0, f"{where} ({name})")
        if "service" not in size["startup_seconds"]:
            continue
        rss = size["peak_rss_mb"]["service"]
        check("worker RSS < 150 MB", rss, 150, rss < 150, f"peak @ {heroes}")
        startup = size["startup_seconds"]["service"]
        check("ready in < 2 s", startup, 2, startup < 2, f"start @ {heroes}")
        if "soak" in size:
            growth = size["soak"]["growth_mb"]
            check(
                "RSS not growing (< 5 MB)",
                growth,
                5,
                growth < 5,
                f"{size['soak']['requests']} requests",
            )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for scenario in FLAT_SCENARIOS:
            for kind, runs_of in (
                ("32 conn", lambda size, name: size["scenarios"].get(name, {}).get("service")),
                ("1 conn", lambda size, name: size.get("probe", {}).get(name)),
            ):
                before, after = runs_of(small, scenario), runs_of(large, scenario)
                if before is None or after is None:
                    continue
                ratio = after["p50_ms"] / before["p50_ms"]
                where = f"{scenario} ({kind}): p50 @ {large['heroes']} / @ {small['heroes']}"
                check("flat: latency ratio <= 1.25", ratio, 1.25, ratio <= 1.25, where)
    return checks


def _print_verdicts(checks: list[dict[str, Any]]) -> None:
    for item in checks:
        mark = "met   " if item["met"] else "MISSED"
        limit = item["limit"]
        print(f"{mark} {item['target']:<34} {item['where']:<48} {item['value']} (limit {limit})")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the service against the FastAPI peer, the floor and the ceiling."
    )
    parser.add_argument("--sizes", default="1000,100000,1000000", help="heroes, comma-separated")
    parser.add_argument("--seconds", type=float, default=20, help="length of each wrk run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--port",
        type=int,
        default=8701,
        help="the service's; the ceiling's is +1, the floor's +2, the peer's +3",
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"a subset of {','.join(SCENARIOS)}"
    )
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"any of {', '.join(TARGETS)}")
    parser.add_argument(
        "--probe-seconds",
        type=float,
        default=3,
        help="per list scenario, a run with one connection: latency without queueing (0: skip)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="APP_NAME=VALUE",
        help="a setting for the service (repeatable), to compare configurations",
    )
    parser.add_argument(
        "--soak-requests",
        type=int,
        default=100_000,
        help="reads served at the largest size while RSS is watched (0: skip)",
    )
    args = parser.parse_args()
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    args.scenarios = [name for name in args.scenarios.split(",") if name]
    args.targets = [name for name in args.targets.split(",") if name in TARGETS]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown or min(args.sizes) < 1000:
        parser.error(f"unknown scenarios {sorted(unknown)}" if unknown else "sizes start at 1000")
    return args


def compile_bytecode() -> None:
    """Compile every module first, as the image does (UV_COMPILE_BYTECODE=1).

    A machine with PYTHONDONTWRITEBYTECODE set (this one) otherwise recompiles the whole stack
    at every start: 3.2 s instead of 1.3 s just to import the app.
    """
    sources = [sysconfig.get_paths()["purelib"], *(str(path) for path in ROOT.glob("*.py"))]
    sources += [str(ROOT / folder) for folder in ("handlers", "persistence", "migrations", "bench")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *sources],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    args = _arguments()
    compile_bytecode()
    url = bench_url()
    key = secrets.token_urlsafe(48)
    env = _environment(key, plain_dsn(url)) | dict(item.split("=", 1) for item in args.set)
    create_database(url, Settings(db_url=plain_dsn(url), secret_key=SecretStr(key)))
    started = datetime.now(UTC)
    sizes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        files = RequestFile(key.encode(), Path(directory))
        for heroes in args.sizes:
            loading = time.perf_counter()
            load_heroes(url, heroes)
            print(f"loaded {heroes} heroes in {time.perf_counter() - loading:.1f} s", flush=True)
            sizes.append(measure_size(heroes, args, env, files))
    checks = verdicts(sizes)
    _print_verdicts(checks)
    report = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "settings": vars(args),
        "sizes": sizes,
        "targets": checks,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{started:%Y%m%dT%H%M%SZ}.json"
    target.write_text(json.dumps(report, indent=2))
    print(f"results: {target}")


if __name__ == "__main__":
    main()
