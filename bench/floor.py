"""The floor: Connexion itself, serving `openapi.yaml`, with the ceiling's work in its handlers.

Connexion's AsyncApp as the service sets it up (`operations.py`, `validation.py`, orjson):
routing, security, parameter and body validation, response building; a signature check in
front of its security layer, where the service has its own; and handlers that run the
ceiling's asyncpg statements: no SQLAlchemy, none of the service's logging, metrics, CORS or
idempotency. Whatever the service does, it cannot be faster than this while it
is served by Connexion, so `floor / ceiling` bounds `service / ceiling`. Harness use only.
"""

import logging
import os
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import orjson
import uvicorn
from connexion import AsyncApp
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app import SPEC, OrjsonJsonifier
from authentication import SIGNED_PREFIX, VERIFIED
from bench.ceiling import COLUMNS, Ceiling, _json, _public
from operations import PrebuiltAsyncApp
from persistence.pagination import decode_cursor, encode_cursor
from request_body import read_body, replaying
from validation import VALIDATORS

MAX_BODY_BYTES = 1_048_576


class Floor:
    """The ceiling's key, window and pool, set up by `create_app` for the handlers below."""

    checks: Ceiling | None = None

    @property
    def ceiling(self) -> Ceiling:
        assert self.checks is not None, "create_app() first"
        return self.checks

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.ceiling.pool is not None
        return self.ceiling.pool


floor = Floor()


class SignatureCheck:
    """The ceiling's check, where the service checks: before Connexion's security layer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SIGNED_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, MAX_BODY_BYTES)
        request = Request(scope)
        claimed = floor.ceiling.verify(request, body)
        if claimed is not None and scope["method"] != "GET":
            async with floor.pool.acquire() as conn:
                if not await floor.ceiling.accept_once(
                    conn, request.headers["x-timestamp"], claimed
                ):
                    claimed = None
        if claimed is None:
            await _json({"title": "Unauthorized", "status": 401}, 401)(scope, receive, send)
            return
        await self.app({**scope, VERIFIED: 1}, replaying(body, receive), send)


async def list_heroes(
    limit: int = 50, cursor: str | None = None, team_id: int | None = None, name: str | None = None
) -> Response:
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
    rows = await floor.pool.fetch(
        f"SELECT {COLUMNS} FROM heroes{where} ORDER BY heroes.id LIMIT ${len(arguments)}",  # noqa: S608
        *arguments,
    )
    next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return _json({"items": [_public(row) for row in rows[:limit]], "next_cursor": next_cursor})


async def get_hero(hero_id: int) -> Response:
    row = await floor.pool.fetchrow(
        f"SELECT {COLUMNS} FROM heroes WHERE heroes.id = $1",  # noqa: S608
        hero_id,
    )
    if row is None:
        return _json({"title": "Not Found", "status": 404}, 404)
    return _json(_public(row), headers={"ETag": f'"{row["version"]}"'})


async def create_hero(body: dict[str, Any]) -> Response:
    now = datetime.now(UTC)
    row = await floor.pool.fetchrow(
        "INSERT INTO heroes (name, secret_name, age, team_id, version, created_at, updated_at) "  # noqa: S608
        f"VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING {COLUMNS}",
        body["name"],
        body["secret_name"],
        body.get("age"),
        body.get("team_id"),
        now,
    )
    assert row is not None
    headers = {"ETag": f'"{row["version"]}"', "Location": f"/api/heroes/{row['id']}"}
    return _json(_public(row), 201, headers)


async def update_hero(hero_id: int, body: dict[str, Any]) -> Response:
    row = await floor.pool.fetchrow(
        "UPDATE heroes SET name = $2, age = $3, version = heroes.version + 1, updated_at = $4 "  # noqa: S608
        f"WHERE heroes.id = $1 RETURNING {COLUMNS}",
        hero_id,
        body["name"],
        body["age"],
        datetime.now(UTC),
    )
    if row is None:
        return _json({"title": "Not Found", "status": 404}, 404)
    return _json(_public(row), headers={"ETag": f'"{row["version"]}"'})


def not_measured(**_kwargs: Any) -> Response:
    return Response(orjson.dumps({"title": "Not Implemented", "status": 501}), 501)


HANDLERS = {
    "handlers.heroes.list_heroes": list_heroes,
    "handlers.heroes.get_hero": get_hero,
    "handlers.heroes.create_hero": create_hero,
    "handlers.heroes.update_hero": update_hero,
}


def _resolve(operation_id: str) -> Any:
    if operation_id.startswith(("handlers.ops.", "authentication.")):
        return Resolver().resolve_function_from_operation_id(operation_id)
    return HANDLERS.get(operation_id, not_measured)


def create_app() -> AsyncApp:
    dsn = os.environ["BENCH_CEILING_DSN"]
    floor.checks = Ceiling(
        os.environ["APP_SECRET_KEY"].encode(), int(os.environ["APP_TIMESTAMP_SIGNING_THRESHOLD"])
    )

    @asynccontextmanager
    async def lifespan(_app: AsyncApp) -> AsyncGenerator[None]:
        floor.ceiling.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=20)
        try:
            yield
        finally:
            await floor.pool.close()

    # Connexion as the service configures it: operations built once, its validators, orjson.
    logging.getLogger("connexion.operations.openapi3").setLevel(logging.ERROR)
    app = PrebuiltAsyncApp(
        __name__,
        lifespan=lifespan,
        jsonifier=OrjsonJsonifier(),
        strict_validation=True,
        validator_map=VALIDATORS,
    )
    app.add_api(SPEC, resolver=Resolver(function_resolver=_resolve))
    app.add_middleware(cast(Any, SignatureCheck), position=MiddlewarePosition.BEFORE_SECURITY)
    return app


def main() -> None:
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
