"""Once per update: who is acting (from PL), in which language."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, TelegramObject, User

from bot.actors import ActorCache
from bot.i18n import Translator, pick_locale, translator
from bot.routing import BotDirectory
from core.domain.errors import FrontdeskError, PermissionDenied
from core.services.channels import ChannelService
from core.services.registry import Services

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
log = logging.getLogger(__name__)


class ActorMiddleware(BaseMiddleware):
    """Resolves the actor once per update and puts ``actor`` and ``t`` (a translator) in the handler data.

    Handlers use the actor to pick menus; core re-checks it for every action. Active actors come from a
    short-lived cache (bot/actors.py); when core refuses an action, the person's entry is dropped.

    With several bots it also records on the account which bot the person writes to (notifications go
    out through it, see bot/routing.py), cheaply: a worker remembers what it recorded for a few minutes and
    writes only when the bot changed (one conditional UPDATE, which writes no row when PL already agrees).
    A stranger's bot is recorded after the handler, since /daftar creates the account.
    """

    REMEMBER_SECONDS = 300.0  # a worker trusts what it recorded this long (another worker may record a switch)
    REMEMBER_MAX = 100_000

    def __init__(
        self,
        services: Services,
        *,
        directory: BotDirectory | None = None,
        channels: ChannelService | None = None,
        actors: ActorCache | None = None,
    ) -> None:
        self.services = services
        self.actors = actors if actors is not None else ActorCache(services.accounts.resolve_actor, ttl=0)
        # Nothing to record with one bot (or nowhere to record it).
        self.directory = directory if directory is not None and directory.several and channels is not None else None
        self.channels = channels
        self._recorded: OrderedDict[int, tuple[str, float]] = OrderedDict()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        # An unreachable PL raises Unavailable here; the error handler tells the person plainly.
        actor = await self.actors.get(user.id)
        data["actor"] = actor
        locale = actor.locale if actor.account_id is not None else pick_locale(user.language_code)
        data["t"] = translator(locale)
        data["services"] = self.services
        bot_key = self.directory.key_of(data.get("bot")) if self.directory is not None else None
        if bot_key is not None and actor.account_id is not None:
            await self._remember(user.id, bot_key, known_account=True)
        try:
            result = await handler(event, data)
        except PermissionDenied:
            self.actors.forget(user.id)  # perhaps changed elsewhere: read PL again next time
            raise
        if bot_key is not None and actor.account_id is None:
            await self._remember(user.id, bot_key, known_account=False)
        return result

    async def _remember(self, telegram_id: int, bot_key: str, *, known_account: bool) -> None:
        if self.channels is None:
            return
        now = time.monotonic()
        recorded = self._recorded.get(telegram_id)
        if recorded is not None and recorded[0] == bot_key and recorded[1] > now:
            return
        try:
            changed = await self.channels.remember(telegram_id, bot_key)
        except FrontdeskError as exc:  # a routing hint is not worth failing the update for
            log.warning("bot of account not recorded: %s", exc)
            return
        if known_account or changed:
            self._recorded[telegram_id] = (bot_key, now + self.REMEMBER_SECONDS)
            self._recorded.move_to_end(telegram_id)
            while len(self._recorded) > self.REMEMBER_MAX:
                self._recorded.popitem(last=False)


# PL keys are signed 64-bit integers (BIGINT on PostgreSQL, INTEGER on SQLite).
_MIN_ID, _MAX_ID = -(2**63), 2**63 - 1


class RejectImpossibleIds(BaseMiddleware):
    """Callback data is untrusted: a number no PL key can hold names nothing, so its button is stale.

    An inner middleware of the callback queries: it sees the parsed ``callback_data`` of the handler
    that matched (pydantic's parsing, so ``+9…``, ``9_9`` and ``9.0`` are judged as the handler would get
    them) and answers "no longer valid" before any query runs; SQLite and asyncpg refuse to bind such a
    number, which would otherwise end as an unhandled error.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        callback_data = data.get("callback_data")
        if isinstance(event, CallbackQuery) and isinstance(callback_data, CallbackData):
            numbers = [v for v in vars(callback_data).values() if isinstance(v, int) and not isinstance(v, bool)]
            if any(not _MIN_ID <= n <= _MAX_ID for n in numbers):
                given = data.get("t")
                t = given if isinstance(given, Translator) else translator(pick_locale(event.from_user.language_code))
                await event.answer(t("error.stale_button"))
                return None
        return await handler(event, data)
