"""SQLite ids never reused: `heroes` and `teams` become AUTOINCREMENT tables.

Without AUTOINCREMENT, SQLite hands the highest id out again once its row is deleted, so a
client still holding that hero's URL or ETag `"1"` reaches a different hero. SQLite cannot add
AUTOINCREMENT to a table, so each is recreated (batch mode). PostgreSQL identities never reuse
a value: nothing to do there.

Revision ID: 5b1d2c7e9a40
Revises: fed12c2faf10
Create Date: 2026-11-30 08:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1d2c7e9a40"
down_revision: str | None = "fed12c2faf10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def recreate(*, autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # Recreating `teams` drops the old table, and with foreign keys on SQLite first deletes its
    # rows, which sets every hero's team_id to NULL (ON DELETE SET NULL): put them back after.
    memberships = bind.execute(
        sa.text("SELECT id, team_id FROM heroes WHERE team_id IS NOT NULL")
    ).all()
    for table in ("heroes", "teams"):
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    if memberships:
        bind.execute(
            sa.text("UPDATE heroes SET team_id = :team_id WHERE id = :id"),
            [{"id": hero_id, "team_id": team_id} for hero_id, team_id in memberships],
        )


def upgrade() -> None:
    recreate(autoincrement=True)


def downgrade() -> None:
    recreate(autoincrement=False)
