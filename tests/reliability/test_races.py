"""Item 3 (the piece the service tests leave out): corrections under concurrency, 20 at a time.

Registration, screening and vaccination have their 20-concurrent tests in tests/core/services/. Here:

* 20 verifiers' corrections of the same target, from the same version they all saw: exactly one is
  applied, the other 19 are told the target changed; one ``target.corrected`` event;
* 10 corrections and 10 registrations of the same person at once (DOMAIN rule 6: "a correction and
  a registration arriving together cannot both win"): exactly one of the 20 wins, and PL agrees with it.

Both on SQLite and PostgreSQL (``BEGIN IMMEDIATE`` on one, row locks and conditional updates on the other).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.domain.errors import Conflict, Refused
from core.domain.reference import Source
from core.ports import FixedClock
from tests.core.services.test_verification import (
    MEJA1,
    VERIFIER,
    FakeSource,
    actor_of,
    demo_people,
    target_row,
    with_sources,
)
from tests.reliability.support import record_figures

N = 20


async def _count(engine: AsyncEngine, action: str, target_id: int) -> int:
    e = models.AuditEvent
    async with engine.connect() as conn:
        stmt = select(func.count()).select_from(e).where(e.action == action, e.target_id == target_id)
        corrected = (await conn.execute(stmt)).scalar_one()
        if corrected or action != "target.corrected":
            return corrected
        # (a correction's own event may name the target by entity id)
        stmt = select(func.count()).select_from(e).where(e.action == action, e.entity_id == str(target_id))
        return (await conn.execute(stmt)).scalar_one()


async def test_twenty_concurrent_corrections_apply_exactly_one(
    engine: AsyncEngine, clock: FixedClock, request: Any
) -> None:
    person = (await demo_people(engine, limit=1))[0]
    services, _ = with_sources(engine, clock, FakeSource(Source.JKN, {person.nik: person.record()}))
    verifier = await actor_of(services, VERIFIER)
    phones = [f"08128888{i:04d}" for i in range(N)]
    results = await asyncio.gather(
        *(
            services.verification.submit_correction(verifier, person.target_id, person.version, {"phone": p})
            for p in phones
        ),
        return_exceptions=True,
    )
    won = [(p, r) for p, r in zip(phones, results, strict=True) if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1, results
    assert all(isinstance(e, Conflict | Refused) for e in lost), lost
    row = await target_row(engine, person.target_id)
    assert row.version == person.version + 1
    assert row.phone == "+62" + won[0][0][1:]
    assert await _count(engine, "target.corrected", person.target_id) == 1
    report = await services.audit.verify_chain()
    assert report.ok
    record_figures(f"race-corrections-{request.node.callspec.id}", concurrent_attempts=N, winners=1)


async def test_ten_corrections_and_ten_registrations_exactly_one_wins(
    engine: AsyncEngine, clock: FixedClock, request: Any
) -> None:
    people = await demo_people(engine, limit=3)
    services, _ = with_sources(engine, clock, FakeSource(Source.JKN, {p.nik: p.record() for p in people}))
    verifier, meja1 = await actor_of(services, VERIFIER), await actor_of(services, MEJA1)
    outcomes = {"correction": 0, "registration": 0}
    # Corrections ask the reference sources before their transaction; registrations go straight in.
    # A head start for the corrections in the first round makes both kinds win somewhere.
    head_starts = [0.3, 0.0, 0.005]

    async def later(delay: float, attempt: Any) -> Any:
        await asyncio.sleep(delay)
        return await attempt

    for person, head_start in zip(people, head_starts, strict=True):
        attempts = []
        for i in range(N):
            if i % 2:
                attempts.append(
                    services.verification.submit_correction(
                        verifier, person.target_id, person.version, {"phone": f"08127777{i:04d}"}
                    )
                )
            else:
                attempts.append(
                    later(head_start, services.registration.register(meja1, person.target_id, person.version))
                )
        results = await asyncio.gather(*attempts, return_exceptions=True)
        won = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
        assert len(won) == 1, results
        for r in results:
            assert not isinstance(r, BaseException) or isinstance(r, Conflict | Refused), r
        row = await target_row(engine, person.target_id)
        assert row.version == person.version + 1
        registered = won[0] % 2 == 0
        outcomes["registration" if registered else "correction"] += 1
        assert (row.first_desk_at is not None) == registered
        assert (row.phone == "+62" + f"08127777{won[0]:04d}"[1:]) == (not registered)
        async with engine.connect() as conn:
            visits = (
                await conn.execute(
                    select(func.count()).select_from(models.Visit).where(models.Visit.target_id == person.target_id)
                )
            ).scalar_one()
        assert visits == (1 if registered else 0)
    assert (await services.audit.verify_chain()).ok
    assert outcomes["correction"] >= 1 and outcomes["registration"] >= 1, outcomes
    record_figures(
        f"race-correction-vs-registration-{request.node.callspec.id}",
        rounds=len(people),
        concurrent_attempts_per_round=N,
        winners_per_round=1,
        **outcomes,
    )
