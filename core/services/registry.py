"""All use cases, built once by the composition root from one context."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.engine import create_sessionmaker
from core.ports import Clock, Notifier, ReferenceSource, SystemClock
from core.ratelimit import MemoryRateLimiter, RateLimiter
from core.services.access import AccessService
from core.services.accounts import AccountService
from core.services.audit import AuditService
from core.services.context import CoreContext, NullNotifier
from core.services.imports import ImportService
from core.services.lookup import LookupService
from core.services.recipients import RecipientsService
from core.services.registration import RegistrationService
from core.services.screening import ScreeningService
from core.services.stats import StatsService
from core.services.tokens import TokenService
from core.services.vaccination import VaccinationService
from core.services.verification import VerificationService


@dataclass
class Services:
    ctx: CoreContext
    accounts: AccountService
    access: AccessService
    lookup: LookupService
    registration: RegistrationService
    recipients: RecipientsService
    screening: ScreeningService
    vaccination: VaccinationService
    verification: VerificationService
    audit: AuditService
    stats: StatsService
    tokens: TokenService
    imports: ImportService

    def set_notifier(self, notifier: Notifier) -> None:
        """The bot's notifier exists only after the services (it resolves actors through them)."""
        self.ctx.notifier = notifier


def build_services(
    engine: AsyncEngine,
    *,
    clock: Clock | None = None,
    notifier: Notifier | None = None,
    references: tuple[ReferenceSource, ...] = (),
    reference_timeout: float = 3.0,
    rate_limiter: RateLimiter | None = None,
    lookups_per_minute: int = 60,
) -> Services:
    ctx = CoreContext(
        sessions=create_sessionmaker(engine),
        clock=clock or SystemClock(),
        notifier=notifier or NullNotifier(),
        references=references,
        reference_timeout=reference_timeout,
        rate_limiter=rate_limiter or MemoryRateLimiter(),
        lookups_per_minute=lookups_per_minute,
    )
    return Services(
        ctx=ctx,
        accounts=AccountService(ctx),
        access=AccessService(ctx),
        lookup=LookupService(ctx),
        registration=RegistrationService(ctx),
        recipients=RecipientsService(ctx),
        screening=ScreeningService(ctx),
        vaccination=VaccinationService(ctx),
        verification=VerificationService(ctx),
        audit=AuditService(ctx),
        stats=StatsService(ctx),
        tokens=TokenService(ctx),
        imports=ImportService(ctx),
    )
