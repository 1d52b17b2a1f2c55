"""Accounts: who is acting. Resolving the actor of an update, and re-checking it inside a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.db import models
from core.db.repositories import ACTOR_COLUMNS
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


# How many leading columns of a row are the account's (ACTOR_COLUMNS): use cases that read the account
# together with their first rows (one statement) select these first, see ``fresh_from_row``.
ACTOR_WIDTH = len(ACTOR_COLUMNS)


def actor_from_row(row: Sequence[Any]) -> Actor:
    """An Actor from the ACTOR_COLUMNS at the start of a row."""
    return Actor(
        telegram_id=row[1],
        account_id=row[0],
        name=row[2],
        kind=AccountKind(row[3]),
        state=AccountState(row[4]),
        roles=parse_roles(row[5]),
        faskes_code=row[6],
        kabkota_code=row[7],
        locale=row[8],
    )


def account_id_of(actor: Actor) -> int:
    """The account to re-read; a stranger has none (``PermissionDenied("no_account")``)."""
    if actor.account_id is None:
        raise PermissionDenied("no_account")
    return actor.account_id


def fresh_from_row(actor: Actor, row: Sequence[Any] | None) -> Actor:
    """The fresh actor from a row that starts with ACTOR_COLUMNS (None or NULLs: the account is gone)."""
    if row is None or row[0] is None or row[1] != actor.telegram_id:
        raise PermissionDenied("no_account")
    return actor_from_row(row)


async def fresh_actor(uow: SqlUnitOfWork, actor: Actor) -> Actor:
    """The actor as PL holds it now, inside the use case's transaction.

    The bot resolves the actor once per update; a revocation that lands in between must still bite,
    so every use case re-reads the account here (or in its first statement, see ``fresh_from_row``)
    and checks the fresh copy.
    """
    return fresh_from_row(actor, await uow.accounts.actor_row(account_id_of(actor)))


class AccountService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def resolve_actor(self, telegram_id: int) -> Actor:
        """One query per update: the account behind a Telegram user, or a stranger."""
        async with self.ctx.uow(read_only=True) as uow:
            row = await uow.accounts.actor_row_by_telegram_id(telegram_id)
            return actor_from_row(row) if row is not None else Actor(telegram_id=telegram_id)
