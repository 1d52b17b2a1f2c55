"""Build the bot and the dispatcher. The composition root (api/runtime.py) calls these; nothing else does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.handler import CallableObject
from aiogram.enums import ParseMode
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage

from bot.actors import ActorCache
from bot.admission import Admission, AdmittingDispatcher, AwayDuringRequests, AwayWhileLocking
from bot.dedup import DeduplicateUpdates, Deduplicator, DuplicateUpdate, MemoryDeduplicator
from bot.flows import antrian, meja1, meja2, meja4, review, signup, verification
from bot.handlers import admin, common, lookup
from bot.middlewares import ActorMiddleware, RejectImpossibleIds
from bot.notifier import Renderer, TelegramNotifier
from bot.prefilters import add_router_prefilters
from bot.routing import BotDirectory
from core.services.channels import ChannelService
from core.services.registry import Services

# A syntactically valid token for a bot that never talks to Telegram (the sandbox, the tests).
OFFLINE_TOKEN = "1000000000:offline-sandbox-token-not-for-telegram"  # noqa: S105 - not a secret

# Order matters: commands and flows first, the fallback last.
FEATURES = (common, signup, admin, review, antrian, meja1, meja2, meja4, verification, lookup)


def build_bot(
    token: str | None,
    *,
    api_base: str | None = None,
    session: BaseSession | None = None,
    limits: BaseRequestMiddleware | None = None,
    admission: Admission | None = None,
) -> Bot:
    """A bot with its own HTTP session (or the given one); ``limits`` (bot/outgoing.py) paces its calls, and
    an update waiting for a call (pacing included) gives its place of ``admission`` back meanwhile."""
    if session is None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base)) if api_base else AiohttpSession()
    if admission is not None and not any(
        isinstance(m, AwayDuringRequests) and m.admission is admission for m in session.middleware
    ):
        session.middleware(AwayDuringRequests(admission))  # the outermost: registered first
    if limits is not None and limits not in session.middleware:
        session.middleware(limits)
    return Bot(
        token=token or OFFLINE_TOKEN,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def notification_renderers() -> Mapping[str, Renderer]:
    out: dict[str, Renderer] = {}
    for feature in FEATURES:
        out.update(getattr(feature, "NOTIFICATIONS", {}))
    return out


def build_notifier(
    bot: Bot,
    services: Services,
    *,
    directory: BotDirectory | None = None,
    channels: ChannelService | None = None,
    actors: ActorCache | None = None,
) -> TelegramNotifier:
    """Core's notifier; with several bots (``directory``) it routes each person to their bot (``channels``).

    It reads the person from PL for every notification and menu refresh; with the dispatcher's ``actors``
    cache, that fresh read also replaces what the cache remembered (a role or language just changed).
    """
    return TelegramNotifier(
        bot,
        actors.refresh if actors is not None else services.accounts.resolve_actor,
        notification_renderers(),
        directory=directory,
        channel=channels.channel if channels is not None else None,
    )


def build_dispatcher(
    services: Services,
    storage: BaseStorage,
    *,
    events_isolation: BaseEventIsolation | None = None,
    deduplicator: Deduplicator | None = None,
    directory: BotDirectory | None = None,
    channels: ChannelService | None = None,
    actors: ActorCache | None = None,
    admission: Admission | None = None,
) -> Dispatcher:
    """One dispatcher for every bot of the deployment; with several, ``channels`` records who uses which.

    ``actors`` (bot/actors.py) remembers active actors for a few seconds; without it every update reads
    its actor from PL. With ``admission`` (bot/admission.py) an update is fed only while it holds a place.
    """
    if admission is not None and events_isolation is not None:
        events_isolation = AwayWhileLocking(events_isolation, admission)  # a chat's queue holds no places
    dp = (
        AdmittingDispatcher(storage=storage, events_isolation=events_isolation)
        if events_isolation
        else AdmittingDispatcher(storage=storage)
    )
    dp.admission = admission
    # A repeated delivery is dropped before anything else runs.
    dp.update.outer_middleware(DeduplicateUpdates(deduplicator or MemoryDeduplicator()))
    dp.update.outer_middleware(ActorMiddleware(services, directory=directory, channels=channels, actors=actors))
    dp.callback_query.middleware(RejectImpossibleIds())  # ids in buttons are untrusted: none beyond 64 bits
    dp.errors.register(common.drop_duplicate, ExceptionTypeFilter(DuplicateUpdate))
    dp.errors.register(common.on_error)
    for feature in FEATURES:
        dp.include_router(feature.build_router())
    dp.include_router(common.build_fallback_router())
    add_router_prefilters(dp)  # one check per router instead of each of its handlers' (bot/prefilters.py)
    call_sync_filters_inline(dp)
    return dp


def call_sync_filters_inline(router: Router) -> int:
    """Make aiogram call our synchronous filters inline instead of in a worker thread.

    aiogram runs every non-async callback through ``asyncio.to_thread``: each ``F.text``, ``F.action == …``
    or ``~F.text.startswith("/")`` filter costs a thread-pool round trip (about 16 per update in the desk
    flows, see docs/performance.md). Our filters are pure and take microseconds, so they are wrapped in a
    coroutine function that calls them directly. Handlers are all ``async def`` (a test keeps it so).
    Returns how many filters were wrapped.
    """
    wrapped = 0
    for r in router.chain_tail:
        for observer in r.observers.values():
            handlers = [observer._handler, *observer.handlers]  # the observer's own filters, then its handlers
            for handler in handlers:
                for f in handler.filters or ():
                    if not f.awaitable:
                        _make_awaitable(f)
                        wrapped += 1
    return wrapped


def _make_awaitable(obj: CallableObject) -> None:
    sync = obj.callback

    async def call_inline(*args: Any, **kwargs: Any) -> Any:
        return sync(*args, **kwargs)

    obj.callback = call_inline
    obj.awaitable = True  # ``params``/``varkw`` still describe ``sync``: the same keyword arguments are passed
