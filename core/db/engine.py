"""Engine factory for the PL database: SQLite (embedded default) or PostgreSQL (production)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session

# The execution option of a read-only unit of work (core/db/uow.py): SQLite begins it DEFERRED.
READ_ONLY_OPTION = "pcare_read_only"

# A pooled PostgreSQL connection idle for longer than this is pinged before use (see _ping_when_idle).
IDLE_PING_SECONDS = 10.0
_IDLE_SINCE = "pcare_idle_since"


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int | None = None,
    idle_ping_seconds: float = IDLE_PING_SECONDS,
) -> AsyncEngine:
    """Build the engine. Nothing calls this at import time: the composition root does.

    ``pool_size`` and ``max_overflow`` (default: twice the pool) bound a PostgreSQL process's connections, and so
    how many transactions it runs at once (SQLite ignores them)."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, echo=echo)
    if backend == "postgresql":
        engine = create_async_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size * 2 if max_overflow is None else max_overflow,
            pool_timeout=10,
            connect_args={"timeout": 5, "command_timeout": 15},
        )
        _ping_when_idle(engine, idle_ping_seconds)
        return engine
    raise ValueError(f"unsupported database backend: {backend}")


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it has sat idle for ``idle_seconds``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout; with asyncpg outside autocommit that is three
    round trips (BEGIN, a no-op, ROLLBACK), about 0.2 ms on a 0.2 ms lookup and on every desk update. A
    connection in steady use has just proved itself; one that sat idle (the PL restarted, a firewall dropped
    it) is the one worth checking, and a failed ping here swaps it for a fresh one before the use case sees
    it. A connection that breaks while in use still fails that one use case (``Unavailable``), and
    SQLAlchemy then recycles every connection opened before the failure, so the next one reconnects.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # just connected, or in steady use
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("idle connection failed its ping") from exc


def _sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the driver, emits BEGIN (see _on_begin); the driver's legacy mode
        # would leave SELECTs outside the transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction cannot fail
        # with "database is locked" half-way, and concurrent writers queue on busy_timeout.
        # A read-only unit of work (core/db/uow.py) begins DEFERRED: a WAL snapshot, no write lock.
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@event.listens_for(Session, "do_orm_execute")
def _refuse_writes_when_read_only(state: ORMExecuteState) -> None:
    """A read-only unit of work (core/db/uow.py) runs SELECTs only, whatever executes them."""
    if state.session.info.get(READ_ONLY_OPTION) and not state.is_select:
        raise RuntimeError("a read-only unit of work cannot write")
