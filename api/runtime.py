"""The running system, built in one place: settings, engine, storage, services, bot and dispatcher."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from sqlalchemy.ext.asyncio import AsyncEngine

from api.metrics import METRICS, instrument_references
from bot.actors import ActorCache
from bot.admission import Admission, AwayDuringLookups
from bot.dedup import MemoryDeduplicator, RedisDeduplicator
from bot.factory import build_bot, build_dispatcher, build_notifier
from bot.local_session import LocalSession
from bot.outgoing import OutgoingLimits
from bot.routing import BotDirectory
from core.config import SINGLE_BOT_KEY, Settings
from core.db.engine import create_engine
from core.ports import Clock
from core.ratelimit import MemoryRateLimiter, RedisRateLimiter
from core.references.factory import build_reference_sources, close_reference_sources
from core.services.channels import ChannelService
from core.services.registry import Services, build_services

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    services: Services
    storage: BaseStorage
    bot: Bot  # the first (default) bot
    dispatcher: Dispatcher
    redis: object | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    directory: BotDirectory | None = None  # every bot by key (one, or several: TELEGRAM_BOT_TOKENS)
    channels: ChannelService | None = None
    actors: ActorCache | None = None
    admission: Admission | None = None  # the updates this process works on at once (UPDATES_IN_FLIGHT)

    @property
    def mode(self) -> str:
        return self.settings.bot_mode

    @property
    def bots(self) -> dict[str, Bot]:
        return dict(self.directory.bots) if self.directory is not None else {SINGLE_BOT_KEY: self.bot}

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background task %s failed", task.get_name())
        await self.storage.close()
        sessions = {id(bot.session): bot.session for bot in [self.bot, *self.bots.values()]}
        for session in sessions.values():
            await session.close()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]
        await close_reference_sources(self.services.ctx.references)
        await self.engine.dispose()


def build_storage(settings: Settings) -> tuple[BaseStorage, object | None, object | None]:
    """Conversation state: Redis in production (state survives restarts, shared by workers), memory otherwise.

    In Redis, the update's lock loads and saves the conversation and claims the update (bot/redis_state.py,
    bot/dedup.py): two round trips.
    """
    if not settings.redis_url:
        return MemoryStorage(), None, None
    from aiogram.fsm.storage.redis import DefaultKeyBuilder
    from redis.asyncio import Redis

    from bot.redis_state import OneTripRedisStorage

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    storage = OneTripRedisStorage(
        redis,
        key_builder=DefaultKeyBuilder(prefix="frontdesk", with_bot_id=True),
        state_ttl=settings.conversation_ttl_seconds,
        data_ttl=settings.conversation_ttl_seconds,
        claims=RedisDeduplicator(redis),  # an update's claim rides on its lock (bot/dedup.py)
    )
    return storage, redis, storage.create_isolation()


def build_runtime(settings: Settings, *, clock: Clock | None = None, bot_session: object | None = None) -> Runtime:
    engine = create_engine(
        settings.database_url, pool_size=settings.database_pool_size, max_overflow=settings.database_max_overflow
    )
    storage, redis, isolation = build_storage(settings)
    admission = Admission(settings.updates_in_flight) if settings.updates_in_flight else None
    references = instrument_references(build_reference_sources(settings, engine))
    if admission is not None:
        references = tuple(AwayDuringLookups(source, admission) for source in references)
        METRICS.updates_waiting.set_function(lambda: admission.waiting)
    services = build_services(
        engine,
        clock=clock,
        references=references,
        rate_limiter=RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter(),
        lookups_per_minute=settings.lookup_rate_per_minute,
        reference_timeout=settings.reference_timeout_seconds,
    )
    directory = build_bots(settings, bot_session, admission)
    bot = directory.primary
    channels = ChannelService(services.ctx)
    actors = ActorCache(services.accounts.resolve_actor, ttl=settings.actor_cache_seconds)
    services.set_notifier(build_notifier(bot, services, directory=directory, channels=channels, actors=actors))
    claims = getattr(storage, "claims", None)  # the store's, which claims most updates with its lock
    deduplicator = claims or (RedisDeduplicator(redis) if redis is not None else MemoryDeduplicator())
    dispatcher = build_dispatcher(
        services,
        storage,
        events_isolation=isolation,
        deduplicator=deduplicator,  # type: ignore[arg-type]
        directory=directory,
        channels=channels,
        actors=actors,
        admission=admission,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        services=services,
        storage=storage,
        bot=bot,
        dispatcher=dispatcher,
        redis=redis,
        directory=directory,
        channels=channels,
        actors=actors,
        admission=admission,
    )


def settle_heap() -> None:
    """After start-up: take the long-lived heap out of the cyclic collector's view and collect less often.

    A serving process holds ~1 M long-lived objects (aiogram's and pydantic's type models, SQLAlchemy's
    mappers, the translations) that every full collection walks again: 220-230 ms each, 4-8 % of the
    process's time under load. ``gc.freeze()`` moves them to the permanent generation; a higher first
    threshold lets short-lived update objects die by reference counting before a young collection runs.
    Only the serving processes call it (``frontdesk serve`` and its workers), once the runtime is built.
    Measured: docs/performance.md ("gc_freeze").
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def outgoing_limits(settings: Settings) -> OutgoingLimits:
    """Telegram's limits for this process: its share of the per-bot rate (WEB_CONCURRENCY processes share it)."""
    return OutgoingLimits(
        global_rate=settings.telegram_global_rate / settings.web_concurrency,
        chat_rate=settings.telegram_chat_rate,
        chat_burst=settings.telegram_chat_burst,
        retry_attempts=settings.telegram_retry_attempts,
        max_retry_after=settings.telegram_max_retry_after,
    )


def build_bots(
    settings: Settings, bot_session: object | None = None, admission: Admission | None = None
) -> BotDirectory:
    """Every bot of the deployment, each with its own HTTP session paced by Telegram's limits; an update waiting
    for a call gives its place of ``admission`` back meanwhile.

    A given ``bot_session`` (tests, the sandbox) is shared by all bots and not paced: it never reaches
    Telegram. Offline (no token), replies stay in process; the sandbox attaches its chat store as the sink.
    """
    tokens: dict[str, str | None] = dict(settings.bot_tokens) or {SINGLE_BOT_KEY: None}
    if bot_session is None and settings.bot_mode == "offline":
        bot_session = LocalSession()
    limits = outgoing_limits(settings) if bot_session is None else None
    bots = {
        key: build_bot(
            token,
            api_base=settings.telegram_api_base,
            session=bot_session,  # type: ignore[arg-type]
            limits=limits,
            admission=admission,
        )
        for key, token in tokens.items()
    }
    return BotDirectory(bots, settings.bot_provinces)
