"""The changes as a person reads them: plain text in a terminal, Markdown in a pull request."""

from collections import Counter
from dataclasses import dataclass, field

from tools.spec_diff.changes import SEP, Change, Kind


@dataclass
class Report:
    heading: str
    changes: list[Change]
    # Breaks approved in the changelog; None where approvals are not consulted (--base).
    approved: set[Change] | None
    verdict: str
    problems: list[str] = field(default_factory=list[str])
    # What to paste into the changelog (and under which heading) to approve what is not yet.
    approve_under: str = ""
    to_approve: list[str] = field(default_factory=list[str])
    notes: list[str] = field(default_factory=list[str])

    def summary(self) -> str:
        counts = Counter(change.kind for change in self.changes)
        kinds = ", ".join(f"{kind.value}: {counts[kind]}" for kind in Kind if counts[kind])
        return f"{len(self.changes)} change(s)" + (f" ({kinds})" if kinds else "")

    def status(self, change: Change) -> str:
        if self.approved is None or not change.breaking:
            return ""
        return "approved" if change in self.approved else "not approved"


def text(report: Report) -> str:
    lines = [f"{report.heading}: {report.summary()}"]
    for change in report.changes:
        status = report.status(change)
        lines.append(f"  {change}" + (f"  ({status})" if status else ""))
    lines.append(report.verdict)
    lines += [f"  - {problem}" for problem in report.problems]
    if report.to_approve:
        lines.append(
            f"To approve a break, add its line to CHANGELOG.md under {report.approve_under}, "
            "then say why and what callers should do:"
        )
        lines += report.to_approve
    lines += report.notes
    return "\n".join(lines)


def _group_title(group: str) -> str:
    if not group:
        return "The contract as a whole, and its components"
    name, _, label = group.partition(" · ")
    return f"`{name}` · `{label}`" if label else f"`{name}`"


def markdown(report: Report) -> str:
    """Grouped by operation, one line per change: ready to paste as a pull-request comment."""
    lines = [f"### {report.heading}", "", report.summary() + ".", ""]
    groups: dict[str, list[Change]] = {}
    for change in sorted(report.changes, key=lambda c: (c.operation, c.kind.rank, c.where)):
        groups.setdefault(change.operation, []).append(change)
    for group, changes in groups.items():
        prefix = group.partition(" · ")[2] or group
        lines += [f"**{_group_title(group)}**", ""]
        for change in changes:
            where = change.where.removeprefix(prefix).removeprefix(SEP)
            located = f"{where}: {change.what}" if where else change.what
            status = report.status(change)
            mark = {"approved": " · approved", "not approved": " · **not approved**"}.get(
                status, ""
            )
            lines.append(f"- {change.kind.value} · `{located}`{mark}")
        lines.append("")
    lines.append(f"**{report.verdict}**")
    lines += [f"- {problem}" for problem in report.problems]
    if report.to_approve:
        lines += [
            "",
            f"To approve a break, add its line to `CHANGELOG.md` under `{report.approve_under}`, "
            "then say why and what callers should do:",
            "",
            "```markdown",
            *report.to_approve,
            "```",
        ]
    if report.notes:
        lines += ["", *report.notes]
    return "\n".join(lines)
