"""Repositories: the queries of the PL database, named for what the domain asks of them.

They never commit; the unit of work does. Hot paths select only what they need.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import models


class _Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session


class TargetRepository(_Repository):
    async def by_nik(self, nik: str) -> models.Target | None:
        return (await self.session.execute(select(models.Target).where(models.Target.nik == nik))).scalar_one_or_none()

    async def by_ticket(self, ticket: str) -> models.Target | None:
        stmt = select(models.Target).where(models.Target.ticket == ticket)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get(self, target_id: int) -> models.Target | None:
        return await self.session.get(models.Target, target_id)

    def add(self, target: models.Target) -> None:
        self.session.add(target)


class VisitRepository(_Repository):
    async def for_target(self, target_id: int) -> list[models.Visit]:
        stmt = select(models.Visit).where(models.Visit.target_id == target_id).order_by(models.Visit.id)
        return list((await self.session.execute(stmt)).scalars())

    async def get(self, visit_id: int) -> models.Visit | None:
        return await self.session.get(models.Visit, visit_id)

    async def at_faskes_on(self, faskes_code: str, service_date: date) -> list[models.Visit]:
        stmt = (
            select(models.Visit)
            .where(models.Visit.faskes_code == faskes_code, models.Visit.service_date == service_date)
            .order_by(models.Visit.opened_at)
        )
        return list((await self.session.execute(stmt)).scalars())

    def add(self, visit: models.Visit) -> None:
        self.session.add(visit)


class AccountRepository(_Repository):
    async def by_telegram_id(self, telegram_id: int) -> models.Account | None:
        stmt = select(models.Account).where(models.Account.telegram_id == telegram_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get(self, account_id: int) -> models.Account | None:
        return await self.session.get(models.Account, account_id)

    async def active_dinkes_of(self, kabkota_code: str) -> list[models.Account]:
        stmt = select(models.Account).where(
            models.Account.kind == "dinkes",
            models.Account.kabkota_code == kabkota_code,
            models.Account.state == "active",
        )
        return list((await self.session.execute(stmt)).scalars())

    async def of_faskes(self, faskes_code: str) -> list[models.Account]:
        stmt = select(models.Account).where(models.Account.faskes_code == faskes_code).order_by(models.Account.name)
        return list((await self.session.execute(stmt)).scalars())

    def add(self, account: models.Account) -> None:
        self.session.add(account)


class AccessRequestRepository(_Repository):
    async def get(self, request_id: int) -> models.AccessRequest | None:
        return await self.session.get(models.AccessRequest, request_id)

    async def pending_for_account(self, account_id: int) -> models.AccessRequest | None:
        stmt = select(models.AccessRequest).where(
            models.AccessRequest.account_id == account_id, models.AccessRequest.status == "pending"
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def pending_in(self, kabkota_code: str | None) -> list[models.AccessRequest]:
        stmt = select(models.AccessRequest).where(models.AccessRequest.status == "pending")
        if kabkota_code is not None:
            stmt = stmt.where(models.AccessRequest.kabkota_code == kabkota_code)
        return list((await self.session.execute(stmt.order_by(models.AccessRequest.created_at))).scalars())

    def add(self, request: models.AccessRequest) -> None:
        self.session.add(request)


class RegionRepository(_Repository):
    async def faskes(self, code: str) -> models.Faskes | None:
        return await self.session.get(models.Faskes, code)

    async def kabkota(self, code: str) -> models.KabKota | None:
        return await self.session.get(models.KabKota, code)

    async def province(self, code: str) -> models.Province | None:
        return await self.session.get(models.Province, code)

    async def faskes_with_district(self, code: str) -> tuple[models.Faskes, models.KabKota] | None:
        stmt = (
            select(models.Faskes, models.KabKota)
            .join(models.KabKota, models.Faskes.kabkota_code == models.KabKota.code)
            .where(models.Faskes.code == code)
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None


class VaccineRepository(_Repository):
    async def products(self) -> list[models.VaccineProduct]:
        return list(
            (await self.session.execute(select(models.VaccineProduct).order_by(models.VaccineProduct.code))).scalars()
        )

    async def intervals(self) -> list[models.VaccineInterval]:
        stmt = select(models.VaccineInterval).order_by(
            models.VaccineInterval.product_code, models.VaccineInterval.effective_from
        )
        return list((await self.session.execute(stmt)).scalars())


class CorrectionRepository(_Repository):
    async def get(self, correction_id: int) -> models.Correction | None:
        return await self.session.get(models.Correction, correction_id)

    async def queued_in(self, kabkota_code: str | None) -> list[models.Correction]:
        stmt = select(models.Correction).where(models.Correction.status == "queued")
        if kabkota_code is not None:
            stmt = stmt.where(models.Correction.kabkota_code == kabkota_code)
        return list((await self.session.execute(stmt.order_by(models.Correction.submitted_at))).scalars())

    def add(self, correction: models.Correction) -> None:
        self.session.add(correction)


class AuditRepository(_Repository):
    async def chain(self, after_seq: int = 0, limit: int = 10_000) -> list[models.AuditEvent]:
        stmt = (
            select(models.AuditEvent)
            .where(models.AuditEvent.seq > after_seq)
            .order_by(models.AuditEvent.seq)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def head(self) -> models.AuditHead:
        return (await self.session.execute(select(models.AuditHead).where(models.AuditHead.id == 1))).scalar_one()
