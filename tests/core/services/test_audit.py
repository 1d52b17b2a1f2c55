"""The audit trail is append-only and tamper-evident: `verify_chain` names the first altered or removed event."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select, text, update

from core.db import models
from core.domain.accounts import AccountKind, AccountState, Actor
from core.domain.audit import AuditDraft
from core.services.registry import Services

ACTOR = Actor(
    telegram_id=910001, account_id=1, kind=AccountKind.FASKES, state=AccountState.ACTIVE, faskes_code="3273P001"
)


async def _write(services: Services, n: int) -> None:
    for i in range(n):
        async with services.ctx.uow(ACTOR) as uow:
            uow.audit(
                AuditDraft(action="test.write", entity="target", entity_id=str(i), before={"n": i}, after={"n": i + 1})
            )
            await uow.commit()


async def test_an_untouched_chain_verifies(services: Services) -> None:
    await _write(services, 5)
    report = await services.audit.verify_chain()
    assert report.ok and report.checked == 5


async def test_events_are_chained_in_order_with_actor_and_place(services: Services) -> None:
    await _write(services, 3)
    async with services.ctx.sessions() as s:
        events = list((await s.execute(select(models.AuditEvent).order_by(models.AuditEvent.seq))).scalars())
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    assert events[0].faskes_code == "3273P001" and events[0].actor_account_id == 1


async def test_an_altered_event_is_named(services: Services) -> None:
    await _write(services, 5)
    async with services.ctx.sessions() as s:
        await s.execute(update(models.AuditEvent).where(models.AuditEvent.seq == 3).values(after={"n": 999}))
        await s.commit()
    report = await services.audit.verify_chain()
    assert not report.ok and report.first_bad_seq == 3 and report.problem == "altered"


async def test_a_removed_event_is_named(services: Services) -> None:
    await _write(services, 5)
    async with services.ctx.sessions() as s:
        await s.execute(delete(models.AuditEvent).where(models.AuditEvent.seq == 2))
        await s.commit()
    report = await services.audit.verify_chain()
    assert not report.ok and report.first_bad_seq == 2 and report.problem == "missing"


async def test_removing_the_newest_events_is_noticed_through_the_head(services: Services) -> None:
    await _write(services, 4)
    async with services.ctx.sessions() as s:
        await s.execute(delete(models.AuditEvent).where(models.AuditEvent.seq >= 3))
        await s.commit()
    report = await services.audit.verify_chain()
    assert not report.ok and report.first_bad_seq == 3


async def test_a_rehashed_forgery_still_breaks_at_the_head(services: Services) -> None:
    """Rewriting an event's content AND its hash breaks the link to the next event."""
    await _write(services, 3)
    async with services.ctx.sessions() as s:
        await s.execute(text("UPDATE audit_events SET hash = :h WHERE seq = 2"), {"h": "f" * 64})
        await s.commit()
    report = await services.audit.verify_chain()
    assert not report.ok and report.first_bad_seq == 2


async def test_concurrent_writers_never_fork_the_chain(services: Services) -> None:
    async def one(i: int) -> None:
        async with services.ctx.uow(ACTOR) as uow:
            uow.audit(AuditDraft(action="test.concurrent", entity="target", entity_id=str(i)))
            await uow.commit()

    await asyncio.gather(*(one(i) for i in range(20)))
    report = await services.audit.verify_chain()
    assert report.ok and report.checked == 20
