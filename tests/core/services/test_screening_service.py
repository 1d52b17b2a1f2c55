"""Screening at meja 2 through the service: rule sets wired end to end, scope, exactly once, Tunda edits.

Runs on SQLite and PostgreSQL (the ``services`` fixture). Visits are opened by :func:`open_visit`, which
inserts the row the way registration at meja 1 does (status ``menunggu_skrining``, open, today).
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core.db import models
from core.domain.accounts import Actor
from core.domain.errors import Conflict, InvalidInput, PermissionDenied, Refused
from core.domain.screening import Outcome, Vitals
from core.domain.timeutil import age_on
from core.domain.visits import VisitStatus
from core.services.registry import Services
from core.services.screening import ScreeningSubject
from tests.conftest import NOW, TODAY

FASKES = "3273P001"
NORMAL = Vitals(Decimal("36.5"), 120, 80)

# --------------------------------------------------------------------------------------------
# Helpers (imported by the other desk tests too)


async def actor(services: Services, telegram_id: int) -> Actor:
    return await services.accounts.resolve_actor(telegram_id)


async def pick_target(
    services: Services, *, category: str | None = None, min_age: int = 0, max_age: int = 200, skip: int = 0
) -> models.Target:
    """A demo target without any visit, by category and age on TODAY."""
    async with services.ctx.sessions() as s:
        stmt = select(models.Target).order_by(models.Target.id)
        if category is not None:
            stmt = stmt.where(models.Target.category == category)
        used = select(models.Visit.target_id)
        stmt = stmt.where(models.Target.id.not_in(used))
        found = [t for t in (await s.execute(stmt)).scalars() if min_age <= age_on(t.birth_date, TODAY) <= max_age]
    assert len(found) > skip, "the demo data set has no such target"
    return found[skip]


async def open_visit(
    services: Services,
    target_id: int,
    *,
    faskes: str = FASKES,
    dose: int = 1,
    opened_by: int = 910001,
    status: VisitStatus = VisitStatus.MENUNGGU_SKRINING,
    service_date: date = TODAY,
    **fields: Any,
) -> int:
    """Open a visit as registration at meja 1 does; ``fields`` set any other column (earlier doses)."""
    async with services.ctx.sessions() as s:
        opener = (
            await s.execute(select(models.Account.id).where(models.Account.telegram_id == opened_by))
        ).scalar_one()
        visit = models.Visit(
            target_id=target_id,
            dose_number=dose,
            faskes_code=faskes,
            service_date=service_date,
            status=status.value,
            is_open=fields.pop("is_open", status in (VisitStatus.MENUNGGU_SKRINING, VisitStatus.MENUNGGU_VAKSINASI)),
            version=1,
            opened_at=fields.pop("opened_at", NOW),
            opened_by=opener,
            **fields,
        )
        s.add(visit)
        await s.execute(update(models.Target).where(models.Target.id == target_id).values(first_desk_at=NOW))
        await s.commit()
        return visit.id


async def visit_row(services: Services, visit_id: int) -> models.Visit:
    async with services.ctx.sessions() as s:
        visit = await s.get(models.Visit, visit_id)
        assert visit is not None
        return visit


async def audit_events(services: Services, action: str, visit_id: int) -> list[models.AuditEvent]:
    async with services.ctx.sessions() as s:
        stmt = select(models.AuditEvent).where(
            models.AuditEvent.action == action, models.AuditEvent.entity_id == str(visit_id)
        )
        return list((await s.execute(stmt)).scalars())


async def grant(services: Services, telegram_id: int, roles: str) -> None:
    async with services.ctx.sessions() as s:
        await s.execute(update(models.Account).where(models.Account.telegram_id == telegram_id).values(roles=roles))
        await s.commit()


def all_no(subject: ScreeningSubject, yes: tuple[str, ...] = (), **extra: bool) -> dict[str, bool]:
    answers = subject.answers(yes)
    answers.update(extra)
    return answers


async def screen(
    services: Services,
    visit_id: int,
    *,
    vitals: Vitals = NORMAL,
    yes: tuple[str, ...] = (),
    by: int = 910002,
    **extra: bool,
) -> Any:
    staff = await actor(services, by)
    form = await services.screening.open(staff, visit_id)
    return await services.screening.save(staff, visit_id, vitals, all_no(form.subject, yes, **extra))


# --------------------------------------------------------------------------------------------
# The form


async def test_open_selects_the_rule_set_by_category_and_asks_by_dose(services: Services) -> None:
    nakes = await pick_target(services, category="nakes", max_age=59)
    lansia = await pick_target(services, category="lansia")
    budi = await actor(services, 910002)

    form = await services.screening.open(budi, await open_visit(services, nakes.id))
    assert form.subject.rule_set_id == "nakes-2021-01" and not form.remeasure
    assert form.nik_masked.endswith("•" * 10) and nakes.nik[-4:] not in form.nik_masked
    ids = [i.id for i in form.subject.items()]
    assert "allergy_after_dose_1" not in ids  # dose 2 only
    assert [i.id for i in form.subject.visible(())].count("diabetes_t2_hba1c_ok") == 0
    assert "diabetes_t2_hba1c_ok" in [i.id for i in form.subject.visible(("diabetes",))]

    form = await services.screening.open(budi, await open_visit(services, lansia.id, dose=2))
    assert form.subject.rule_set_id == "umum-2021-02" and form.remeasure
    ids = [i.id for i in form.subject.items()]
    assert "allergy_after_dose_1" in ids and "allergy_severe_vaccine" not in ids
    assert "frailty_stairs" in ids  # age 60 and over


# --------------------------------------------------------------------------------------------
# Rule sets end to end


async def test_all_no_and_normal_vitals_is_lanjut_and_everything_is_stored(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    saved = await screen(services, visit_id)
    assert saved.result.outcome is Outcome.LANJUT and saved.status is VisitStatus.MENUNGGU_VAKSINASI

    v = await visit_row(services, visit_id)
    assert (v.status, v.is_open, v.outcome, v.rujuk) == ("menunggu_vaksinasi", True, "lanjut", False)
    assert v.rule_set_id == "nakes-2021-01"
    assert (v.temperature_c, v.systolic, v.diastolic, v.systolic_2) == (Decimal("36.5"), 120, 80, None)
    assert v.answers is not None and set(v.answers) == {
        i.id for i in ScreeningSubject("nakes-2021-01", age_on(target.birth_date, TODAY), 1, TODAY).visible(())
    }
    assert not any(v.answers.values()) and v.reasons == [] and v.rescreen_date is None
    assert v.screened_at == NOW and v.screened_by is not None

    (event,) = await audit_events(services, "visit.screen", visit_id)
    assert event.before == {"status": "menunggu_skrining", "is_open": True, "version": 1}
    assert event.after is not None and event.after["outcome"] == "lanjut" and event.after["temperature_c"] == "36.5"
    assert event.faskes_code == FASKES and event.target_id == target.id


@pytest.mark.parametrize(
    ("vitals", "yes", "extra", "outcome", "codes", "rescreen"),
    [
        # nakes-2021-01: temperature >= 37.5 is Tunda until the next day
        (Vitals(Decimal("37.5"), 120, 80), (), {}, Outcome.TUNDA, ["temperature_high"], 1),
        # blood pressure above 140/90 (no re-measure in this rule set)
        (Vitals(Decimal("36.5"), 141, 80), (), {}, Outcome.TIDAK_DIBERIKAN, ["bp_high"], None),
        (
            Vitals(Decimal("36.5"), 120, 80),
            ("household_contact",),
            {},
            Outcome.TIDAK_DIBERIKAN,
            ["household_contact"],
            None,
        ),
        # diabetes, waived by type 2 with HbA1c < 7.5 %
        (NORMAL, ("diabetes",), {"diabetes_t2_hba1c_ok": True}, Outcome.LANJUT, [], None),
        (NORMAL, ("diabetes",), {}, Outcome.TIDAK_DIBERIKAN, ["diabetes"], None),
        # worst wins: lung disease (Tunda) with a fever (Tunda) and HIV without CD4 (Tidak diberikan)
        (
            Vitals(Decimal("38.0"), 120, 80),
            ("lung_disease_uncontrolled", "hiv"),
            {},
            Outcome.TIDAK_DIBERIKAN,
            ["temperature_high", "hiv", "lung_disease_uncontrolled"],
            None,
        ),
        (NORMAL, ("lung_disease_uncontrolled",), {}, Outcome.TUNDA, ["lung_disease_uncontrolled"], None),
    ],
)
async def test_nakes_rule_set_decisions(
    services: Services,
    vitals: Vitals,
    yes: tuple[str, ...],
    extra: dict[str, bool],
    outcome: Outcome,
    codes: list[str],
    rescreen: int | None,
) -> None:
    target = await pick_target(services, category="nakes", min_age=18, max_age=59)
    visit_id = await open_visit(services, target.id)
    saved = await screen(services, visit_id, vitals=vitals, yes=yes, **extra)
    assert saved.result.outcome is outcome
    v = await visit_row(services, visit_id)
    assert v.outcome == outcome.value
    assert [r["code"] for r in v.reasons or []] == codes
    assert v.rescreen_date == (TODAY + timedelta(days=rescreen) if rescreen else None)
    assert v.is_open is (outcome is Outcome.LANJUT)
    assert (
        v.status
        == {
            Outcome.LANJUT: "menunggu_vaksinasi",
            Outcome.TUNDA: "tunda",
            Outcome.TIDAK_DIBERIKAN: "tidak_diberikan",
        }[outcome]
    )
    if "diabetes" in yes:
        assert v.answers is not None and "diabetes_t2_hba1c_ok" in v.answers


async def test_nakes_age_outside_18_to_59_is_tidak_diberikan(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59, skip=1)
    async with services.ctx.sessions() as s:
        await s.execute(update(models.Target).where(models.Target.id == target.id).values(birth_date=date(1960, 1, 1)))
        await s.commit()
    saved = await screen(services, await open_visit(services, target.id))
    assert saved.result.outcome is Outcome.TIDAK_DIBERIKAN
    assert [r.code for r in saved.result.reasons] == ["age_out_of_range"]


async def test_umum_rule_set_remeasure_rujuk_and_frailty(services: Services) -> None:
    budi = await actor(services, 910002)
    lansia = [await pick_target(services, category="lansia", skip=i) for i in range(4)]

    # A high first reading alone does not decide: the re-measure is required, then decides.
    visit_id = await open_visit(services, lansia[0].id)
    form = await services.screening.open(budi, visit_id)
    high = Vitals(Decimal("36.6"), 190, 115)
    assert form.subject.needs_remeasure(high)
    with pytest.raises(InvalidInput) as info:
        await services.screening.save(budi, visit_id, high, form.subject.answers(()))
    assert info.value.reason == "screening_incomplete" and "blood_pressure_2" in info.value.params["missing"]
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"
    saved = await services.screening.save(
        budi, visit_id, Vitals(Decimal("36.6"), 190, 115, 170, 100), form.subject.answers(())
    )
    assert saved.result.outcome is Outcome.LANJUT
    v = await visit_row(services, visit_id)
    assert (v.systolic, v.diastolic, v.systolic_2, v.diastolic_2) == (190, 115, 170, 100)

    # Dose 1, severe allergy to a vaccine before: Tunda + Rujuk (vaccinate in hospital).
    saved = await screen(services, await open_visit(services, lansia[1].id), yes=("allergy_severe_vaccine",))
    assert saved.result.outcome is Outcome.TUNDA and saved.result.rujuk
    assert saved.editable_until is not None and saved.editable_until.hour == 23

    # Three frailty answers yes: Tidak diberikan.
    saved = await screen(
        services,
        await open_visit(services, lansia[2].id),
        yes=("frailty_stairs", "frailty_fatigue", "frailty_walking"),
    )
    assert saved.result.outcome is Outcome.TIDAK_DIBERIKAN and [r.code for r in saved.result.reasons] == ["frailty"]

    # COVID-19 recovered less than 3 months ago: Tunda, screened again after 90 days.
    saved = await screen(services, await open_visit(services, lansia[3].id), yes=("covid_recovered_lt_3m",))
    assert saved.result.outcome is Outcome.TUNDA and saved.result.rescreen_date == TODAY + timedelta(days=90)


async def test_what_was_confirmed_must_still_hold(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    budi = await actor(services, 910002)
    form = await services.screening.open(budi, visit_id)
    with pytest.raises(Conflict) as info:
        await services.screening.save(
            budi, visit_id, NORMAL, form.subject.answers(("heart_disease",)), seen_outcome=Outcome.LANJUT
        )
    assert info.value.reason == "outcome_changed"
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"
    assert await audit_events(services, "visit.screen", visit_id) == []


@pytest.mark.parametrize(
    ("vitals", "reason"),
    [
        (Vitals(Decimal("60"), 120, 80), "temperature"),
        (Vitals(Decimal("36.5"), 300, 20), "blood_pressure"),
        (Vitals(Decimal("36.5"), 80, 120), "blood_pressure"),
    ],
)
async def test_core_rechecks_vitals(services: Services, vitals: Vitals, reason: str) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    with pytest.raises(InvalidInput) as info:
        await screen(services, visit_id, vitals=vitals)
    assert info.value.reason == reason
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"


async def test_temperature_is_judged_as_stored(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    saved = await screen(services, visit_id, vitals=Vitals(Decimal("37.45"), 120, 80))
    # 37.45 is stored as 37.5 (one decimal), and 37.5 is a fever in nakes-2021-01.
    assert saved.result.outcome is Outcome.TUNDA
    assert (await visit_row(services, visit_id)).temperature_c == Decimal("37.5")


# --------------------------------------------------------------------------------------------
# Who may screen


async def test_only_meja2_of_the_visits_faskes_may_screen(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)

    for telegram_id in (910001, 910004, 910010, 910020):  # meja 1, meja 4, Dinkes, meja 1 elsewhere
        with pytest.raises(PermissionDenied) as info:
            await screen(services, visit_id, by=telegram_id)
        assert info.value.reason == "role"

    await grant(services, 910020, "meja1,meja2,meja4")  # meja 2 at 7371P001 (Makassar)
    fajar = await actor(services, 910020)
    with pytest.raises(PermissionDenied) as info:
        await services.screening.open(fajar, visit_id)
    assert info.value.reason == "other_faskes"
    form = await services.screening.open(await actor(services, 910002), visit_id)
    with pytest.raises(PermissionDenied):
        await services.screening.save(fajar, visit_id, NORMAL, form.subject.answers(()))
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"

    saved = await screen(services, visit_id, by=910006)  # all desks at the same faskes
    assert saved.status is VisitStatus.MENUNGGU_VAKSINASI


async def test_revoked_staff_cannot_screen(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    budi = await actor(services, 910002)
    form = await services.screening.open(budi, visit_id)
    async with services.ctx.sessions() as s:
        await s.execute(update(models.Account).where(models.Account.telegram_id == 910002).values(state="revoked"))
        await s.commit()
    with pytest.raises(PermissionDenied):
        await services.screening.save(budi, visit_id, NORMAL, form.subject.answers(()))


# --------------------------------------------------------------------------------------------
# Exactly once


async def test_a_second_save_is_a_conflict(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    await screen(services, visit_id)
    with pytest.raises(Conflict) as info:
        await screen(services, visit_id)
    assert info.value.reason == "already_screened"
    assert len(await audit_events(services, "visit.screen", visit_id)) == 1


async def test_twenty_concurrent_screenings_save_one(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    desks = [await actor(services, tid) for tid in (910002, 910006)]
    form = await services.screening.open(desks[0], visit_id)
    answers = form.subject.answers(())

    async def one(i: int) -> object:
        vitals = Vitals(Decimal("36.5") + Decimal(i % 5) / 10, 120, 80)
        try:
            return await services.screening.save(desks[i % 2], visit_id, vitals, answers)
        except Conflict as exc:
            return exc

    results = await asyncio.gather(*(one(i) for i in range(20)))
    saved = [r for r in results if not isinstance(r, Conflict)]
    assert len(saved) == 1 and all(isinstance(r, Conflict) for r in results if r is not saved[0])
    assert len(await audit_events(services, "visit.screen", visit_id)) == 1
    async with services.ctx.sessions() as s:
        count = await s.scalar(select(func.count()).select_from(models.AuditEvent))
    assert count == 1
    assert (await services.audit.verify_chain()).ok


async def test_a_lapsed_visit_is_not_screened(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id, service_date=TODAY - timedelta(days=1), is_open=False)
    with pytest.raises(Conflict) as info:
        await screen(services, visit_id)
    assert info.value.reason == "visit_closed"


# --------------------------------------------------------------------------------------------
# Lists and lookup


async def test_queue_lists_todays_waiting_and_editable_tunda(services: Services) -> None:
    a, b, c = [await pick_target(services, category="nakes", max_age=59, skip=i) for i in range(3)]
    first = await open_visit(services, a.id, opened_at=NOW - timedelta(minutes=5))
    second = await open_visit(services, b.id)
    other = await open_visit(services, c.id, faskes="7371P001", opened_by=910020)
    budi = await actor(services, 910002)
    queue = await services.screening.queue(budi)
    assert [e.visit_id for e in queue.waiting] == [first, second] and other not in [e.visit_id for e in queue.waiting]
    assert queue.waiting[0].opened_at.utcoffset() == timedelta(hours=7)

    await screen(services, first, vitals=Vitals(Decimal("38.2"), 120, 80))
    queue = await services.screening.queue(budi)
    assert [e.visit_id for e in queue.waiting] == [second]
    assert [e.visit_id for e in queue.editable] == [first]

    with pytest.raises(PermissionDenied):
        await services.screening.queue(await actor(services, 910004))


async def test_locate_by_ticket_or_nik(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    budi = await actor(services, 910002)
    with pytest.raises(Refused) as info:
        await services.screening.locate(budi, target.ticket)
    assert info.value.reason == "no_visit_here"
    visit_id = await open_visit(services, target.id)
    assert (await services.screening.locate(budi, target.nik)).visit_id == visit_id
    assert (await services.screening.locate(budi, target.ticket.lower())).status is VisitStatus.MENUNGGU_SKRINING

    other = await pick_target(services, category="nakes", max_age=59, skip=1)
    await open_visit(services, other.id, faskes="7371P001", opened_by=910020)
    with pytest.raises(PermissionDenied) as denied:
        await services.screening.locate(budi, other.nik)
    assert denied.value.reason == "other_faskes"


# --------------------------------------------------------------------------------------------
# Editing a Tunda


async def test_a_tunda_is_edited_the_same_day_and_may_reopen(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    await screen(services, visit_id, vitals=Vitals(Decimal("37.9"), 120, 80))
    budi = await actor(services, 910002)

    form = await services.screening.open_edit(budi, visit_id)
    assert form.editing and form.previous is not None
    assert form.previous.temperature_c == Decimal("37.9") and form.previous.outcome is Outcome.TUNDA
    assert form.editable_until is not None and (form.editable_until.hour, form.editable_until.minute) == (23, 59)

    with pytest.raises(Conflict):  # a stale version
        await services.screening.save_edit(budi, visit_id, NORMAL, form.subject.answers(()), seen_version=1)

    saved = await services.screening.save_edit(
        budi, visit_id, Vitals(Decimal("37.0"), 120, 80), form.subject.answers(()), seen_version=form.version
    )
    assert saved.edited and saved.status is VisitStatus.MENUNGGU_VAKSINASI
    v = await visit_row(services, visit_id)
    assert (v.status, v.is_open, v.temperature_c, v.rescreen_date) == (
        "menunggu_vaksinasi",
        True,
        Decimal("37.0"),
        None,
    )
    (event,) = await audit_events(services, "visit.screen_edit", visit_id)
    assert event.before is not None and event.before["outcome"] == "tunda" and event.before["temperature_c"] == "37.9"
    assert event.after is not None and event.after["outcome"] == "lanjut"

    # No longer a Tunda: nothing to edit; a second edit with the same version loses.
    with pytest.raises(Refused) as refused:
        await services.screening.open_edit(budi, visit_id)
    assert refused.value.reason == "not_tunda"
    with pytest.raises(Refused):
        await services.screening.save_edit(budi, visit_id, NORMAL, form.subject.answers(()), seen_version=form.version)


async def test_a_tunda_edit_closes_at_midnight_local(services: Services, clock: Any) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    await screen(services, visit_id, vitals=Vitals(Decimal("38.0"), 120, 80))
    budi = await actor(services, 910002)
    clock.advance(hours=13, minutes=59)  # 23:59 WIB
    form = await services.screening.open_edit(budi, visit_id)
    clock.advance(minutes=1)  # 00:00 WIB the next day
    with pytest.raises(Refused) as info:
        await services.screening.save_edit(budi, visit_id, NORMAL, form.subject.answers(()), seen_version=form.version)
    assert info.value.reason == "tunda_edit_closed"
    with pytest.raises(Refused):
        await services.screening.open_edit(budi, visit_id)


async def test_a_tunda_of_another_faskes_is_not_edited(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    await screen(services, visit_id, vitals=Vitals(Decimal("38.0"), 120, 80))
    await grant(services, 910020, "meja2")
    with pytest.raises(PermissionDenied):
        await services.screening.open_edit(await actor(services, 910020), visit_id)


async def test_reopening_a_tunda_cannot_make_two_open_visits(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    await screen(services, visit_id, vitals=Vitals(Decimal("38.0"), 120, 80))
    budi = await actor(services, 910002)
    form = await services.screening.open_edit(budi, visit_id)
    await open_visit(services, target.id)  # registered again meanwhile ("until recovered" has a date, but say so)
    with pytest.raises(Refused) as info:
        await services.screening.save_edit(budi, visit_id, NORMAL, form.subject.answers(()), seen_version=form.version)
    assert info.value.reason == "tunda_superseded"
    assert (await visit_row(services, visit_id)).status == "tunda"
