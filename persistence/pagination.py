"""Keyset pagination: a page is the rows after the last `id` seen, read through an index."""

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, Select, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.errors import InvalidCursor

MAX_ID = 2**63 - 1


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.isdigit() or text != str(int(text)) or not 0 < int(text) <= MAX_ID:
        raise InvalidCursor(f"cursor {cursor!r} is not one this service issued", field="cursor")
    return int(text)


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
