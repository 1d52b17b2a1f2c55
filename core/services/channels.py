"""Which bot reaches a person, when one deployment runs several bots (one per province, say).

Core does not know Telegram: a bot is an opaque key (``jabar``, ``sulsel``). PL remembers on the account
the key of the bot the person last wrote to (``accounts.bot_key``), so that a notification reaches them
in the chat they use; the province of their faskes or district is the fallback for people who never
wrote since the column existed. The key is routing metadata, like ``api_tokens.last_used_at``: written
only when it changes and not audited (it says nothing about what anybody did in PL).

Built by the composition root (``api/runtime.py``) next to the services of ``registry.build_services``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import aliased

from core.db import models
from core.services.context import CoreContext


@dataclass(frozen=True, slots=True)
class Channel:
    """What routing needs to know of one account: its last bot and the province it belongs to."""

    bot_key: str | None
    province_code: str | None


class ChannelService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def remember(self, telegram_id: int, bot_key: str) -> bool:
        """Record that the account of ``telegram_id`` last wrote to ``bot_key``.

        One conditional UPDATE: no row is written when the key is already the same (or when there is no
        account). True when the account now holds ``bot_key`` because of this call.
        """
        async with self.ctx.uow() as uow:
            result = await uow.session.execute(
                update(models.Account)
                .where(
                    models.Account.telegram_id == telegram_id,
                    or_(models.Account.bot_key.is_(None), models.Account.bot_key != bot_key),
                )
                .values(bot_key=bot_key)
                .execution_options(synchronize_session=False)
            )
            await uow.commit()
        return isinstance(result, CursorResult) and result.rowcount == 1

    async def channel(self, telegram_id: int) -> Channel | None:
        """The account's last bot and province (of its faskes, else of its district); None for a stranger."""
        faskes_kabkota = aliased(models.KabKota)
        own_kabkota = aliased(models.KabKota)
        stmt = (
            select(models.Account.bot_key, faskes_kabkota.province_code, own_kabkota.province_code)
            .select_from(models.Account)
            .outerjoin(models.Faskes, models.Faskes.code == models.Account.faskes_code)
            .outerjoin(faskes_kabkota, faskes_kabkota.code == models.Faskes.kabkota_code)
            .outerjoin(own_kabkota, own_kabkota.code == models.Account.kabkota_code)
            .where(models.Account.telegram_id == telegram_id)
        )
        async with self.ctx.uow() as uow:
            row = (await uow.session.execute(stmt)).first()
        if row is None:
            return None
        bot_key, via_faskes, via_district = row
        return Channel(bot_key=bot_key, province_code=via_faskes or via_district)
