"""The floor: plain Connexion serving `openapi.yaml`, with the ceiling's work in its handlers.

An unmodified `connexion.AsyncApp` with every option at its default: Connexion's own
operations, validators, JSON and middleware stack, none of the service's overrides in
`contract/`. A signature check sits in front of its security layer, where the service has its
own, and the handlers run the ceiling's asyncpg statements and hand Connexion
`(body, status, headers)`: no SQLAlchemy, none of the service's logging, metrics, CORS or
idempotency. It is what a user gets from Connexion doing nothing else, so `service / floor`
says what the service's own layers cost or win back. Harness use only.
"""

from typing import Any, cast

import asyncpg
from connexion import AsyncApp
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app import SPEC
from bench.ceiling import (
    Answer,
    Ceiling,
    change_hero,
    insert_hero,
    json_response,
    read_hero,
    read_page,
    serve,
)
from handlers import OPERATIONS
from middleware.request_body import read_body, replaying
from middleware.signature import SIGNED_PREFIX, VERIFIED

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
            await json_response({"title": "Unauthorized", "status": 401}, 401)(scope, receive, send)
            return
        await self.app({**scope, VERIFIED: 1}, replaying(body, receive), send)


def _typed(answer: Answer) -> Answer:
    """The answer with its media type: the spec declares two per operation, and Connexion asks."""
    body, status, headers = answer
    media = "application/json" if status < 400 else "application/problem+json"
    return body, status, {**headers, "Content-Type": media}


async def list_heroes(
    limit: int = 50, cursor: str | None = None, team_id: int | None = None, name: str | None = None
) -> Answer:
    return _typed(
        await read_page(floor.pool, limit=limit, team_id=team_id, name=name, cursor=cursor)
    )


async def get_hero(hero_id: int) -> Answer:
    return _typed(await read_hero(floor.pool, hero_id))


async def create_hero(body: dict[str, Any]) -> Answer:
    return _typed(await insert_hero(floor.pool, body))


async def update_hero(hero_id: int, body: dict[str, Any]) -> Answer:
    return _typed(await change_hero(floor.pool, hero_id, body))


def not_measured(**_kwargs: Any) -> Answer:
    return _typed(({"title": "Not Implemented", "status": 501}, 501, {}))


HANDLERS = {
    "listHeroes": list_heroes,
    "getHero": get_hero,
    "createHero": create_hero,
    "updateHero": update_hero,
}


def _resolve(operation_id: str) -> Any:
    if operation_id.startswith("middleware.signature."):
        return Resolver().resolve_function_from_operation_id(operation_id)
    if operation_id in HANDLERS:
        return HANDLERS[operation_id]
    served = OPERATIONS[operation_id]
    return served if served.__module__ == "handlers.ops" else not_measured


def create_app() -> AsyncApp:
    floor.checks = Ceiling.from_environment()
    app = AsyncApp(__name__, lifespan=lambda _app: floor.ceiling.pooled())
    app.add_api(SPEC, resolver=Resolver(function_resolver=_resolve))
    app.add_middleware(cast(Any, SignatureCheck), position=MiddlewarePosition.BEFORE_SECURITY)
    return app


if __name__ == "__main__":
    serve(create_app())
