"""Initial schema: teams, heroes, and the used-signature record for replay protection.

Revision ID: e8747d36daf4
Revises:
Create Date: 2026-11-26 13:15:28.168937
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e8747d36daf4"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("headquarters", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    op.create_table(
        "used_signatures",
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_used_signatures")),
    )
    with op.batch_alter_table("used_signatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_used_signatures_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "heroes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_name", sa.String(length=100), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column(
            "team_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_heroes_team_id_teams"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heroes")),
    )
    with op.batch_alter_table("heroes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_heroes_name_id"), ["name", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_heroes_team_id_id"), ["team_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("heroes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_heroes_team_id_id"))
        batch_op.drop_index(batch_op.f("ix_heroes_name_id"))

    op.drop_table("heroes")
    with op.batch_alter_table("used_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_signatures_expires_at"))

    op.drop_table("used_signatures")
    op.drop_table("teams")
