"""The connection pool as the settings build it, on PostgreSQL."""

import asyncio

from sqlalchemy import event, text

from persistence.database import create_engine
from settings import Settings

# Concurrent requests one worker holds connections for under the benchmark's 32 connections.
BURST = 20


def test_a_burst_of_requests_reuses_the_connections_the_last_burst_opened(
    backend_settings: dict[str, Settings],
) -> None:
    # An overflow connection is closed as soon as it is returned: with the old 10 + 10 pool,
    # every burst above 10 opened (and PostgreSQL forked) new connections, a request's worth
    # of CPU each.
    settings = backend_settings["postgresql"]

    async def two_bursts() -> tuple[int, int]:
        engine = create_engine(settings)
        opened: list[object] = []
        event.listen(engine.sync_engine, "connect", lambda connection, _record: opened.append(1))

        async def hold() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(0.05)"))

        try:
            await asyncio.gather(*(hold() for _ in range(BURST)))
            after_first = len(opened)
            await asyncio.gather(*(hold() for _ in range(BURST)))
            return after_first, len(opened)
        finally:
            await engine.dispose()

    assert asyncio.run(two_bursts()) == (BURST, BURST)
