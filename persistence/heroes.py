"""Heroes: queries and changes. `secret_name` is written here and never read back."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import Rows, fetch
from persistence.errors import Conflict, NotFound
from persistence.pagination import Pages, fetch_page
from persistence.preconditions import (
    GuardedUpdates,
    Versions,
    guarded_delete,
    guarded_update,
    refuse_missed_guard,
)
from persistence.tables import heroes

COLUMNS = (
    heroes.c.id,
    heroes.c.name,
    heroes.c.age,
    heroes.c.team_id,
    heroes.c.version,
    heroes.c.created_at,
    heroes.c.updated_at,
)


# The statements every get and create runs, built once (building costs more than binding).
SELECT_ONE = select(*COLUMNS).where(heroes.c.id == bindparam("hero_id"))
INSERT_ONE = insert(heroes).returning(*COLUMNS)
UPDATES = GuardedUpdates(heroes, COLUMNS)


def _list(*, by_team: bool, by_name: bool) -> Pages:
    where = [heroes.c.team_id == bindparam("team_id")] if by_team else []
    if by_name:
        where.append(heroes.c.name == bindparam("name"))
    return Pages.of(heroes, COLUMNS, *where)


# By (team_id given, name given).
LISTS = {
    (by_team, by_name): _list(by_team=by_team, by_name=by_name)
    for by_team in (False, True)
    for by_name in (False, True)
}


def _missing_team(team_id: object) -> Conflict:
    # The only constraint a valid hero can break is its reference to a team.
    return Conflict(f"team {team_id} does not exist", field="team_id")


async def list_heroes(
    *,
    conn: AsyncConnection,
    limit: int,
    cursor: str | None,
    team_id: int | None = None,
    name: str | None = None,
) -> tuple[Rows, str | None]:
    filters = {"team_id": team_id, "name": name}
    values = {column: value for column, value in filters.items() if value is not None}
    pages = LISTS[team_id is not None, name is not None]
    return await fetch_page(conn, pages=pages, values=values, limit=limit, cursor=cursor)


async def get_hero(*, conn: AsyncConnection, hero_id: int) -> Mapping[str, Any]:
    rows = await fetch(conn, SELECT_ONE, {"hero_id": hero_id})
    if not rows:
        raise NotFound(f"hero {hero_id} does not exist")
    return rows[0]


async def create_hero(
    *,
    conn: AsyncConnection,
    name: str,
    secret_name: str,
    age: int | None = None,
    team_id: int | None = None,
) -> Mapping[str, Any]:
    now = datetime.now(UTC)
    values = {
        "name": name,
        "secret_name": secret_name,
        "age": age,
        "team_id": team_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    try:
        [hero] = await fetch(conn, INSERT_ONE, values)
    except IntegrityError as error:
        raise _missing_team(team_id) from error
    return hero


async def update_hero(
    *, conn: AsyncConnection, hero_id: int, changes: Mapping[str, Any], expected: Versions
) -> Mapping[Any, Any]:
    return await guarded_update(
        conn=conn,
        updates=UPDATES,
        row_id=hero_id,
        changes=changes,
        expected=expected,
        what=f"hero {hero_id}",
        current=lambda: get_hero(conn=conn, hero_id=hero_id),
        refused=lambda: _missing_team(changes.get("team_id")),
    )


async def delete_hero(*, conn: AsyncConnection, hero_id: int, expected: Versions) -> None:
    if (await conn.execute(guarded_delete(heroes, hero_id, expected))).rowcount == 0:
        current = await get_hero(conn=conn, hero_id=hero_id)
        refuse_missed_guard(current, expected, what=f"hero {hero_id}")
