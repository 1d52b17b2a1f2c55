"""Registration at meja 1 and the phone change, through the service (SQLite and PostgreSQL).

Rule 2 (refusals and warnings), first_desk_at and the target version in the same transaction, lapsed
visits, local dates per time zone, audit events, and the races: 20 registrations of one target from two
faskes, and a registration against a verifier-style conditional correction.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import models
from core.domain.accounts import Actor
from core.domain.errors import Conflict, InvalidPhone, PermissionDenied, Refused
from core.domain.identifiers import mask_phone
from core.domain.timeutil import age_on
from core.domain.visits import VisitStatus
from core.ports import FixedClock
from core.services.registration import VisitFacts, plan_next_dose
from core.services.registry import Services
from tests.conftest import NOW, TODAY

FASKES = "3273P001"
MEJA1, MEJA2, MEJA4, VERIFIER, ALL_DESKS, DINKES, MEJA1_MAKASSAR = (
    910001,
    910002,
    910004,
    910005,
    910006,
    910010,
    910020,
)

# --------------------------------------------------------------------------------------------
# Helpers (also used by the lookup, recipients and flow tests)


async def actor(services: Services, telegram_id: int) -> Actor:
    return await services.accounts.resolve_actor(telegram_id)


async def fresh_targets(
    services: Services, *, faskes: str | None = FASKES, day: date | None = TODAY, min_age: int = 0, max_age: int = 200
) -> list[models.Target]:
    """Demo targets without any visit (assigned to ``faskes`` on ``day`` unless None), by id."""
    async with services.ctx.sessions() as s:
        stmt = select(models.Target).where(models.Target.id.not_in(select(models.Visit.target_id)))
        if faskes is not None:
            stmt = stmt.where(models.Target.assigned_faskes_code == faskes)
        if day is not None:
            stmt = stmt.where(models.Target.scheduled_date == day)
        rows = list((await s.execute(stmt.order_by(models.Target.id))).scalars())
    return [t for t in rows if min_age <= age_on(t.birth_date, TODAY) <= max_age]


async def a_target(services: Services, **kw: Any) -> models.Target:
    found = await fresh_targets(services, **kw)
    assert found, "the demo data set has no such target"
    return found[0]


async def account_id(services: Services, telegram_id: int) -> int:
    async with services.ctx.sessions() as s:
        stmt = select(models.Account.id).where(models.Account.telegram_id == telegram_id)
        return int((await s.execute(stmt)).scalar_one())


async def add_visit(
    services: Services,
    target_id: int,
    *,
    status: VisitStatus,
    service_date: date,
    dose: int = 1,
    faskes: str = FASKES,
    product: str | None = None,
    **fields: Any,
) -> int:
    """Insert a visit as the desks would have left it (a vaccinated one gets ``product``)."""
    opener = await account_id(services, MEJA1)
    vaccinated = status in (VisitStatus.OBSERVASI, VisitStatus.SELESAI)
    async with services.ctx.sessions() as s:
        visit = models.Visit(
            target_id=target_id,
            dose_number=dose,
            faskes_code=faskes,
            service_date=service_date,
            status=status.value,
            is_open=fields.pop("is_open", status in (VisitStatus.MENUNGGU_SKRINING, VisitStatus.MENUNGGU_VAKSINASI)),
            version=1,
            opened_at=datetime.combine(service_date, datetime.min.time(), tzinfo=UTC) + timedelta(hours=2),
            opened_by=opener,
            rujuk=fields.pop("rujuk", False),
            product_code=product if vaccinated else None,
            batch="B123" if vaccinated else None,
            vaccinated_at=datetime.combine(service_date, datetime.min.time(), tzinfo=UTC) + timedelta(hours=3)
            if vaccinated
            else None,
            **fields,
        )
        s.add(visit)
        await s.execute(
            update(models.Target)
            .where(models.Target.id == target_id, models.Target.first_desk_at.is_(None))
            .values(first_desk_at=visit.opened_at)
        )
        await s.commit()
        return visit.id


async def get_target(services: Services, target_id: int) -> models.Target:
    async with services.ctx.sessions() as s:
        target = await s.get(models.Target, target_id)
        assert target is not None
        return target


async def visits_of(services: Services, target_id: int) -> list[models.Visit]:
    async with services.ctx.sessions() as s:
        stmt = select(models.Visit).where(models.Visit.target_id == target_id).order_by(models.Visit.id)
        return list((await s.execute(stmt)).scalars())


async def audit_events(services: Services, action: str) -> list[models.AuditEvent]:
    async with services.ctx.sessions() as s:
        stmt = select(models.AuditEvent).where(models.AuditEvent.action == action).order_by(models.AuditEvent.seq)
        return list((await s.execute(stmt)).scalars())


# --------------------------------------------------------------------------------------------
# Registering


async def test_registration_opens_a_visit_and_stamps_the_target_in_one_transaction(services: Services) -> None:
    target = await a_target(services)
    reg = await services.registration.register(await actor(services, MEJA1), target.id, target.version)

    assert (reg.dose_number, reg.faskes_code, reg.service_date) == (1, FASKES, TODAY)
    assert reg.faskes_name == "Puskesmas Garuda"
    assert reg.status is VisitStatus.MENUNGGU_SKRINING
    assert reg.target_version == target.version + 1
    (visit,) = await visits_of(services, target.id)
    assert visit.id == reg.visit_id
    assert (visit.status, visit.is_open, visit.service_date, visit.faskes_code) == (
        "menunggu_skrining",
        True,
        TODAY,
        FASKES,
    )
    assert visit.opened_by == await account_id(services, MEJA1)
    after = await get_target(services, target.id)
    assert after.first_desk_at == NOW
    assert after.version == target.version + 1
    (event,) = await audit_events(services, "visit.register")
    assert event.entity_id == str(reg.visit_id) and event.target_id == target.id
    assert event.faskes_code == FASKES and event.kabkota_code == "3273"
    assert event.before == {"target_version": target.version, "first_desk_at": None}
    assert event.after is not None and event.after["dose_number"] == 1 and event.after["service_date"] == "2026-11-26"


async def test_a_second_registration_is_refused_and_says_where(services: Services) -> None:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    reg = await services.registration.register(rina, target.id, target.version)

    # From the same (now stale) card: the race is lost, the answer says where the visit is.
    with pytest.raises(Conflict) as stale:
        await services.registration.register(rina, target.id, target.version)
    assert stale.value.reason == "already_registered"
    assert stale.value.params == {"faskes": "Puskesmas Garuda", "date": TODAY}
    # From a fresh card: rule 2 refuses (an open visit exists).
    with pytest.raises(Refused) as fresh:
        await services.registration.register(rina, target.id, reg.target_version)
    assert fresh.value.reason == "open_visit"
    assert fresh.value.params == {"faskes": "Puskesmas Garuda", "date": TODAY, "dose": 1}
    assert len(await visits_of(services, target.id)) == 1
    assert len(await audit_events(services, "visit.register")) == 1


async def test_series_complete_is_refused(services: Services) -> None:
    target = await a_target(services)
    await add_visit(
        services, target.id, status=VisitStatus.SELESAI, service_date=TODAY - timedelta(70), product="sinopharm"
    )
    await add_visit(
        services, target.id, status=VisitStatus.SELESAI, service_date=TODAY - timedelta(40), dose=2, product="sinopharm"
    )
    fresh = await get_target(services, target.id)
    with pytest.raises(Refused) as err:
        await services.registration.register(await actor(services, MEJA1), target.id, fresh.version)
    assert err.value.reason == "series_complete" and err.value.params == {"doses": 2}
    assert len(await visits_of(services, target.id)) == 2


async def test_minimum_interval_refuses_with_the_earliest_date_then_allows(
    services: Services, clock: FixedClock
) -> None:
    target = await a_target(services, max_age=59)
    first = TODAY - timedelta(days=10)
    await add_visit(services, target.id, status=VisitStatus.SELESAI, service_date=first, product="astrazeneca")
    version = (await get_target(services, target.id)).version
    rina = await actor(services, MEJA1)
    with pytest.raises(Refused) as err:
        await services.registration.register(rina, target.id, version)
    assert err.value.reason == "interval_not_passed"
    assert err.value.params == {"earliest": first + timedelta(days=84), "product": "AstraZeneca", "dose": 2}

    clock.advance(days=74)  # exactly 84 days after the first dose
    reg = await services.registration.register(rina, target.id, version)
    assert reg.dose_number == 2 and reg.late_due is None
    assert reg.service_date == first + timedelta(days=84)


async def test_a_late_second_dose_is_allowed_with_a_warning(services: Services) -> None:
    target = await a_target(services, max_age=59)
    first = TODAY - timedelta(days=28 + 31)
    await add_visit(services, target.id, status=VisitStatus.SELESAI, service_date=first, product="moderna")
    version = (await get_target(services, target.id)).version
    reg = await services.registration.register(await actor(services, MEJA1), target.id, version)
    assert reg.dose_number == 2
    assert reg.late_due == first + timedelta(days=28)


async def test_coronavac_interval_for_age_60_before_july_2021_comes_from_the_data(
    services: Services, clock: FixedClock
) -> None:
    # In March 2021 CoronaVac needed 14 days, 28 from age 60. The demo ages are on 2026-11-26.
    clock.set(datetime(2021, 3, 10, 3, 0, tzinfo=UTC))
    march = date(2021, 3, 10)
    first = march - timedelta(days=18)
    young = await a_target(services, faskes=None, day=None, min_age=25, max_age=50)
    old = await a_target(services, faskes=None, day=None, min_age=70, max_age=75)
    assert age_on(old.birth_date, march) >= 60 > age_on(young.birth_date, march)
    for t in (young, old):
        await add_visit(services, t.id, status=VisitStatus.SELESAI, service_date=first, product="coronavac")
    rina = await actor(services, MEJA1)
    reg = await services.registration.register(rina, young.id, (await get_target(services, young.id)).version)
    assert reg.dose_number == 2 and reg.service_date == march
    with pytest.raises(Refused) as err:
        await services.registration.register(rina, old.id, (await get_target(services, old.id)).version)
    assert err.value.reason == "interval_not_passed" and err.value.params["earliest"] == first + timedelta(days=28)


@pytest.mark.parametrize(
    ("rescreen_in", "refused"), [(1, True), (0, False), (None, False)], ids=["future", "today", "undated"]
)
async def test_tunda_blocks_until_its_rescreen_date(services: Services, rescreen_in: int | None, refused: bool) -> None:
    target = await a_target(services)
    yesterday = TODAY - timedelta(days=1)
    rescreen = TODAY + timedelta(days=rescreen_in) if rescreen_in is not None else None
    await add_visit(
        services, target.id, status=VisitStatus.TUNDA, service_date=yesterday, outcome="tunda", rescreen_date=rescreen
    )
    version = (await get_target(services, target.id)).version
    rina = await actor(services, MEJA1)
    if refused:
        with pytest.raises(Refused) as err:
            await services.registration.register(rina, target.id, version)
        assert err.value.reason == "tunda_until"
        assert err.value.params == {"until": rescreen, "date": yesterday}
    else:
        reg = await services.registration.register(rina, target.id, version)
        assert reg.dose_number == 1


async def test_tidak_diberikan_does_not_block_but_is_reported(services: Services) -> None:
    target = await a_target(services)
    earlier = TODAY - timedelta(days=20)
    await add_visit(
        services, target.id, status=VisitStatus.TIDAK_DIBERIKAN, service_date=earlier, outcome="tidak_diberikan"
    )
    version = (await get_target(services, target.id)).version
    reg = await services.registration.register(await actor(services, MEJA1), target.id, version)
    assert reg.dose_number == 1 and reg.tidak_diberikan_on == earlier


async def test_a_visit_left_open_on_an_earlier_day_is_closed_as_lapsed(services: Services) -> None:
    target = await a_target(services)
    yesterday = TODAY - timedelta(days=1)
    old = await add_visit(
        services, target.id, status=VisitStatus.MENUNGGU_SKRINING, service_date=yesterday, faskes="3273K001"
    )
    version = (await get_target(services, target.id)).version
    reg = await services.registration.register(await actor(services, MEJA1), target.id, version)
    assert [(lap.visit_id, lap.faskes_name, lap.service_date) for lap in reg.lapsed] == [
        (old, "Klinik Pratama Dago", yesterday)
    ]
    first, second = await visits_of(services, target.id)
    assert (first.id, first.is_open, first.status, first.version) == (old, False, "menunggu_skrining", 2)
    assert (second.id, second.is_open) == (reg.visit_id, True)
    (event,) = await audit_events(services, "visit.lapse")
    assert event.entity_id == str(old) and event.faskes_code == "3273K001"


async def test_a_target_changed_since_the_card_is_refused(services: Services) -> None:
    target = await a_target(services)
    async with services.ctx.sessions() as s:  # a verifier's correction
        await s.execute(
            update(models.Target).where(models.Target.id == target.id).values(name="X", version=target.version + 1)
        )
        await s.commit()
    with pytest.raises(Conflict) as err:
        await services.registration.register(await actor(services, MEJA1), target.id, target.version)
    assert err.value.reason == "target_changed"
    assert await visits_of(services, target.id) == []
    assert (await get_target(services, target.id)).first_desk_at is None


@pytest.mark.parametrize("who", [MEJA2, MEJA4, VERIFIER, DINKES])
async def test_only_meja1_registers(services: Services, who: int) -> None:
    target = await a_target(services)
    with pytest.raises(PermissionDenied):
        await services.registration.register(await actor(services, who), target.id, target.version)
    assert await visits_of(services, target.id) == []


async def test_revoked_account_cannot_register_even_with_an_old_actor(services: Services) -> None:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    async with services.ctx.sessions() as s:
        await s.execute(update(models.Account).where(models.Account.telegram_id == MEJA1).values(state="revoked"))
        await s.commit()
    with pytest.raises(PermissionDenied):
        await services.registration.register(rina, target.id, target.version)


async def test_service_date_is_the_local_date_of_the_registering_faskes(services: Services, clock: FixedClock) -> None:
    # 16:30 UTC: 23:30 WIB on the 26th, 00:30 WITA on the 27th.
    clock.set(datetime(2026, 11, 26, 16, 30, tzinfo=UTC))
    bandung, makassar = (await fresh_targets(services))[:2]
    reg_wib = await services.registration.register(await actor(services, MEJA1), bandung.id, bandung.version)
    reg_wita = await services.registration.register(
        await actor(services, MEJA1_MAKASSAR), makassar.id, makassar.version
    )
    assert reg_wib.service_date == date(2026, 11, 26)
    assert (reg_wita.service_date, reg_wita.faskes_code) == (date(2026, 11, 27), "7371P001")


# --------------------------------------------------------------------------------------------
# The phone number


async def test_phone_change_before_any_visit(services: Services) -> None:
    target = await a_target(services)
    change = await services.registration.change_phone(
        await actor(services, MEJA1), target.id, "0812 3456 7890", seen_version=target.version
    )
    assert (change.phone, change.changed, change.target_version) == ("+6281234567890", True, target.version + 1)
    after = await get_target(services, target.id)
    assert after.phone == "+6281234567890" and after.version == target.version + 1
    assert after.first_desk_at is None  # a phone change is no registration
    (event,) = await audit_events(services, "target.phone")
    assert event.after == {"phone": mask_phone("+6281234567890"), "version": target.version + 1}
    assert event.before == {"phone": mask_phone(target.phone) if target.phone else None, "version": target.version}
    assert "3456" not in str(event.after)


async def test_invalid_phone_writes_nothing(services: Services) -> None:
    target = await a_target(services)
    with pytest.raises(InvalidPhone):
        await services.registration.change_phone(await actor(services, MEJA1), target.id, "0212345", seen_version=None)
    assert (await get_target(services, target.id)).version == target.version
    assert await audit_events(services, "target.phone") == []


async def test_phone_change_while_waiting_for_screening_then_locked(services: Services) -> None:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    reg = await services.registration.register(rina, target.id, target.version)
    change = await services.registration.change_phone(
        rina, target.id, "+62 813-1111-2222", seen_version=reg.target_version
    )
    assert change.changed
    # Another faskes' meja 1 may not touch a visit that is not theirs.
    with pytest.raises(PermissionDenied):
        await services.registration.change_phone(await actor(services, MEJA1_MAKASSAR), target.id, "081311112223")
    # Screening saved: locked.
    async with services.ctx.sessions() as s:
        await s.execute(update(models.Visit).where(models.Visit.id == reg.visit_id).values(status="menunggu_vaksinasi"))
        await s.commit()
    with pytest.raises(Refused) as err:
        await services.registration.change_phone(rina, target.id, "081311112224")
    assert err.value.reason == "phone_locked"
    assert (await get_target(services, target.id)).phone == "+6281311112222"


async def test_phone_change_after_a_closed_visit_is_locked(services: Services) -> None:
    target = await a_target(services)
    await add_visit(
        services, target.id, status=VisitStatus.SELESAI, service_date=TODAY - timedelta(5), product="moderna"
    )
    with pytest.raises(Refused) as err:
        await services.registration.change_phone(await actor(services, MEJA1), target.id, "081311112224")
    assert err.value.reason == "phone_locked"


async def test_phone_change_from_a_stale_card_or_same_number(services: Services) -> None:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    await services.registration.change_phone(rina, target.id, "081299990000", seen_version=target.version)
    with pytest.raises(Conflict) as err:
        await services.registration.change_phone(rina, target.id, "081299990001", seen_version=target.version)
    assert err.value.reason == "target_changed"
    same = await services.registration.change_phone(rina, target.id, "0812-9999-0000")
    assert not same.changed and same.target_version == target.version + 1
    assert len(await audit_events(services, "target.phone")) == 1


@pytest.mark.parametrize("who", [MEJA2, VERIFIER])
async def test_only_meja1_changes_the_phone(services: Services, who: int) -> None:
    target = await a_target(services)
    with pytest.raises(PermissionDenied):
        await services.registration.change_phone(await actor(services, who), target.id, "081299990000")


# --------------------------------------------------------------------------------------------
# Races


async def test_twenty_concurrent_registrations_from_two_faskes_open_exactly_one_visit(services: Services) -> None:
    target = await a_target(services)
    people = [await actor(services, MEJA1), await actor(services, MEJA1_MAKASSAR)]
    results = await asyncio.gather(
        *(services.registration.register(people[i % 2], target.id, target.version) for i in range(20)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1, results
    assert all(isinstance(e, Conflict) and e.reason == "already_registered" for e in lost), lost
    assert {e.params["faskes"] for e in lost if isinstance(e, Conflict)} == {won[0].faskes_name}
    visits = await visits_of(services, target.id)
    assert len(visits) == 1 and visits[0].is_open
    after = await get_target(services, target.id)
    assert after.version == target.version + 1
    assert len(await audit_events(services, "visit.register")) == 1


_CORRECTION = text(
    "UPDATE targets SET name = :name, version = version + 1 WHERE id = :id AND first_desk_at IS NULL AND version = :v"
)


async def _correct(
    engine: AsyncEngine, target_id: int, version: int, *, hold: float = 0.0, updated: asyncio.Event | None = None
) -> int:
    """A verifier-style correction in its own transaction; ``hold`` keeps the row (and lock) that long."""
    async with engine.begin() as conn:
        result = await conn.execute(_CORRECTION, {"name": "Koreksi", "id": target_id, "v": version})
        if updated is not None:
            updated.set()
        if hold:
            await asyncio.sleep(hold)
        return int(result.rowcount)


async def _register_outcome(services: Services, who: Actor, target: models.Target) -> str:
    try:
        await services.registration.register(who, target.id, target.version)
    except Conflict as exc:
        return f"conflict:{exc.reason}"
    return "registered"


async def test_correction_holding_the_row_makes_registration_lose(services: Services, engine: AsyncEngine) -> None:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    updated = asyncio.Event()
    correction = asyncio.create_task(_correct(engine, target.id, target.version, hold=0.5, updated=updated))
    await asyncio.wait_for(updated.wait(), 10)  # the correction has updated the row and holds it
    outcome = await _register_outcome(services, rina, target)
    assert await correction == 1
    assert outcome == "conflict:target_changed"
    after = await get_target(services, target.id)
    assert (after.name, after.first_desk_at, after.version) == ("Koreksi", None, target.version + 1)
    assert await visits_of(services, target.id) == []


async def test_registration_first_makes_the_correction_lose(services: Services, engine: AsyncEngine) -> None:
    target = await a_target(services)
    await services.registration.register(await actor(services, MEJA1), target.id, target.version)
    assert await _correct(engine, target.id, target.version) == 0
    assert (await get_target(services, target.id)).name == target.name


async def test_registration_racing_a_correction_exactly_one_wins(services: Services, engine: AsyncEngine) -> None:
    rina = await actor(services, MEJA1)
    targets = (await fresh_targets(services))[:6]
    for target in targets:
        outcome, rows = await asyncio.gather(
            _register_outcome(services, rina, target), _correct(engine, target.id, target.version)
        )
        after = await get_target(services, target.id)
        visits = await visits_of(services, target.id)
        if outcome == "registered":
            assert rows == 0 and after.name == target.name and len(visits) == 1
        else:
            assert outcome == "conflict:target_changed"
            assert rows == 1 and after.name == "Koreksi" and visits == [] and after.first_desk_at is None
    async with services.ctx.sessions() as s:
        total = (await s.execute(select(func.count()).select_from(models.Visit))).scalar_one()
    assert total <= len(targets)


# --------------------------------------------------------------------------------------------
# The pure plan


def _facts(status: VisitStatus, day: date, **kw: Any) -> VisitFacts:
    base: dict[str, Any] = {
        "visit_id": kw.pop("visit_id", 1),
        "dose_number": 1,
        "status": status,
        "is_open": False,
        "faskes_code": FASKES,
        "faskes_name": "Puskesmas Garuda",
        "service_date": day,
        "local_today": TODAY,
    }
    return VisitFacts(**{**base, **kw})


def test_plan_picks_the_later_of_tunda_and_interval() -> None:
    from core.domain.vaccines import DEFAULT_INTERVALS

    given = _facts(VisitStatus.SELESAI, TODAY - timedelta(5), product_code="pfizer")
    tunda = _facts(
        VisitStatus.TUNDA, TODAY - timedelta(1), visit_id=2, dose_number=2, rescreen_date=TODAY + timedelta(3)
    )
    plan = plan_next_dose(
        [given, tunda], birth_date=date(1990, 1, 1), today=TODAY, intervals=DEFAULT_INTERVALS, doses_by_product={}
    )
    assert plan.refusal == "interval_not_passed" and plan.params["earliest"] == TODAY + timedelta(16)


def test_plan_ignores_a_tunda_older_than_the_last_dose_and_lapses_stale_open_visits() -> None:
    from core.domain.vaccines import DEFAULT_INTERVALS

    old_tunda = _facts(VisitStatus.TUNDA, TODAY - timedelta(60), rescreen_date=TODAY + timedelta(5))
    given = _facts(VisitStatus.SELESAI, TODAY - timedelta(30), visit_id=2, product_code="moderna")
    stale = _facts(VisitStatus.MENUNGGU_SKRINING, TODAY - timedelta(1), visit_id=3, dose_number=2, is_open=True)
    plan = plan_next_dose(
        [old_tunda, given, stale],
        birth_date=date(1990, 1, 1),
        today=TODAY,
        intervals=DEFAULT_INTERVALS,
        doses_by_product={"moderna": 2},
    )
    assert plan.possible and plan.dose_number == 2 and plan.lapse == (3,)
    today_open = _facts(VisitStatus.MENUNGGU_VAKSINASI, TODAY, visit_id=4, dose_number=2, is_open=True)
    refused = plan_next_dose(
        [given, today_open], birth_date=date(1990, 1, 1), today=TODAY, intervals=DEFAULT_INTERVALS, doses_by_product={}
    )
    assert refused.refusal == "open_visit" and refused.params["dose"] == 2
