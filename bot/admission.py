"""At most a few updates at work in one process; an update waiting on the network gives its place back.

Under load a process that starts every update it receives time-slices its one event loop between all of them:
each waits for the loop after every statement, and a transaction that holds a lock in PL (the audit chain's head)
keeps everybody else waiting meanwhile. Measured at saturation (docs/performance.md): with at most 8 updates at
work per process, 1.3× the updates per second on one process and a p99 3-4× lower; the others wait their turn
before anything is done for them.

An update's place is given back while it waits on something outside the machine or on another update: a call to
Telegram (the bot's session, :class:`AwayDuringRequests`, which also covers the pacing of bot/outgoing.py), a
reference look-up (JKN, Dukcapil: :class:`AwayDuringLookups`) and the wait for its chat's lock while an earlier
update of the same person is handled (:class:`AwayWhileLocking`: one person's queued updates must not hold the
places everybody else needs). It takes a place again before it goes on, ahead of updates that
have not started. Without that, 8 places and Telegram's 50-300 ms round trips would cap a process at a few dozen
updates per second.

:class:`AdmittingDispatcher` holds a place for the whole of ``feed_update``, so polling, webhooks and the sandbox
all go through it. The places are the process's own; each worker process has its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import Update

from bot.dedup import delivering
from core.domain.reference import ReferenceRecord
from core.ports import ReferenceSource

__all__ = ["Admission", "AdmittingDispatcher", "AwayDuringLookups", "AwayDuringRequests", "AwayWhileLocking"]


class Admission:
    """``limit`` places for updates at work. :meth:`update` holds one for an update; :meth:`away` gives the
    current task's place back around a wait that is not its work (the network, a chat's lock) and takes one
    again, before any update that has not started. A task without a place (a background task, a call outside
    any update) passes through."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an admission needs at least one place")
        self.limit = limit
        self._busy = 0
        self._returning: deque[asyncio.Future[None]] = deque()  # updates back from a wait
        self._arriving: deque[asyncio.Future[None]] = deque()  # updates not started yet
        # The task holding a place in this context. A task started from an update copies the context, not
        # the place: only the task that took it gives it back or away.
        self._holder: ContextVar[asyncio.Task[Any] | None] = ContextVar(f"admission_{id(self)}", default=None)

    @property
    def busy(self) -> int:
        """Places taken (updates at work)."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Updates waiting for a place, new or back from a wait."""
        return sum(not f.done() for f in self._returning) + sum(not f.done() for f in self._arriving)

    @asynccontextmanager
    async def update(self) -> AsyncIterator[None]:
        """Hold a place while the block runs (an update fed from inside an update keeps the one it has)."""
        task = asyncio.current_task()
        if task is None or self._holder.get() is task:
            yield
            return
        await self._take(self._arriving)
        token = self._holder.set(task)
        try:
            yield
        finally:
            self._holder.reset(token)
            self._give()

    @asynccontextmanager
    async def away(self) -> AsyncIterator[None]:
        """Give this task's place back while the block waits; take one again after it."""
        task = asyncio.current_task()
        if task is None or self._holder.get() is not task:
            yield
            return
        token = self._holder.set(None)
        self._give()
        try:
            yield
        finally:
            self._holder.reset(token)
            # Shielded in effect: a cancelled update still takes its place back, which the block of
            # update() then gives away again, so the count stays right.
            await self._take(self._returning, cancellable=False)

    async def _take(self, queue: deque[asyncio.Future[None]], *, cancellable: bool = True) -> None:
        if self._busy < self.limit and not self._returning and not self._arriving:
            self._busy += 1
            return
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(ticket)
        self._grant()  # a place may be free behind tickets given up meanwhile
        cancelled = False
        while True:
            try:
                await asyncio.shield(ticket)
                break
            except asyncio.CancelledError:
                if cancellable:
                    if ticket.done():
                        self._give()  # granted as the cancellation came: not ours to keep
                    else:
                        ticket.cancel()
                    raise
                cancelled = True  # wait for the place all the same, then let the cancellation through
        if cancelled:
            task = asyncio.current_task()
            if task is not None:
                task.cancel()

    def _give(self) -> None:
        self._busy -= 1
        self._grant()

    def _grant(self) -> None:
        for queue in (self._returning, self._arriving):
            while queue and self._busy < self.limit:
                ticket = queue.popleft()
                if not ticket.done():  # done: its waiter was cancelled
                    ticket.set_result(None)
                    self._busy += 1


class AdmittingDispatcher(Dispatcher):
    """A dispatcher that feeds an update only while it holds a place of :attr:`admission` (None: always),
    and names the update it feeds (:func:`bot.dedup.delivering`)."""

    admission: Admission | None = None

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        # The update is named for the conversation store, which claims it with the chat's lock (bot/dedup.py).
        with delivering(bot.id, update.update_id):
            if self.admission is None:
                return await super().feed_update(bot, update, **kwargs)
            async with self.admission.update():
                return await super().feed_update(bot, update, **kwargs)


class AwayDuringRequests(BaseRequestMiddleware):
    """The bot's session middleware (the outermost): a call to Telegram, its pacing and its 429 waits
    included, runs without a place."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        async with self.admission.away():
            return await make_request(bot, method)


class AwayDuringLookups:
    """A reference source whose look-ups run without a place; otherwise the source itself."""

    def __init__(self, inner: ReferenceSource, admission: Admission) -> None:
        self.inner = inner
        self.source = inner.source
        self.admission = admission

    async def fetch(self, nik: str) -> ReferenceRecord | None:
        async with self.admission.away():
            return await self.inner.fetch(nik)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


class AwayWhileLocking(BaseEventIsolation):
    """The dispatcher's events isolation (a lock per chat), taken without a place: an update that waits for an
    earlier update of the same person gives its place back meanwhile; the lock, once taken, is held as before."""

    def __init__(self, inner: BaseEventIsolation, admission: Admission) -> None:
        self.inner = inner
        self.admission = admission

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        async with AsyncExitStack() as held:
            async with self.admission.away():
                await held.enter_async_context(self.inner.lock(key))
            yield

    async def close(self) -> None:
        await self.inner.close()
