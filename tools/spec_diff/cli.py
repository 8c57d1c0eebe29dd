"""`python -m tools.spec_diff`: the command reviewers and CI run; see the package's docstring."""

import argparse
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tools.spec_diff import gate, report
from tools.spec_diff.changes import diff

DESCRIPTION = (
    "List every change to openapi.yaml since the last released contract (releases/), each with "
    "whom it breaks, and fail on a break that CHANGELOG.md does not approve. With --base, "
    "compare two git revisions instead and fail on any break."
)


def _git(*args: str) -> str:
    git = shutil.which("git")
    if git is None:
        raise SystemExit("git is not on the PATH")
    # Fixed git subcommands; the only caller-given part is a revision name, passed as one argv.
    result = subprocess.run([git, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.spec_diff", description=DESCRIPTION)
    parser.add_argument("--base", help="git revision to compare with, instead of the last release")
    parser.add_argument("--head", help="git revision to compare (with --base; default: the file)")
    parser.add_argument("--spec", default=gate.SPEC, help="the spec's path in the repository")
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    parser.add_argument(
        "--allow-breaking", action="store_true", help="report breaking changes, but exit 0"
    )
    parser.add_argument(
        "--release",
        action="store_true",
        help="release info.version: copy openapi.yaml into releases/ and date its changelog "
        "section (the gate must pass)",
    )
    return parser


def _compare_revisions(options: argparse.Namespace) -> tuple[report.Report, bool]:
    base: Any = yaml.safe_load(_git("show", f"{options.base}:{options.spec}"))
    if options.head:
        head: Any = yaml.safe_load(_git("show", f"{options.head}:{options.spec}"))
    else:
        head = yaml.safe_load(Path(options.spec).read_text(encoding="utf-8"))
    changes = diff(base, head)
    breaking = [change for change in changes if change.breaking]
    heading = f"{options.spec}: {options.base} -> {options.head or 'working tree'}"
    if breaking:
        verdict = (
            f"{len(breaking)} breaking change(s): keep the old behaviour alongside the new, or "
            "make the break deliberate (approve it in CHANGELOG.md and bump the major version; "
            "`python -m tools.spec_diff` without --base checks that)"
        )
    else:
        verdict = "no breaking change"
    return report.Report(heading, changes, None, verdict), bool(breaking)


def _gate(options: argparse.Namespace) -> tuple[report.Report, bool]:
    verdict = gate.judge(Path.cwd(), options.spec)
    released = verdict.release
    heading = (
        f"{options.spec} (info.version {verdict.version}) against release {released.version} "
        f"({gate.RELEASES}/{released.path.name})"
    )
    if verdict.passed:
        outcome = (
            f"gate passed: every break is approved in {gate.CHANGELOG} under {verdict.version}"
            if verdict.approved
            else "gate passed: no break"
        )
    else:
        outcome = f"gate FAILED: {len(verdict.unapproved)} break(s) not approved" + (
            f", and {len(verdict.problems)} problem(s):" if verdict.problems else ""
        )
    notes = [
        f"note: {gate.CHANGELOG} {verdict.version} names `{span}`, which is not among the changes"
        for span in verdict.unmatched
    ]
    result = report.Report(
        heading,
        verdict.changes,
        verdict.approved,
        outcome,
        problems=verdict.problems,
        approve_under=f"## [{verdict.approve_under}]",
        to_approve=verdict.changelog_lines(),
        notes=notes,
    )
    return result, not verdict.passed


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    if options.head and not options.base:
        parser.error("--head needs --base")
    if options.release and options.base:
        parser.error("--release releases the working tree's contract; it takes no --base")
    try:
        if options.release:
            print(gate.release(Path.cwd(), datetime.now(UTC).date(), options.spec))
            return 0
        result, failed = _compare_revisions(options) if options.base else _gate(options)
    except gate.GateError as error:
        print(f"gate FAILED: {error}")
        return 1
    print(report.markdown(result) if options.format == "markdown" else report.text(result))
    return 1 if failed and not options.allow_breaking else 0
