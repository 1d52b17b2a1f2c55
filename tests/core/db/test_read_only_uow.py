"""Read-only units of work (``ctx.uow(actor, read_only=True)``, core/db/uow.py).

On SQLite a read-only unit of work begins with a plain (DEFERRED) ``BEGIN``: a WAL snapshot that takes no
write lock, so it never queues behind a writer; every other one still begins ``BEGIN IMMEDIATE``
(core/db/engine.py). On both databases its ``commit`` refuses a write with ``RuntimeError`` and writes
nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.domain.audit import AuditDraft
from core.services.registry import Services
from tests.core.services.test_registration import MEJA1, a_target, account_id, actor, visits_of

SQLITE_ONLY = pytest.mark.parametrize("demo_db_url", ["sqlite"], indirect=True)


class Begins:
    """The BEGIN statements an engine sends while the block runs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.seen: list[str] = []

    def _on(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.upper().startswith("BEGIN"):
            self.seen.append(statement.upper())

    def __enter__(self) -> Begins:
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)


async def count(services: Services, model: Any) -> int:
    async with services.ctx.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


# --------------------------------------------------------------------------------------------
# How the transaction begins (SQLite)


@SQLITE_ONLY
async def test_a_read_only_unit_of_work_begins_deferred_and_the_others_immediate(
    services: Services, engine: AsyncEngine
) -> None:
    with Begins(engine) as begins:
        async with services.ctx.uow(read_only=True) as uow:
            await uow.session.execute(select(models.Account.id).limit(1))
    assert begins.seen == ["BEGIN"]

    # The option does not stay with the pooled connection: the next units of work write again.
    with Begins(engine) as begins:
        async with services.ctx.uow() as uow:
            await uow.session.execute(select(models.Account.id).limit(1))
        async with services.ctx.uow(read_only=True) as uow:
            await uow.session.execute(select(models.Account.id).limit(1))
        async with services.ctx.uow() as uow:
            await uow.session.execute(select(models.Account.id).limit(1))
    assert begins.seen == ["BEGIN IMMEDIATE", "BEGIN", "BEGIN IMMEDIATE"]


@SQLITE_ONLY
async def test_reading_use_cases_begin_deferred_and_writing_ones_immediate(
    services: Services, engine: AsyncEngine
) -> None:
    target = await a_target(services)
    with Begins(engine) as begins:
        rina = await actor(services, MEJA1)  # resolve_actor
        await services.lookup.find(rina, target.ticket)
        await services.lookup.card(rina, target.id)
    assert begins.seen == ["BEGIN"] * 3
    with Begins(engine) as begins:
        await services.registration.register(rina, target.id, target.version)
    assert begins.seen == ["BEGIN IMMEDIATE"]


@SQLITE_ONLY
async def test_a_reader_does_not_queue_behind_a_writer(services: Services) -> None:
    """A writer holds SQLite's write lock; a read-only unit of work still reads (the snapshot before the
    write) at once, where a ``BEGIN IMMEDIATE`` would wait up to the 30 s busy timeout."""
    async with services.ctx.uow() as writer:
        await writer.session.execute(
            update(models.Account).where(models.Account.telegram_id == MEJA1).values(name="Sedang Diubah")
        )

        async def read() -> str:
            async with services.ctx.uow(read_only=True) as uow:
                stmt = select(models.Account.name).where(models.Account.telegram_id == MEJA1)
                return str((await uow.session.execute(stmt)).scalar_one())

        name = await asyncio.wait_for(read(), timeout=5)
        await writer.commit()
    assert name != "Sedang Diubah"


# --------------------------------------------------------------------------------------------
# Commit refuses writes (both databases)


async def test_commit_refuses_an_audited_write_and_writes_nothing(services: Services) -> None:
    events = await count(services, models.AuditEvent)
    async with services.ctx.uow(read_only=True) as uow:
        uow.audit(AuditDraft(action="test.write", entity="target", entity_id="1"))
        with pytest.raises(RuntimeError, match="read-only"):
            await uow.commit()
    assert await count(services, models.AuditEvent) == events
    async with services.ctx.sessions() as s:
        head = await s.get(models.AuditHead, 1)
        assert head is not None and head.seq == events


async def test_commit_refuses_a_new_a_changed_or_a_deleted_row(services: Services) -> None:
    target = await a_target(services)
    before = await count(services, models.Visit)
    opener = await account_id(services, MEJA1)

    async with services.ctx.uow(read_only=True) as uow:
        uow.visits.add(
            models.Visit(
                target_id=target.id,
                dose_number=1,
                faskes_code=target.assigned_faskes_code,
                service_date=target.scheduled_date,
                status="menunggu_skrining",
                is_open=True,
                version=1,
                opened_at=services.ctx.clock.now(),
                opened_by=opener,
                rujuk=False,
            )
        )
        with pytest.raises(RuntimeError, match="read-only"):
            await uow.commit()
    assert await count(services, models.Visit) == before and await visits_of(services, target.id) == []

    async with services.ctx.uow(read_only=True) as uow:
        row = await uow.session.get(models.Target, target.id)
        assert row is not None
        row.name = "Diubah Diam-Diam"
        with pytest.raises(RuntimeError, match="read-only"):
            await uow.commit()

    async with services.ctx.uow(read_only=True) as uow:
        row = await uow.session.get(models.Target, target.id)
        assert row is not None
        await uow.session.delete(row)
        with pytest.raises(RuntimeError, match="read-only"):
            await uow.commit()

    async with services.ctx.sessions() as s:
        kept = await s.get(models.Target, target.id)
        assert kept is not None and kept.name == target.name and kept.version == target.version


async def test_commit_of_a_read_only_unit_of_work_that_only_read_is_fine(services: Services) -> None:
    async with services.ctx.uow(read_only=True) as uow:
        await uow.session.execute(select(models.Account.id).limit(1))
        await uow.commit()


@pytest.mark.parametrize("commits", [False, True], ids=["left", "committed"])
async def test_leaving_a_read_only_unit_of_work_ends_its_transaction_and_keeps_what_it_read(
    services: Services, engine: AsyncEngine, commits: bool
) -> None:
    """No rollback of the session's own (it would expire every object loaded): closing the session ends the
    transaction, gives the connection back to the pool, and leaves what was read readable."""
    sqlite = engine.dialect.name == "sqlite"
    async with services.ctx.uow(read_only=True) as uow:
        account = (await uow.session.execute(select(models.Account).order_by(models.Account.id).limit(1))).scalar_one()
        driver = (await (await uow.session.connection()).get_raw_connection()).driver_connection
        if sqlite:  # the snapshot (a DEFERRED transaction) is open while the block runs
            assert driver.in_transaction
        assert engine.sync_engine.pool.checkedout() == 1
        if commits:
            await uow.commit()
    assert engine.sync_engine.pool.checkedout() == 0
    assert not (driver.in_transaction if sqlite else driver.is_in_transaction())
    assert account.name and account.telegram_id  # loaded values, not expired by a rollback


async def test_a_statement_executed_directly_is_refused_before_it_runs(services: Services) -> None:
    """The guard above sees ORM changes and audit entries; this one any statement but a SELECT."""
    target = await a_target(services)
    async with services.ctx.uow(read_only=True) as uow:
        with pytest.raises(RuntimeError, match="read-only"):
            await uow.session.execute(
                update(models.Target).where(models.Target.id == target.id).values(name="Langsung")
            )
        await uow.commit()
    async with services.ctx.sessions() as s:
        kept = await s.get(models.Target, target.id)
        assert kept is not None and kept.name == target.name


@pytest.mark.parametrize("demo_db_url", ["postgres"], indirect=True)
async def test_on_postgresql_a_read_only_unit_of_work_runs_each_statement_on_its_own(services: Services) -> None:
    """No BEGIN and ROLLBACK round trips: in autocommit every statement is a transaction of its own."""
    xact = select(func.pg_current_xact_id())
    async with services.ctx.uow(read_only=True) as uow:
        first = (await uow.session.execute(xact)).scalar_one()
        second = (await uow.session.execute(xact)).scalar_one()
    assert first != second
    async with services.ctx.uow() as uow:
        first = (await uow.session.execute(xact)).scalar_one()
        second = (await uow.session.execute(xact)).scalar_one()
    assert first == second
