"""Teams: queries and changes."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import Rows
from persistence.errors import Conflict, NotFound
from persistence.pagination import Pages, fetch_page
from persistence.preconditions import (
    GuardedUpdates,
    Versions,
    check_version,
    guarded_update,
)
from persistence.tables import heroes, teams

COLUMNS = (
    teams.c.id,
    teams.c.name,
    teams.c.headquarters,
    teams.c.version,
    teams.c.created_at,
    teams.c.updated_at,
)

LIST = Pages.of(teams, COLUMNS)
UPDATES = GuardedUpdates(teams, COLUMNS)


def _duplicate_name(name: str) -> Conflict:
    return Conflict(f"a team named {name!r} already exists", field="name")


async def list_teams(
    *, conn: AsyncConnection, limit: int, cursor: str | None
) -> tuple[Rows, str | None]:
    return await fetch_page(conn, pages=LIST, values={}, limit=limit, cursor=cursor)


async def get_team(*, conn: AsyncConnection, team_id: int, for_update: bool = False) -> RowMapping:
    query = select(*COLUMNS).where(teams.c.id == team_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"team {team_id} does not exist")
    return row


async def create_team(*, conn: AsyncConnection, name: str, headquarters: str) -> RowMapping:
    now = datetime.now(UTC)
    statement = (
        insert(teams)
        .values(name=name, headquarters=headquarters, version=1, created_at=now, updated_at=now)
        .returning(*COLUMNS)
    )
    try:
        return (await conn.execute(statement)).mappings().one()
    except IntegrityError as error:
        raise _duplicate_name(name) from error


async def update_team(
    *, conn: AsyncConnection, team_id: int, changes: Mapping[str, Any], expected: Versions
) -> Mapping[Any, Any]:
    return await guarded_update(
        conn=conn,
        updates=UPDATES,
        row_id=team_id,
        changes=changes,
        expected=expected,
        what=f"team {team_id}",
        current=lambda: get_team(conn=conn, team_id=team_id),
        refused=lambda: _duplicate_name(changes["name"]),
    )


async def delete_team(*, conn: AsyncConnection, team_id: int, expected: Versions) -> None:
    """Delete a team; its heroes stay, unassigned (and their versions move on)."""
    current = await get_team(conn=conn, team_id=team_id, for_update=True)
    check_version(current, expected, what=f"team {team_id}")
    await conn.execute(
        update(heroes)
        .where(heroes.c.team_id == team_id)
        .values(team_id=None, version=heroes.c.version + 1, updated_at=datetime.now(UTC))
    )
    await conn.execute(delete(teams).where(teams.c.id == team_id))
