"""The Telegram webhook: the secret is checked, the answer is immediate, the update is handled end to end;
setting the webhook at start, deleting it for polling; the update metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiogram.methods import DeleteWebhook, SendMessage, SetWebhook
from fastapi import FastAPI

from api.main import create_app
from api.metrics import METRICS, UpdateMetricsMiddleware, install_metrics
from api.routes.webhook import SECRET_HEADER, configure_webhook, drain_webhook_tasks
from bot.local_session import LocalSession
from core.config import Settings

TOKEN = "123456789:TEST-token-for-the-webhook-tests"
SECRET = "s3cret-Token_for-tests"
URL = "https://frontdesk.example/telegram/webhook"
RINA = 910001  # demo account, meja 1, active


def start_update(update_id: int = 1, user: int = RINA) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 100 + update_id,
            "date": 1795662000,
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Rina", "language_code": "id"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


class Webhook:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, session: LocalSession) -> None:
        self.app, self.client, self.session = app, client, session

    async def post(self, body: Any, secret: str | None = SECRET, raw: bytes | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        content = raw if raw is not None else json.dumps(body).encode()
        return await self.client.post("/telegram/webhook", content=content, headers=headers)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


async def _running(settings: Settings, clock) -> AsyncIterator[Webhook]:
    session = LocalSession()
    app = create_app(settings, clock=clock, run_bot=False, bot_session=session)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk") as client:
            yield Webhook(app, client, session)


@pytest.fixture
async def hook(demo_db_url: str, clock) -> AsyncIterator[Webhook]:
    settings = Settings(
        database_url=demo_db_url, telegram_bot_token=TOKEN, webhook_url=URL, webhook_secret=SECRET, redis_url=None
    )
    async for running in _running(settings, clock):
        yield running


@pytest.mark.parametrize(
    ("secret", "status"),
    [(None, 401), ("", 403), ("wrong", 403), (SECRET + "x", 403), (SECRET[:-1], 403), (SECRET.upper(), 403)],
)
async def test_a_missing_or_wrong_secret_is_rejected(hook: Webhook, secret: str | None, status: int) -> None:
    response = await hook.post(start_update(), secret=secret)
    assert response.status_code == status
    await drain_webhook_tasks(hook.app)
    assert hook.session.calls == []  # nothing was handled


async def test_a_body_that_is_not_an_update_is_400(hook: Webhook) -> None:
    assert (await hook.post(None, raw=b"not json")).status_code == 400
    assert (await hook.post({"message": "hello"})).status_code == 400


async def test_a_valid_update_is_answered_at_once_and_handled_end_to_end(hook: Webhook) -> None:
    install_metrics(hook.runtime.dispatcher)
    before = METRICS.updates.labels("message")._value.get()
    response = await hook.post(start_update(update_id=7))
    assert response.status_code == 200 and response.content == b""
    await drain_webhook_tasks(hook.app)
    sent = [m for m in hook.session.calls if isinstance(m, SendMessage)]
    assert [m.chat_id for m in sent] == [RINA]
    assert "Rina" in sent[0].text  # the active account's greeting with the menu
    assert METRICS.updates.labels("message")._value.get() == before + 1


async def test_the_answer_does_not_wait_for_the_handler(hook: Webhook) -> None:
    gate = asyncio.Event()

    async def slow(handler, event, data):
        await gate.wait()
        return await handler(event, data)

    hook.runtime.dispatcher.update.outer_middleware(slow)
    response = await asyncio.wait_for(hook.post(start_update(update_id=8)), timeout=5)
    assert response.status_code == 200
    assert not [m for m in hook.session.calls if isinstance(m, SendMessage)]  # still being handled
    gate.set()
    await drain_webhook_tasks(hook.app)
    assert [m for m in hook.session.calls if isinstance(m, SendMessage)]


async def test_configure_webhook_sets_it_with_the_secret(hook: Webhook) -> None:
    await configure_webhook(hook.runtime)
    [call] = [m for m in hook.session.calls if isinstance(m, SetWebhook)]
    assert call.url == URL and call.secret_token == SECRET and call.drop_pending_updates is False
    assert "message" in call.allowed_updates and "callback_query" in call.allowed_updates


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"telegram_bot_token": None, "webhook_url": None}, None),  # offline: the sandbox's mode
        ({"webhook_url": None}, DeleteWebhook),  # polling
    ],
)
async def test_without_webhook_mode_the_route_is_404(demo_db_url: str, clock, changes, expected) -> None:
    settings = Settings(
        database_url=demo_db_url,
        telegram_bot_token=TOKEN,
        webhook_url=URL,
        webhook_secret=SECRET,
        redis_url=None,
        sandbox_enabled=False,
    )
    settings = settings.model_copy(update=changes)
    async for running in _running(settings, clock):
        assert (await running.post(start_update())).status_code == 404
        await configure_webhook(running.runtime)
        kinds = [type(m) for m in running.session.calls if isinstance(m, SetWebhook | DeleteWebhook)]
        assert kinds == ([expected] if expected else [])


async def test_webhook_mode_without_a_secret_refuses_to_start(demo_db_url: str, clock) -> None:
    settings = Settings(
        database_url=demo_db_url, telegram_bot_token=TOKEN, webhook_url=URL, webhook_secret=None, redis_url=None
    )
    async for running in _running(settings, clock):
        assert (await running.post(start_update(), secret="anything")).status_code == 404
        with pytest.raises(RuntimeError, match="WEBHOOK_SECRET"):
            await configure_webhook(running.runtime)


async def test_install_metrics_is_idempotent_and_sits_inside_the_error_middleware(hook: Webhook) -> None:
    from aiogram.dispatcher.middlewares.error import ErrorsMiddleware

    first = install_metrics(hook.runtime.dispatcher)
    assert install_metrics(hook.runtime.dispatcher) is first
    chain = list(hook.runtime.dispatcher.update.outer_middleware)
    assert isinstance(chain[0], ErrorsMiddleware) and isinstance(chain[1], UpdateMetricsMiddleware)
    assert sum(isinstance(m, UpdateMetricsMiddleware) for m in chain) == 1
