"""The desk lists' "today" halves are bounded by the time of the act, in the faskes' zone, not by the visit's day.

Meja 2 lists today's Tunda (``screened_at`` from local midnight) and meja 4 today's observations (``vaccinated_at``
from local midnight). A visit is opened on its ``service_date`` but may be screened or vaccinated on a later day:
it stays open until the person's next registration closes it, and screening and recording accept any open visit.
So a bound on ``service_date`` (``service_date = today``, or ``>= today - 1``) is not implied by the halves and
would drop such visits from the lists: these tests pin the entries at the edges (SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from core.db import models
from core.domain.screening import Vitals
from core.domain.timeutil import WIB, WITA, local_date, start_of_local_day
from core.domain.visits import VisitStatus
from core.ports import FixedClock
from core.services.registry import Services
from tests.conftest import NOW, TODAY
from tests.core.services.test_screening_service import FASKES, actor, grant, open_visit, pick_target, screen
from tests.core.services.test_vaccination_service import record

FEVER = Vitals(Decimal("38.2"), 120, 80)  # a Tunda
MIDNIGHT_WIB = start_of_local_day(TODAY, WIB)  # 00:00 WIB today (17:00 UTC yesterday)
MAKASSAR, MEJA_MAKASSAR = "7371P001", 910020  # WITA, UTC+8


async def target_of(services: Services, visit_id: int) -> models.Target:
    async with services.ctx.sessions() as s:
        visit = await s.get(models.Visit, visit_id)
        assert visit is not None
        target = await s.get(models.Target, visit.target_id)
        assert target is not None
        return target


async def _open(services: Services, opened: datetime, *, faskes: str = FASKES, tz: str = WIB, by: int = 910001) -> int:
    """A visit opened at ``opened`` (its ``service_date`` the local date then), left open."""
    target = await pick_target(services, category="nakes", max_age=59)
    day = local_date(opened, tz)
    return await open_visit(services, target.id, faskes=faskes, opened_by=by, service_date=day, opened_at=opened)


async def _tunda_screened_at(services: Services, clock: FixedClock, at: datetime, *, opened: datetime) -> int:
    """A visit opened at ``opened``, screened Tunda at ``at``."""
    visit_id = await _open(services, opened)
    clock.set(at)
    await screen(services, visit_id, vitals=FEVER)
    return visit_id


async def test_meja2_lists_a_tunda_screened_today_whatever_the_visits_day(
    services: Services, clock: FixedClock
) -> None:
    late = MIDNIGHT_WIB - timedelta(minutes=10)  # 23:50 WIB yesterday
    before_midnight = await _tunda_screened_at(services, clock, MIDNIGHT_WIB - timedelta(minutes=1), opened=late)
    at_midnight = await _tunda_screened_at(services, clock, MIDNIGHT_WIB, opened=late)
    left_open = await _tunda_screened_at(services, clock, NOW, opened=NOW - timedelta(days=3))  # never closed
    clock.set(NOW)
    queue = await services.screening.queue(await actor(services, 910002))
    opened_on = {e.visit_id: e.opened_at.date() for e in queue.editable}
    # Both opened before today; the one screened at 23:59 WIB yesterday is not today's (its edit window has closed).
    assert opened_on == {at_midnight: TODAY - timedelta(days=1), left_open: TODAY - timedelta(days=3)}
    assert before_midnight not in opened_on


async def test_meja2_reads_today_in_the_faskes_zone(services: Services, clock: FixedClock) -> None:
    """One instant, 23:30 WIB = 00:30 WITA: yesterday in Bandung, today in Makassar."""
    instant = MIDNIGHT_WIB - timedelta(minutes=30)
    opened = NOW - timedelta(days=1)  # yesterday in both zones
    bandung = await _tunda_screened_at(services, clock, instant, opened=opened)
    await grant(services, MEJA_MAKASSAR, "meja1,meja2,meja4")
    makassar = await _open(services, opened, faskes=MAKASSAR, tz=WITA, by=MEJA_MAKASSAR)
    assert local_date(instant, WIB) < TODAY == local_date(instant, WITA)
    await screen(services, makassar, vitals=FEVER, by=MEJA_MAKASSAR)
    clock.set(NOW)
    assert bandung not in {e.visit_id for e in (await services.screening.queue(await actor(services, 910002))).editable}
    makassar_queue = await services.screening.queue(await actor(services, MEJA_MAKASSAR))
    assert [e.visit_id for e in makassar_queue.editable] == [makassar]


async def _observing_since(services: Services, clock: FixedClock, at: datetime, *, opened: datetime) -> int:
    """A visit opened at ``opened`` and screened Lanjut just after, vaccinated at ``at``."""
    visit_id = await _open(services, opened)
    clock.set(opened + timedelta(minutes=5))
    await screen(services, visit_id)
    clock.set(at)
    await record(services, visit_id, await target_of(services, visit_id))
    return visit_id


async def test_meja4_lists_observations_started_today_whatever_the_visits_day(
    services: Services, clock: FixedClock
) -> None:
    # Vaccinated at 23:50 WIB and still unobserved: the list is today's; it is left to the support API's stuck list.
    late = MIDNIGHT_WIB - timedelta(minutes=20)  # 23:40 WIB yesterday
    before_midnight = await _observing_since(services, clock, MIDNIGHT_WIB - timedelta(minutes=10), opened=late)
    at_midnight = await _observing_since(services, clock, MIDNIGHT_WIB, opened=late)
    left_open = await _observing_since(services, clock, NOW, opened=NOW - timedelta(days=2))  # screened 2 days ago
    clock.set(NOW)
    queue = await services.vaccination.queue(await actor(services, 910004))
    observing = [e.visit_id for e in queue.observing]
    assert sorted(observing) == sorted([at_midnight, left_open])
    assert before_midnight not in observing
    assert all(e.status is VisitStatus.OBSERVASI for e in queue.observing)
