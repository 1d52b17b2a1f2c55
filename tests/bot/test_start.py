"""/start, /bantuan and /batal through the real dispatcher, for a stranger and for a demo account."""

from __future__ import annotations

from tests.bot.harness import Harness, Person

STRANGER = Person(777001, "Tono")
MEJA1 = Person(910001, "Rina")


async def test_stranger_is_told_how_to_ask_for_access(harness: Harness) -> None:
    text = harness.text(await harness.send(STRANGER, "/start"))
    assert "/daftar" in text
    assert "belum punya akses" in text


async def test_stranger_speaking_english_gets_english(harness: Harness) -> None:
    text = harness.text(await harness.send(Person(777002, "Tom", language_code="en"), "/start"))
    assert "You have no access yet" in text


async def test_active_staff_sees_what_they_may_do(harness: Harness) -> None:
    text = harness.text(await harness.send(MEJA1, "/start"))
    assert "Rina" in text
    assert "/cari" in text and "/antrian" in text
    # Meja 1 holds neither the screening nor the vaccination desk.
    assert "/skrining" not in text and "/vaksinasi" not in text


async def test_cancel_with_nothing_in_progress_says_so(harness: Harness) -> None:
    text = harness.text(await harness.send(MEJA1, "/batal"))
    assert "Tidak ada proses" in text


async def test_stranger_text_is_answered_not_ignored(harness: Harness) -> None:
    text = harness.text(await harness.send(STRANGER, "3273010101900001"))
    assert "/daftar" in text


async def test_start_sets_the_chat_menu_and_clears_a_reply_keyboard(harness: Harness) -> None:
    from aiogram.methods import SendMessage
    from aiogram.types import BotCommandScopeChat, ReplyKeyboardRemove

    calls = await harness.send(MEJA1, "/start")
    [menu] = harness.commands_set(calls)
    assert isinstance(menu.scope, BotCommandScopeChat) and menu.scope.chat_id == MEJA1.telegram_id
    assert "antrian" in [c.command for c in menu.commands]
    [reply] = [c for c in calls if isinstance(c, SendMessage)]
    assert isinstance(reply.reply_markup, ReplyKeyboardRemove)
