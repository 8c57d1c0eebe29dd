"""Markdown tables of a result file, for the README: `uv run python -m bench.report [FILE]`."""

import json
import sys
from pathlib import Path
from typing import Any

from bench.run import OTHERS, RESULTS, TARGETS


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def tables(report: dict[str, Any]) -> str:
    lines = [
        _row(
            [
                "heroes",
                "scenario",
                "service req/s",
                "peer req/s",
                "floor req/s",
                "ceiling req/s",
                "service p99 ms",
                "ceiling p99 ms",
                "service / peer",
                "service / floor",
                "service / ceiling",
                "p99 service / ceiling",
                "version 2 / version 1",
                "p50 ms, 1 connection",
            ]
        ),
        _row(["---:", "---", *["---:"] * 12]),
    ]
    for size in report["sizes"]:
        for scenario, runs in size["scenarios"].items():
            probe = size.get("probe", {}).get(scenario)
            cells = [f"{size['heroes']:,}", scenario]
            for name in TARGETS:
                cells.append(f"{runs[name]['rps']:.0f}" if name in runs else "")
            for name in ("service", "ceiling"):
                cells.append(f"{runs[name]['p99_ms']:.1f}" if name in runs else "")
            found = runs.get("ratios", {})
            cells += [_ratio(found.get(name)) for name in (*OTHERS, "p99_ceiling", "version_1")]
            cells.append(f"{probe['p50_ms']:.2f}" if probe else "")
            lines.append(_row(cells))
    lines += ["", _row(["target", "met", "worst measured (where)", "limit"]), _row(["---"] * 4)]
    by_target: dict[str, list[dict[str, Any]]] = {}
    for check in report["targets"]:
        by_target.setdefault(check["target"], []).append(check)
    for target, checks in by_target.items():
        # The limit is a lower bound for the throughput ratios, an upper bound for the rest.
        lower_bound = ">=" in target
        worst = min if lower_bound else max
        worst_check = worst(checks, key=lambda check: check["value"])
        met = sum(check["met"] for check in checks)
        verdict = f"{met} of {len(checks)}" if met == len(checks) else f"**{met} of {len(checks)}**"
        where = f"{worst_check['value']} ({worst_check['where']})"
        lines.append(_row([target, verdict, where, str(worst_check["limit"])]))
    startup = [size["startup_seconds"].get("service") for size in report["sizes"]]
    peaks = [size["peak_rss_mb"].get("service") for size in report["sizes"]]
    lines += [
        "",
        f"Start-up (exec to first 200): {', '.join(f'{s:.2f} s' for s in startup if s)}; "
        f"peak worker RSS: {', '.join(f'{p:.0f} MB' for p in peaks if p)}; "
        f"load average at the start: {report['machine']['load_average'][0]:.1f}.",
    ]
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else max(RESULTS.glob("2*.json"))
    print(tables(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
