"""Meja 1 in chat: lookup, the card's buttons, registration in two steps, the phone change, near misses."""

from __future__ import annotations

from typing import Any

from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, TelegramMethod
from sqlalchemy import select

from bot.callbacks import TargetAction, VisitAction
from core.db import models
from core.domain.identifiers import format_ticket
from core.services.registry import Services
from tests.bot.harness import Harness, Person
from tests.conftest import TODAY
from tests.core.services.test_registration import a_target, add_visit, audit_events, get_target, visits_of

RINA = Person(910001, "Rina")  # meja 1
BUDI = Person(910002, "Budi")  # meja 2
DEWI = Person(910005, "Dewi")  # verifier
ANDI = Person(910006, "Andi")  # all desks
FAJAR = Person(910020, "Fajar")  # meja 1, Makassar


def _data(calls: list[TelegramMethod[Any]], prefix: str) -> str:
    found = [data for _, data in Harness.buttons(calls) if data.startswith(prefix)]
    assert found, f"no button {prefix!r} in {Harness.buttons(calls)}"
    return found[0]


def _alerts(calls: list[TelegramMethod[Any]]) -> list[str]:
    return [c.text or "" for c in calls if isinstance(c, AnswerCallbackQuery) and c.show_alert]


async def test_send_the_ticket_then_tap_registrasi(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    card = await harness.send(RINA, format_ticket(target.ticket))  # 1: the ticket
    text = harness.text(card)
    assert target.name in text.replace("&#x27;", "'") and "Puskesmas Garuda" in text
    assert target.nik not in text and target.nik[:6] in text  # masked: not typed
    assert "Dosis 1" in text and "dapat diregistrasi" in text
    register = _data(card, "t:register:")
    assert register == TargetAction(action="register", target_id=target.id, version=target.version).pack()
    assert _data(card, "t:phone:")

    done = await harness.press(RINA, register)  # 2: one tap
    edited = [c for c in done if isinstance(c, EditMessageText)]
    assert edited and "terdaftar" in edited[0].text and "meja 2" in edited[0].text
    (visit,) = await visits_of(services, target.id)
    assert visit.status == "menunggu_skrining" and visit.service_date == TODAY
    buttons = [d for _, d in harness.buttons(done)]
    assert not any(d.startswith("t:register:") for d in buttons)  # the button is gone
    assert any(d.startswith("t:phone:") for d in buttons)

    # A second tap on the old button (a double tap) writes nothing and says where the visit is.
    again = await harness.press(RINA, register)
    assert any("sudah terdaftar" in a.lower() and "Puskesmas Garuda" in a for a in _alerts(again))
    assert len(await visits_of(services, target.id)) == 1
    assert len(await audit_events(services, "visit.register")) == 1


async def test_all_desk_staff_get_the_screening_button_after_registering(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    card = await harness.send(ANDI, target.nik)
    assert target.nik in harness.text(card)  # typed: whole
    done = await harness.press(ANDI, _data(card, "t:register:"))
    (visit,) = await visits_of(services, target.id)
    assert _data(done, "v:screen:") == VisitAction(action="screen", visit_id=visit.id).pack()


async def test_meja2_sees_the_card_without_meja1_buttons_then_the_screen_button(
    harness: Harness, services: Services
) -> None:
    target = await a_target(services)
    calls = await harness.send(BUDI, target.ticket)
    assert harness.buttons(calls) == []
    await services.registration.register(await services.accounts.resolve_actor(910001), target.id, target.version)
    calls = await harness.send(BUDI, target.ticket)
    assert [d.split(":")[1] for _, d in harness.buttons(calls)] == ["screen"]


async def test_verifier_gets_the_verify_button_only_before_any_desk_entry(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    calls = await harness.send(DEWI, target.ticket)
    assert (
        _data(calls, "t:verify:") == TargetAction(action="verify", target_id=target.id, version=target.version).pack()
    )
    await services.registration.register(await services.accounts.resolve_actor(910001), target.id, target.version)
    calls = await harness.send(DEWI, target.ticket)
    assert not any(d.startswith("t:verify:") for _, d in harness.buttons(calls))


async def test_a_stale_card_shows_the_fresh_one(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    card = await harness.send(RINA, target.ticket)
    async with services.ctx.sessions() as s:  # a verifier's correction lands in between
        t = await s.get(models.Target, target.id)
        assert t is not None
        t.name, t.version = "Nama Terkoreksi", t.version + 1
        await s.commit()
    calls = await harness.press(RINA, _data(card, "t:register:"))
    assert any("diubah" in a for a in _alerts(calls))
    edited = [c for c in calls if isinstance(c, EditMessageText)]
    assert edited and "Nama Terkoreksi" in edited[0].text
    assert _data(calls, "t:register:").endswith(f":{target.version + 1}")
    assert await visits_of(services, target.id) == []


async def test_registration_refused_by_rule_2_says_why(harness: Harness, services: Services) -> None:
    from datetime import timedelta

    from core.domain.visits import VisitStatus

    target = await a_target(services, max_age=59)
    await add_visit(
        services, target.id, status=VisitStatus.SELESAI, service_date=TODAY - timedelta(5), product="pfizer"
    )
    card = await harness.send(RINA, target.ticket)
    text = harness.text(card)
    assert "paling cepat 12-12-2026" in text and "Pfizer" in text
    assert not any(d.startswith("t:register:") for _, d in harness.buttons(card))
    # An old Registrasi button (from before the dose) is refused the same way.
    fresh = await get_target(services, target.id)
    stale = TargetAction(action="register", target_id=target.id, version=fresh.version).pack()
    calls = await harness.press(RINA, stale)
    assert any("12-12-2026" in a for a in _alerts(calls))
    assert len(await visits_of(services, target.id)) == 1


# --------------------------------------------------------------------------------------------
# The phone


async def test_change_phone_with_a_bad_number_first(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    card = await harness.send(RINA, target.ticket)
    ask = await harness.press(RINA, _data(card, "t:phone:"))
    assert "No HP baru" in harness.text(ask)
    bad = await harness.send(RINA, "0212345")
    assert "contoh" in harness.text(bad).lower() and "/batal" in harness.text(bad)
    assert (await get_target(services, target.id)).version == target.version
    sticker_like = await harness.send(RINA, "halo")
    assert "/batal" in harness.text(sticker_like)
    done = await harness.send(RINA, "0812 3456 7890")
    assert "0812-3456-7890" in harness.text(done)
    after = await get_target(services, target.id)
    assert after.phone == "+6281234567890" and after.version == target.version + 1
    # Sent twice: the second message is no phone change any more (the flow has ended): nothing written.
    again = await harness.send(RINA, "0812 3456 7890")
    assert "tiket" in harness.text(again).lower()
    assert (await get_target(services, target.id)).version == target.version + 1
    assert len(await audit_events(services, "target.phone")) == 1


async def test_batal_leaves_the_phone_change(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    card = await harness.send(RINA, target.ticket)
    await harness.press(RINA, _data(card, "t:phone:"))
    assert "Dibatalkan" in harness.text(await harness.send(RINA, "/batal"))
    assert (await get_target(services, target.id)).version == target.version


async def test_phone_change_refused_after_screening(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    reg = await services.registration.register(await services.accounts.resolve_actor(910001), target.id, target.version)
    card = await harness.send(RINA, target.ticket)
    phone = _data(card, "t:phone:")
    async with services.ctx.sessions() as s:
        visit = await s.get(models.Visit, reg.visit_id)
        assert visit is not None
        visit.status = "menunggu_vaksinasi"
        await s.commit()
    calls = await harness.press(RINA, phone)
    assert any("sebelum skrining" in a for a in _alerts(calls))


# --------------------------------------------------------------------------------------------
# Lookups that miss


async def test_not_found_is_plain_and_verifiers_get_the_route(harness: Harness) -> None:
    nik = "3273011708909999"
    assert "tidak ditemukan" in harness.text(await harness.send(RINA, nik))
    assert "/verifikasi" not in harness.text(await harness.send(RINA, nik))
    assert "/verifikasi" in harness.text(await harness.send(DEWI, nik))


async def test_near_miss_nik_and_birth_date_disagree(harness: Harness) -> None:
    text = harness.text(await harness.send(RINA, "3273011708909999 18-08-1990"))
    assert "tidak ditemukan" in text and "17-08-1990" in text and "18-08-1990" in text


async def test_typed_birth_date_is_checked_on_the_card(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    text = harness.text(await harness.send(RINA, f"{target.nik} 01-01-1900"))
    assert "berbeda" in text


async def test_structurally_invalid_keys_say_what_is_expected(harness: Harness) -> None:
    assert "16 angka" in harness.text(await harness.send(RINA, "327301170890999"))
    assert "provinsi" in harness.text(await harness.send(RINA, "9973011708909999"))
    assert "10 karakter" in harness.text(await harness.send(RINA, "abc"))


async def test_cari_waits_for_the_key_and_takes_arguments(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    assert "tiket atau NIK" in harness.text(await harness.send(RINA, "/cari"))
    assert "16 angka" in harness.text(await harness.send(RINA, "3273"))  # still waiting for a key
    assert target.name in harness.text(await harness.send(RINA, target.ticket)).replace("&#x27;", "'")
    calls = await harness.send(RINA, f"/cari {target.ticket}")
    assert any(isinstance(c, SendMessage) and "Tiket" in c.text for c in calls)


async def test_card_buttons_from_the_list_open_the_card(harness: Harness, services: Services) -> None:
    target = await a_target(services)
    reg = await services.registration.register(await services.accounts.resolve_actor(910001), target.id, target.version)
    calls = await harness.press(RINA, VisitAction(action="card", visit_id=reg.visit_id).pack())
    assert "menunggu skrining" in harness.text(calls)
    calls = await harness.press(FAJAR, TargetAction(action="card", target_id=target.id).pack())
    assert "Puskesmas Garuda" in harness.text(calls) and harness.buttons(calls) == []


async def test_visit_ids_in_buttons_are_checked(harness: Harness, services: Services) -> None:
    calls = await harness.press(RINA, VisitAction(action="card", visit_id=10**9).pack())
    assert _alerts(calls)
    async with services.ctx.sessions() as s:
        assert (await s.execute(select(models.Visit))).first() is None
