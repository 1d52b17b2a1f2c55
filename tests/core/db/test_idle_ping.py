"""Pooled PostgreSQL connections are pinged before use only after sitting idle (core/db/engine.py).

A connection in steady use is not pinged (the ping is three round trips with asyncpg); one idle for longer
than ``idle_ping_seconds`` is, and a dead one is swapped for a fresh one before the use case sees it. A
connection that dies while the pool thinks it fresh fails one use case with ``Unavailable('database')``,
and the next one reconnects. The connections are killed for real, with ``pg_terminate_backend``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.engine import create_engine
from core.domain.errors import Unavailable
from core.ports import FixedClock
from core.services.lookup import TargetCard
from core.services.registry import Services, build_services
from tests.core.services.test_registration import MEJA1, a_target, actor

pytestmark = pytest.mark.parametrize("demo_db_url", ["postgres"], indirect=True)


async def kill_pool_connections(url: str) -> int:
    """Terminate every other backend on the test's database (the engine's pooled connections)."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, password=u.password, database=u.database)
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return len(killed)


class Connects:
    """How many new DBAPI connections the engine opens."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "connect", self._on)

    def _on(self, *_args: object) -> None:
        self.count += 1


@asynccontextmanager
async def services_over(
    url: str, clock: FixedClock, idle_ping_seconds: float
) -> AsyncIterator[tuple[AsyncEngine, Services]]:
    engine = create_engine(url, pool_size=1, idle_ping_seconds=idle_ping_seconds)
    try:
        yield engine, build_services(engine, clock=clock)
    finally:
        await engine.dispose()


@pytest.fixture
async def pinging(demo_db_url: str, clock: FixedClock) -> AsyncIterator[tuple[AsyncEngine, Services]]:
    async with services_over(demo_db_url, clock, idle_ping_seconds=0.0) as pair:
        yield pair


@pytest.fixture
async def trusting(demo_db_url: str, clock: FixedClock) -> AsyncIterator[tuple[AsyncEngine, Services]]:
    async with services_over(demo_db_url, clock, idle_ping_seconds=3600.0) as pair:
        yield pair


async def looked_up_then_killed(
    engine: AsyncEngine, services: Services, url: str
) -> tuple[Callable[[], Awaitable[TargetCard]], int, Connects]:
    """One lookup (the pool now holds its connection), then every pooled backend killed."""
    meja1 = await actor(services, MEJA1)
    target = await a_target(services)
    connects = Connects(engine)

    def lookup() -> Awaitable[TargetCard]:
        return services.lookup.find(meja1, target.ticket)

    assert (await lookup()).target_id == target.id
    assert connects.count == 0  # the pooled connection was reused
    assert await kill_pool_connections(url) >= 1
    return lookup, target.id, connects


async def test_an_idle_connection_killed_under_the_pool_is_replaced_before_the_use_case_runs(
    pinging: tuple[AsyncEngine, Services], demo_db_url: str
) -> None:
    lookup, target_id, connects = await looked_up_then_killed(*pinging, demo_db_url)

    card = await lookup()  # idle past the threshold: pinged, found dead

    assert card.target_id == target_id
    assert connects.count == 1  # the dead connection was replaced by one fresh connection


async def test_a_connection_in_steady_use_is_not_pinged_and_a_dead_one_fails_one_use_case_only(
    trusting: tuple[AsyncEngine, Services], demo_db_url: str
) -> None:
    lookup, target_id, connects = await looked_up_then_killed(*trusting, demo_db_url)

    with pytest.raises(Unavailable):  # not pinged: the use case meets the dead connection
        await lookup()
    card = await lookup()  # the pool has recycled it

    assert card.target_id == target_id
    assert connects.count == 1
