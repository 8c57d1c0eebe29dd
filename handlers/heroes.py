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
from persistence import heroes
from persistence.database import lone_statement


async def list_heroes(
    limit: int = 50, cursor: str | None = None, team_id: int | None = None, name: str | None = None
) -> Reply:
    async with lone_statement(scope) as conn:
        rows, next_cursor = await heroes.list_heroes(
            conn=conn, limit=limit, cursor=cursor, team_id=team_id, name=name
        )
    return page(rows, next_cursor)


async def create_hero(body: dict[str, Any]) -> Reply:
    async with lone_statement(scope) as conn:
        hero = await heroes.create_hero(conn=conn, **body)
    return created(hero, f"/api/heroes/{hero['id']}")


async def get_hero(hero_id: int) -> Reply:
    async with lone_statement(scope) as conn:
        hero = await heroes.get_hero(conn=conn, hero_id=hero_id)
    return fresh_or_not_modified(hero)


async def update_hero(hero_id: int, body: dict[str, Any]) -> Reply:
    async with lone_statement(scope) as conn:
        hero = await heroes.update_hero(
            conn=conn, hero_id=hero_id, changes=body, expected=expected_versions()
        )
    return resource(hero)


async def delete_hero(hero_id: int) -> Reply:
    async with lone_statement(scope) as conn:
        await heroes.delete_hero(conn=conn, hero_id=hero_id, expected=expected_versions())
    return no_content()
