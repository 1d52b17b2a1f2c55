"""What a write returns for the next screen is what a read right after gives.

``registration.register(..., with_card=True)`` carries the card (``lookup.card`` right after),
``screening.save(..., with_queue=True)`` and ``vaccination.record(..., with_queue=True)`` carry the desk's list
(``queue()`` right after), all read in the writing transaction. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core.domain.screening import Vitals
from core.domain.visits import VisitStatus
from core.services.registry import Services
from core.services.screening import QUEUE_LIMIT
from tests.conftest import NOW, TODAY
from tests.core.services.test_registration import MEJA1, a_target, actor, add_visit, fresh_targets
from tests.core.services.test_screening_service import NORMAL, all_no, open_visit, pick_target, screen
from tests.core.services.test_vaccination_service import record, screened_visit

MEJA2, MEJA4 = 910002, 910004
FEVER = Vitals(Decimal("38.2"), 120, 80)  # Tunda

# --------------------------------------------------------------------------------------------
# Meja 1: the card after registering


@pytest.mark.parametrize("history", ["none", "first_dose_done", "lapsed_open_visit"])
async def test_register_with_card_returns_the_card_a_lookup_gives_right_after(services: Services, history: str) -> None:
    target = await a_target(services)
    if history == "first_dose_done":
        await add_visit(
            services,
            target.id,
            status=VisitStatus.SELESAI,
            service_date=TODAY - timedelta(days=60),
            product="coronavac",
        )
    elif history == "lapsed_open_visit":
        await add_visit(
            services, target.id, status=VisitStatus.MENUNGGU_SKRINING, service_date=TODAY - timedelta(days=3)
        )
    version = (await services.lookup.card(await actor(services, MEJA1), target.id)).version
    rina = await actor(services, MEJA1)

    reg = await services.registration.register(rina, target.id, version, with_card=True)
    after = await services.lookup.card(rina, target.id)

    assert reg.card is not None
    assert reg.card == after
    # And it is the card after the registration, not the one before.
    assert reg.card.version == reg.target_version == version + 1
    assert [v.visit_id for v in reg.card.visits][-1] == reg.visit_id
    assert len(reg.lapsed) == (1 if history == "lapsed_open_visit" else 0)


async def test_register_without_card_returns_none(services: Services) -> None:
    target = await a_target(services)
    reg = await services.registration.register(await actor(services, MEJA1), target.id, target.version)
    assert reg.card is None


# --------------------------------------------------------------------------------------------
# Meja 2: the list after saving a screening


async def _screening_floor(services: Services, waiting: int) -> list[int]:
    """``waiting`` visits waiting for screening at the demo faskes (oldest first), one Tunda screened today,
    and a visit at another faskes; the nakes visits to screen come first."""
    nakes = [await pick_target(services, category="nakes", max_age=59, skip=i) for i in range(3)]
    ids = [await open_visit(services, t.id, opened_at=NOW - timedelta(minutes=60 - i)) for i, t in enumerate(nakes)]
    await screen(services, ids.pop(0), vitals=FEVER)  # a Tunda: editable today
    taken = {t.id for t in nakes}
    others = [t for t in await fresh_targets(services, faskes=None, day=None) if t.id not in taken]
    for i, t in enumerate(others[: max(0, waiting - len(ids))]):
        ids.append(await open_visit(services, t.id, opened_at=NOW - timedelta(minutes=50 - i)))
    elsewhere = others[-1]
    await open_visit(services, elsewhere.id, faskes="7371P001", opened_by=910020)
    return ids


@pytest.mark.parametrize(("vitals", "waiting"), [(NORMAL, 3), (FEVER, 3), (NORMAL, QUEUE_LIMIT + 3)])
async def test_save_with_queue_returns_the_list_queue_gives_right_after(
    services: Services, vitals: Vitals, waiting: int
) -> None:
    ids = await _screening_floor(services, waiting)
    budi = await actor(services, MEJA2)
    visit_id = ids[0]
    form = await services.screening.open(budi, visit_id)

    saved = await services.screening.save(budi, visit_id, vitals, all_no(form.subject), with_queue=True)
    after = await services.screening.queue(budi)

    assert saved.queue is not None
    assert saved.queue == after
    # The list is the one after this screening: the visit left the waiting half.
    assert visit_id not in [e.visit_id for e in saved.queue.waiting]
    assert (visit_id in [e.visit_id for e in saved.queue.editable]) == (saved.status is VisitStatus.TUNDA)
    assert len(saved.queue.editable) == (2 if saved.status is VisitStatus.TUNDA else 1)
    assert saved.queue.more == max(0, len(ids) - 1 - QUEUE_LIMIT)


async def test_save_without_queue_returns_none(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    saved = await screen(services, await open_visit(services, target.id))
    assert saved.queue is None


# --------------------------------------------------------------------------------------------
# Meja 4: the list after recording a dose


@pytest.mark.parametrize("waiting", [3, QUEUE_LIMIT + 3])
async def test_record_with_queue_returns_the_list_queue_gives_right_after(services: Services, waiting: int) -> None:
    earlier, earlier_target = await screened_visit(services)
    await record(services, earlier, earlier_target)  # in observation
    visit_id, target = await screened_visit(services, skip=1)
    used = {earlier_target.id, target.id}
    fillers = [t for t in await fresh_targets(services, faskes=None, day=None) if t.id not in used]
    for i, t in enumerate(fillers[: waiting - 1]):
        await open_visit(
            services,
            t.id,
            status=VisitStatus.MENUNGGU_VAKSINASI,
            screened_at=NOW - timedelta(minutes=40 - i),
            outcome="lanjut",
        )
    await open_visit(
        services, fillers[-1].id, faskes="7371P001", opened_by=910020, status=VisitStatus.MENUNGGU_VAKSINASI
    )
    sari = await actor(services, MEJA4)

    saved = await record(services, visit_id, target, with_queue=True)
    after = await services.vaccination.queue(sari)

    assert saved.queue is not None
    assert saved.queue == after
    assert visit_id not in [e.visit_id for e in saved.queue.waiting]
    assert [e.visit_id for e in saved.queue.observing] == [earlier, visit_id]
    assert len(saved.queue.waiting) == min(waiting - 1, QUEUE_LIMIT)
    assert saved.queue.more == max(0, waiting - 1 - QUEUE_LIMIT)


async def test_record_without_queue_returns_none(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    assert (await record(services, visit_id, target)).queue is None
