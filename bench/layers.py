"""Where a request's CPU time goes, layer by layer: `uv run python -m bench.layers STACKS`.

STACKS are py-spy's collapsed stacks (`--format raw`) of `bench.cpu` driving the service in
process, where every sample of a request hangs under `Driver.call`:

    uv run py-spy record --subprocesses --rate 500 --format raw --output var/get.txt -- \\
        .venv/bin/python -m bench.cpu get --targets service --heroes 100000 --requests 20000
    uv run python -m bench.layers var/get.txt

Each band is the share of the request's samples spent in that layer itself, outside the next
one inward (a sampled wrk run of the worker under uvloop does not show whole await chains).
"""

import sys
from pathlib import Path

# Nested frames of a request, outermost first, as py-spy names them ("function (file:line)").
LAYERS = (
    ("our outer layers: request id, Cache-Control, CORS, errors", "Driver.call ("),
    ("the signature check (and an unsafe request's replay record)", "SignatureMiddleware.__call__"),
    ("Connexion: routing, parameter and body validation, context", "RoutingMiddleware.__call__"),
    ("Connexion: the operation's decorators (parameters, response)", "AsyncOperation.__call__"),
    ("the handler and representation.py", "(handlers/"),
    ("persistence: connection checkout, the statement on asyncpg", "(persistence/"),
)
# Inside the outer layers' band, but counted apart: the access line and the metrics.
ACCESS_RECORD = "AccessMiddleware._record"


def layers(stacks: Path) -> list[tuple[str, float]]:
    """Each band of `LAYERS` as a share of the samples under the first, then the access line."""
    inside = [0] * len(LAYERS)
    record = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # A layer counts only inside every layer before it: the replay record's SQL, under the
        # signature check, is not the handler's.
        for depth, (_label, frame) in enumerate(LAYERS):
            if frame not in stack:
                break
            inside[depth] += int(count)
        if ACCESS_RECORD in stack:
            record += int(count)
    total = max(inside[0], 1)
    bands = [
        (label, (inside[depth] - (inside[depth + 1] if depth + 1 < len(LAYERS) else 0)) / total)
        for depth, (label, _frame) in enumerate(LAYERS)
    ]
    return [*bands, ("of the outer layers: the access line and metrics", record / total)]


def main() -> None:
    for label, share in layers(Path(sys.argv[1])):
        print(f"{share:6.1%}  {label}")


if __name__ == "__main__":
    main()
