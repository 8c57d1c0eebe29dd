"""Profile the service under one scenario: `uv run python -m bench.profile get --heroes 1000`.

Loads the data, starts the service as the benchmark does, replays the scenario with `wrk` while
`py-spy` samples the worker, and writes a flame graph (SVG) and the collapsed stacks to
`bench/results/`. It also prints the functions that hold the most samples.
"""

import argparse
import collections
import random
import secrets
import subprocess
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from bench.dataset import bench_url, create_database, load_heroes, plain_dsn
from bench.load import SCENARIOS, UNSAFE_PER_SECOND, RequestFile, run_wrk, scenario_requests
from bench.run import BIN, RESULTS, _environment, start, stop
from settings import Settings


def _top_frames(collapsed: Path, count: int) -> list[tuple[str, float]]:
    """Share of samples in which each frame appears (inclusive), highest first."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        total += int(samples)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(samples)
    return [(frame, n / max(total, 1)) for frame, n in inclusive.most_common(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description="Profile the service under one scenario.")
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--heroes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--port", type=int, default=8711)
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()
    url = bench_url()
    key = secrets.token_urlsafe(48)
    env = _environment(key, plain_dsn(url))
    create_database(url, Settings(db_url=plain_dsn(url), secret_key=SecretStr(key)))
    load_heroes(url, args.heroes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"profile-{args.scenario}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    service = start(
        "service", [str(BIN / "backoffice"), "serve", "--port", str(args.port)], args.port, env
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as directory:
            files = RequestFile(key.encode(), Path(directory))
            requests = scenario_requests(
                files,
                args.scenario,
                args.heroes,
                int(args.seconds * UNSAFE_PER_SECOND),
                random.Random(1),
            )
            outcome: dict[str, object] = {}
            load = threading.Thread(
                target=lambda: outcome.update(
                    run_wrk(
                        service.url,
                        requests,
                        seconds=args.seconds,
                        connections=32,
                        threads=2,
                        pid=service.process.pid,
                    )
                )
            )
            load.start()
            for output, kind in ((stem.with_suffix(".txt"), "raw"),):
                subprocess.run(
                    [
                        str(BIN / "py-spy"),
                        "record",
                        "--pid",
                        str(service.process.pid),
                        "--duration",
                        str(max(1, int(args.seconds) - 2)),
                        "--rate",
                        "200",
                        "--format",
                        kind,
                        "--output",
                        str(output),
                        "--nonblocking",
                    ],
                    check=True,
                    capture_output=True,
                )
            load.join()
    finally:
        stop(service)
    print(f"{args.scenario}: {outcome['rps']:.0f} req/s, p99 {outcome['p99_ms']:.1f} ms")
    for frame, share in _top_frames(stem.with_suffix(".txt"), args.top):
        print(f"{share:6.1%}  {frame}")
    print(f"collapsed stacks: {stem.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
