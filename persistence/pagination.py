"""Keyset pagination: a page is the rows after the last `id` seen, read through an index."""

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, Select, Table
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def fetch_page(
    conn: AsyncConnection,
    *,
    query: Select[*tuple[Any, ...]],
    table: Table,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[RowMapping], str | None]:
    """One page of `query` in `id` order, and the cursor of the next page (None on the last)."""
    id_column = table.c.id
    if cursor is not None:
        query = query.where(id_column > decode_cursor(cursor))
    rows = (await conn.execute(query.order_by(id_column).limit(limit + 1))).mappings().all()
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1]["id"])
    return rows, None
