"""Keyset pagination: a page is the rows after the last `id` seen, read through an index."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import Rows, fetch
from persistence.errors import InvalidCursor

# A cursor is the last id seen, in hexadecimal, at most 2**63 - 1 (the spec has the same
# pattern): every cursor the contract admits is one the service can serve, so none gets 400.
CURSOR = re.compile(r"[0-9a-f]{1,15}|[0-7][0-9a-f]{15}")


def encode_cursor(last_id: int) -> str:
    return format(last_id, "x")


def decode_cursor(cursor: str) -> int:
    """The id a cursor names; every cursor the spec's pattern admits names one (0: the start)."""
    if not CURSOR.fullmatch(cursor):
        raise InvalidCursor(f"cursor {cursor!r} is not one this service issued", field="cursor")
    return int(cursor, 16)


@dataclass(frozen=True)
class Pages:
    """A query read page by page in `id` order: built once, with the values bound per request."""

    first: Select[*tuple[Any, ...]]
    after: Select[*tuple[Any, ...]]

    @classmethod
    def of(
        cls, table: Table, columns: Sequence[ColumnElement[Any]], *where: ColumnElement[bool]
    ) -> "Pages":
        """The rows of `table` that match `where`, in `columns` less the version: a list shows
        none (each item's ETag is for its own URL)."""
        listed = [column for column in columns if column is not table.c.version]
        # Building and caching a statement costs more than the query: a list did it per request.
        first = select(*listed).where(*where).order_by(table.c.id).limit(bindparam("limit"))
        return cls(first, first.where(table.c.id > bindparam("after")))


async def fetch_page(
    conn: AsyncConnection,
    *,
    pages: Pages,
    values: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> tuple[Rows, str | None]:
    """One page, and the cursor of the next page (None on the last)."""
    values = {**values, "limit": limit + 1}
    statement = pages.first
    if cursor is not None:
        values["after"] = decode_cursor(cursor)
        statement = pages.after
    rows = await fetch(conn, statement, values)
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1]["id"])
    return rows, None
