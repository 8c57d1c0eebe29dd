"""The request's one transaction: committed before the response is built, or rolled back."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from connexion.context import scope
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@asynccontextmanager
async def transaction() -> AsyncGenerator[AsyncConnection]:
    """Commit on success, roll back on any error, and always return the connection."""
    engine: AsyncEngine = scope["state"]["engine"]
    async with engine.begin() as conn:
        yield conn
