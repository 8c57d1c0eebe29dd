"""Optimistic concurrency: every row has a `version`, and a write may require one of several."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import Column, Delete, Table, Update, delete, update

from persistence.errors import PreconditionFailed

# The versions a conditional write accepts; None accepts any (no `If-Match`, or `If-Match: *`).
type Versions = frozenset[int] | None


def check_version(row: Mapping[Any, Any], expected: Versions, *, what: str) -> None:
    if expected is not None and row["version"] not in expected:
        raise PreconditionFailed(f'{what} has changed: its ETag is now "{row["version"]}"')


def guarded_update(
    table: Table,
    row_id: int,
    changes: Mapping[str, Any],
    expected: Versions,
    returning: Sequence[Column[Any]],
) -> Update:
    """Apply `changes` and move the version on, only if the row has an expected version."""
    statement = (
        update(table)
        .where(table.c.id == row_id)
        .values(**changes, version=table.c.version + 1, updated_at=datetime.now(UTC))
        .returning(*returning)
    )
    return statement if expected is None else statement.where(table.c.version.in_(expected))


def guarded_delete(table: Table, row_id: int, expected: Versions) -> Delete:
    statement = delete(table).where(table.c.id == row_id)
    return statement if expected is None else statement.where(table.c.version.in_(expected))


def refuse_missed_guard(current: Mapping[Any, Any], expected: Versions, *, what: str) -> NoReturn:
    """A guarded write matched no row, yet the row exists: its version must be a stale one."""
    check_version(current, expected, what=what)
    raise AssertionError(f"a guarded write to {what} matched no row, yet the row matches its guard")
