"""What every use case needs: a way to open a unit of work, a clock, and the outside world's ports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db.driver_pool import DriverPool
from core.db.repositories import ReferenceCache
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import Actor
from core.ports import Clock, Notifier, ReferenceSource
from core.ratelimit import MemoryRateLimiter, RateLimiter


class NullNotifier:
    """Used where nobody is to be told anything (CLI, tests that do not look)."""

    async def notify(self, telegram_id: int, message: str, **params: object) -> None:
        return None

    async def refresh_menu(self, telegram_id: int) -> None:
        return None


@dataclass
class CoreContext:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    notifier: Notifier
    # The JKN master file and Dukcapil (core/references), queried in parallel by verification.
    references: tuple[ReferenceSource, ...] = field(default_factory=tuple)
    reference_timeout: float = 3.0
    rate_limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    lookups_per_minute: int = 60
    # Faskes, districts, vaccine products and intervals (core/db/repositories.py): one copy per context.
    reference_cache: ReferenceCache = field(default_factory=ReferenceCache)
    # Called after each commit with the actions of the audit entries it wrote (api/metrics.py counts them).
    committed: list[Callable[[Sequence[str]], None]] = field(default_factory=list)
    # PostgreSQL through asyncpg itself (core/db/driver_pool.py): the units of work's transactions and driver
    # statements; None on SQLite, or for sessions bound to no single engine.
    driver: DriverPool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        bind = self.sessions.kw.get("bind")
        if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql" and bind.dialect.driver == "asyncpg":
            self.driver = DriverPool.of(bind)

    def uow(self, actor: Actor | None = None, *, read_only: bool = False) -> SqlUnitOfWork:
        """A unit of work; ``read_only`` for use cases that only read (see SqlUnitOfWork)."""
        return SqlUnitOfWork(
            self.sessions,
            self.clock,
            actor,
            references=self.reference_cache,
            read_only=read_only,
            driver=self.driver,
            on_commit=self.committed,
        )

    def forget_references(self) -> None:
        """After reference rows (faskes, districts, vaccine products or intervals) were changed."""
        self.reference_cache.clear()
