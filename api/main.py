"""The HTTP face and the composition root: ``create_app`` builds everything in its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

# First, before anything imports aiogram: its ~400 Telegram types are built on first use (-110 MB RSS).
import api.lazy_aiogram  # noqa: F401
from api.eventloop import running_loop_name
from api.metrics import METRICS, install_metrics, instrument_core
from api.routes import health, metrics, sandbox, support, webhook
from api.routes.webhook import configure_webhook, drain_webhook_tasks
from api.runtime import Runtime, build_runtime, settle_heap
from core.config import Settings
from core.ports import Clock

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    migrate: bool = True,
    run_bot: bool = True,
    bot_session: object | None = None,
    settle_gc: bool = False,
) -> FastAPI:
    """The app; ``settle_gc`` (serving processes only) tunes the collector once built (api.runtime.settle_heap)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            from core.db.migrate import upgrade  # Alembic only when this process migrates (serve does it apart)

            await upgrade(settings.database_url)
        runtime = build_runtime(settings, clock=clock, bot_session=bot_session)
        app.state.runtime = runtime
        sandbox.attach(app, runtime)  # the sandbox's chat store on the bot's session (api/sandbox.py); no-op when off
        install_metrics(runtime.dispatcher)
        instrument_core(runtime.services.ctx)
        METRICS.event_loop.info({"loop": running_loop_name()})
        if settle_gc:
            settle_heap()
        if run_bot:
            # Webhook mode sets the webhook; polling mode deletes any webhook first. Several worker
            # processes (`frontdesk serve --workers N`) leave this to the parent, which did it once.
            if settings.webhook_setup:
                await configure_webhook(runtime)
            if runtime.mode == "polling":
                runtime.tasks.append(asyncio.create_task(_poll(runtime), name="polling"))
        try:
            yield
        finally:
            await drain_webhook_tasks(app)
            await runtime.close()

    app = FastAPI(
        title="PCare Frontdesk",
        version="0.1.0",
        summary="Front desk of COVID-19 vaccination sites: support API for BPJS branches and Dinkes.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(metrics.build_router())
    app.include_router(support.build_router())
    app.include_router(webhook.build_router())
    app.include_router(sandbox.build_router())
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for several worker processes (``frontdesk serve --workers N``, or
    ``uvicorn --factory api.main:app_from_env``): each worker reads its settings from the environment.

    Workers never migrate: ``frontdesk serve`` (or ``frontdesk db upgrade``) migrates once before they start.
    """
    from api.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings, migrate=False, settle_gc=True)


async def _poll(runtime: Runtime) -> None:
    log.info("long polling %s (%d bots)", runtime.settings.telegram_api_base or "Telegram", len(runtime.bots))
    await runtime.dispatcher.start_polling(*runtime.bots.values(), handle_signals=False, close_bot_session=False)
