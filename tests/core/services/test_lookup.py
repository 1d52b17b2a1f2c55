"""Lookup: the card, its actions per actor, the near miss (NIK vs typed birth date), scope and rate limit."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from core.db import models
from core.domain.errors import InvalidInput, InvalidNik, NotFound, PermissionDenied, Refused
from core.domain.identifiers import format_ticket, nik_mismatches, parse_nik
from core.domain.visits import VisitStatus
from core.ports import FixedClock
from core.services.lookup import parse_query
from core.services.registry import Services
from tests.conftest import TODAY
from tests.core.services.test_registration import (
    ALL_DESKS,
    DINKES,
    MEJA1,
    MEJA1_MAKASSAR,
    MEJA2,
    MEJA4,
    VERIFIER,
    a_target,
    actor,
    add_visit,
    get_target,
)


def _kinds(card) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.kind for a in card.actions]


async def test_find_by_ticket_masks_the_nik_and_by_nik_shows_it(services: Services) -> None:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    by_ticket = await services.lookup.find(rina, format_ticket(target.ticket).lower())
    assert by_ticket.target_id == target.id and not by_ticket.nik_typed
    assert by_ticket.nik == target.nik[:6] + "•" * 10
    assert by_ticket.phone_masked is None or "•" in by_ticket.phone_masked
    by_nik = await services.lookup.find(rina, f"{target.nik[:4]} {target.nik[4:8]}.{target.nik[8:]}")
    assert by_nik.nik == target.nik and by_nik.nik_typed
    assert by_nik.assigned_faskes_name == "Puskesmas Garuda" and by_nik.scheduled_date == TODAY
    assert by_nik.plan is not None and by_nik.plan.possible and by_nik.plan.dose_number == 1


async def test_actions_before_any_visit(services: Services) -> None:
    target = await a_target(services)
    cards = {
        who: await services.lookup.find(await actor(services, who), target.ticket)
        for who in (MEJA1, MEJA2, VERIFIER, ALL_DESKS)
    }
    assert _kinds(cards[MEJA1]) == ["register", "phone"]
    assert _kinds(cards[MEJA2]) == []
    assert _kinds(cards[VERIFIER]) == ["verify"]
    assert _kinds(cards[ALL_DESKS]) == ["register", "phone"]
    dinkes = await services.lookup.find(await actor(services, DINKES), target.ticket)
    assert dinkes.actions == () and dinkes.plan is None


async def test_actions_follow_the_visit_through_the_desks(services: Services) -> None:
    target = await a_target(services)
    reg = await services.registration.register(await actor(services, MEJA1), target.id, target.version)

    async def kinds(who: int) -> list[tuple[str, int | None]]:
        card = await services.lookup.card(await actor(services, who), target.id)
        return [(a.kind, a.visit_id) for a in card.actions]

    assert await kinds(MEJA1) == [("phone", None)]
    assert await kinds(MEJA2) == [("screen", reg.visit_id)]
    assert await kinds(ALL_DESKS) == [("phone", None), ("screen", reg.visit_id)]
    assert await kinds(VERIFIER) == []  # a desk entry exists: no more verification
    assert await kinds(MEJA1_MAKASSAR) == []  # another faskes: neither phone nor register (open visit)
    for status, step in (("menunggu_vaksinasi", "vaccinate"), ("observasi", "observe")):
        async with services.ctx.sessions() as s:
            await s.execute(
                update(models.Visit)
                .where(models.Visit.id == reg.visit_id)
                .values(
                    status=status,
                    is_open=status == "menunggu_vaksinasi",
                    product_code="coronavac" if status == "observasi" else None,
                )
            )
            await s.commit()
        assert await kinds(MEJA1) == []
        assert await kinds(MEJA4) == [(step, reg.visit_id)]
        assert await kinds(MEJA2) == []
    card = await services.lookup.card(await actor(services, MEJA1), target.id)
    assert card.open_visit is None and card.has_desk_entry


async def test_card_shows_tunda_and_tidak_and_blocks_registration(services: Services) -> None:
    target = await a_target(services)
    yesterday = TODAY - timedelta(days=1)
    await add_visit(services, target.id, status=VisitStatus.TIDAK_DIBERIKAN, service_date=yesterday - timedelta(9))
    await add_visit(
        services,
        target.id,
        status=VisitStatus.TUNDA,
        service_date=yesterday,
        rescreen_date=TODAY + timedelta(2),
        rujuk=True,
    )
    card = await services.lookup.card(await actor(services, MEJA1), target.id)
    assert [v.status for v in card.visits] == [VisitStatus.TIDAK_DIBERIKAN, VisitStatus.TUNDA]
    assert card.visits[1].rescreen_date == TODAY + timedelta(2) and card.visits[1].rujuk
    assert card.plan is not None and card.plan.refusal == "tunda_until"
    assert card.plan.tidak_diberikan_on == yesterday - timedelta(9)
    assert "register" not in _kinds(card) and "phone" not in _kinds(card)


async def test_card_for_a_visit(services: Services) -> None:
    target = await a_target(services)
    visit_id = await add_visit(services, target.id, status=VisitStatus.MENUNGGU_SKRINING, service_date=TODAY)
    card = await services.lookup.card_for_visit(await actor(services, MEJA2), visit_id)
    assert card.target_id == target.id and card.open_visit is not None
    with pytest.raises(NotFound):
        await services.lookup.card_for_visit(await actor(services, MEJA2), 10**9)


async def test_lapsed_visits_are_told_apart(services: Services) -> None:
    target = await a_target(services)
    await add_visit(services, target.id, status=VisitStatus.MENUNGGU_SKRINING, service_date=TODAY - timedelta(1))
    fresh = await get_target(services, target.id)
    await services.registration.register(await actor(services, MEJA1), target.id, fresh.version)
    card = await services.lookup.card(await actor(services, MEJA1), target.id)
    assert [v.lapsed for v in card.visits] == [True, False]
    assert card.open_visit is not None and card.open_visit.service_date == TODAY


# --------------------------------------------------------------------------------------------
# Near misses


def test_parse_query_reads_a_trailing_birth_date() -> None:
    assert parse_query("3273011708900001 17-08-1990").typed_birth_date == date(1990, 8, 17)
    assert parse_query("3273-0117-0890-0001 1990/08/17").typed_birth_date == date(1990, 8, 17)
    assert parse_query("3273011708900001").typed_birth_date is None
    with pytest.raises(InvalidInput) as err:
        parse_query("3273011708900001 31-02-1990")
    assert err.value.key == "invalid.date"
    with pytest.raises(InvalidNik) as nik:
        parse_query("3273011708900 17-08-1990")
    assert nik.value.reason == "length"


async def test_typed_birth_date_checked_against_nik_and_record(services: Services) -> None:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    nik_birth = parse_nik(target.nik, today=TODAY).birth_date
    good = await services.lookup.find(rina, f"{target.nik} {nik_birth:%d-%m-%Y}")
    assert not good.typed_birth_vs_nik and good.nik_birth_date == nik_birth
    other = nik_birth + timedelta(days=1)
    bad = await services.lookup.find(rina, f"{target.nik} {other:%d-%m-%Y}")
    assert bad.typed_birth_vs_nik and bad.typed_birth_vs_record and bad.typed_birth_date == other
    by_ticket = await services.lookup.find(rina, f"{target.ticket} {other:%d-%m-%Y}")
    assert by_ticket.nik_birth_date is None and not by_ticket.typed_birth_vs_nik and by_ticket.typed_birth_vs_record


async def test_not_found_nik_with_a_disagreeing_birth_date_says_so(services: Services) -> None:
    rina = await actor(services, MEJA1)
    nik = "3273011708909999"  # 17-08-1990, not in PL
    with pytest.raises(NotFound) as plain:
        await services.lookup.find(rina, nik)
    assert plain.value.reason == "nik" and plain.value.params == {}
    with pytest.raises(NotFound) as same:
        await services.lookup.find(rina, f"{nik} 17-08-1990")
    assert same.value.params == {}
    with pytest.raises(NotFound) as differs:
        await services.lookup.find(rina, f"{nik} 18-08-1990")
    assert differs.value.params == {"nik_birth": date(1990, 8, 17), "typed_birth": date(1990, 8, 18)}


async def test_record_disagreeing_with_its_nik_is_flagged(services: Services) -> None:
    async with services.ctx.sessions() as s:
        targets = list((await s.execute(select(models.Target).order_by(models.Target.id))).scalars())
    wrong = [t for t in targets if nik_mismatches(parse_nik(t.nik, today=TODAY), t.birth_date, None)]
    assert wrong, "the demo data has wrong birth dates"
    card = await services.lookup.card(await actor(services, MEJA1), wrong[0].id)
    assert "birth_date" in card.nik_mismatches
    right = next(t for t in targets if t not in wrong)
    assert (await services.lookup.card(await actor(services, MEJA1), right.id)).nik_mismatches == ()


# --------------------------------------------------------------------------------------------
# Scope and limits


async def test_strangers_and_other_districts_cannot_read(services: Services) -> None:
    target = await a_target(services)
    with pytest.raises(PermissionDenied):
        await services.lookup.find(await actor(services, 123), target.ticket)
    with pytest.raises(PermissionDenied):
        await services.lookup.find(await actor(services, 910011), target.ticket)  # Dinkes Makassar


async def test_lookups_are_rate_limited_per_account(services: Services, clock: FixedClock) -> None:
    target = await a_target(services)
    rina, budi = await actor(services, MEJA1), await actor(services, MEJA2)
    limit = services.ctx.lookups_per_minute
    for _ in range(limit):
        await services.lookup.find(rina, target.ticket)
    with pytest.raises(Refused) as err:
        await services.lookup.find(rina, target.ticket)
    assert err.value.reason == "rate_limited" and err.value.params["seconds"] >= 1
    await services.lookup.find(budi, target.ticket)  # per account
    clock.advance(minutes=1)
    await services.lookup.find(rina, target.ticket)
    # Card re-reads after an action are not lookups.
    await services.lookup.card(rina, target.id)
