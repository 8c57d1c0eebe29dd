"""The request's one transaction: committed before the response is built, or rolled back."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from connexion.context import scope
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# The scope key of a transaction opened before the handler ran: a POST with an Idempotency-Key
# (`idempotency.py`) commits its response record together with the handler's writes.
OPEN_TRANSACTION = "open_transaction"


@asynccontextmanager
async def transaction() -> AsyncGenerator[AsyncConnection]:
    """Commit on success, roll back on any error, and always return the connection."""
    opened: AsyncConnection | None = scope.get(OPEN_TRANSACTION)
    if opened is not None:
        # Its owner commits or rolls back once the response is known.
        yield opened
        return
    engine: AsyncEngine = scope["state"]["engine"]
    async with engine.begin() as conn:
        yield conn
