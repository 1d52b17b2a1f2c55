"""Accounts: who is acting. Resolving the actor of an update, and re-checking it inside a transaction."""

from __future__ import annotations

from core.db import models
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import AccountKind, AccountState, Actor, parse_roles
from core.domain.errors import PermissionDenied
from core.services.context import CoreContext


def actor_from_account(account: models.Account) -> Actor:
    return Actor(
        telegram_id=account.telegram_id,
        account_id=account.id,
        name=account.name,
        kind=AccountKind(account.kind),
        state=AccountState(account.state),
        roles=parse_roles(account.roles),
        faskes_code=account.faskes_code,
        kabkota_code=account.kabkota_code,
        locale=account.locale,
    )


async def fresh_actor(uow: SqlUnitOfWork, actor: Actor) -> Actor:
    """The actor as PL holds it now, inside the use case's transaction.

    The bot resolves the actor once per update; a revocation that lands in between must still bite,
    so every writing use case re-reads the account here and checks the fresh copy.
    """
    if actor.account_id is None:
        raise PermissionDenied("no_account")
    account = await uow.accounts.get(actor.account_id)
    if account is None or account.telegram_id != actor.telegram_id:
        raise PermissionDenied("no_account")
    return actor_from_account(account)


class AccountService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def resolve_actor(self, telegram_id: int) -> Actor:
        """One query per update: the account behind a Telegram user, or a stranger."""
        async with self.ctx.uow() as uow:
            account = await uow.accounts.by_telegram_id(telegram_id)
            return actor_from_account(account) if account else Actor(telegram_id=telegram_id)
