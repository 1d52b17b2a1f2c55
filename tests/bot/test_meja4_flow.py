"""Meja 4 in chat: the ordinary vaccination in four taps and messages, the NIK code, batches, KIPI."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import select

from bot.factory import build_notifier
from core.db import models
from core.ports import FixedClock
from core.services.registry import Services
from tests.bot.harness import Harness, Person
from tests.bot.test_meja2_flow import Desk, fsm_data
from tests.core.services.test_screening_service import (
    actor,
    audit_events,
    grant,
    open_visit,
    pick_target,
    screen,
    visit_row,
)
from tests.core.services.test_vaccination_service import second_dose_visit

SARI = Person(910004, "Sari")  # meja 4 at 3273P001
BUDI = Person(910002, "Budi")  # meja 2
DINKES = 910010  # Dinkes Kota Bandung
DINKES_OTHER = 910011  # Dinkes Kota Makassar


async def lanjut_visit(services: Services, skip: int = 0) -> tuple[int, models.Target]:
    target = await pick_target(services, category="nakes", max_age=59, skip=skip)
    visit_id = await open_visit(services, target.id)
    await screen(services, visit_id)
    return visit_id, target


async def record_earlier(services: Services, *, batch: str = "AB1234", expiry: date | None = date(2027, 6, 30)) -> None:
    """Sari's first dose of the day, so that her batch is offered as the default."""
    visit_id, target = await lanjut_visit(services)
    await services.vaccination.record(
        await actor(services, 910004),
        visit_id,
        product_code="coronavac",
        batch=batch,
        expiry=expiry,
        nik_last4=target.nik[-4:],
    )


def all_text(harness: Harness) -> str:
    return "\n".join(Harness.texts(harness.session.calls))


# --------------------------------------------------------------------------------------------
# Tap counts


async def test_an_ordinary_vaccination_takes_four_taps_and_messages(
    harness: Harness, services: Services, clock: FixedClock
) -> None:
    await record_earlier(services)
    visit_id, target = await lanjut_visit(services, skip=0)
    desk = Desk(harness, SARI)

    text = await desk.press(f"v:vaccinate:{visit_id}")
    assert target.name in text and target.nik[:6] in text and "batch terakhir" in text
    assert desk.labels()[0].startswith("↺ CoronaVac") and "AB1234" in desk.labels()[0]
    text = await desk.tap("↺ CoronaVac")
    assert "AB1234" in text and "30-06-2027" in text and "4 angka terakhir NIK" in text
    json.dumps(await fsm_data(harness, SARI))
    text = await desk.send(target.nik[-4:])
    assert "Tersimpan" in text and "Observasi s.d. <b>10:30 WIB</b>" in text and "24-12-2026" in text
    v = await visit_row(services, visit_id)
    assert (v.status, v.is_open, v.product_code, v.batch, v.expiry) == (
        "observasi",
        False,
        "coronavac",
        "AB1234",
        date(2027, 6, 30),
    )
    clock.advance(minutes=30)
    text = await desk.tap("✅ Tidak ada KIPI")
    assert "observasi selesai" in text
    assert desk.actions == 4
    v = await visit_row(services, visit_id)
    assert (v.status, v.kipi) == ("selesai", "none")
    assert target.nik not in all_text(harness)


async def test_the_first_vaccination_of_the_day_takes_five(
    harness: Harness, services: Services, clock: FixedClock
) -> None:
    visit_id, target = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    text = await desk.press(f"v:vaccinate:{visit_id}")
    assert "Pilih <b>produk vaksin</b>" in text and not desk.labels()[0].startswith("↺")
    text = await desk.tap("CoronaVac")
    assert "nomor batch" in text
    text = await desk.send("ab1234 06/2027")  # batch and expiry in one message
    assert "AB1234" in text and "30-06-2027" in text
    await desk.send(target.nik[-4:])
    clock.advance(minutes=31)
    await desk.tap("✅ Tidak ada KIPI")
    assert desk.actions == 5
    assert (await visit_row(services, visit_id)).status == "selesai"


async def test_the_whole_visit_fits_in_twelve_taps_and_messages(
    harness: Harness, services: Services, clock: FixedClock
) -> None:
    """Meja 1 takes 2 (send the ticket, tap Registrasi); meja 2 and meja 4 the rest."""
    await record_earlier(services)
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)  # meja 1: registration (2 taps and messages)
    meja1 = 2
    budi, sari = Desk(harness, BUDI), Desk(harness, SARI)
    await budi.press(f"v:screen:{visit_id}")
    await budi.send("36,4")
    await budi.send("121/79")
    await budi.tap("✅ Semua tidak")
    await budi.tap("💾 Simpan")
    await sari.press(f"v:vaccinate:{visit_id}")
    await sari.tap("↺ CoronaVac")
    await sari.send(target.nik[-4:])
    clock.advance(minutes=30)
    await sari.tap("✅ Tidak ada KIPI")
    assert (budi.actions, sari.actions) == (5, 4)
    assert meja1 + budi.actions + sari.actions == 11 <= 12
    assert (await visit_row(services, visit_id)).status == "selesai"


# --------------------------------------------------------------------------------------------
# The NIK code


async def test_a_wrong_code_saves_nothing_and_three_end_the_flow(harness: Harness, services: Services) -> None:
    visit_id, target = await lanjut_visit(services)
    wrong = "1111" if target.nik[-4:] != "1111" else "2222"
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    await desk.send("AB1234")
    await desk.tap("Lewati")
    text = await desk.send("12")
    assert "4 angka terakhir NIK (angka saja)" in text  # not a code: not counted
    text = await desk.send(wrong)
    assert "tidak cocok" in text and "Sisa 2 kali" in text
    text = await desk.send(wrong)
    assert "Sisa 1 kali" in text
    text = await desk.send(wrong)
    assert "3 kali" in text and "tidak ada yang disimpan" in text
    assert await fsm_data(harness, SARI) == {}
    v = await visit_row(services, visit_id)
    assert (v.status, v.vaccinated_at) == ("menunggu_vaksinasi", None)
    assert await audit_events(services, "visit.vaccinate", visit_id) == []
    # The right code after the flow ended does not record anything either.
    await desk.send(target.nik[-4:])
    assert (await visit_row(services, visit_id)).status == "menunggu_vaksinasi"


async def test_one_wrong_code_then_the_right_one(harness: Harness, services: Services) -> None:
    visit_id, target = await lanjut_visit(services)
    wrong = "1111" if target.nik[-4:] != "1111" else "2222"
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    await desk.send("AB1234 12/2027")
    await desk.send(wrong)
    text = await desk.send(target.nik[-4:])
    assert "Tersimpan" in text
    assert len(await audit_events(services, "visit.vaccinate", visit_id)) == 1


async def test_the_code_sent_twice_records_once(harness: Harness, services: Services) -> None:
    visit_id, target = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    await desk.send("AB1234 12/2027")
    await desk.send(target.nik[-4:])
    await desk.send(target.nik[-4:])
    assert len(await audit_events(services, "visit.vaccinate", visit_id)) == 1


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("-", "Nomor batch tidak valid"),
        ("AB", "Nomor batch tidak valid"),
        ("AB1234 13/2027", "Kedaluwarsa tidak dikenali: 13/2027"),
        ("AB1234 10/2026", "sudah kedaluwarsa"),
        ("AB1234 06/2027 x", "Nomor batch tidak valid"),
    ],
)
async def test_a_bad_batch_or_expiry_says_what_is_expected(
    harness: Harness, services: Services, message: str, expected: str
) -> None:
    visit_id, _ = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    text = await desk.send(message)
    assert expected in text
    assert (await fsm_data(harness, SARI)).get("batch") is None
    text = await desk.send("AB1234")  # still in the batch step
    assert "kedaluwarsa" in text


async def test_an_expiry_in_the_past_is_refused_in_its_own_step(harness: Harness, services: Services) -> None:
    visit_id, target = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    await desk.send("AB1234")
    assert "sudah kedaluwarsa" in await desk.send("25-11-2026")
    assert "4 angka terakhir" in await desk.send("26-11-2026")  # today is not in the past
    await desk.send(target.nik[-4:])
    assert (await visit_row(services, visit_id)).expiry == date(2026, 11, 26)


async def test_change_goes_back_to_the_product(harness: Harness, services: Services) -> None:
    visit_id, target = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    await desk.send("AB1234 12/2027")
    text = await desk.tap("✏️ Ubah")
    assert "produk vaksin" in text
    await desk.tap("AstraZeneca")
    await desk.send("AZ999 12/2027")
    await desk.send(target.nik[-4:])
    v = await visit_row(services, visit_id)
    assert (v.product_code, v.batch) == ("astrazeneca", "AZ999")


# --------------------------------------------------------------------------------------------
# Second dose, scope, lists


async def test_a_second_dose_skips_the_product_choice(harness: Harness, services: Services) -> None:
    visit_id, target = await second_dose_visit(services, "sinopharm")
    desk = Desk(harness, SARI)
    text = await desk.press(f"v:vaccinate:{visit_id}")
    assert "Produk: <b>Sinopharm" in text and "sama dengan dosis sebelumnya" in text and "nomor batch" in text
    await desk.send("SP0001 12/2027")
    text = await desk.send(target.nik[-4:])
    assert "Vaksinasi lengkap" in text
    v = await visit_row(services, visit_id)
    assert (v.product_code, v.dose_number, v.next_due_date) == ("sinopharm", 2, None)


async def test_another_faskes_is_refused(harness: Harness, services: Services) -> None:
    visit_id, _ = await lanjut_visit(services)
    await grant(services, 910020, "meja4")
    text = Harness.text(await harness.press(Person(910020), f"v:vaccinate:{visit_id}"))
    assert "milik faskes lain" in text
    text = Harness.text(await harness.press(Person(910020), f"m4:kipi:{visit_id}:none"))
    assert "milik faskes lain" in text or "tidak berlaku" in text


async def test_vaksinasi_lists_waiting_and_observing(harness: Harness, services: Services, clock: FixedClock) -> None:
    first, a = await lanjut_visit(services)
    second, b = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    text = await desk.send("/vaksinasi")
    assert "Menunggu vaksinasi</b> (2)" in text
    assert desk.button(f"💉 {a.name}") == f"v:vaccinate:{first}"
    await desk.tap(f"💉 {a.name}")
    await desk.tap("CoronaVac")
    await desk.send("AB1234 12/2027")
    text = await desk.send(a.nik[-4:])
    assert desk.button(f"💉 {b.name}") == f"v:vaccinate:{second}"  # the next one is one tap away
    clock.advance(minutes=12)
    text = await desk.send("/vaksinasi")
    assert "Observasi" in text and f"👁 {a.name} · 12 mnt" in desk.labels()
    text = await desk.tap(f"👁 {a.name}")
    assert "12 menit lalu" in text and "Sisa 18 menit" in text
    # A ticket sent in the flow opens the right step too.
    await desk.send("/vaksinasi")
    text = await desk.send(a.ticket)
    assert "Observasi" in text and "✅ Tidak ada KIPI" in desk.labels()


async def test_vaksinasi_needs_meja4(harness: Harness) -> None:
    assert "Peran Anda tidak mencakup" in Harness.text(await harness.send(BUDI, "/vaksinasi"))


async def test_batal_leaves_and_nothing_is_written(harness: Harness, services: Services) -> None:
    visit_id, _ = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    await desk.send("AB1234")
    skip = desk.button("Lewati")
    assert "Dibatalkan" in await desk.send("/batal")
    assert "tidak berlaku" in await desk.press(skip)
    assert (await visit_row(services, visit_id)).status == "menunggu_vaksinasi"


# --------------------------------------------------------------------------------------------
# Observation


async def vaccinated(harness: Harness, services: Services) -> tuple[int, models.Target, Desk]:
    visit_id, target = await lanjut_visit(services)
    desk = Desk(harness, SARI)
    await desk.press(f"v:vaccinate:{visit_id}")
    await desk.tap("CoronaVac")
    await desk.send("SV2107 12/2027")
    await desk.send(target.nik[-4:])
    return visit_id, target, desk


async def test_no_kipi_before_30_minutes_asks_first(harness: Harness, services: Services, clock: FixedClock) -> None:
    visit_id, _, desk = await vaccinated(harness, services)
    clock.advance(minutes=5)
    text = await desk.tap("✅ Tidak ada KIPI")
    assert "Baru 5 menit" in text
    assert (await visit_row(services, visit_id)).status == "observasi"
    text = await desk.tap("Nanti")
    assert "Sisa 25 menit" in text
    await desk.tap("✅ Tidak ada KIPI")
    text = await desk.tap("Ya, catat")
    assert "observasi selesai" in text
    assert (await visit_row(services, visit_id)).status == "selesai"


async def test_a_double_tap_records_the_observation_once(
    harness: Harness, services: Services, clock: FixedClock
) -> None:
    visit_id, _, desk = await vaccinated(harness, services)
    clock.advance(minutes=30)
    none = desk.button("✅ Tidak ada KIPI")
    await desk.press(none)
    text = await desk.press(none)
    assert "sudah tercatat" in text
    assert len(await audit_events(services, "visit.observe", visit_id)) == 1


async def test_a_mild_kipi_with_or_without_a_note(harness: Harness, services: Services) -> None:
    visit_id, _, desk = await vaccinated(harness, services)
    text = await desk.tap("KIPI ringan")
    assert "keluhan KIPI ringan" in text
    text = await desk.tap("Lewati")
    assert "KIPI ringan tercatat" in text
    v = await visit_row(services, visit_id)
    assert (v.kipi, v.kipi_description) == ("mild", None)


async def test_a_serious_kipi_needs_a_note_and_tells_the_districts_dinkes(harness: Harness, services: Services) -> None:
    services.set_notifier(build_notifier(harness.bot, services, actors=harness.actors))
    visit_id, target, desk = await vaccinated(harness, services)
    text = await desk.tap("🚨 KIPI berat")
    assert "wajib" in text and desk.labels() == []
    start = len(harness.session.calls)
    text = await desk.send("Sesak napas & ruam, dirujuk ke <RSUD>")
    assert "KIPI berat tercatat" in text and "(1 admin)" in text
    sent = [c for c in harness.session.calls[start:] if isinstance(c, SendMessage)]
    to_dinkes = [c for c in sent if c.chat_id == DINKES]
    assert len(to_dinkes) == 1 and not [c for c in sent if c.chat_id == DINKES_OTHER]
    note: Any = to_dinkes[0].text
    assert target.name in note and "SV2107" in note and "Puskesmas Garuda" in note and "CoronaVac" in note
    assert target.nik[:6] in note and target.nik not in note
    assert "&lt;RSUD&gt;" in note and "Sesak napas &amp; ruam" in note
    v = await visit_row(services, visit_id)
    assert (v.status, v.kipi, v.kipi_description) == ("selesai", "serious", "Sesak napas & ruam, dirujuk ke <RSUD>")


async def test_the_observe_button_of_the_list_works_without_a_flow(
    harness: Harness, services: Services, clock: FixedClock
) -> None:
    visit_id, _, _ = await vaccinated(harness, services)
    await harness.send(SARI, "/batal")
    clock.advance(minutes=40)
    desk = Desk(harness, SARI)
    text = await desk.press(f"v:observe:{visit_id}")
    assert "30 menit terlewati" in text
    await desk.tap("✅ Tidak ada KIPI")
    assert (await visit_row(services, visit_id)).kipi == "none"


async def test_the_whole_visit_with_the_real_meja1(harness: Harness, services: Services, clock: FixedClock) -> None:
    """Meja 1 (lookup + Registrasi), meja 2 and meja 4 in chat, counted from the first message."""
    await record_earlier(services)
    target = await pick_target(services, category="nakes", max_age=59)
    rina, budi, sari = Desk(harness, Person(910001, "Rina")), Desk(harness, BUDI), Desk(harness, SARI)
    await rina.send(target.ticket)
    await rina.press(next(d for _, d in harness.buttons(rina.last) if d.startswith("t:register:")))
    async with services.ctx.sessions() as s:
        visit_id = (await s.execute(select(models.Visit.id).where(models.Visit.target_id == target.id))).scalar_one()
    await budi.press(f"v:screen:{visit_id}")
    await budi.send("36,4")
    await budi.send("121/79")
    await budi.tap("✅ Semua tidak")
    await budi.tap("💾 Simpan")
    await sari.press(f"v:vaccinate:{visit_id}")
    await sari.tap("↺ CoronaVac")
    await sari.send(target.nik[-4:])
    clock.advance(minutes=30)
    await sari.tap("✅ Tidak ada KIPI")
    assert (rina.actions, budi.actions, sari.actions) == (2, 5, 4)
    assert rina.actions + budi.actions + sari.actions == 11 <= 12
    v = await visit_row(services, visit_id)
    assert (v.status, v.kipi, v.is_open) == ("selesai", "none", False)
