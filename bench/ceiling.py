"""The ceiling: the same endpoints as bare Starlette + asyncpg, with the identical queries and
signature check, served by uvicorn exactly as `backoffice serve` serves the app.

It shows what Python can do here, so the service's numbers have something to be measured
against. It validates nothing beyond what the SQL needs and is never used outside the harness.
"""

import hashlib
import hmac
import os
import re
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import uvicorn
from asyncpg.pool import PoolConnectionProxy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import signing
from persistence.pagination import decode_cursor, encode_cursor

COLUMNS = (
    "heroes.id, heroes.name, heroes.age, heroes.team_id, heroes.version, "
    "heroes.created_at, heroes.updated_at"
)
TIMESTAMP = re.compile(r"[0-9]{1,15}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=JSON_OPTIONS), status, headers, "application/json")


def _public(record: asyncpg.Record) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "version"}


class Ceiling:
    def __init__(self, dsn: str, key: bytes, window_ms: int) -> None:
        self.dsn = dsn
        self.key = key
        self.window_ms = window_ms
        self.pool: asyncpg.Pool | None = None

    @classmethod
    def from_environment(cls) -> "Ceiling":
        """The harness's database, and the service's key and window (see `bench.run`)."""
        return cls(
            os.environ["BENCH_CEILING_DSN"],
            os.environ["APP_SECRET_KEY"].encode(),
            int(os.environ["APP_TIMESTAMP_SIGNING_THRESHOLD"]),
        )

    @asynccontextmanager
    async def pooled(self) -> AsyncGenerator[None]:
        # At most 20 connections, as the service's pool keeps.
        self.pool = await asyncpg.create_pool(self.dsn, min_size=10, max_size=20)
        try:
            yield
        finally:
            await self.pool.close()

    def verify(self, request: Request, body: bytes) -> bytes | None:
        """The service's checks: well-formed, fresh, and the HMAC of the same signed bytes."""
        stamp = request.headers.get("x-timestamp", "")
        signature = request.headers.get("x-signature", "")
        if not TIMESTAMP.fullmatch(stamp) or not SIGNATURE.fullmatch(signature):
            return None
        if abs(signing.now_ms() - int(stamp)) > self.window_ms:
            return None
        claimed = bytes.fromhex(signature)
        message = signing.signed_bytes(request.method, body, stamp)
        if not hmac.compare_digest(signing.digest(self.key, message), claimed):
            return None
        return claimed

    def used_signature(self, stamp: str, claimed: bytes) -> dict[str, Any]:
        """The `used_signatures` row of a signature, kept until it could no longer verify."""
        expires_at = datetime.fromtimestamp(int(stamp) / 1000, UTC) + timedelta(
            milliseconds=self.window_ms
        )
        return {"digest": hashlib.sha256(claimed).digest(), "expires_at": expires_at}

    async def accept_once(self, conn: PoolConnectionProxy, stamp: str, claimed: bytes) -> bool:
        record = self.used_signature(stamp, claimed)
        status = await conn.execute(
            "INSERT INTO used_signatures (digest, expires_at) VALUES ($1, $2) "
            "ON CONFLICT (digest) DO NOTHING",
            record["digest"],
            record["expires_at"],
        )
        return status == "INSERT 0 1"

    def signed(
        self, handler: Callable[[Request, PoolConnectionProxy, bytes], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            claimed = self.verify(request, body)
            if claimed is None:
                return json_response({"title": "Unauthorized", "status": 401}, 401)
            assert self.pool is not None
            async with self.pool.acquire() as conn:
                if request.method != "GET" and not await self.accept_once(
                    conn, request.headers["x-timestamp"], claimed
                ):
                    return json_response({"title": "Unauthorized", "status": 401}, 401)
                return await handler(request, conn, body)

        return endpoint


# The statements, shared with the floor (`bench/floor.py`): on a pool or on one of its connections,
# each answering `(body, status, headers)` as a Connexion handler does.
type Queries = asyncpg.Pool | PoolConnectionProxy
type Answer = tuple[Any, int, dict[str, str]]

NOT_FOUND: Answer = ({"title": "Not Found", "status": 404}, 404, {})


async def read_page(
    conn: Queries, *, limit: int, team_id: int | None, name: str | None, cursor: str | None
) -> Answer:
    conditions: list[str] = []
    arguments: list[Any] = []
    for condition, value in (
        ("heroes.team_id = ${}", team_id),
        ("heroes.name = ${}", name),
        ("heroes.id > ${}", None if cursor is None else decode_cursor(cursor)),
    ):
        if value is not None:
            arguments.append(value)
            conditions.append(condition.format(len(arguments)))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    arguments.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM heroes{where} ORDER BY heroes.id LIMIT ${len(arguments)}",  # noqa: S608
        *arguments,
    )
    next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    items = [_public(row) for row in rows[:limit]]
    return {"items": items, "next_cursor": next_cursor}, 200, {}


async def read_hero(conn: Queries, hero_id: int) -> Answer:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM heroes WHERE heroes.id = $1",  # noqa: S608
        hero_id,
    )
    if row is None:
        return NOT_FOUND
    return _public(row), 200, {"ETag": f'"{row["version"]}"'}


async def insert_hero(conn: Queries, hero: dict[str, Any]) -> Answer:
    now = datetime.now(UTC)
    row = await conn.fetchrow(
        "INSERT INTO heroes (name, secret_name, age, team_id, version, created_at, updated_at) "  # noqa: S608
        f"VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING {COLUMNS}",
        hero["name"],
        hero["secret_name"],
        hero.get("age"),
        hero.get("team_id"),
        now,
    )
    assert row is not None
    headers = {"ETag": f'"{row["version"]}"', "Location": f"/api/heroes/{row['id']}"}
    return _public(row), 201, headers


async def change_hero(conn: Queries, hero_id: int, changes: dict[str, Any]) -> Answer:
    row = await conn.fetchrow(
        "UPDATE heroes SET name = $2, age = $3, version = heroes.version + 1, updated_at = $4 "  # noqa: S608
        f"WHERE heroes.id = $1 RETURNING {COLUMNS}",
        hero_id,
        changes["name"],
        changes["age"],
        datetime.now(UTC),
    )
    if row is None:
        return NOT_FOUND
    return _public(row), 200, {"ETag": f'"{row["version"]}"'}


def _optional_int(value: str | None) -> int | None:
    return None if value is None else int(value)


async def list_heroes(request: Request, conn: PoolConnectionProxy, _body: bytes) -> Response:
    query = request.query_params
    return json_response(
        *await read_page(
            conn,
            limit=int(query.get("limit", "50")),
            team_id=_optional_int(query.get("team_id")),
            name=query.get("name"),
            cursor=query.get("cursor"),
        )
    )


async def get_hero(request: Request, conn: PoolConnectionProxy, _body: bytes) -> Response:
    return json_response(*await read_hero(conn, int(request.path_params["hero_id"])))


async def create_hero(_request: Request, conn: PoolConnectionProxy, body: bytes) -> Response:
    return json_response(*await insert_hero(conn, orjson.loads(body)))


async def update_hero(request: Request, conn: PoolConnectionProxy, body: bytes) -> Response:
    hero_id = int(request.path_params["hero_id"])
    return json_response(*await change_hero(conn, hero_id, orjson.loads(body)))


def create_app() -> Starlette:
    ceiling = Ceiling.from_environment()
    return Starlette(
        routes=[
            Route("/api/heroes", ceiling.signed(list_heroes), methods=["GET"]),
            Route("/api/heroes", ceiling.signed(create_hero), methods=["POST"]),
            Route("/api/heroes/{hero_id:int}", ceiling.signed(get_hero), methods=["GET"]),
            Route("/api/heroes/{hero_id:int}", ceiling.signed(update_hero), methods=["PATCH"]),
            Route("/openapi.json", lambda _request: json_response({}), methods=["GET"]),
        ],
        lifespan=lambda _app: ceiling.pooled(),
    )


def serve(app: Any) -> None:
    """Serve `app` on the port given as the first argument, as `backoffice serve` would."""
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, server_header=False)


def main() -> None:
    serve(create_app())


if __name__ == "__main__":
    main()
