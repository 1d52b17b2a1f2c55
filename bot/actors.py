"""Who is acting, remembered for a short while: one query less on almost every update.

The bot needs the actor of each update to pick menus and flows; core re-reads the account inside
every use case (``core.services.accounts.fresh_actor``) and checks that fresh copy. So a remembered
actor only ever decides what the bot *offers*, never what PL accepts, and it can be a little old:

* only **active** accounts are remembered: a stranger, a pending request or a revoked account is read
  from PL on every update, so an approval takes effect on the person's very next message;
* an entry lives ``ttl`` seconds (30 by default, ``ACTOR_CACHE_SECONDS``; 0 turns the cache off);
* ``refresh`` (used by the notifier for every menu refresh and notification, i.e. after every access
  change and language change made in this process) reads PL and replaces the entry at once;
* core refusing an action with ``PermissionDenied`` drops the entry (bot/middlewares.py), so a role
  changed by another worker process corrects itself on the person's next update at the latest.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from core.domain.accounts import Actor

Resolver = Callable[[int], Awaitable[Actor]]


class ActorCache:
    def __init__(self, resolve: Resolver, *, ttl: float = 30.0, max_size: int = 100_000) -> None:
        self._resolve = resolve
        self.ttl = ttl
        self.max_size = max_size
        self._entries: OrderedDict[int, tuple[float, Actor]] = OrderedDict()

    async def get(self, telegram_id: int) -> Actor:
        """The actor of this Telegram user: remembered if fresh enough, else read from PL."""
        entry = self._entries.get(telegram_id)
        if entry is not None:
            if entry[0] > time.monotonic():
                return entry[1]
            del self._entries[telegram_id]
        return await self.refresh(telegram_id)

    async def refresh(self, telegram_id: int) -> Actor:
        """Read PL now and remember the result (or forget the person, if not an active account)."""
        actor = await self._resolve(telegram_id)
        if self.ttl > 0 and actor.is_active:
            self._entries[telegram_id] = (time.monotonic() + self.ttl, actor)
            self._entries.move_to_end(telegram_id)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
        else:
            self._entries.pop(telegram_id, None)
        return actor

    def forget(self, telegram_id: int) -> None:
        self._entries.pop(telegram_id, None)

    def __len__(self) -> int:
        return len(self._entries)
