"""PostgreSQL through asyncpg itself: a read-only unit of work's statements on borrowed pooled connections, and every
writing unit of work's transaction begun and ended on the driver.

Through SQLAlchemy's session every statement pays for its execution path (the greenlet hop, an execution context,
a cursor and a result set-up) and every transaction for the session's own (docs/performance.md, round twelve). The
app's hottest statements are :class:`~core.db.driver_statement.DriverStatement` (reads) and
:class:`~core.db.driver_statement.DriverWrite` (``UPDATE`` and ``INSERT``), compiled once per dialect; on
PostgreSQL they run here, on asyncpg's own prepared statements.

* **Reads** (:meth:`DriverPool.fetch`). A read-only unit of work runs in autocommit: each statement reads the latest
  commits, and nothing ties one statement to the connection of the one before. So each borrows a pooled connection
  for itself alone and gives it back. Its session connects only if a statement needs it (an ORM query), in
  autocommit; from then on the unit of work's statements run on the session's connection, so it never holds two.
* **Writes** (:class:`DriverTransaction`). A writing unit of work borrows one pooled connection and begins its
  transaction on asyncpg (``BEGIN``). Its session is bound to that same connection in SQLAlchemy's autocommit mode,
  so whatever the session sends (an ORM flush, a statement not worth compiling) runs inside that transaction too;
  the driver's statements run on it directly. ``COMMIT`` or ``ROLLBACK`` is the driver's. One connection, one
  transaction: nothing is ever half-written.

Errors keep their meaning: a constraint violation is SQLAlchemy's ``IntegrityError`` (use cases turn it into
``Conflict``); a connection that is lost (the server gone, restarted, a timeout) or a statement cancelled half-way
never goes back into the pool, and the use case reads :class:`Unavailable`; any other error of a statement (none is
expected: the statements are the app's own) is raised as the driver raised it.

SQLAlchemy's engine events do not see these statements and transactions: whoever counts what PL receives (the
benchmark's census, tests) listens here too (``listeners``: the event, the connection's key, the SQL and its
parameters). There is one :class:`DriverPool` per engine (:meth:`DriverPool.of`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from core.domain.errors import Unavailable

__all__ = ["DRIVER", "DriverEvent", "DriverPool", "DriverTransaction", "connection_lost"]

# The key under which a unit of work's session carries its DriverPool (read-only) or DriverTransaction (writing).
DRIVER = "pcare_driver"

DriverEvent = Literal["statement", "begin", "commit", "rollback"]
Listener = Callable[[DriverEvent, int, str, Sequence[Any]], None]  # the event, the connection's key, SQL, parameters

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


# One per engine, for as long as something holds it (a DriverPool holds its engine, so the engine's id stays its own).
_POOLS: weakref.WeakValueDictionary[int, DriverPool] = weakref.WeakValueDictionary()


def connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, _LOST):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower()


def _rows(records: Any, first: bool) -> list[Any]:
    if first:
        return [] if records is None else [records]
    return list(records)


def _rowcount(status: str) -> int:
    """The row count of a command tag: ``UPDATE 1``, ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class DriverPool:
    """The engine's pool, used through asyncpg (see the module's note)."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "asyncpg":
            raise ValueError("the driver's way runs on PostgreSQL through asyncpg")
        self.engine = engine
        self.dialect = engine.dialect
        # A read-only unit of work's session, should a statement need it, begins on this: autocommit, as above.
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.listeners: list[Listener] = []

    @classmethod
    def of(cls, engine: AsyncEngine) -> DriverPool:
        """The engine's DriverPool (one per engine: its listeners hear every unit of work on it)."""
        pool = _POOLS.get(id(engine.sync_engine))
        if pool is None:
            pool = _POOLS[id(engine.sync_engine)] = cls(engine)
        return pool

    def _tell(self, event: DriverEvent, key: int, sql: str, parameters: Sequence[Any] = ()) -> None:
        for listener in self.listeners:
            listener(event, key, sql, parameters)

    async def fetch(
        self, sql: str, parameters: Sequence[Any], *, first: bool, describe: bool
    ) -> tuple[list[Any], list[int] | None]:
        """On a connection borrowed for this statement alone (autocommit): the rows of ``sql`` (asyncpg records;
        with ``first``, the first alone) and, with ``describe``, the type of each column (its oid)."""
        pooled = await self.engine.raw_connection()  # errors here are SQLAlchemy's, as through a session
        try:
            self._tell("statement", id(pooled), sql, parameters)
            with _errors(pooled, sql, parameters):
                return await _fetch(pooled, sql, parameters, first=first, describe=describe)
        finally:
            # Checking in may close the connection (the pool's overflow), which awaits the driver.
            await greenlet_spawn(pooled.close)

    async def begin(self) -> DriverTransaction:
        """A writing unit of work's connection, its transaction begun."""
        pooled = await self.engine.raw_connection()
        try:
            return await DriverTransaction.begin(self, pooled)
        except BaseException:
            await greenlet_spawn(pooled.close)
            raise


class DriverTransaction:
    """One pooled connection and its transaction on asyncpg; ``bind`` is the same connection for the session."""

    def __init__(self, pool: DriverPool, pooled: PoolProxiedConnection, transaction: Any) -> None:
        self.pool = pool
        self.dialect = pool.dialect
        self._pooled = pooled
        self._driver: Any = pooled.driver_connection
        self._transaction = transaction
        self._key = id(pooled)
        # The session's bind: this connection, in SQLAlchemy's autocommit (it sends no BEGIN or COMMIT of its own;
        # the transaction above holds what it sends).
        sync = Connection(pool.engine.sync_engine, connection=pooled)
        sync.execution_options(isolation_level="AUTOCOMMIT")
        self.bind = AsyncConnection(pool.engine, sync)
        self.ended = False

    @classmethod
    async def begin(cls, pool: DriverPool, pooled: PoolProxiedConnection) -> DriverTransaction:
        pool._tell("begin", id(pooled), "BEGIN")
        with _errors(pooled, "BEGIN", ()):
            transaction = pooled.driver_connection.transaction()  # type: ignore[union-attr]
            await transaction.start()
        return cls(pool, pooled, transaction)

    async def fetch(
        self, sql: str, parameters: Sequence[Any], *, first: bool, describe: bool
    ) -> tuple[list[Any], list[int] | None]:
        """As :meth:`DriverPool.fetch`, in this transaction."""
        self.pool._tell("statement", self._key, sql, parameters)
        with _errors(self._pooled, sql, parameters):
            return await _fetch(self._pooled, sql, parameters, first=first, describe=describe)

    async def execute(self, sql: str, parameters: Sequence[Any]) -> int:
        """Run ``sql`` (an ``UPDATE`` or ``INSERT``) in this transaction; the number of rows it changed."""
        self.pool._tell("statement", self._key, sql, parameters)
        with _errors(self._pooled, sql, parameters):
            return _rowcount(await self._driver.execute(sql, *parameters))

    async def execute_many(self, sql: str, parameters: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once per set of ``parameters``, in one round trip, in this transaction."""
        self.pool._tell("statement", self._key, sql, parameters[0] if parameters else ())
        with _errors(self._pooled, sql, parameters):
            await self._driver.executemany(sql, parameters)

    async def commit(self) -> None:
        with _errors(self._pooled, "COMMIT", ()):
            await self._transaction.commit()
        self.ended = True
        self.pool._tell("commit", self._key, "COMMIT")

    async def close(self) -> None:
        """Roll back unless committed, and give the connection back (through the session's bind, which resets it)."""
        try:
            if not self.ended and self._pooled.is_valid:
                self.ended = True
                with contextlib.suppress(Exception), _errors(self._pooled, "ROLLBACK", ()):
                    await self._transaction.rollback()  # the block's own error matters more; a lost one is dropped
                self.pool._tell("rollback", self._key, "ROLLBACK")
        finally:
            if self._pooled.is_valid and self._driver.is_in_transaction():
                self._pooled.invalidate()  # never back into the pool inside a transaction
            await self.bind.close()


async def _fetch(
    pooled: PoolProxiedConnection, sql: str, parameters: Sequence[Any], *, first: bool, describe: bool
) -> tuple[list[Any], list[int] | None]:
    driver = pooled.driver_connection
    assert driver is not None
    if describe:
        prepared = await driver.prepare(sql)
        codes = [attribute.type.oid for attribute in prepared.get_attributes()]
        records = await (prepared.fetchrow(*parameters) if first else prepared.fetch(*parameters))
        return _rows(records, first), codes
    records = await (driver.fetchrow(sql, *parameters) if first else driver.fetch(sql, *parameters))
    return _rows(records, first), None


@contextlib.contextmanager
def _errors(pooled: PoolProxiedConnection, sql: str, parameters: Any) -> Iterator[None]:
    """Raise what the driver's error means (see the module's note). A lost connection, or one cancelled half-way
    (its protocol's state is then unknown), is invalidated: it never goes back into the pool."""
    try:
        yield
    except BaseException as exc:
        # As SQLAlchemy judges it: the driver's connection closed under the error (asyncpg may report a server's
        # termination notice as another error when it arrives just before the statement).
        driver = pooled.driver_connection
        lost = connection_lost(exc) or (driver is not None and driver.is_closed())
        if lost or not isinstance(exc, Exception):
            pooled.invalidate(exc if isinstance(exc, Exception) else None)
        if lost:
            raise Unavailable("database") from exc
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            raise IntegrityError(sql, parameters, exc) from exc
        raise
