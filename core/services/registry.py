"""All use cases, built once by the composition root from one context."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.engine import create_sessionmaker
from core.ports import Clock, Notifier, SystemClock
from core.services.accounts import AccountService
from core.services.context import CoreContext, NullNotifier
from core.services.lookup import LookupService


@dataclass
class Services:
    ctx: CoreContext
    accounts: AccountService
    lookup: LookupService


def build_services(engine: AsyncEngine, *, clock: Clock | None = None, notifier: Notifier | None = None) -> Services:
    ctx = CoreContext(sessions=create_sessionmaker(engine), clock=clock or SystemClock(), notifier=notifier or NullNotifier())
    return Services(ctx=ctx, accounts=AccountService(ctx), lookup=LookupService(ctx))
