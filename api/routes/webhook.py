"""The Telegram webhook: ``POST /telegram/webhook``, and setting or deleting the webhook at start.

With several bots (``TELEGRAM_BOT_TOKENS``) each has its own route, ``POST /telegram/webhook/{bot_key}``
(Telegram is told ``WEBHOOK_URL/<key>``), with the same secret; the update is fed to the one dispatcher
with that bot, so replies leave through the bot the person wrote to.

Telegram sends each update with the secret we gave it in ``X-Telegram-Bot-Api-Secret-Token``. The
route compares it in constant time (401 when missing, 403 when wrong), answers 200 at once, and feeds
the update to the dispatcher in a background task: a slow handler never makes Telegram retry. When
the bot does not run in webhook mode (no token, or no ``WEBHOOK_URL``), or no secret is configured,
the route answers 404.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.types import Update
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from pydantic import ValidationError

if TYPE_CHECKING:
    from api.runtime import Runtime

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
_TASKS_ATTR = "webhook_tasks"


def _tasks(app: FastAPI) -> set[asyncio.Task[Any]]:
    tasks: set[asyncio.Task[Any]] | None = getattr(app.state, _TASKS_ATTR, None)
    if tasks is None:
        tasks = set()
        setattr(app.state, _TASKS_ATTR, tasks)
    return tasks


async def drain_webhook_tasks(app: FastAPI, seconds: float = 10.0) -> None:
    """Wait (up to ``seconds``) for updates still being handled; call before closing the runtime."""
    tasks = list(_tasks(app))
    if tasks:
        await asyncio.wait(tasks, timeout=seconds)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "The secret token header is missing."},
    403: {"description": "The secret token header is wrong."},
    404: {"description": "The bot does not run in webhook mode (or there is no bot of this key)."},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "A Telegram Update"}}},
    }
}


def build_router() -> APIRouter:
    router = APIRouter(tags=["telegram"])

    @router.post(
        "/telegram/webhook",
        summary="Telegram webhook",
        status_code=200,
        responses=_RESPONSES,
        openapi_extra=_BODY,
    )
    async def telegram_webhook(request: Request) -> Response:
        """Receives one Telegram update of the single bot; answers at once and handles it in the background."""
        runtime: Runtime = request.app.state.runtime
        bots = runtime.bots
        return await _accept(request, runtime, next(iter(bots.values())) if len(bots) == 1 else None)

    @router.post(
        "/telegram/webhook/{bot_key}",
        summary="Telegram webhook of one of several bots",
        status_code=200,
        responses=_RESPONSES,
        openapi_extra=_BODY,
    )
    async def telegram_webhook_of(request: Request, bot_key: str) -> Response:
        """Receives one update of the bot ``bot_key`` (a key of TELEGRAM_BOT_TOKENS); as ``/telegram/webhook``."""
        runtime: Runtime = request.app.state.runtime
        return await _accept(request, runtime, runtime.bots.get(bot_key))

    return router


async def _accept(request: Request, runtime: Runtime, bot: Bot | None) -> Response:
    secret = runtime.settings.webhook_secret
    if runtime.mode != "webhook" or secret is None:
        raise HTTPException(404, detail="webhook not configured")
    given = request.headers.get(SECRET_HEADER)
    if given is None:
        raise HTTPException(401, detail="secret token missing")
    if not secrets.compare_digest(given.encode("utf-8", "surrogateescape"), secret.get_secret_value().encode()):
        raise HTTPException(403, detail="secret token wrong")
    if bot is None:  # after the secret: which bot keys exist is not told to strangers
        raise HTTPException(404, detail="no such bot")
    try:
        update = Update.model_validate_json(await request.body(), context={"bot": bot})
    except ValidationError:
        raise HTTPException(400, detail="not a Telegram update") from None
    task = asyncio.create_task(_handle(runtime, bot, update), name=f"update-{update.update_id}")
    tasks = _tasks(request.app)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return Response(status_code=200)


async def _handle(runtime: Runtime, bot: Bot, update: Update) -> None:
    try:
        await runtime.dispatcher.feed_update(bot, update)
    except Exception:  # errors are answered by the dispatcher's error handler; this is what escaped it
        log.exception("update %s failed", update.update_id)


async def configure_webhook(runtime: Runtime) -> None:
    """At start: in webhook mode, tell Telegram where to send each bot's updates (with our secret); in
    polling mode, delete any webhook (Telegram refuses getUpdates while one is set); offline, nothing.

    Raises ``RuntimeError`` in webhook mode without ``WEBHOOK_SECRET``: an endpoint anyone could post
    updates to is not started.
    """
    settings = runtime.settings
    if runtime.mode == "webhook":
        if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
            raise RuntimeError("WEBHOOK_URL is set but WEBHOOK_SECRET is not: refusing to run an open webhook")
        allowed = runtime.dispatcher.resolve_used_update_types()
        for key, bot in runtime.bots.items():
            url = settings.webhook_url_for(key)
            assert url is not None
            await bot.set_webhook(
                url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=allowed,
                drop_pending_updates=False,
                max_connections=settings.webhook_max_connections,
            )
            log.info("webhook set: %s", url)
    elif runtime.mode == "polling":
        for bot in runtime.bots.values():
            await bot.delete_webhook(drop_pending_updates=False)
        log.info("webhook deleted: polling")
