"""core.db.driver_pool: PostgreSQL through asyncpg itself, on a real PostgreSQL server.

A read-only unit of work's driver statements each borrow a connection from the pool for themselves alone and read what
the session reads; the session opens only when a statement needs it, and then carries the rest. A writing unit of work
runs its driver statements, its ORM flush and its audit append in one transaction on one connection, begun and ended
on the driver: left without a commit, or broken by a constraint, it writes nothing. A lost or cancelled connection
never goes back into the pool."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Integer, String, bindparam, cast, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.db.driver_pool import DRIVER, DriverEvent
from core.db.driver_statement import DriverStatement, DriverWrite
from core.domain.audit import AuditDraft
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
    with Executions(engine, services.ctx.driver) as seen:
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
    with Executions(engine, services.ctx.driver) as seen:
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


# --------------------------------------------------------------------------------------------
# Writing units of work: one connection, one transaction, begun and ended on the driver

_T = models.targets_table.c
_RENAME = DriverWrite(
    update(models.targets_table)
    .where(_T.id == bindparam("where_id"), _T.version == bindparam("where_version"))
    .values(name=bindparam("new_name"), version=_T.version + 1)
)
_SET_NIK = DriverWrite(update(models.targets_table).where(_T.id == bindparam("where_id")).values(nik=bindparam("nik")))
_TARGET = DriverStatement(select(_T.name, _T.version).where(_T.id == bindparam("target_id")))


async def _two_targets(services: Services) -> tuple[models.Target, models.Target]:
    async with services.ctx.uow(read_only=True) as uow:
        first, second = (await uow.session.scalars(select(models.Target).order_by(models.Target.id).limit(2))).all()
    return first, second


async def _audit_head(engine: AsyncEngine) -> tuple[int, str]:
    async with engine.connect() as conn:
        head = (await conn.execute(select(models.AuditHead.seq, models.AuditHead.hash))).one()
    return head.seq, head.hash


def _visit(target_id: int, services: Services, account: int) -> models.Visit:
    now = services.ctx.clock.now()
    return models.Visit(
        target_id=target_id,
        dose_number=9,
        faskes_code="3273P001",
        service_date=now.date(),
        status="menunggu_skrining",
        is_open=True,
        version=1,
        opened_at=now,
        opened_by=account,
    )


async def test_a_writing_unit_of_work_runs_its_driver_statements_orm_flush_and_audit_in_one_transaction(
    services: Services, engine: AsyncEngine
) -> None:
    target, _ = await _two_targets(services)
    meja1 = await services.accounts.resolve_actor(910001)
    assert meja1.account_id is not None
    events: list[tuple[str, int]] = []

    def on_driver(kind: DriverEvent, key: int, statement: str, parameters: Any) -> None:
        events.append((kind, key))

    driver = services.ctx.driver
    assert driver is not None
    driver.listeners.append(on_driver)
    try:
        with Executions(engine, driver) as seen:
            async with services.ctx.uow(meja1) as uow:
                renamed = await _RENAME.execute(
                    uow.session, where_id=target.id, where_version=target.version, new_name="Nama Baru"
                )
                read = await _TARGET.first(uow.session, target_id=target.id)  # sees its own transaction's write
                uow.session.add(_visit(target.id, services, meja1.account_id))  # an ORM flush, same transaction
                uow.audit(AuditDraft(action="test.rename", entity="target", entity_id=str(target.id)))
                held = checked_out(engine)
                await uow.commit()
    finally:
        driver.listeners.remove(on_driver)
    assert renamed == 1 and read is not None and read.name == "Nama Baru" and read.version == target.version + 1
    assert held == 1  # one connection for everything
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "begin" and kinds[-1] == "commit" and kinds.count("begin") == 1
    assert len({key for _, key in events}) == 1  # all on one connection
    compiled = [statement for statement, compiled in seen.seen if compiled]
    assert len(compiled) == 1 and compiled[0].startswith("INSERT INTO visits")  # the flush; the rest on the driver
    async with services.ctx.uow() as uow:
        name = (await uow.session.execute(select(_T.name).where(_T.id == target.id))).scalar_one()
        visits = (await uow.session.scalars(select(models.Visit).where(models.Visit.dose_number == 9))).all()
    assert name == "Nama Baru" and len(visits) == 1
    assert (await _audit_head(engine))[0] >= 1 and checked_out(engine) == 0


async def test_a_writing_unit_of_work_left_without_commit_writes_nothing(
    services: Services, engine: AsyncEngine
) -> None:
    target, _ = await _two_targets(services)
    meja1 = await services.accounts.resolve_actor(910001)
    assert meja1.account_id is not None
    head = await _audit_head(engine)
    with pytest.raises(ValueError, match="half-way"):
        async with services.ctx.uow(meja1) as uow:
            await _RENAME.execute(uow.session, where_id=target.id, where_version=target.version, new_name="Setengah")
            uow.session.add(_visit(target.id, services, meja1.account_id))
            await uow.session.flush()
            uow.audit(AuditDraft(action="test.half", entity="target", entity_id=str(target.id)))
            await uow._append_audit()
            raise ValueError("half-way")
    async with services.ctx.uow() as uow:
        name, version = (await uow.session.execute(select(_T.name, _T.version).where(_T.id == target.id))).one()
        visits = (await uow.session.scalars(select(models.Visit).where(models.Visit.dose_number == 9))).all()
    assert (name, version) == (target.name, target.version) and visits == []
    assert await _audit_head(engine) == head
    assert checked_out(engine) == 0


async def test_a_constraint_the_driver_breaks_reads_as_sqlalchemys_integrity_error_and_commits_nothing(
    services: Services, engine: AsyncEngine
) -> None:
    first, second = await _two_targets(services)
    with pytest.raises(IntegrityError):
        async with services.ctx.uow() as uow:
            await _RENAME.execute(uow.session, where_id=first.id, where_version=first.version, new_name="Bentrok")
            await _SET_NIK.execute(uow.session, where_id=first.id, nik=second.nik)  # the NIK is unique
    async with services.ctx.uow(read_only=True) as uow:
        read = await _TARGET.first(uow.session, target_id=first.id)
    assert read is not None and read.name == first.name  # the rename went with the rest
    assert checked_out(engine) == 0


async def test_a_read_only_unit_of_work_refuses_a_driver_write_before_it_runs(
    services: Services, engine: AsyncEngine
) -> None:
    target, _ = await _two_targets(services)
    with Executions(engine, services.ctx.driver) as seen, pytest.raises(RuntimeError, match="read-only"):
        async with services.ctx.uow(read_only=True) as uow:
            await _RENAME.execute(uow.session, where_id=target.id, where_version=target.version, new_name="X")
    assert seen.seen == []
    async with services.ctx.uow(read_only=True) as uow:
        read = await _TARGET.first(uow.session, target_id=target.id)
    assert read is not None and read.name == target.name


async def test_a_connection_lost_in_a_writing_unit_of_work_fails_it_with_unavailable_and_is_not_reused(
    services: Services, engine: AsyncEngine, demo_db_url: str
) -> None:
    target, _ = await _two_targets(services)
    await engine.dispose()
    async with services.ctx.uow() as uow:
        first = await _BACKEND.first(uow.session)
        await uow.commit()
    assert first is not None and await kill_pool_connections(demo_db_url) >= 1
    with pytest.raises(Unavailable):
        async with services.ctx.uow() as uow:  # BEGIN meets the dead connection
            await _RENAME.execute(uow.session, where_id=target.id, where_version=target.version, new_name="Hilang")
            await uow.commit()
    async with services.ctx.uow() as uow:
        fresh = await _BACKEND.first(uow.session)
        renamed = await _RENAME.execute(
            uow.session, where_id=target.id, where_version=target.version, new_name="Kembali"
        )
        await uow.commit()
    assert fresh is not None and fresh.pid != first.pid and renamed == 1
    assert checked_out(engine) == 0


async def test_a_connection_still_inside_a_transaction_never_goes_back_into_the_pool(
    services: Services, engine: AsyncEngine
) -> None:
    """The last guard: whatever the unit of work's bookkeeping says, a connection whose transaction is still open when
    it is given back is closed instead, so that no later unit of work inherits half a transaction."""
    await engine.dispose()
    async with services.ctx.uow() as uow:
        first = await _BACKEND.first(uow.session)
        await uow.commit()
    with pytest.raises(ValueError, match="bookkeeping"):
        async with services.ctx.uow() as uow:
            await _BACKEND.first(uow.session)
            uow.session.info[DRIVER].ended = True  # as if it had been committed: no ROLLBACK is sent
            raise ValueError("bookkeeping")
    async with services.ctx.uow() as uow:
        fresh = await _BACKEND.first(uow.session)
        await uow.commit()
    assert first is not None and fresh is not None and fresh.pid != first.pid
    assert checked_out(engine) == 0
