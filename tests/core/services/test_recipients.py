"""Daftar Penerima Vaksin through the service: grouping, counts, "belum datang", local date, scope."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import models
from core.domain.accounts import Role
from core.domain.errors import PermissionDenied
from core.domain.identifiers import mask_nik
from core.domain.visits import VisitStatus
from core.ports import FixedClock
from core.services.recipients import GROUPS, next_step
from core.services.registry import Services
from tests.conftest import TODAY
from tests.core.services.test_registration import (
    ALL_DESKS,
    DINKES,
    FASKES,
    MEJA1,
    MEJA1_MAKASSAR,
    MEJA2,
    MEJA4,
    VERIFIER,
    actor,
    add_visit,
    fresh_targets,
)


async def _assigned_today(services: Services, faskes: str = FASKES, day: date = TODAY) -> int:
    async with services.ctx.sessions() as s:
        stmt = select(func.count()).where(
            models.Target.assigned_faskes_code == faskes, models.Target.scheduled_date == day
        )
        return int((await s.execute(stmt.select_from(models.Target))).scalar_one())


async def test_an_empty_day_lists_everyone_as_not_arrived(services: Services) -> None:
    lst = await services.recipients.today(await actor(services, MEJA1))
    assert (lst.faskes_code, lst.faskes_name, lst.service_date) == (FASKES, "Puskesmas Garuda", TODAY)
    assert lst.entries == ()
    assert len(lst.not_arrived) == await _assigned_today(services) >= 40
    assert all(a.nik_masked.endswith("•" * 10) for a in lst.not_arrived)
    assert [a.name for a in lst.not_arrived] == sorted(a.name for a in lst.not_arrived)
    assert lst.as_of.utcoffset() == timedelta(hours=7)
    assert lst.counts == dict.fromkeys(GROUPS, 0)


async def test_visits_are_grouped_by_desk_status_in_arrival_order(services: Services) -> None:
    targets = (await fresh_targets(services))[:8]
    statuses = [
        VisitStatus.OBSERVASI,
        VisitStatus.MENUNGGU_SKRINING,
        VisitStatus.SELESAI,
        VisitStatus.MENUNGGU_VAKSINASI,
        VisitStatus.TUNDA,
        VisitStatus.TIDAK_DIBERIKAN,
        VisitStatus.MENUNGGU_SKRINING,
    ]
    ids = []
    for target, status in zip(targets, statuses, strict=False):
        extra = {"rescreen_date": TODAY + timedelta(days=3), "rujuk": True} if status is VisitStatus.TUNDA else {}
        ids.append(
            await add_visit(services, target.id, status=status, service_date=TODAY, product="coronavac", **extra)
        )
    # Yesterday's visit and a visit at another faskes today are not on this list.
    await add_visit(
        services, targets[7].id, status=VisitStatus.SELESAI, service_date=TODAY - timedelta(1), product="coronavac"
    )
    other = (await fresh_targets(services, faskes="3273K001"))[0]
    await add_visit(services, other.id, status=VisitStatus.MENUNGGU_SKRINING, service_date=TODAY, faskes="3273K001")

    lst = await services.recipients.today(await actor(services, MEJA2))
    assert [e.status for e in lst.entries] == sorted(statuses, key=GROUPS.index)
    waiting = lst.in_status(VisitStatus.MENUNGGU_SKRINING)
    assert [e.visit_id for e in waiting] == [ids[1], ids[6]]
    assert waiting[0].name == targets[1].name and waiting[0].nik_masked == mask_nik(targets[1].nik)
    tunda = lst.in_status(VisitStatus.TUNDA)[0]
    assert tunda.rujuk and tunda.rescreen_date == TODAY + timedelta(days=3)
    assert lst.counts[VisitStatus.MENUNGGU_SKRINING] == 2 and lst.counts[VisitStatus.SELESAI] == 1
    arrived = {t.id for t in targets[:7]}
    assert not arrived & {a.target_id for a in lst.not_arrived}
    assert targets[7].id in {a.target_id for a in lst.not_arrived}  # only yesterday's visit: not arrived today


async def test_someone_served_elsewhere_today_has_arrived(services: Services) -> None:
    target = (await fresh_targets(services))[0]
    await services.registration.register(await actor(services, MEJA1_MAKASSAR), target.id, target.version)
    lst = await services.recipients.today(await actor(services, MEJA1))
    assert target.id not in {a.target_id for a in lst.not_arrived}
    assert lst.entries == ()
    makassar = await services.recipients.today(await actor(services, MEJA1_MAKASSAR))
    assert [e.target_id for e in makassar.entries] == [target.id]
    assert makassar.as_of.utcoffset() == timedelta(hours=8)


async def test_the_day_is_the_local_day_of_the_faskes(services: Services, clock: FixedClock) -> None:
    clock.set(datetime(2026, 11, 26, 17, 30, tzinfo=UTC))  # 00:30 WIB on the 27th
    lst = await services.recipients.today(await actor(services, MEJA4))
    assert lst.service_date == date(2026, 11, 27)
    assert len(lst.not_arrived) == await _assigned_today(services, day=date(2026, 11, 27))


@pytest.mark.parametrize("who", [VERIFIER, DINKES, 123])
async def test_only_desk_staff_read_the_list(services: Services, who: int) -> None:
    with pytest.raises(PermissionDenied):
        await services.recipients.today(await actor(services, who))


async def test_all_desks_may_read(services: Services) -> None:
    for who in (MEJA1, MEJA2, MEJA4, ALL_DESKS):
        assert (await services.recipients.today(await actor(services, who))).faskes_code == FASKES


def test_next_step_per_desk() -> None:
    assert next_step(VisitStatus.MENUNGGU_SKRINING, {Role.MEJA2}) == "screen"
    assert next_step(VisitStatus.MENUNGGU_SKRINING, {Role.MEJA1, Role.MEJA4}) is None
    assert next_step(VisitStatus.MENUNGGU_VAKSINASI, {Role.MEJA4}) == "vaccinate"
    assert next_step(VisitStatus.OBSERVASI, {Role.MEJA4}) == "observe"
    assert next_step(VisitStatus.SELESAI, set(Role)) is None
