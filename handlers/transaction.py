"""The request's one transaction: committed before the response is built, or rolled back."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from connexion.context import scope
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import LONE_STATEMENTS, Opener

# The scope key of a transaction opened before the handler ran: a POST with an Idempotency-Key
# (`idempotency.py`) commits its response record together with the handler's writes.
OPEN_TRANSACTION = "open_transaction"


@asynccontextmanager
async def transaction(*, one_statement: bool = False) -> AsyncGenerator[AsyncConnection]:
    """Commit on success, roll back on any error, and always return the connection.

    `one_statement`: the request changes or reads with one statement (another may follow only
    to explain a miss), so that statement can be its own transaction.
    """
    opened: AsyncConnection | None = scope.get(OPEN_TRANSACTION)
    if opened is not None:
        # Its owner commits or rolls back once the response is known.
        yield opened
        return
    state = scope["state"]
    connect: Opener = state[LONE_STATEMENTS] if one_statement else state["engine"].begin
    async with connect() as conn:
        yield conn
