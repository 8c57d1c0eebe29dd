"""Optimistic concurrency: every row has a `version`, and a write may require one of several."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import Column, Delete, Table, Update, bindparam, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.errors import PreconditionFailed

# The versions a conditional write accepts; None accepts any (no `If-Match`, or `If-Match: *`).
type Versions = frozenset[int] | None


def check_version(row: Mapping[Any, Any], expected: Versions, *, what: str) -> None:
    if expected is not None and row["version"] not in expected:
        raise PreconditionFailed(f'{what} has changed: its ETag is now "{row["version"]}"')


class GuardedUpdates:
    """Updates of one table that apply `changes` and move the version on, only if the row has
    an expected version. Each shape (the columns changed, guarded or not) is built once, as
    building and caching a statement cost more than running it; the values are bound per call.
    """

    def __init__(self, table: Table, returning: Sequence[Column[Any]]) -> None:
        self.table = table
        self.returning = tuple(returning)
        self.built: dict[tuple[tuple[str, ...], bool], Update] = {}

    def __call__(
        self, row_id: int, changes: Mapping[str, Any], expected: Versions
    ) -> tuple[Update, dict[str, Any]]:
        shape = (tuple(sorted(changes)), expected is not None)
        statement = self.built.get(shape)
        if statement is None:
            statement = self.built[shape] = self._build(*shape)
        values = {f"new_{column}": value for column, value in changes.items()}
        values |= {"row_id": row_id, "updated_at": datetime.now(UTC)}
        if expected is not None:
            values["expected"] = sorted(expected)
        return statement, values

    def _build(self, columns: tuple[str, ...], guarded: bool) -> Update:
        table = self.table
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(
                {column: bindparam(f"new_{column}") for column in columns}
                | {"version": table.c.version + 1, "updated_at": bindparam("updated_at")}
            )
            .returning(*self.returning)
        )
        if guarded:
            statement = statement.where(table.c.version.in_(bindparam("expected", expanding=True)))
        return statement


async def guarded_update(
    *,
    conn: AsyncConnection,
    updates: GuardedUpdates,
    row_id: int,
    changes: Mapping[str, Any],
    expected: Versions,
    what: str,
    current: Callable[[], Awaitable[Mapping[Any, Any]]],
    refused: Callable[[], Exception],
) -> Mapping[Any, Any]:
    """Apply `changes` to a row that has an expected version, in one statement. `current` reads
    the row (when nothing changes, or to explain a miss); `refused` is the error to raise when a
    constraint refuses the changes."""
    if not changes:
        row = await current()
        check_version(row, expected, what=what)
        return row
    statement, values = updates(row_id, changes, expected)
    try:
        updated = (await conn.execute(statement, values)).mappings().first()
    except IntegrityError as error:
        raise refused() from error
    if updated is None:
        refuse_missed_guard(await current(), expected, what=what)
    return updated


def guarded_delete(table: Table, row_id: int, expected: Versions) -> Delete:
    statement = delete(table).where(table.c.id == row_id)
    return statement if expected is None else statement.where(table.c.version.in_(expected))


def refuse_missed_guard(current: Mapping[Any, Any], expected: Versions, *, what: str) -> NoReturn:
    """A guarded write matched no row, yet the row exists: its version must be a stale one."""
    check_version(current, expected, what=what)
    raise AssertionError(f"a guarded write to {what} matched no row, yet the row matches its guard")
