"""Telegram may deliver an update more than once (webhook retries, a restarted poller): handle each once.

The first delivery of an update id claims it; later deliveries within the TTL are dropped before any
handler runs. Redis (``SET NX EX``) shares the claims between worker processes; memory serves the
embedded default.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

DEFAULT_TTL_SECONDS = 24 * 3600  # Telegram keeps undelivered updates for 24 hours


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

    async def claim(self, bot_id: int, update_id: int) -> bool:
        return bool(await self.redis.set(f"{self.prefix}:{bot_id}:{update_id}", b"1", nx=True, ex=self.ttl))


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
            if not await self.deduplicator.claim(bot_id, event.update_id):
                return None
        return await handler(event, data)
