"""Item 1: Telegram may deliver an update more than once. A full two-dose visit where EVERY update
arrives two or three times, some repeats only after the next update, ends in PL exactly as the same
script delivered once: same visits, same targets, same audit events (down to the chain's head hash),
and the staff see the same messages.

Three set-ups, each on SQLite and PostgreSQL, all built by the composition root (api.runtime):

* one worker, embedded default (memory deduplicator, memory conversation state);
* one worker with Redis (Redis deduplicator, Redis conversation state, Redis event isolation);
* two workers sharing Redis, each receiving every copy of every update at the same moment.

The script contains a pair of checklist toggles (item 15 on, then off): were a repeated tap handled
twice, the item would end "YES" and the visit would be postponed instead of vaccinated.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from core.db.engine import create_engine
from core.domain.identifiers import format_ticket
from core.ports import FixedClock
from tests.bot.test_full_visit import _first_dose_of_the_day_elsewhere
from tests.conftest import NOW
from tests.core.services.test_screening_service import pick_target
from tests.reliability.support import (
    BUDI,
    RINA,
    SARI,
    Courier,
    DeliveryPlan,
    Desk,
    Worker,
    pl_snapshot,
    record_figures,
    start_worker,
)

pytestmark = pytest.mark.slow


async def two_dose_visit(courier: Courier, services: Any, clock: FixedClock) -> None:
    """Both doses of one person through meja 1, 2 and 4 and the observation (as tests/bot/test_full_visit.py)."""
    await _first_dose_of_the_day_elsewhere(services)
    target = await pick_target(services, category="nakes", max_age=59)
    ticket = format_ticket(target.ticket)
    rina, budi, sari = Desk(courier, RINA), Desk(courier, BUDI), Desk(courier, SARI)

    # dose 1
    assert target.name in await rina.send(ticket)
    await rina.tap("📝 Registrasi")
    await budi.send(ticket)
    await budi.tap("🩺")
    await budi.send("36,5 120/80")
    await budi.tap("15", exact=True)  # a slip: asthma ticked...
    await budi.tap("✅ 15", exact=True)  # ... and unticked again
    await budi.tap("✅ Semua tidak")
    assert "Tersimpan" in await budi.tap("💾 Simpan")
    await sari.send(ticket)
    await sari.tap("💉")
    await sari.tap("↺ CoronaVac")
    assert "Tersimpan" in await sari.send(target.nik[-4:])
    clock.advance(minutes=30)
    await sari.tap("✅ Tidak ada KIPI")

    # dose 2, on its due date
    due = await _due_date(services, target.id)
    clock.set(clock.now() + timedelta(days=(due - (clock.now() + timedelta(hours=7)).date()).days))
    await rina.send(ticket)
    await rina.tap("📝 Registrasi")
    await budi.send(ticket)
    await budi.tap("🩺")
    await budi.send("36,7 118/76")
    await budi.tap("✅ Semua tidak")
    await budi.tap("💾 Simpan")
    await sari.send(ticket)
    await sari.tap("💉")
    await sari.send("SV2612B 07/2027")
    await sari.send(target.nik[-4:])
    clock.advance(minutes=30)
    await sari.tap("✅ Tidak ada KIPI")
    await courier.flush()


async def _due_date(services: Any, target_id: int) -> Any:
    from sqlalchemy import select

    from core.db import models

    async with services.ctx.sessions() as s:
        stmt = select(models.Visit.next_due_date).where(
            models.Visit.target_id == target_id, models.Visit.dose_number == 1
        )
        return (await s.execute(stmt)).scalar_one()


async def _run(
    database_url: str, *, redis_url: str | None, workers: int, redeliver: bool
) -> tuple[dict[str, Any], Courier]:
    clock = FixedClock(NOW)
    started: list[Worker] = [start_worker(database_url, clock, redis_url, name=f"worker-{i}") for i in range(workers)]
    try:
        courier = Courier(started, DeliveryPlan(redeliver=redeliver))
        await two_dose_visit(courier, started[0].runtime.services, clock)
    finally:
        for w in started:
            await w.close()
    engine = create_engine(database_url)
    try:
        return await pl_snapshot(engine), courier
    finally:
        await engine.dispose()


def _assert_same(single: dict[str, Any], repeated: dict[str, Any]) -> None:
    for key in single:
        assert repeated[key] == single[key], f"PL differs in {key}:\n{json.dumps(repeated[key], default=str)[:2000]}"


async def _compare(make_db: Any, *, redis: Any, workers: int, name: str) -> None:
    """``redis``: the Redis server (flushed before each run: each run starts with no conversations), or None."""

    def fresh_redis() -> str | None:
        if redis is None:
            return None
        redis.flushdb(0)
        return redis.url

    single, once = await _run(make_db(), redis_url=fresh_redis(), workers=workers, redeliver=False)
    repeated, courier = await _run(make_db(), redis_url=fresh_redis(), workers=workers, redeliver=True)

    # The script did what a visit does (so that "the same" means something).
    statuses = [(v["dose_number"], v["status"]) for v in single["visits"][-2:]]
    assert statuses == [(1, "selesai"), (2, "selesai")], statuses
    assert {"visit.register", "visit.screen", "visit.vaccinate", "visit.observe"} <= set(single["audit_actions"])

    assert courier.answered_repeats == [], "a repeated delivery was answered"
    assert courier.transcript == once.transcript, "the staff saw something else"
    _assert_same(single, repeated)
    assert courier.held_back > 0  # some repeats really came after the next update

    record_figures(
        name,
        updates=courier.index,
        deliveries=courier.deliveries,
        redelivered=courier.deliveries - courier.index * len(courier.workers),
        held_back_past_the_next_update=courier.held_back,
        workers=workers,
        audit_events=len(single["audit"]),
    )


async def test_every_update_twice_or_thrice_one_worker_in_memory(demo_db_factory: Any, request: Any) -> None:
    await _compare(demo_db_factory, redis=None, workers=1, name=f"redelivery-memory-{request.node.callspec.id}")


async def test_every_update_twice_or_thrice_one_worker_on_redis(
    demo_db_factory: Any, redis_server: Any, request: Any
) -> None:
    await _compare(demo_db_factory, redis=redis_server, workers=1, name=f"redelivery-redis-{request.node.callspec.id}")


async def test_two_workers_sharing_redis_each_receive_every_copy(
    demo_db_factory: Any, redis_server: Any, request: Any
) -> None:
    await _compare(
        demo_db_factory, redis=redis_server, workers=2, name=f"redelivery-two-workers-{request.node.callspec.id}"
    )
