"""A small Bot API-compatible HTTP server (aiohttp) for tests that need aiogram's real HTTP session.

Not a mock of our code: the bots talk HTTP to it exactly as to ``api.telegram.org`` (``TELEGRAM_API_BASE``).
It serves any number of bots (one per token), records every call with its arrival time, answers with
plausible results, can queue updates for ``getUpdates``, can answer the next calls of a method with
``429 Too Many Requests``, and can hold the calls to a chat unanswered. Worker processes reach it over
loopback while the test's event loop runs.

    async with FakeBotApi() as api:
        settings = Settings(telegram_bot_token="123:AAA", telegram_api_base=api.base_url, ...)
        ...
        call = await api.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 910002)

``Chat`` builds the JSON of updates a person would cause (text, button presses, shared contact).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.servers import free_port

# Methods answered with the message they sent or edited; the rest answer True.
_MESSAGE_METHODS = {"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendDocument"}


@dataclass
class Call:
    seq: int
    token: str
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    status: int = 200
    result: Any = None  # what the server answered

    @property
    def message_id(self) -> int | None:
        """The id of the message this call sent or edited."""
        return self.result.get("message_id") if isinstance(self.result, dict) else None

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])

    @property
    def chat_id(self) -> int | None:
        chat = self.params.get("chat_id")
        return int(chat) if chat is not None and str(chat).lstrip("-").isdigit() else None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or "")

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of the inline keyboard sent with this call."""
        markup = self.params.get("reply_markup")
        if not isinstance(markup, dict):
            return []
        return [
            (b.get("text", ""), b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row
        ]

    def button(self, label: str) -> str:
        for text, data in self.buttons:
            if text.startswith(label):
                return data
        raise AssertionError(f"no button {label!r} in {self.buttons}")


@dataclass
class _Failure:
    method: str
    remaining: int
    retry_after: int


@dataclass
class FakeBotApi:
    host: str = "127.0.0.1"
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    _message_ids: dict[tuple[int, int], itertools.count] = field(default_factory=dict)
    _updates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _holds: dict[int, asyncio.Event] = field(default_factory=dict)

    # --- life cycle -------------------------------------------------------------------------
    async def start(self) -> FakeBotApi:
        app = web.Application()
        app.router.add_route("POST", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- scripting ----------------------------------------------------------------------------
    def fail_next(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``retry_after``."""
        self._failures.append(_Failure(method, times, retry_after))

    def hold(self, chat_id: int) -> asyncio.Event:
        """Keep the calls to ``chat_id`` waiting (arrived and recorded, not answered) until the event is set."""
        gate = self._holds[chat_id] = asyncio.Event()
        return gate

    def queue_update(self, token: str, update: dict[str, Any]) -> None:
        """Hand ``update`` to the next ``getUpdates`` of the bot with ``token``."""
        self._updates.setdefault(token, []).append(update)

    # --- reading ------------------------------------------------------------------------------
    def of(self, method: str | None = None, *, chat_id: int | None = None, token: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.status == 200
            and (method is None or c.method == method)
            and (chat_id is None or c.chat_id == chat_id)
            and (token is None or c.token == token)
        ]

    def messages(self, chat_id: int, *, since: int = 0) -> list[Call]:
        """Messages sent or edited in a chat (answered calls only), in arrival order, after call ``since``."""
        return [c for c in self.of(chat_id=chat_id) if c.seq > since and c.method in _MESSAGE_METHODS]

    @property
    def last_seq(self) -> int:
        return self.calls[-1].seq if self.calls else 0

    async def wait_for(self, predicate: Callable[[Call], bool], *, since: int = 0, within: float = 30.0) -> Call:
        """The first answered call after ``since`` matching ``predicate``, waiting for it up to ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            for call in self.calls:
                if call.seq > since and call.status == 200 and predicate(call):
                    return call
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(c.method, c.chat_id, c.text[:40]) for c in self.calls if c.seq > since]
                raise AssertionError(f"no matching Bot API call within {within} s; calls since {since}: {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.5))

    # --- the server ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        params = {k: _decode(v) for k, v in (await request.post()).items()}
        call = Call(next(self._seq), token, method, params, time.monotonic())
        self.calls.append(call)
        try:
            gate = self._holds.get(call.chat_id) if call.chat_id is not None else None
            if gate is not None:
                self._changed.set()  # arrived: wait_for sees it while it is held
                await gate.wait()
            failure = next((f for f in self._failures if f.method == method and f.remaining > 0), None)
            if failure is not None:
                failure.remaining -= 1
                call.status = 429
                return _json(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {failure.retry_after}",
                        "parameters": {"retry_after": failure.retry_after},
                    },
                    status=429,
                )
            if method == "getUpdates":
                return await self._get_updates(token)
            call.result = self._result(call)
            return _json({"ok": True, "result": call.result})
        finally:
            self._changed.set()

    async def _get_updates(self, token: str) -> web.Response:
        for _ in range(10):
            pending = self._updates.get(token)
            if pending:
                batch, self._updates[token] = list(pending), []
                return _json({"ok": True, "result": batch})
            await asyncio.sleep(0.05)
        return _json({"ok": True, "result": []})

    def _result(self, call: Call) -> Any:
        if call.method == "getMe":
            return {
                "id": call.bot_id,
                "is_bot": True,
                "first_name": f"Bot {call.bot_id}",
                "username": f"b{call.bot_id}_bot",
            }
        if call.method not in _MESSAGE_METHODS:
            return True
        chat = call.chat_id or 0
        if call.method.startswith("edit") and "message_id" in call.params:
            message_id = int(call.params["message_id"])
        else:
            counter = self._message_ids.setdefault((call.bot_id, chat), itertools.count(1))
            message_id = next(counter)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            "from": {"id": call.bot_id, "is_bot": True, "first_name": f"Bot {call.bot_id}"},
        }
        if "text" in call.params:
            message["text"] = call.text
        if isinstance(call.params.get("reply_markup"), dict) and "inline_keyboard" in call.params["reply_markup"]:
            message["reply_markup"] = call.params["reply_markup"]
        return message


def _decode(value: Any) -> Any:
    """Form fields arrive as strings; aiogram sends objects (reply_markup, entities) as JSON."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


# --- updates as Telegram sends them ------------------------------------------------------------

_update_ids = itertools.count(int(time.time()) % 100_000 * 1000)


class Chat:
    """One person in a private chat with a bot: builds the JSON updates of what they do."""

    def __init__(self, user_id: int, first_name: str, language_code: str = "id") -> None:
        self.user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        self.chat = {"id": user_id, "type": "private"}
        self._message_ids = itertools.count(1_000_000)

    def message(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat,
            "from": self.user,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(_update_ids), "message": body}

    def contact(self, phone: str) -> dict[str, Any]:
        body = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat,
            "from": self.user,
            "contact": {"phone_number": phone, "first_name": self.user["first_name"], "user_id": self.user["id"]},
        }
        return {"update_id": next(_update_ids), "message": body}

    def press(self, data: str, *, message_id: int = 1, bot_id: int = 0) -> dict[str, Any]:
        """A tap on a button with ``data`` under the bot's message ``message_id``."""
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self.chat,
            "from": {"id": bot_id or 1, "is_bot": True, "first_name": "Bot"},
            "text": "…",
        }
        query = {
            "id": str(next(_update_ids)),
            "from": self.user,
            "chat_instance": "ci",
            "data": data,
            "message": message,
        }
        return {"update_id": next(_update_ids), "callback_query": query}
