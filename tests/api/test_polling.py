"""With a token and TELEGRAM_API_BASE, `frontdesk serve` long-polls that Bot API server and answers /start.

The server here is a small Bot API-compatible HTTP server on loopback (aiohttp), not a mock of our code:
the real aiohttp session of aiogram talks HTTP to it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from api.main import create_app
from core.config import Settings

TOKEN = "123456:TEST-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeBotApi:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.methods: list[str] = []
        self.pending = [
            {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": 555, "type": "private"},
                    "from": {"id": 555, "is_bot": False, "first_name": "Tono", "language_code": "id"},
                    "text": "/start",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                },
            }
        ]
        self.got_reply = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        assert token == TOKEN
        params = dict(await request.post())
        self.methods.append(method)
        if method == "getMe":
            return _ok({"id": 123456, "is_bot": True, "first_name": "Frontdesk", "username": "frontdesk_bot"})
        if method == "getUpdates":
            if self.pending:
                batch, self.pending = self.pending, []
                return _ok(batch)
            await asyncio.sleep(0.2)
            return _ok([])
        if method == "sendMessage":
            self.sent.append(params)
            self.got_reply.set()
            return _ok(
                {
                    "message_id": 2,
                    "date": int(time.time()),
                    "chat": {"id": int(str(params["chat_id"])), "type": "private"},
                    "text": params.get("text", ""),
                }
            )
        return _ok(True)


def _ok(result: Any) -> web.Response:
    return web.Response(text=json.dumps({"ok": True, "result": result}), content_type="application/json")


async def test_polling_against_a_bot_api_server_answers_start(tmp_path: Path) -> None:
    fake = FakeBotApi()
    server = web.Application()
    server.router.add_route("POST", "/bot{token}/{method}", fake.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/pl.db",
            telegram_bot_token=TOKEN,
            telegram_api_base=f"http://127.0.0.1:{port}",
            _env_file=None,  # type: ignore[call-arg]
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            assert app.state.runtime.mode == "polling"
            await asyncio.wait_for(fake.got_reply.wait(), timeout=20)
        assert "deleteWebhook" in fake.methods  # switching to polling removes any webhook
        assert "getUpdates" in fake.methods
        reply = fake.sent[0]
        assert reply["chat_id"] == "555"
        assert "/daftar" in str(reply["text"])
    finally:
        await runner.cleanup()
