"""A few demo teams and heroes (from the SQLModel tutorial), so a first run shows data."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence import heroes, teams
from persistence.tables import teams as teams_table

TEAMS = {"Preventers": "Sharp Tower", "Z-Force": "Sister Margaret's Bar"}
HEROES = [
    ("Deadpond", "Dive Wilson", None, "Z-Force"),
    ("Rusty-Man", "Tommy Sharp", 48, "Preventers"),
    ("Spider-Boy", "Pedro Parqueador", None, None),
    ("Tarantula", "Natalia Roman-on", 32, "Preventers"),
    ("Black Lion", "Trevor Challa", 35, None),
    ("Dr. Weird", "Steve Weird", 36, None),
    ("Captain North America", "Esteban Rogelios", 93, "Preventers"),
]


async def seed(engine: AsyncEngine) -> bool:
    """Add the demo data to an empty database; False (and nothing written) if it has teams."""
    async with engine.begin() as conn:
        if (await conn.execute(select(func.count()).select_from(teams_table))).scalar_one():
            return False
        team_ids = {
            name: (await teams.create_team(conn=conn, name=name, headquarters=hq))["id"]
            for name, hq in TEAMS.items()
        }
        for name, secret_name, age, team in HEROES:
            await heroes.create_hero(
                conn=conn,
                name=name,
                secret_name=secret_name,
                age=age,
                team_id=team_ids[team] if team else None,
            )
    return True
