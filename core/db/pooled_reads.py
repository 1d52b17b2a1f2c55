"""A read-only unit of work's driver statements on PostgreSQL, each on a pooled connection it borrows for itself alone.

A read-only unit of work on PostgreSQL runs in autocommit: each statement reads the latest commits, and nothing
ties one statement to the connection of the one before. So a :class:`~core.db.driver_statement.DriverStatement`
there needs no session: it borrows a connection from the engine's pool, runs on asyncpg itself (its prepared
statement cache, no SQLAlchemy cursor, result or greenlet around the statement) and gives the connection back.
A look-up's read costs a third of the CPU it costs through the session (docs/performance.md, round twelve).
The session of the unit of work opens only when a statement needs it (an ORM query); from then on every
statement of that unit of work runs on the session's connection, so a unit of work never holds two.

Errors keep their meaning: a connection that is lost (the server gone, restarted, or a timeout) is
invalidated, so the pool opens a fresh one next time, and the use case reads :class:`Unavailable`, as it
would through the session. An error of the statement itself (none is expected: the statements are the
app's own, fixed ``SELECT`` statements) is raised as the driver raised it.

SQLAlchemy's engine events do not see these statements: whoever counts what PL receives (the benchmark's
census, tests) listens here too (``listeners``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from core.domain.errors import Unavailable

__all__ = ["POOLED_READS", "PooledReads"]

# The key under which a read-only unit of work's session carries its PooledReads (core/db/uow.py).
POOLED_READS = "pcare_pooled_reads"

# What says the connection, not the statement, failed: the socket, a timeout, the server shutting down or
# refusing (SQLSTATE classes 08 and 57), or asyncpg's "connection is closed".
_LOST = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, _LOST):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower()


class PooledReads:
    """The engine's pool, borrowed one statement at a time, and an autocommit engine for a session that opens late."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "asyncpg":
            raise ValueError("pooled reads run on PostgreSQL through asyncpg")
        self.engine = engine
        self.dialect = engine.dialect
        # A read-only unit of work's session, should a statement need it, begins on this: autocommit, as above.
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.listeners: list[Callable[[str], None]] = []  # each statement's SQL, before it runs

    async def fetch(
        self, sql: str, parameters: Sequence[Any], *, first: bool, describe: bool
    ) -> tuple[list[Any], list[int] | None]:
        """The rows of ``sql`` (asyncpg records; with ``first``, the first alone) and, with ``describe``, the type
        of each column (its oid)."""
        for listener in self.listeners:
            listener(sql)
        pooled = await self.engine.raw_connection()  # errors here are SQLAlchemy's, as through a session
        try:
            driver = pooled.driver_connection
            assert driver is not None
            codes = None
            if describe:
                prepared = await driver.prepare(sql)
                codes = [attribute.type.oid for attribute in prepared.get_attributes()]
                rows = [await prepared.fetchrow(*parameters)] if first else await prepared.fetch(*parameters)
            else:
                rows = [await driver.fetchrow(sql, *parameters)] if first else await driver.fetch(sql, *parameters)
            return [row for row in rows if row is not None], codes
        except BaseException as exc:
            # Lost, or cancelled half-way (the protocol's state is then unknown): never back into the pool.
            if connection_lost(exc) or not isinstance(exc, Exception):
                pooled.invalidate(exc if isinstance(exc, Exception) else None)
            if connection_lost(exc):
                raise Unavailable("database") from exc
            raise
        finally:
            # Checking in may close the connection (the pool's overflow), which awaits the driver.
            await greenlet_spawn(pooled.close)
