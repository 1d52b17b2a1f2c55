"""core.db.pooled_reads: a read-only unit of work's driver statements on PostgreSQL, each on a connection it borrows
from the pool for itself alone, read what the session reads; the session opens only when a statement needs it, and
then carries the rest; a lost or cancelled connection never goes back into the pool. On a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import Integer, String, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.db.driver_statement import DriverStatement
from core.domain.errors import Unavailable
from core.services.registry import Services
from tests.core.db.test_driver_statement import _PROCESSED, _V, Executions, _visits
from tests.core.db.test_idle_ping import kill_pool_connections

pytestmark = pytest.mark.parametrize(
    "demo_db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

_BACKEND = DriverStatement(select(func.pg_backend_pid().label("pid")))


def checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def test_each_driver_statement_borrows_a_connection_for_itself_and_reads_what_the_session_reads(
    services: Services, engine: AsyncEngine
) -> None:
    ids = await _visits(services, engine)
    now = services.ctx.clock.now()
    values = {"today": now.date(), "since": now - timedelta(hours=1)}
    async with services.ctx.uow() as uow:
        expected = (await uow.session.execute(_PROCESSED, values)).all()
    # New statements: their first execution learns the columns' types on the borrowed connection too.
    statement = DriverStatement(_PROCESSED)
    numeric = DriverStatement(select(_V.id, _V.temperature_c).where(_V.id == bindparam("visit_id")))
    held = []
    with Executions(engine, services.ctx.pooled_reads) as seen:
        async with services.ctx.uow(read_only=True) as uow:
            rows = await statement.all(uow.session, **values)
            held.append(checked_out(engine))
            first = await statement.first(uow.session, **values)
            none = await statement.first(uow.session, today=date(2000, 1, 1), since=now)
            temperature = await numeric.first(uow.session, visit_id=ids[0])
            again = await numeric.first(uow.session, visit_id=ids[0])
            held.append(checked_out(engine))
            assert not uow.session.in_transaction()  # the session never connected
    assert [r.id for r in expected] == ids  # the statement finds the two visits: the comparison below means something
    assert [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert first is not None and tuple(first) == tuple(expected[0]) and none is None
    assert rows[0].screened_at == now and rows[0].screened_at.tzinfo is not None  # aware UTC, as the ORM reads it
    assert rows[0].answers == {"demam": True} and rows[0].service_date == now.date()  # by name, processed
    assert temperature is not None and isinstance(temperature.temperature_c, Decimal)
    assert temperature.temperature_c == Decimal("37.6") and tuple(again) == tuple(temperature)
    assert held == [0, 0]  # each connection went back to the pool after its statement
    assert len(seen.pooled) == 5 and len(seen.seen) == 5  # all five on borrowed connections, none through SQLAlchemy


async def test_once_the_session_connects_the_driver_statements_run_on_its_connection_and_never_hold_two(
    services: Services, engine: AsyncEngine
) -> None:
    ids = await _visits(services, engine)
    numeric = DriverStatement(select(_V.id, _V.temperature_c).where(_V.id == bindparam("visit_id")))
    with Executions(engine, services.ctx.pooled_reads) as seen:
        async with services.ctx.uow(read_only=True) as uow:
            before = await numeric.first(uow.session, visit_id=ids[0])  # borrowed
            status = (await uow.session.execute(select(_V.status).where(_V.id == ids[0]))).scalar_one()  # the ORM
            after = await numeric.first(uow.session, visit_id=ids[0])  # on the session's connection
            held = checked_out(engine)
            with pytest.raises(RuntimeError, match="read-only"):  # the session stays read-only
                await uow.session.execute(models.Visit.__table__.delete().where(_V.id == ids[0]))
    assert before is not None and after is not None and tuple(before) == tuple(after) and status == "tunda"
    assert held == 1
    assert len(seen.pooled) == 1 and len(seen.seen) == 3
    assert checked_out(engine) == 0  # leaving the block gave the session's connection back


async def test_a_connection_lost_under_a_statement_fails_that_use_case_and_is_not_reused(
    services: Services, engine: AsyncEngine, demo_db_url: str
) -> None:
    await engine.dispose()  # the pool starts empty: the next read opens its one connection
    async with services.ctx.uow(read_only=True) as uow:
        first = await _BACKEND.first(uow.session)
    assert first is not None
    assert await kill_pool_connections(demo_db_url) >= 1
    with pytest.raises(Unavailable):
        async with services.ctx.uow(read_only=True) as uow:
            await _BACKEND.first(uow.session)
    async with services.ctx.uow(read_only=True) as uow:
        fresh = await _BACKEND.first(uow.session)
    assert fresh is not None and fresh.pid != first.pid
    assert checked_out(engine) == 0


async def test_a_statement_cancelled_half_way_does_not_put_its_connection_back(
    services: Services, engine: AsyncEngine
) -> None:
    sleep = DriverStatement(select(func.pg_sleep(bindparam("seconds")).label("slept")))
    await engine.dispose()
    async with services.ctx.uow(read_only=True) as uow:
        first = await _BACKEND.first(uow.session)

    async def sleeping() -> None:
        async with services.ctx.uow(read_only=True) as uow:
            await sleep.first(uow.session, seconds=5.0)

    task = asyncio.create_task(sleeping())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checked_out(engine) == 0
    async with services.ctx.uow(read_only=True) as uow:
        fresh = await _BACKEND.first(uow.session)  # a new connection: the cancelled one was closed
    assert first is not None and fresh is not None and fresh.pid != first.pid


async def test_an_error_of_the_statement_itself_is_raised_as_is_and_the_connection_stays_in_use(
    services: Services, engine: AsyncEngine
) -> None:
    bad = DriverStatement(select(cast(bindparam("text", type_=String), Integer).label("number")))
    await engine.dispose()
    async with services.ctx.uow(read_only=True) as uow:
        first = await _BACKEND.first(uow.session)
    with pytest.raises(asyncpg.PostgresError):  # not Unavailable: PL answered, the statement was wrong
        async with services.ctx.uow(read_only=True) as uow:
            await bad.first(uow.session, text="twelve")
    async with services.ctx.uow(read_only=True) as uow:
        again = await _BACKEND.first(uow.session)
        number = await bad.first(uow.session, text="12")
    assert first is not None and again is not None and again.pid == first.pid  # the same connection, still good
    assert number is not None and number.number == 12
