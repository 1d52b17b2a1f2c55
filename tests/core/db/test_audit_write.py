"""The audit write at commit (core/db/uow.py ``_append_audit``): on PostgreSQL the events and the head move in one
statement (the INSERT of the events, the head's UPDATE in its WITH clause); the chain still verifies
(``frontdesk audit verify``: AuditService.verify_chain) after many writes of one or more events each, and the
head ends on the last event. Runs on SQLite and PostgreSQL; the one-statement test on PostgreSQL only.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.domain.accounts import AccountKind, AccountState, Actor
from core.domain.audit import GENESIS_HASH, AuditDraft
from core.domain.visits import VisitStatus
from core.services.registry import Services
from tests.conftest import TODAY
from tests.core.services.test_registration import MEJA1, a_target, actor, add_visit
from tests.core.services.test_vaccination_service import record, screened_visit

POSTGRES_ONLY = pytest.mark.parametrize(
    "demo_db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
ACTOR = Actor(
    telegram_id=910001, account_id=1, kind=AccountKind.FASKES, state=AccountState.ACTIVE, faskes_code="3273P001"
)


async def write(services: Services, events: int, tag: str) -> None:
    async with services.ctx.uow(ACTOR) as uow:
        for i in range(events):
            uow.audit(AuditDraft(action=f"test.{tag}", entity="target", entity_id=str(i), after={"i": i}))
        await uow.commit()


async def chain(services: Services) -> tuple[list[models.AuditEvent], models.AuditHead]:
    async with services.ctx.sessions() as s:
        events = list((await s.execute(select(models.AuditEvent).order_by(models.AuditEvent.seq))).scalars())
        head = await s.get(models.AuditHead, 1)
        assert head is not None
        return events, head


async def test_the_chain_verifies_after_many_writes_of_one_or_more_events(services: Services) -> None:
    for n, size in enumerate([1, 3, 2, 5, 1]):
        await write(services, size, f"batch{n}")
    # And the use cases' own writes: a registration that closes a lapsed visit (two events), a screening,
    # a dose.
    target = await a_target(services)
    await add_visit(services, target.id, status=VisitStatus.MENUNGGU_SKRINING, service_date=TODAY.replace(day=20))
    reg = await services.registration.register(await actor(services, MEJA1), target.id, target.version)
    assert len(reg.lapsed) == 1
    visit_id, screened = await screened_visit(services)
    await record(services, visit_id, screened)

    events, head = await chain(services)
    assert len(events) == 12 + 2 + 1 + 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)
    report = await services.audit.verify_chain()
    assert report.ok and report.checked == len(events)


@POSTGRES_ONLY
async def test_on_postgresql_the_events_and_the_head_are_one_statement(services: Services, engine: AsyncEngine) -> None:
    await write(services, 2, "before")
    seen: list[tuple[str, bool]] = []

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((" ".join(statement.split()), many))

    def on_driver(
        kind: str, key: int, statement: str, parameters: Any
    ) -> None:  # on asyncpg itself (core/db/driver_pool.py)
        if kind == "statement":
            seen.append((" ".join(statement.split()), True))

    driver = services.ctx.driver
    assert driver is not None
    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    driver.listeners.append(on_driver)
    try:
        await write(services, 4, "batch")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
        driver.listeners.remove(on_driver)

    writes = [(sql, many) for sql, many in seen if "audit_" in sql and not sql.startswith("SELECT")]
    assert len(writes) == 1, writes
    sql, _ = writes[0]
    assert sql.startswith("WITH audit_head_moved AS (UPDATE audit_head SET")
    assert "INSERT INTO audit_events" in sql

    events, head = await chain(services)
    assert [e.action for e in events] == ["test.before"] * 2 + ["test.batch"] * 4
    assert (head.seq, head.hash) == (6, events[-1].hash)
    assert (await services.audit.verify_chain()).ok


async def test_a_batch_whose_events_leave_different_fields_empty_still_chains(services: Services) -> None:
    """The ORM's bulk INSERT groups rows by the fields they set (None is left out), so on PostgreSQL such a batch
    is one statement per group, each moving the head to the batch's final values: still one chain, one head."""
    async with services.ctx.uow(ACTOR) as uow:
        uow.audit(AuditDraft(action="test.a", entity="target", entity_id="1"))
        uow.audit(AuditDraft(action="test.b", entity="target", entity_id="2", target_id=5, kabkota_code="3273"))
        uow.audit(AuditDraft(action="test.c", entity="target", entity_id="3", before={"x": 1}))
        await uow.commit()
    await write(services, 2, "after")

    events, head = await chain(services)
    assert [(e.action, e.target_id, e.kabkota_code) for e in events[:3]] == [
        ("test.a", None, None),
        ("test.b", 5, "3273"),
        ("test.c", None, None),
    ]
    assert (head.seq, head.hash) == (5, events[-1].hash)
    report = await services.audit.verify_chain()
    assert report.ok and report.checked == 5
