"""The peer: the same endpoints as FastAPI, built the way FastAPI's documentation builds them.

What a user would otherwise run: SQLAlchemy 2 ORM models mapped onto the same tables, an async
engine on asyncpg, one `AsyncSession` per request through `Depends`, Pydantic models for the
bodies and `response_model=` for the answers, FastAPI's default JSON. The same signature check
as the ceiling (a dependency, each unsafe signature recorded once in `used_signatures`, in the
request's transaction), the same keyset pages and cursors, the same response shapes and the
same pool (20 connections, no overflow: SQLAlchemy's default 5 + 10 closes a connection after
every burst, which would measure the pool and not the stack). Served by uvicorn as the ceiling
is. Harness use only.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, DateTime, LargeBinary, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bench.ceiling import Ceiling, serve
from persistence.pagination import CURSOR, decode_cursor, encode_cursor

CURSOR_PATTERN = f"^(?:{CURSOR.pattern})$"


class Base(DeclarativeBase):
    pass


class Hero(Base):
    __tablename__ = "heroes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str]
    secret_name: Mapped[str]
    age: Mapped[int | None]
    team_id: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsedSignature(Base):
    __tablename__ = "used_signatures"

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


Name = Annotated[str, Field(min_length=1, max_length=100)]
Age = Annotated[int | None, Field(ge=0, le=10000)]
TeamRef = Annotated[int | None, Field(ge=1)]


class HeroPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    age: int | None
    team_id: int | None
    created_at: datetime
    updated_at: datetime


class HeroPage(BaseModel):
    items: list[HeroPublic]
    next_cursor: str | None


class HeroCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    secret_name: Name
    age: Age = None
    team_id: TeamRef = None


class HeroPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    secret_name: Name | None = None
    age: Age = None
    team_id: TeamRef = None


async def get_session(request: Request) -> AsyncGenerator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def verify_signature(request: Request, session: SessionDep) -> None:
    """The ceiling's check; an unsafe request's signature is recorded once, or refused."""
    checks: Ceiling = request.app.state.checks
    claimed = checks.verify(request, await request.body())
    if claimed is None:
        raise HTTPException(401, "Unauthorized")
    if request.method == "GET":
        return
    record = checks.used_signature(request.headers["x-timestamp"], claimed)
    inserted = await session.execute(
        insert(UsedSignature)
        .values(**record)
        .on_conflict_do_nothing()
        .returning(UsedSignature.digest)
    )
    if inserted.first() is None:
        raise HTTPException(401, "Unauthorized")


def _not_found(hero: Hero | None) -> Hero:
    if hero is None:
        raise HTTPException(404, "Not Found")
    return hero


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
    dsn = app.state.checks.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(dsn, pool_size=20, max_overflow=0)
    app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        yield
    finally:
        await engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan, dependencies=[Depends(verify_signature)])
    app.state.checks = Ceiling.from_environment()

    @app.get("/api/heroes", response_model=HeroPage)
    async def list_heroes(
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
        team_id: Annotated[int | None, Query(ge=1)] = None,
        name: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    ) -> Any:
        statement = select(Hero).order_by(Hero.id).limit(limit + 1)
        if team_id is not None:
            statement = statement.where(Hero.team_id == team_id)
        if name is not None:
            statement = statement.where(Hero.name == name)
        if cursor is not None:
            statement = statement.where(Hero.id > decode_cursor(cursor))
        heroes = (await session.scalars(statement)).all()
        next_cursor = encode_cursor(heroes[limit - 1].id) if len(heroes) > limit else None
        return {"items": heroes[:limit], "next_cursor": next_cursor}

    @app.get("/api/heroes/{hero_id}", response_model=HeroPublic)
    async def get_hero(hero_id: int, session: SessionDep, response: Response) -> Any:
        hero = _not_found(await session.get(Hero, hero_id))
        response.headers["ETag"] = f'"{hero.version}"'
        return hero

    @app.post("/api/heroes", response_model=HeroPublic, status_code=201)
    async def create_hero(body: HeroCreate, session: SessionDep, response: Response) -> Any:
        now = datetime.now(UTC)
        hero = Hero(**body.model_dump(), version=1, created_at=now, updated_at=now)
        session.add(hero)
        await session.commit()
        response.headers["ETag"] = f'"{hero.version}"'
        response.headers["Location"] = f"/api/heroes/{hero.id}"
        return hero

    @app.patch("/api/heroes/{hero_id}", response_model=HeroPublic)
    async def update_hero(
        hero_id: int, body: HeroPatch, session: SessionDep, response: Response
    ) -> Any:
        hero = _not_found(await session.get(Hero, hero_id))
        for field, value in body.model_dump(exclude_unset=True).items():
            setattr(hero, field, value)
        hero.version += 1
        hero.updated_at = datetime.now(UTC)
        await session.commit()
        response.headers["ETag"] = f'"{hero.version}"'
        return hero

    return app


if __name__ == "__main__":
    serve(create_app())
