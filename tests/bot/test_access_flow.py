"""Access through the real dispatcher: /daftar, the Dinkes admin's buttons and commands, menus, /bahasa."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, SetMyCommands, TelegramMethod
from aiogram.types import BotCommandScopeChat, Contact, ReplyKeyboardMarkup, ReplyKeyboardRemove
from sqlalchemy import select

from bot.factory import build_notifier
from bot.i18n import catalog
from core.db import models
from core.domain.accounts import AccountState
from core.services.registry import Services
from tests.bot.harness import Harness, Person

ID = catalog("id")
DINKES = Person(910010, "Dinkes")
DINKES_OTHER = Person(910011, "Dinkes Makassar")
CENTRAL = Person(910099, "Pusat")
RINA = Person(910001, "Rina")
NEWCOMER = Person(930001, "Nur")


@pytest.fixture
def bot(harness: Harness, services: Services) -> Harness:
    """The harness, with core's notifications delivered through the same bot (as the composition root does)."""
    services.set_notifier(build_notifier(harness.bot, services, actors=harness.actors))
    return harness


def sent_to(calls: list[TelegramMethod[Any]], chat_id: int) -> list[SendMessage]:
    return [c for c in calls if isinstance(c, SendMessage) and int(c.chat_id) == chat_id]


def edits(calls: list[TelegramMethod[Any]]) -> str:
    return "\n".join(c.text for c in calls if isinstance(c, EditMessageText))


def menus_for(calls: list[TelegramMethod[Any]], chat_id: int) -> list[list[str]]:
    out = []
    for c in calls:
        if isinstance(c, SetMyCommands):
            assert isinstance(c.scope, BotCommandScopeChat)
            if int(c.scope.chat_id) == chat_id:
                out.append([b.command for b in c.commands])
    return out


def buttons_of(call: SendMessage) -> list[tuple[str, str]]:
    return Harness.buttons([call])


async def demo_nik(services: Services) -> tuple[str, str]:
    async with services.ctx.uow() as uow:
        row = (
            await uow.session.execute(select(models.Target.nik, models.Target.name).order_by(models.Target.id))
        ).first()
    assert row is not None
    return row[0], row[1]


async def account_state(services: Services, telegram_id: int) -> str | None:
    async with services.ctx.uow() as uow:
        a = await uow.accounts.by_telegram_id(telegram_id)
        return a.state if a else None


async def signup(
    bot: Harness, person: Person, *, roles: tuple[str, ...] = ("meja1", "meja4")
) -> list[TelegramMethod[Any]]:
    """Walk /daftar to the end; returns the calls of the final submit."""
    assert ID["signup.ask_name"] in bot.text(await bot.send(person, "/daftar"))
    calls = await bot.send(person, "Nur Aini")
    assert ID["signup.ask_phone"] in bot.text(calls)
    keyboard = calls[-1].reply_markup  # type: ignore[attr-defined]
    assert isinstance(keyboard, ReplyKeyboardMarkup) and keyboard.keyboard[0][0].request_contact
    calls = await bot.share_contact(person, "6281234567890")
    assert "0812-3456-7890" in bot.text(calls)
    assert isinstance(calls[-1].reply_markup, ReplyKeyboardRemove)  # type: ignore[attr-defined]
    calls = await bot.send(person, "3273 p001")
    text = bot.text(calls)
    assert "Puskesmas Garuda" in text and "Kota Bandung" in text
    assert [d for _, d in bot.buttons(calls)] == ["su:fy:", "su:fc:"]
    calls = await bot.press(person, "su:fy:")
    assert "su:rd:" in [d for _, d in bot.buttons(calls)]
    for role in roles:
        calls = await bot.press(person, f"su:rt:{role}")
        assert f"☑ {ID[f'access.role.{role}']}" in [label for label, _ in bot.buttons(calls)]
    calls = await bot.press(person, "su:rd:")
    assert "Nur Aini" in bot.text(calls) and "Meja 1" in bot.text(calls)
    return await bot.press(person, "su:ok:")


# --- the whole path ------------------------------------------------------------------------------


async def test_request_approve_lookup_revoke_refuse(bot: Harness, services: Services) -> None:
    calls = await signup(bot, NEWCOMER)
    assert ID["signup.sent"].format(kabkota="Kota Bandung") in bot.text(calls)
    # The Dinkes admin of Kota Bandung got the request with Approve / Reject; the phone is masked.
    (note,) = sent_to(calls, DINKES.telegram_id)
    assert "Nur Aini" in note.text and "Puskesmas Garuda" in note.text and "Meja 1, Meja 4" in note.text
    assert "3456" not in note.text and "+62 812-••••-••90" in note.text
    approve, reject = (d for _, d in buttons_of(note))
    assert approve.startswith("ar:ok:") and reject.startswith("ar:no:")
    assert not sent_to(calls, DINKES_OTHER.telegram_id)

    # Approve from the notification.
    calls = await bot.press(DINKES, approve)
    assert "Disetujui oleh Dinkes Kota Bandung" in bot.text(calls)
    (told,) = sent_to(calls, NEWCOMER.telegram_id)
    assert "disetujui" in told.text and "Meja 1, Meja 4" in told.text
    (menu,) = menus_for(calls, NEWCOMER.telegram_id)
    assert {"cari", "antrian", "vaksinasi"} <= set(menu) and "daftar" not in menu and "permintaan" not in menu
    assert await account_state(services, NEWCOMER.telegram_id) == "active"

    # The new member of staff looks up a target from the demo data.
    nik, name = await demo_nik(services)
    calls = await bot.send(NEWCOMER, nik)
    assert name in bot.text(calls)

    # Dinkes revokes from /akun with a one-tap reason.
    calls = await bot.send(DINKES, "/akun 3273P001")
    async with services.ctx.uow() as uow:
        me = await uow.accounts.by_telegram_id(NEWCOMER.telegram_id)
        assert me is not None
        aid = me.id
    revoke = next(d for _, d in bot.buttons(calls) if d.startswith(f"ac:rv:{aid}:"))
    calls = await bot.press(DINKES, revoke)
    assert "Nur Aini" in bot.text(calls)
    preset = next(d for _, d in bot.buttons(calls) if d == f"rs:ac:{aid}:moved")
    calls = await bot.press(DINKES, preset)
    assert "dicabut" in bot.text(calls)
    (told,) = sent_to(calls, NEWCOMER.telegram_id)
    assert told.text.startswith("🚫 Akses Anda dicabut oleh Dinkes Kota Bandung: Pindah tugas")
    (menu,) = menus_for(calls, NEWCOMER.telegram_id)
    assert "cari" not in menu and "daftar" in menu

    # The same lookup is refused, saying by whom and why.
    calls = await bot.send(NEWCOMER, nik)
    assert name not in bot.text(calls)
    assert "Akses Anda dicabut oleh Dinkes Kota Bandung: Pindah tugas" in bot.text(calls)
    await bot.send(NEWCOMER, "/cari")
    calls = await bot.send(NEWCOMER, nik)
    assert bot.text(calls) == ID["error.denied.state_revoked"]
    calls = await bot.send(NEWCOMER, "/start")
    assert "dicabut oleh Dinkes Kota Bandung: Pindah tugas" in bot.text(calls)


# --- /daftar step by step ---------------------------------------------------------------------------


async def test_each_step_says_what_it_expects(bot: Harness, services: Services) -> None:
    await bot.send(NEWCOMER, "/daftar")
    calls = await bot.share_contact(NEWCOMER, "6281234567890")  # a contact where a name is expected
    assert bot.text(calls) == ID["signup.expect_name"]
    calls = await bot.send(NEWCOMER, "7")
    assert bot.text(calls) == ID["error.invalid.requester_name"]
    await bot.send(NEWCOMER, "Nur Aini")
    # Someone else's contact card is not the sender's number.
    other = Contact(phone_number="6281299990000", first_name="Other", user_id=555)
    calls = await bot._run(bot.message_update(NEWCOMER, contact=other))
    assert bot.text(calls) == ID["signup.not_own_contact"]
    calls = await bot.send(NEWCOMER, "022-1234567")
    assert bot.text(calls) == ID["error.invalid.phone.not_mobile"]
    calls = await bot.send(NEWCOMER, "0812 3456 7890")
    assert ID["signup.ask_faskes"].split("\n")[0].format(phone="0812-3456-7890") in bot.text(calls)
    calls = await bot.send(NEWCOMER, "9999X999")
    assert bot.text(calls) == ID["error.not_found.faskes_code"].format(code="9999X999")
    calls = await bot.send(NEWCOMER, "??")
    assert bot.text(calls) == ID["error.invalid.faskes_code"]
    await bot.send(NEWCOMER, "3273P001")
    calls = await bot.send(NEWCOMER, "ya")
    assert bot.text(calls) == ID["signup.expect_confirm"]
    calls = await bot.press(NEWCOMER, "su:fc:")
    assert bot.text(calls) == ID["signup.expect_faskes"]
    await bot.send(NEWCOMER, "7371P001")
    calls = await bot.press(NEWCOMER, "su:fy:")
    assert "Puskesmas Kassi-Kassi" in bot.text(calls)
    calls = await bot.send(NEWCOMER, "meja 1")
    assert bot.text(calls) == ID["signup.expect_roles"]
    calls = await bot.press(NEWCOMER, "su:rd:")
    alert = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert alert and alert[0].text == ID["signup.pick_one"] and alert[0].show_alert
    await bot.press(NEWCOMER, "su:rt:verifikasi")
    await bot.press(NEWCOMER, "su:rt:meja2")
    await bot.press(NEWCOMER, "su:rt:meja2")  # toggled off again
    calls = await bot.press(NEWCOMER, "su:rd:")
    assert "Verifikasi" in bot.text(calls) and "Meja 2" not in bot.text(calls)
    calls = await bot.send(NEWCOMER, "kirim")
    assert bot.text(calls) == ID["signup.expect_submit"]
    calls = await bot.press(NEWCOMER, "su:ok:")
    assert ID["signup.sent"].format(kabkota="Kota Makassar") in bot.text(calls)
    assert sent_to(calls, DINKES_OTHER.telegram_id) and not sent_to(calls, DINKES.telegram_id)
    async with services.ctx.uow() as uow:
        me = await uow.accounts.by_telegram_id(NEWCOMER.telegram_id)
        assert me is not None and me.phone == "+6281234567890" and me.faskes_code == "7371P001"
        req = await uow.access_requests.pending_for_account(me.id)
        assert req is not None and req.roles == "verifikasi"
    # A stale button of the finished flow does nothing.
    calls = await bot.press(NEWCOMER, "su:ok:")
    assert bot.text(calls) == ID["error.stale_button"]


async def test_batal_stops_the_flow_and_nothing_is_saved(bot: Harness, services: Services) -> None:
    await bot.send(NEWCOMER, "/daftar")
    await bot.send(NEWCOMER, "Nur Aini")
    calls = await bot.send(NEWCOMER, "/batal")
    assert bot.text(calls) == ID["common.cancelled"]
    calls = await bot.send(NEWCOMER, "0812 3456 7890")
    assert ID["signup.ask_faskes"].split("\n")[0][:10] not in bot.text(calls)
    assert await account_state(services, NEWCOMER.telegram_id) is None


async def test_a_second_request_while_one_waits_is_refused_politely(bot: Harness, services: Services) -> None:
    await signup(bot, NEWCOMER)
    calls = await bot.send(NEWCOMER, "/daftar")
    assert bot.text(calls) == ID["error.refused.request_pending"].format(office="Kota Bandung")
    calls = await bot.send(NEWCOMER, "/start")
    assert bot.text(calls) == ID["start.pending"]
    calls = await bot.send(RINA, "/daftar")
    assert bot.text(calls) == ID["error.refused.account_active"]


# --- deciding in chat ----------------------------------------------------------------------------------


async def test_reject_from_the_list_with_a_typed_reason(bot: Harness, services: Services) -> None:
    await signup(bot, NEWCOMER)
    calls = await bot.send(DINKES, "/permintaan")
    assert "Nur Aini" in bot.text(calls) and "+62 812-••••-••90" in bot.text(calls)
    reject = next(d for _, d in bot.buttons(calls) if d.startswith("ar:no:"))
    list_message = calls[-1]
    assert isinstance(list_message, SendMessage)
    calls = await bot.press(DINKES, reject)
    assert bot.text(calls) == ID["admin.ask_reject_reason"].format(name="Nur Aini")
    assert len(bot.buttons(calls)) == 4
    calls = await bot.send(DINKES, "/tolak")  # a command in the middle is still a command
    assert bot.text(calls) == ID["admin.usage_tolak"]
    calls = await bot.press(DINKES, reject)
    calls = await bot.send(DINKES, "Bukan pegawai Puskesmas Garuda")
    assert "Bukan pegawai Puskesmas Garuda" in bot.text(calls)
    (told,) = sent_to(calls, NEWCOMER.telegram_id)
    assert "ditolak oleh Dinkes Kota Bandung: Bukan pegawai Puskesmas Garuda" in told.text
    assert await account_state(services, NEWCOMER.telegram_id) == "rejected"
    calls = await bot.send(NEWCOMER, "/start")
    assert bot.text(calls) == ID["start.rejected"].format(reason="Bukan pegawai Puskesmas Garuda")
    # Rejected people may ask again.
    calls = await bot.send(NEWCOMER, "/daftar")
    assert bot.text(calls) == ID["signup.ask_name"]


async def test_two_admins_and_a_double_tap_decide_once(bot: Harness, services: Services) -> None:
    calls = await signup(bot, NEWCOMER)
    (note,) = sent_to(calls, DINKES.telegram_id)
    approve = buttons_of(note)[0][1]
    first = await bot.press(DINKES, approve)
    assert "Disetujui" in bot.text(first)
    again = await bot.press(DINKES, approve)
    assert ID["error.conflict.request_approved"].format(by="Dinkes Kota Bandung") in bot.text(again)
    calls = await bot.send(CENTRAL, "/permintaan")
    assert "Nur Aini" not in bot.text(calls)
    rid = approve.split(":")[2]
    calls = await bot.send(CENTRAL, f"/tolak {rid} Terlambat")
    assert bot.text(calls) == ID["error.conflict.request_approved"].format(by="Dinkes Kota Bandung")
    async with services.ctx.uow() as uow:
        decisions = [e.action for e in await uow.audit_log.chain() if e.action.startswith("access.")]
    assert decisions == ["access.request", "access.approve"]
    assert sum(1 for c in first + again if isinstance(c, SetMyCommands)) == 1


async def test_forty_requests_one_tap_each(bot: Harness, services: Services) -> None:
    for i in range(7):
        await services.access.request_access(
            await services.accounts.resolve_actor(940000 + i),
            name=f"Petugas {i}",
            phone=f"08123456{i:04d}",
            faskes_code="3273P001",
            roles=["meja2"],
        )
    calls = await bot.send(DINKES, "/permintaan")
    approvals = [d for _, d in bot.buttons(calls) if d.startswith("ar:ok:")]
    assert len(approvals) == 5 and "arp:5" in [d for _, d in bot.buttons(calls)]
    assert "Halaman 1/2" in bot.text(calls)
    # One tap approves and re-draws the page: the next request moves up.
    calls = await bot.press(DINKES, approvals[0])
    page = edits(calls)
    assert "Petugas 0" not in page and "Petugas 5" in page
    for _ in range(6):
        calls = await bot.press(DINKES, next(d for _, d in bot.buttons(calls) if d.startswith("ar:ok:")))
    assert ID["admin.pending_none"].format(scope="Kota Bandung") in bot.text(calls)
    for i in range(7):
        assert await account_state(services, 940000 + i) == "active"


async def test_command_approval_and_scope(bot: Harness, services: Services) -> None:
    calls = await signup(bot, NEWCOMER)
    rid = buttons_of(sent_to(calls, DINKES.telegram_id)[0])[0][1].split(":")[2]
    calls = await bot.send(DINKES_OTHER, f"/setujui {rid}")
    assert bot.text(calls) == ID["error.denied.other_district"]
    calls = await bot.send(DINKES, "/setujui")
    assert bot.text(calls) == ID["admin.usage_setujui"]
    calls = await bot.send(RINA, "/setujui")
    assert bot.text(calls) == ID["error.denied.role"]
    calls = await bot.send(DINKES, f"/setujui #{rid}")
    assert "Nur Aini" in bot.text(calls)
    assert menus_for(calls, NEWCOMER.telegram_id)


# --- accounts ---------------------------------------------------------------------------------------------


async def test_desks_change_by_toggles_and_the_menu_follows(bot: Harness, services: Services) -> None:
    calls = await bot.send(DINKES, "/akun 3273p001")
    assert "Puskesmas Garuda" in bot.text(calls) and "Rina (meja 1)" in bot.text(calls)
    rina = await services.accounts.resolve_actor(RINA.telegram_id)
    change = next(d for _, d in bot.buttons(calls) if d.startswith(f"ac:rl:{rina.account_id}:"))
    calls = await bot.press(DINKES, change)
    toggles = [d for _, d in bot.buttons(calls)]
    assert toggles[0].startswith(f"rl:t:{rina.account_id}:1:1:0")  # meja 1 on (bit 0)
    calls = await bot.press(DINKES, toggles[1])  # meja 2 on
    save = next(d for _, d in bot.buttons(calls) if d.startswith("rl:ok:"))
    calls = await bot.press(DINKES, save)
    assert "Peran Rina (meja 1): Meja 1, Meja 2" in bot.text(calls)
    (menu,) = menus_for(calls, RINA.telegram_id)
    assert "skrining" in menu
    (told,) = sent_to(calls, RINA.telegram_id)
    assert "Meja 1, Meja 2" in told.text
    # The same (now stale) save does not apply twice.
    calls = await bot.press(DINKES, save)
    assert bot.text(calls) == ID["error.conflict"]
    # Unticking every desk is refused in place: revoking is a separate, explicit act.
    calls = await bot.press(DINKES, f"rl:t:{rina.account_id}:2:1:0:0")
    assert bot.text(calls) == ID["signup.pick_one"]


async def test_revoke_by_command_and_start_names_the_office(bot: Harness, services: Services) -> None:
    rina = await services.accounts.resolve_actor(RINA.telegram_id)
    calls = await bot.send(DINKES, f"/cabut {rina.account_id}")
    assert "Rina" in bot.text(calls)
    calls = await bot.send(DINKES, "x")
    assert bot.text(calls) == ID["error.invalid.decision_reason"]
    nik, _ = await demo_nik(services)
    calls = await bot.send(DINKES, nik)  # a NIK typed into the reason step never reaches Rina
    assert bot.text(calls) == ID["error.invalid.decision_reason"]
    assert await account_state(services, RINA.telegram_id) == AccountState.ACTIVE.value
    calls = await bot.send(DINKES, "Tidak bertugas lagi di Garuda")
    assert "Tidak bertugas lagi di Garuda" in bot.text(calls)
    assert await account_state(services, RINA.telegram_id) == AccountState.REVOKED.value
    calls = await bot.send(RINA, "/start")
    assert bot.text(calls) == ID["start.revoked"].format(
        office="Dinkes Kota Bandung", reason="Tidak bertugas lagi di Garuda"
    )
    calls = await bot.send(DINKES, f"/cabut {rina.account_id} lagi")
    assert bot.text(calls) == ID["error.conflict.account_revoked"].format(name="Rina (meja 1)")


async def test_central_appoints_a_dinkes_admin_in_chat(bot: Harness, services: Services) -> None:
    calls = await bot.send(CENTRAL, "/dinkes 940100 3204 Dinkes Kab. Bandung")
    assert sent_to(calls, CENTRAL.telegram_id)[0].text == ID["admin.dinkes_done"].format(
        name="Dinkes Kab. Bandung", kabkota="Kab. Bandung", telegram_id=940100
    )
    (menu,) = menus_for(calls, 940100)
    assert "permintaan" in menu and "dinkes" not in menu
    calls = await bot.send(Person(940100), "/permintaan")
    assert bot.text(calls) == ID["admin.pending_none"].format(scope="Kab. Bandung")
    calls = await bot.send(CENTRAL, "/dinkes 940100 3204 Lagi")
    assert bot.text(calls) == ID["error.refused.account_exists"].format(telegram_id=940100, name="Dinkes Kab. Bandung")
    calls = await bot.send(CENTRAL, "/dinkes 940101 0000 Nowhere")
    assert bot.text(calls) == ID["error.not_found.kabkota_code"].format(code="0000")
    calls = await bot.send(CENTRAL, "/dinkes")
    assert bot.text(calls) == ID["admin.usage_dinkes"]
    calls = await bot.send(DINKES, "/dinkes")
    assert bot.text(calls) == ID["error.denied.role"]
    calls = await bot.send(CENTRAL, "/start")
    assert "/dinkes" in bot.text(calls) and "/permintaan" in bot.text(calls)


# --- language ---------------------------------------------------------------------------------------------


async def test_bahasa_switches_text_and_menu(bot: Harness, services: Services) -> None:
    calls = await bot.send(RINA, "/bahasa")
    assert [d for _, d in bot.buttons(calls)] == ["lg:id", "lg:en"]
    calls = await bot.press(RINA, "lg:en")
    assert "Language: English" in bot.text(calls)
    (menu,) = [c for c in calls if isinstance(c, SetMyCommands)]
    assert any(b.description == "Find a target (ticket/NIK)" for b in menu.commands)
    calls = await bot.send(RINA, "/daftar")
    assert bot.text(calls) == catalog("en")["error.refused.account_active"]
    calls = await bot.send(RINA, "/bahasa id")
    assert "Bahasa: Indonesia" in bot.text(calls)
    calls = await bot.send(NEWCOMER, "/bahasa")
    assert bot.text(calls) == ID["bahasa.stranger"]
    calls = await bot.send(Person(930002, language_code="en"), "/bahasa")
    assert bot.text(calls) == catalog("en")["bahasa.stranger"]
