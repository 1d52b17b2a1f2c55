"""Item 4 (faults in the middle of a flow), with the component really broken:

* PL stops (the PostgreSQL server is shut down) between the screening's review and "Simpan": the person
  is told plainly that PL cannot be reached, the draft stays (same state, same answers), nothing is
  written, and after PL is back the same tap saves, once.
* PL drops the connection inside the saving transaction (the server terminates the backend after the
  visit's UPDATE, before the audit event and the commit): nothing is half-written (no screened visit
  without its audit event, no event without its visit) and a retry saves.
* The reference sources are down (nothing listens on their port): the verifier's correction is queued
  for Dinkes, the verifier is told so, and the Dinkes admin is notified.

(The lookup variant of the first and Redis stopping mid-flow are in tests/bot/test_faults.py; kill -9 in
tests/reliability/test_kill9.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, text

from core.db import models
from core.db.engine import create_engine
from core.db.migrate import upgrade
from core.db.seed import seed_demo
from core.db.uow import SqlUnitOfWork
from core.domain.identifiers import format_ticket
from core.ports import FixedClock
from tests.bot.harness import Harness, Person
from tests.conftest import NOW, TODAY
from tests.core.services.test_screening_service import actor, pick_target
from tests.core.services.test_verification import demo_people
from tests.reliability.support import BUDI, Courier, DeliveryPlan, Desk, Worker, record_figures, start_worker
from tests.servers import PostgresServer, free_port

UNREACHABLE = "PL tidak dapat dihubungi"


async def _screening_in_review(worker: Worker) -> tuple[Desk, int]:
    """A registered person; Budi has typed the vitals and tapped "Semua tidak": only "Simpan" is left."""
    services = worker.runtime.services
    target = await pick_target(services, category="nakes", max_age=59)
    reg = await services.registration.register(await actor(services, 910001), target.id, target.version)
    budi = Desk(Courier([worker], DeliveryPlan(redeliver=False)), BUDI)
    await budi.send(format_ticket(target.ticket))
    await budi.tap("🩺")
    await budi.send("36,5 120/80")
    assert "LANJUT" in await budi.tap("✅ Semua tidak")
    return budi, reg.visit_id


async def _state(worker: Worker) -> tuple[str | None, dict[str, Any]]:
    ctx = worker.runtime.dispatcher.fsm.get_context(worker.runtime.bot, BUDI.telegram_id, BUDI.telegram_id)
    return await ctx.get_state(), await ctx.get_data()


async def _screened(worker: Worker, visit_id: int) -> tuple[str, int]:
    async with worker.runtime.engine.connect() as conn:
        status = (await conn.execute(select(models.Visit.status).where(models.Visit.id == visit_id))).scalar_one()
        events = (
            await conn.execute(
                select(func.count())
                .select_from(models.AuditEvent)
                .where(models.AuditEvent.action == "visit.screen", models.AuditEvent.entity_id == str(visit_id))
            )
        ).scalar_one()
    return status, events


async def test_pl_stops_before_the_save_the_draft_stays_and_the_same_tap_saves_once(
    private_postgres_server: PostgresServer,
) -> None:
    server = private_postgres_server
    server.create_database("pl")
    url = server.url("pl")
    await upgrade(url)
    engine = create_engine(url)
    try:
        await seed_demo(engine, targets=50, today=TODAY)
    finally:
        await engine.dispose()
    worker = start_worker(url, FixedClock(NOW))
    try:
        budi, visit_id = await _screening_in_review(worker)
        draft = await _state(worker)
        save = budi.last

        await asyncio.to_thread(server.pause)  # PL goes away
        said = await budi.tap("💾 Simpan")
        assert UNREACHABLE in said, said
        assert await _state(worker) == draft  # the draft is kept: same state, same vitals and answers

        await asyncio.to_thread(server.resume)
        assert await _screened(worker, visit_id) == ("menunggu_skrining", 0)  # nothing was written
        budi.last = save  # the same button, tapped again
        assert "Tersimpan" in await budi.tap("💾 Simpan")
        assert await _screened(worker, visit_id) == ("menunggu_vaksinasi", 1)
        assert (await worker.runtime.services.audit.verify_chain()).ok
    finally:
        await worker.close()
    record_figures("fault-pl-stopped", servers_stopped=1, saves_refused=1, saves_after_recovery=1)


async def test_a_connection_killed_inside_the_transaction_leaves_nothing_half_written(
    demo_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = start_worker(demo_pg_url, FixedClock(NOW))
    append = SqlUnitOfWork._append_audit
    killed = []

    async def killed_before_the_audit(self: SqlUnitOfWork) -> None:
        # The visit's UPDATE has been sent; the server now ends this very connection.
        killed.append(True)
        await self.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        await append(self)

    try:
        budi, visit_id = await _screening_in_review(worker)
        save = budi.last
        monkeypatch.setattr(SqlUnitOfWork, "_append_audit", killed_before_the_audit)
        said = await budi.tap("💾 Simpan")
        assert killed and UNREACHABLE in said, said
        monkeypatch.setattr(SqlUnitOfWork, "_append_audit", append)
        assert await _screened(worker, visit_id) == ("menunggu_skrining", 0)  # neither the visit nor the event
        budi.last = save
        assert "Tersimpan" in await budi.tap("💾 Simpan")
        assert await _screened(worker, visit_id) == ("menunggu_vaksinasi", 1)
        assert (await worker.runtime.services.audit.verify_chain()).ok
    finally:
        await worker.close()
    record_figures("fault-connection-killed", connections_killed=1, half_written=0)


async def test_reference_sources_down_queue_the_correction(demo_sqlite: str) -> None:
    port = free_port()  # nothing listens here: connection refused, at once
    worker = start_worker(
        demo_sqlite,
        FixedClock(NOW),
        settings_extra={
            "jkn_base_url": f"http://127.0.0.1:{port}/jkn",
            "dukcapil_base_url": f"http://127.0.0.1:{port}/dukcapil",
            "jkn_api_key": "k",
            "dukcapil_api_key": "k",
        },
    )
    try:
        person = (await demo_people(worker.runtime.engine, limit=1))[0]
        verifier = Desk(Courier([worker], DeliveryPlan(redeliver=False)), Person(910005))
        builder = Harness(dispatcher=None, bot=None, session=None)  # type: ignore[arg-type]
        courier = verifier.courier
        await verifier.send("/verifikasi")
        await courier.deliver(builder.callback_update(verifier.person, "vf:fix:"))
        await verifier.send(format_ticket(person.ticket))
        await courier.deliver(builder.callback_update(verifier.person, "vf:f:phone"))
        await verifier.send("0812 6666 1234")
        summary = Harness.text(await courier.deliver(builder.callback_update(verifier.person, "vf:sum:")))
        assert "JKN: tidak tersedia" in summary and "Dukcapil: tidak tersedia" in summary, summary
        assert "Dinkes akan meninjau" in summary
        done = await courier.deliver(builder.callback_update(verifier.person, "vf:ok:"))
        assert "Dikirim ke Dinkes" in Harness.text(done)
        assert any(int(getattr(c, "chat_id", 0) or 0) == 910010 for c in done)  # Dinkes is told
        async with worker.runtime.engine.connect() as conn:
            status = (
                await conn.execute(
                    select(models.Correction.status).where(models.Correction.target_id == person.target_id)
                )
            ).scalar_one()
        assert status == "queued"
    finally:
        await worker.close()
    record_figures("fault-references-down", sources_down=2, corrections_queued=1)
