"""The schema, as SQLAlchemy Core tables; Alembic's migrations are generated from it."""

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    TypeDecorator,
)

# Named constraints keep migrations identical on PostgreSQL and SQLite.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite's INTEGER PRIMARY KEY is already 64-bit; BIGINT would disable its rowid alias.
Identifier = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


teams = Table(
    "teams",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    # What makes a name unique: the SHA-256, in hex, of its compared form
    # (`persistence.teams.name_key`), so that "Avengers", "avengers" and "Avengers " clash.
    Column("name_key", String(64), nullable=False),
    Column("headquarters", String(200), nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # An index rather than a constraint: SQLite adds one to an existing table without rebuilding
    # it, and INSERT ... ON CONFLICT (name_key) names it on both backends.
    Index("uq_teams_name_key", "name_key", unique=True),
    # SQLite reuses the highest id after a delete unless the table is AUTOINCREMENT; a reused id
    # would answer an old ETag or URL with another resource. PostgreSQL identities never reuse.
    sqlite_autoincrement=True,
)

heroes = Table(
    "heroes",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("secret_name", String(100), nullable=False),
    Column("age", Integer, nullable=True),
    Column(
        "team_id",
        Identifier,
        ForeignKey("teams.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Keyset pages filtered by team or name read these in `id` order, however deep the page.
    Index(None, "team_id", "id"),
    Index(None, "name", "id"),
    sqlite_autoincrement=True,
)

# Signatures of requests already served, so that each is accepted once (replay protection).
used_signatures = Table(
    "used_signatures",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# The response to each POST sent with an `Idempotency-Key`, so that a retry replays it. A row
# commits in the same transaction as the resource the request created (`middleware/idempotency.py`).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(255), nullable=False),
    Column("fingerprint", LargeBinary(32), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    PrimaryKeyConstraint("key", "method", "path"),
)
