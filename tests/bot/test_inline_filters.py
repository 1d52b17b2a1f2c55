"""aiogram calls a synchronous callback through ``asyncio.to_thread``; ours run inline (bot/factory.py).

Every ``F.…`` filter of our routers is synchronous, so each update used to make about 16 thread-pool
round trips. After ``build_dispatcher`` no filter and no handler is left for the thread pool, and a whole
lookup and registration goes by without a single ``to_thread`` call. Inline is safe only because our
filters are cheap and our handlers are all ``async def``: the first test keeps that true.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Dispatcher, F, Router
from aiogram.dispatcher.event.handler import CallableObject
from sqlalchemy import select

from bot.factory import call_sync_filters_inline
from core.db import models
from core.services.registry import Services
from tests.bot.harness import Harness, Person

RINA = Person(910001, "Rina")


def _callables(dp: Dispatcher) -> list[tuple[str, CallableObject]]:
    out: list[tuple[str, CallableObject]] = []
    for router in dp.chain_tail:
        for name, observer in router.observers.items():
            # The observer's own filters (its ``_handler``'s callback is never called), then each handler.
            out.extend((f"{router.name}.{name} filter", f) for f in observer._handler.filters or ())
            for handler in observer.handlers:
                out.append((f"{router.name}.{name} handler {handler.callback!r}", handler))
                out.extend((f"{router.name}.{name} filter {f.callback!r}", f) for f in handler.filters or ())
    return out


def test_no_handler_or_filter_of_the_dispatcher_goes_to_a_thread(harness: Harness) -> None:
    everything = _callables(harness.dispatcher)
    assert len(everything) > 100  # the routers are really there
    sync = [name for name, c in everything if not c.awaitable]
    assert sync == []


def test_wrapping_keeps_what_a_filter_answers() -> None:
    router = Router()

    async def handler() -> None:
        return None

    router.message.register(handler, F.text == "ya", F.text.startswith("y"))
    assert call_sync_filters_inline(router) == 2
    filters = router.message.handlers[0].filters or []
    assert all(f.awaitable for f in filters)


async def test_a_wrapped_magic_filter_still_decides() -> None:
    router = Router()

    async def handler() -> None:
        return None

    router.message.register(handler, F.text == "ya")
    call_sync_filters_inline(router)
    (f,) = router.message.handlers[0].filters or []

    class Msg:
        text = "ya"

    class Other:
        text = "tidak"

    assert await f.call(Msg()) is True
    assert not await f.call(Other())


async def test_a_lookup_and_registration_use_no_worker_thread(
    harness: Harness, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    original = asyncio.to_thread

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    async with services.ctx.sessions() as s:
        ticket = (
            await s.execute(select(models.Target.ticket).where(models.Target.ticket.is_not(None)).limit(1))
        ).scalar_one()
    calls_lookup = await harness.send(RINA, ticket)
    register = next(d for _, d in harness.buttons(calls_lookup) if d.startswith("t:register:"))
    text = harness.text(await harness.press(RINA, register))
    assert text  # answered
    assert calls == []
