"""Telegram may deliver an update more than once (webhook retries, a restarted poller): handle each once.

The first delivery of an update id claims it; later deliveries within the TTL are dropped before any
handler runs. Redis (``SET NX EX``) shares the claims between worker processes; memory serves the
embedded default.

With Redis, the conversation store claims the update in the same round trip that takes the chat's lock
(bot/redis_state.py): the dispatcher names the update it feeds (:func:`delivering`), the store's lock
claims it or, for a repeat, raises :class:`DuplicateUpdate` (dropped quietly by the dispatcher's error
handler), and the middleware below then has nothing left to ask. An update without a chat, or a store
that does not claim, is claimed by the middleware as before.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

DEFAULT_TTL_SECONDS = 24 * 3600  # Telegram keeps undelivered updates for 24 hours


class DuplicateUpdate(Exception):
    """The update was delivered before: raised by the conversation store's lock, instead of taking it."""


@dataclass(slots=True)
class Delivery:
    """The update being fed to the dispatcher; ``claimed`` once the conversation store has claimed it."""

    bot_id: int
    update_id: int
    claimed: bool = False


_DELIVERY: ContextVar[Delivery | None] = ContextVar("frontdesk_delivery", default=None)


@contextmanager
def delivering(bot_id: int, update_id: int) -> Iterator[Delivery]:
    """Name the update fed in this context (bot/admission.AdmittingDispatcher.feed_update)."""
    delivery = Delivery(bot_id, update_id)
    token = _DELIVERY.set(delivery)
    try:
        yield delivery
    finally:
        _DELIVERY.reset(token)


def current_delivery() -> Delivery | None:
    return _DELIVERY.get()


class Deduplicator(Protocol):
    async def claim(self, bot_id: int, update_id: int) -> bool:
        """True for the first delivery of this update to this bot, False for a repeat."""
        ...


class MemoryDeduplicator:
    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS, max_entries: int = 200_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[int, int], float] = OrderedDict()

    async def claim(self, bot_id: int, update_id: int) -> bool:
        now = time.monotonic()
        while self._seen:  # drop expired claims, oldest first
            key, at = next(iter(self._seen.items()))
            if now - at < self.ttl and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)
        key = (bot_id, update_id)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class RedisDeduplicator:
    def __init__(self, redis: Any, ttl_seconds: int = DEFAULT_TTL_SECONDS, prefix: str = "frontdesk:upd") -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.prefix = prefix

    def key(self, bot_id: int, update_id: int) -> str:
        return f"{self.prefix}:{bot_id}:{update_id}"

    async def claim(self, bot_id: int, update_id: int) -> bool:
        return bool(await self.redis.set(self.key(bot_id, update_id), b"1", nx=True, ex=self.ttl))


class DeduplicateUpdates(BaseMiddleware):
    def __init__(self, deduplicator: Deduplicator) -> None:
        self.deduplicator = deduplicator

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update):
            bot = data.get("bot")
            bot_id = bot.id if bot is not None else 0
            delivery = _DELIVERY.get()
            claimed = (
                delivery is not None
                and delivery.claimed
                and (delivery.bot_id, delivery.update_id) == (bot_id, event.update_id)
            )
            if not claimed and not await self.deduplicator.claim(bot_id, event.update_id):
                return None
        return await handler(event, data)
