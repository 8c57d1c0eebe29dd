"""Teams: queries and changes.

A team's name is unique as people read it: it is stored trimmed, and compared after Unicode
NFKC normalization, without regard to case or to runs of spaces (`name_key`), so "Avengers",
"avengers" and "Avengers " are one name. A clash names the team that holds the name.
"""

import hashlib
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
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
# What a team name is trimmed of: the white space of both Python and ECMAScript (whose regular
# expressions validate the name in the spec's `TeamName` and in generated clients).
SPACES = "".join(
    [
        "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680",
        *map(chr, range(0x2000, 0x200B)),
        "\u2028\u2029\u202f\u205f\u3000\ufeff",
    ]
)
# A new name that is free goes in; a taken one leaves nothing, and the holder is looked up.
INSERT = {
    name: dialect.insert(teams)
    .on_conflict_do_nothing(index_elements=["name_key"])
    .returning(*COLUMNS)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
HOLDER = select(teams.c.id, teams.c.name).where(teams.c.name_key == bindparam("name_key"))


def name_key(name: str) -> str:
    """The compared form of a team name, as the SHA-256 of NFKC(casefold(NFKC(name))) with
    runs of white space as one space and none around it (Unicode's NFKC_Casefold, near enough)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return hashlib.sha256(" ".join(folded.split()).encode()).hexdigest()


async def _name_taken(conn: AsyncConnection, key: str, name: str) -> Conflict:
    holder = (await conn.execute(HOLDER, {"name_key": key})).first()
    if holder is None:  # renamed or deleted since: the name was taken all the same
        return Conflict(f"a team named {name!r} already exists", field="name")
    return Conflict(f"a team named {holder.name!r} already exists (team {holder.id})", field="name")


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
    name = name.strip(SPACES)
    key = name_key(name)
    now = datetime.now(UTC)
    values = {
        "name": name,
        "name_key": key,
        "headquarters": headquarters,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    created = (await conn.execute(INSERT[conn.dialect.name], values)).mappings().first()
    if created is None:
        raise await _name_taken(conn, key, name)
    return created


async def update_team(
    *, conn: AsyncConnection, team_id: int, changes: Mapping[str, Any], expected: Versions
) -> Mapping[Any, Any]:
    if "name" in changes:
        name = changes["name"].strip(SPACES)
        key = name_key(name)
        holder = (await conn.execute(HOLDER, {"name_key": key})).first()
        if holder is not None and holder.id != team_id:
            raise await _name_taken(conn, key, name)
        changes = {**changes, "name": name, "name_key": key}
    return await guarded_update(
        conn=conn,
        updates=UPDATES,
        row_id=team_id,
        changes=changes,
        expected=expected,
        what=f"team {team_id}",
        current=lambda: get_team(conn=conn, team_id=team_id),
        # A rename that raced another to the same name.
        refused=lambda: Conflict(f"a team named {changes['name']!r} already exists", field="name"),
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
