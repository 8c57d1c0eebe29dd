from typing import Any

from connexion.context import scope

from handlers.representation import (
    Reply,
    created,
    expected_versions,
    fresh_or_not_modified,
    no_content,
    page,
    resource,
)
from persistence import heroes, teams
from persistence.database import lone_statement, transaction


async def list_teams(limit: int = 50, cursor: str | None = None) -> Reply:
    async with lone_statement(scope) as conn:
        rows, next_cursor = await teams.list_teams(conn=conn, limit=limit, cursor=cursor)
    return page(rows, next_cursor)


async def create_team(body: dict[str, Any]) -> Reply:
    async with lone_statement(scope) as conn:
        team = await teams.create_team(conn=conn, **body)
    return created(team, f"/api/teams/{team['id']}")


async def get_team(team_id: int) -> Reply:
    async with lone_statement(scope) as conn:
        team = await teams.get_team(conn=conn, team_id=team_id)
    return fresh_or_not_modified(team)


async def update_team(team_id: int, body: dict[str, Any]) -> Reply:
    async with lone_statement(scope) as conn:
        team = await teams.update_team(
            conn=conn, team_id=team_id, changes=body, expected=expected_versions()
        )
    return resource(team)


async def delete_team(team_id: int) -> Reply:
    async with transaction(scope) as conn:
        await teams.delete_team(conn=conn, team_id=team_id, expected=expected_versions())
    return no_content()


async def list_team_heroes(team_id: int, limit: int = 50, cursor: str | None = None) -> Reply:
    async with transaction(scope) as conn:
        await teams.get_team(conn=conn, team_id=team_id)
        rows, next_cursor = await heroes.list_heroes(
            conn=conn, limit=limit, cursor=cursor, team_id=team_id
        )
    return page(rows, next_cursor)
