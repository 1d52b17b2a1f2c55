"""Vaccination and observation at meja 4 through the service: product rules, the NIK code, exactly once, KIPI.

Runs on SQLite and PostgreSQL (the ``services`` fixture).
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.db import models
from core.domain.errors import Conflict, InvalidInput, PermissionDenied, Refused
from core.domain.timeutil import age_on
from core.domain.vaccines import DEFAULT_INTERVALS, earliest_next_dose
from core.domain.visits import KipiOutcome, VisitStatus
from core.ports import FixedClock
from core.services.registry import Services
from core.services.vaccination import KIPI_SERIOUS_NOTIFICATION, VaccinationSaved
from tests.conftest import NOW, TODAY
from tests.core.services.test_screening_service import (
    actor,
    audit_events,
    grant,
    open_visit,
    pick_target,
    screen,
    visit_row,
)


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, dict[str, object]]] = []

    async def notify(self, telegram_id: int, message: str, **params: object) -> None:
        self.sent.append((telegram_id, message, params))

    async def refresh_menu(self, telegram_id: int) -> None:
        return None


async def screened_visit(services: Services, *, skip: int = 0, category: str = "nakes") -> tuple[int, models.Target]:
    """A visit registered and screened Lanjut today at the demo faskes."""
    target = await pick_target(services, category=category, max_age=59 if category == "nakes" else 200, skip=skip)
    visit_id = await open_visit(services, target.id)
    await screen(services, visit_id)
    return visit_id, target


async def second_dose_visit(
    services: Services, product: str = "coronavac", *, skip: int = 0
) -> tuple[int, models.Target]:
    """A visit for dose 2, screened Lanjut, after a dose 1 of ``product`` 40 days ago."""
    target = await pick_target(services, category="nakes", max_age=59, skip=skip)
    earlier = NOW - timedelta(days=40)
    await open_visit(
        services,
        target.id,
        status=VisitStatus.SELESAI,
        service_date=TODAY - timedelta(days=40),
        opened_at=earlier,
        product_code=product,
        batch="OLD123",
        vaccinated_at=earlier,
        kipi="none",
    )
    visit_id = await open_visit(services, target.id, dose=2)
    await screen(services, visit_id)
    return visit_id, target


async def record(
    services: Services, visit_id: int, target: models.Target, *, by: int = 910004, **kw: Any
) -> VaccinationSaved:
    args: dict[str, Any] = {
        "product_code": "coronavac",
        "batch": "ab1234",
        "expiry": None,
        "nik_last4": target.nik[-4:],
    }
    args.update(kw)
    return await services.vaccination.record(await actor(services, by), visit_id, **args)


# --------------------------------------------------------------------------------------------
# The form


async def test_the_form_offers_products_and_the_recorders_last_batch(services: Services) -> None:
    sari = await actor(services, 910004)
    first, target = await screened_visit(services)
    form = await services.vaccination.open(sari, first)
    assert form.dose_number == 1 and form.required_product is None and form.last_batch is None
    assert {p.code for p in form.products} >= {"coronavac", "astrazeneca", "sinopharm"}
    assert target.nik[-4:] not in form.nik_masked

    await record(services, first, target, expiry=date(2027, 6, 30))
    second, _ = await screened_visit(services, skip=1)
    form = await services.vaccination.open(sari, second)
    assert form.last_batch is not None
    assert (form.last_batch.product_code, form.last_batch.batch, form.last_batch.expiry) == (
        "coronavac",
        "AB1234",
        date(2027, 6, 30),
    )
    # Another recorder's batch is not theirs to default to.
    form = await services.vaccination.open(await actor(services, 910006), second)
    assert form.last_batch is None


async def test_a_second_dose_offers_only_the_first_product(services: Services) -> None:
    sari = await actor(services, 910004)
    visit_id, target = await second_dose_visit(services, "astrazeneca")
    form = await services.vaccination.open(sari, visit_id)
    assert [p.code for p in form.products] == ["astrazeneca"] and form.required_product == "astrazeneca"
    assert form.previous_dose_date == TODAY - timedelta(days=40)

    with pytest.raises(Refused) as info:
        await record(services, visit_id, target, product_code="coronavac")
    assert info.value.reason == "product_mismatch"
    assert (await visit_row(services, visit_id)).status == "menunggu_vaksinasi"

    saved = await record(services, visit_id, target, product_code="astrazeneca")
    assert saved.dose_number == 2 and saved.next_due_date is None  # the series is complete


# --------------------------------------------------------------------------------------------
# Recording


async def test_recording_the_dose(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    saved = await record(services, visit_id, target, batch=" ab-12/34 ", expiry=date(2026, 11, 26))
    expected_due = earliest_next_dose(DEFAULT_INTERVALS, "coronavac", TODAY, age_on(target.birth_date, TODAY))
    assert saved.next_due_date == expected_due == TODAY + timedelta(days=28)
    assert saved.batch == "AB-12/34" and saved.zone == "WIB"
    assert (saved.vaccinated_at.hour, saved.observe_until.hour, saved.observe_until.minute) == (10, 10, 30)

    v = await visit_row(services, visit_id)
    assert (v.status, v.is_open, v.product_code, v.batch, v.expiry) == (
        "observasi",
        False,
        "coronavac",
        "AB-12/34",
        date(2026, 11, 26),
    )
    assert v.vaccinated_at == NOW and v.vaccinated_by is not None and v.next_due_date == expected_due
    (event,) = await audit_events(services, "visit.vaccinate", visit_id)
    assert event.before == {"status": "menunggu_vaksinasi", "is_open": True, "version": 2}
    assert event.after is not None and event.after["batch"] == "AB-12/34" and event.after["dose_number"] == 1


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ({"nik_last4": "0000"}, Refused, "nik_code_mismatch"),
        ({"nik_last4": "12a4"}, InvalidInput, "nik_code"),
        ({"nik_last4": "123"}, InvalidInput, "nik_code"),
        ({"batch": ""}, InvalidInput, "batch"),
        ({"batch": "  "}, InvalidInput, "batch"),
        ({"expiry": date(2026, 11, 25)}, InvalidInput, "expiry_past"),
        ({"product_code": "sputnik"}, InvalidInput, "product"),
    ],
)
async def test_bad_input_writes_nothing(
    services: Services, change: dict[str, Any], error: type[Exception], reason: str
) -> None:
    visit_id, target = await screened_visit(services)
    if change.get("nik_last4") == "0000" and target.nik.endswith("0000"):  # pragma: no cover - serial 0000 is invalid
        change["nik_last4"] = "1111"
    with pytest.raises(error) as info:
        await record(services, visit_id, target, **change)
    assert getattr(info.value, "reason", None) == reason
    v = await visit_row(services, visit_id)
    assert (v.status, v.vaccinated_at, v.batch) == ("menunggu_vaksinasi", None, None)
    assert await audit_events(services, "visit.vaccinate", visit_id) == []


async def test_only_after_lanjut(services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    with pytest.raises(Refused) as info:
        await record(services, visit_id, target)
    assert info.value.reason == "not_screened"

    from decimal import Decimal

    from core.domain.screening import Vitals

    await screen(services, visit_id, vitals=Vitals(Decimal("38.5"), 120, 80))  # Tunda
    with pytest.raises(Refused) as info:
        await record(services, visit_id, target)
    assert info.value.reason == "not_lanjut"


async def test_only_meja4_of_the_visits_faskes_records(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    for telegram_id in (910001, 910002, 910010, 910020):
        with pytest.raises(PermissionDenied) as info:
            await record(services, visit_id, target, by=telegram_id)
        assert info.value.reason == "role"
    await grant(services, 910020, "meja4")
    with pytest.raises(PermissionDenied) as info:
        await record(services, visit_id, target, by=910020)
    assert info.value.reason == "other_faskes"
    with pytest.raises(PermissionDenied):
        await services.vaccination.open(await actor(services, 910020), visit_id)
    assert (await visit_row(services, visit_id)).status == "menunggu_vaksinasi"
    assert (await record(services, visit_id, target, by=910006)).dose_number == 1


async def test_a_second_record_is_a_conflict(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    await record(services, visit_id, target)
    with pytest.raises(Conflict) as info:
        await record(services, visit_id, target)
    assert info.value.reason == "already_vaccinated"
    assert len(await audit_events(services, "visit.vaccinate", visit_id)) == 1


async def test_twenty_concurrent_records_save_one(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    desks = [await actor(services, tid) for tid in (910004, 910006)]

    async def one(i: int) -> object:
        try:
            return await services.vaccination.record(
                desks[i % 2],
                visit_id,
                product_code="coronavac",
                batch=f"LOT{i:03d}",
                expiry=None,
                nik_last4=target.nik[-4:],
            )
        except Conflict as exc:
            return exc

    results = await asyncio.gather(*(one(i) for i in range(20)))
    saved = [r for r in results if isinstance(r, VaccinationSaved)]
    assert len(saved) == 1 and sum(isinstance(r, Conflict) for r in results) == 19
    v = await visit_row(services, visit_id)
    assert v.batch == saved[0].batch
    assert len(await audit_events(services, "visit.vaccinate", visit_id)) == 1
    assert (await services.audit.verify_chain()).ok


async def test_the_unique_index_backs_one_vaccination_per_dose(services: Services) -> None:
    # Two visits for the same dose (data that should never exist): only one may be vaccinated.
    target = await pick_target(services, category="nakes", max_age=59)
    first = await open_visit(services, target.id, status=VisitStatus.MENUNGGU_VAKSINASI)
    second = await open_visit(services, target.id, status=VisitStatus.MENUNGGU_VAKSINASI, is_open=False)
    await record(services, first, target)  # closes the first visit
    async with services.ctx.sessions() as s:
        await s.execute(update(models.Visit).where(models.Visit.id == second).values(is_open=True))
        await s.commit()
    with pytest.raises(Conflict):
        await record(services, second, target)
    assert (await visit_row(services, second)).vaccinated_at is None


# --------------------------------------------------------------------------------------------
# Observation


async def test_observation_waits_30_minutes_unless_confirmed(services: Services, clock: FixedClock) -> None:
    visit_id, target = await screened_visit(services)
    await record(services, visit_id, target)
    sari = await actor(services, 910004)
    clock.advance(minutes=12)
    form = await services.vaccination.observation(sari, visit_id)
    assert form.elapsed_minutes == 12 and not form.ready and form.product_name.startswith("CoronaVac")
    with pytest.raises(Refused) as info:
        await services.vaccination.observe(sari, visit_id, KipiOutcome.NONE)
    assert info.value.reason == "observation_early" and info.value.params == {"minutes": 12, "remaining": 18}
    assert (await visit_row(services, visit_id)).status == "observasi"

    clock.advance(minutes=18)
    saved = await services.vaccination.observe(sari, visit_id, KipiOutcome.NONE)
    assert saved.outcome is KipiOutcome.NONE and saved.elapsed_minutes == 30 and saved.notified == 0
    v = await visit_row(services, visit_id)
    assert (v.status, v.kipi, v.kipi_description, v.observed_at) == (
        "selesai",
        "none",
        None,
        NOW + timedelta(minutes=30),
    )
    (event,) = await audit_events(services, "visit.observe", visit_id)
    assert event.before == {"status": "observasi", "version": 3}
    assert event.after is not None and event.after["kipi"] == "none"

    with pytest.raises(Conflict):  # a second tap
        await services.vaccination.observe(sari, visit_id, KipiOutcome.NONE)


async def test_an_early_record_when_confirmed(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    await record(services, visit_id, target)
    saved = await services.vaccination.observe(await actor(services, 910004), visit_id, KipiOutcome.NONE, early=True)
    assert saved.elapsed_minutes == 0


async def test_a_mild_kipi_at_any_time(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    await record(services, visit_id, target)
    notifier = RecordingNotifier()
    services.set_notifier(notifier)
    saved = await services.vaccination.observe(
        await actor(services, 910004), visit_id, KipiOutcome.MILD, "  nyeri   di lengan "
    )
    assert saved.description == "nyeri di lengan" and notifier.sent == []
    assert (await visit_row(services, visit_id)).kipi == "mild"


async def test_a_serious_kipi_needs_a_description_and_tells_the_districts_dinkes(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    await record(services, visit_id, target, batch="SV2107")
    sari = await actor(services, 910004)
    notifier = RecordingNotifier()
    services.set_notifier(notifier)

    with pytest.raises(InvalidInput) as info:
        await services.vaccination.observe(sari, visit_id, KipiOutcome.SERIOUS, "   ")
    assert info.value.reason == "kipi_description"
    assert (await visit_row(services, visit_id)).status == "observasi" and notifier.sent == []

    saved = await services.vaccination.observe(sari, visit_id, KipiOutcome.SERIOUS, "Sesak napas, dirujuk ke RSUD")
    assert saved.notified == 1
    ((telegram_id, key, params),) = notifier.sent  # Dinkes Kota Bandung only, not Makassar's
    assert telegram_id == 910010 and key == KIPI_SERIOUS_NOTIFICATION
    assert params["name"] == target.name and params["batch"] == "SV2107"
    assert str(params["product"]).startswith("CoronaVac")
    assert params["faskes"] == "Puskesmas Garuda" and params["description"] == "Sesak napas, dirujuk ke RSUD"
    assert str(params["nik"]).endswith("•" * 10) and target.nik[-4:] not in str(params["nik"])
    v = await visit_row(services, visit_id)
    assert (v.status, v.kipi, v.kipi_description) == ("selesai", "serious", "Sesak napas, dirujuk ke RSUD")


async def test_an_inactive_dinkes_admin_is_not_told(services: Services) -> None:
    visit_id, target = await screened_visit(services)
    await record(services, visit_id, target)
    async with services.ctx.sessions() as s:
        dinkes = (await s.execute(select(models.Account).where(models.Account.telegram_id == 910010))).scalar_one()
        dinkes.state = "revoked"
        await s.commit()
    notifier = RecordingNotifier()
    services.set_notifier(notifier)
    saved = await services.vaccination.observe(
        await actor(services, 910004), visit_id, KipiOutcome.SERIOUS, "Anafilaksis"
    )
    assert saved.notified == 0 and notifier.sent == []


async def test_the_queue_lists_waiting_and_observing(services: Services, clock: FixedClock) -> None:
    first, target = await screened_visit(services)
    second, _ = await screened_visit(services, skip=1)
    sari = await actor(services, 910004)
    queue = await services.vaccination.queue(sari)
    assert [e.visit_id for e in queue.waiting] == [first, second] and queue.observing == ()
    await record(services, first, target)
    queue = await services.vaccination.queue(sari)
    assert [e.visit_id for e in queue.waiting] == [second] and [e.visit_id for e in queue.observing] == [first]
    assert (await services.vaccination.locate(sari, target.ticket)).status is VisitStatus.OBSERVASI
    with pytest.raises(PermissionDenied):
        await services.vaccination.queue(await actor(services, 910002))
