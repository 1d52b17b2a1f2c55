"""The in-process Bot API session (bot/local_session.py): what a long-running sandbox keeps is bounded."""

from __future__ import annotations

import pytest
from aiogram.methods import EditMessageText, SendMessage

from bot.factory import build_bot
from bot.local_session import LocalSession


async def test_a_sandbox_session_records_no_calls_and_keeps_the_last_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalSession, "KEEP_SENT", 5)
    session = LocalSession(record=False)
    bot = build_bot(None, session=session)
    sent = [await bot(SendMessage(chat_id=7, text=f"pesan {i}")) for i in range(8)]
    assert session.calls == []
    assert len(session._sent) == 5

    edited = await bot(EditMessageText(chat_id=7, message_id=sent[-1].message_id, text="diubah"))
    assert not isinstance(edited, bool) and edited.text == "diubah"
    # The oldest are forgotten: an edit of one is answered without a message, as Telegram may do.
    assert await bot(EditMessageText(chat_id=7, message_id=sent[0].message_id, text="lama")) is True


async def test_a_test_session_records_every_call() -> None:
    session = LocalSession()
    bot = build_bot(None, session=session)
    await bot(SendMessage(chat_id=7, text="halo"))
    assert [type(c) for c in session.calls] == [SendMessage]
