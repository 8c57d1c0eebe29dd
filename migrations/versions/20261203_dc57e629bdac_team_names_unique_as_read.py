"""Team names unique as people read them: `teams.name_key`, under a unique index.

"Avengers", "avengers" and "Avengers " were three teams: the unique constraint on `name`
compares bytes. `name_key` holds the SHA-256 of the compared form (NFKC, case-folded, runs of
white space as one space, none around it), as `persistence.teams.name_key` computes it at this
revision; the function is copied here so that this migration keeps meaning what it meant.

Teams whose names already clash are not merged or renamed: the upgrade stops before changing
anything and lists them, so that someone renames them (`PATCH /api/teams/{id}`) and runs it
again.

Revision ID: dc57e629bdac
Revises: 5b1d2c7e9a40
Create Date: 2026-12-03 12:00:00.000000
"""

import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dc57e629bdac"
down_revision: str | None = "5b1d2c7e9a40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class ClashingTeamNames(RuntimeError):
    """Existing teams whose names are one name as people read them."""


def name_key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return hashlib.sha256(" ".join(folded.split()).encode()).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    teams = bind.execute(sa.text("SELECT id, name FROM teams ORDER BY id")).all()
    by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for team_id, name in teams:
        by_key[name_key(name)].append((team_id, name))
    clashes = [group for group in by_key.values() if len(group) > 1]
    if clashes:
        listed = "; ".join(
            ", ".join(f"team {team_id} {name!r}" for team_id, name in group) for group in clashes
        )
        raise ClashingTeamNames(
            f"{len(clashes)} set(s) of teams have names that differ only in case, white space "
            f"or Unicode form: {listed}. Rename all but one of each (PATCH /api/teams/{{id}}), "
            "then upgrade again; nothing was changed."
        )
    # A default lets SQLite add a NOT NULL column to existing rows; every row gets its key next.
    op.add_column("teams", sa.Column("name_key", sa.String(64), nullable=False, server_default=""))
    if teams:
        bind.execute(
            sa.text("UPDATE teams SET name_key = :key WHERE id = :id"),
            [{"id": team_id, "key": name_key(name)} for team_id, name in teams],
        )
    if bind.dialect.name != "sqlite":
        # SQLite cannot drop a column default without rebuilding the table (and the service
        # always writes the key); PostgreSQL can, so nothing is ever stored by default.
        op.alter_column("teams", "name_key", server_default=None)
    op.create_index("uq_teams_name_key", "teams", ["name_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_teams_name_key", table_name="teams")
    if op.get_bind().dialect.name == "sqlite":
        # Without rebuilding the table (which would unassign every hero from its team).
        op.execute("ALTER TABLE teams DROP COLUMN name_key")
    else:
        op.drop_column("teams", "name_key")
