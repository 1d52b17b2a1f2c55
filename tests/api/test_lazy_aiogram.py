"""aiogram's Telegram types built on first use (api/lazy_aiogram.py) parse and serialise exactly as when built eagerly.

Each side runs in a fresh interpreter: the test process imported aiogram long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys
if sys.argv[1] == "lazy":
    import api.main  # noqa: F401  (what `frontdesk serve` and the workers import first)
    import api.lazy_aiogram as lazy
    from aiogram import types
    assert lazy.deferred() > 300 and not types.Message.__pydantic_complete__, "aiogram was imported eagerly"
from aiogram import methods, types
from aiogram.methods.base import Response

chat = {"id": 5, "type": "private", "first_name": "Rina"}
user = {"id": 5, "is_bot": False, "first_name": "Rina", "language_code": "id"}
message = {
    "message_id": 7, "date": 1700000000, "chat": chat, "from": user, "text": "/start K8HERY8SXE",
    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    "reply_to_message": {"message_id": 6, "date": 1700000000, "chat": chat, "text": "hi",
                         "reply_markup": {"inline_keyboard": [[{"text": "ok", "callback_data": "t:1"}]]}},
    "contact": {"phone_number": "+628123", "first_name": "Rina", "user_id": 5},
}
update = types.Update.model_validate({"update_id": 1, "message": message})
press = types.Update.model_validate({"update_id": 2, "callback_query": {
    "id": "q", "from": user, "chat_instance": "c", "data": "t:1", "message": message}})
keyboard = types.InlineKeyboardMarkup(inline_keyboard=[[types.InlineKeyboardButton(text="a", callback_data="b")]])
calls = [
    methods.SendMessage(chat_id=5, text="<b>x</b>", parse_mode="HTML", reply_markup=keyboard),
    methods.EditMessageText(chat_id=5, message_id=7, text="y", reply_markup=keyboard),
    methods.SetMyCommands(commands=[types.BotCommand(command="start", description="s")],
                          scope=types.BotCommandScopeChat(chat_id=5)),
    methods.AnswerCallbackQuery(callback_query_id="q", text="z", show_alert=True),
    methods.SendDocument(chat_id=5, document=types.BufferedInputFile(b"abc", filename="a.csv")),
]
answer = Response[types.Message].model_validate({"ok": True, "result": message})
print(json.dumps({
    "update": update.model_dump(mode="json", exclude_none=True),
    "press": press.model_dump(mode="json", exclude_none=True),
    "calls": [c.model_dump(exclude={"document"}) for c in calls],  # Default(...) sentinels: str()
    "answer": answer.result.model_dump(mode="json", exclude_none=True),
    "user": update.message.from_user.full_name,
}, sort_keys=True, default=str))
"""


def _probe(mode: str) -> object:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_types_built_on_first_use_give_the_same_objects_as_aiogram_built_at_import() -> None:
    lazy = _probe("lazy")
    assert lazy == _probe("eager")
    assert lazy["update"]["message"]["reply_to_message"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "ok"
