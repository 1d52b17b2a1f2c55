"""Repositories: the queries of the PL database, named for what the domain asks of them.

They never commit; the unit of work does. Hot paths select only what they need.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Protocol, cast

from sqlalchemy import BindParameter, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from core.db import models
from core.db.driver_statement import DriverStatement, EntityColumns
from core.domain.vaccines import IntervalRule
from core.domain.visits import VisitStatus


class _Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session


# A conditional update built once binds the values it sets as ``new_<column>`` and its conditions as
# ``where_<name>``: SQLAlchemy takes an execution parameter named like a column of the table for a value to set.
def set_bound(*columns: str) -> dict[str, BindParameter[Any]]:
    """The SET clause of an update built once: each column bound as ``new_<column>``."""
    return {column: bindparam(f"new_{column}") for column in columns}


def update_params(values: Mapping[str, Any], **where: Any) -> dict[str, Any]:
    """The parameters of an update built with ``set_bound``: each value as ``new_<column>``, each condition as
    ``where_<name>``."""
    return {**{f"new_{c}": v for c, v in values.items()}, **{f"where_{k}": v for k, v in where.items()}}


# Hot statements are built once, with their values bound at execution: building the desk's list and computing its
# cache key on every call cost the bot 0.2 ms of CPU (0.70 -> 0.50 ms a call), more than PostgreSQL spends running
# it (0.15 ms; docs/performance.md, round seven).
_TARGET_BY_NIK: Final = select(models.Target).where(models.Target.nik == bindparam("nik"))
_TARGET_BY_TICKET: Final = select(models.Target).where(models.Target.ticket == bindparam("ticket"))
_VISITS_OF_TARGET: Final = (
    select(models.Visit).where(models.Visit.target_id == bindparam("target_id")).order_by(models.Visit.id)
)


class DeskRow(Protocol):
    """A row of a desk's list: what the list shows of a visit, and the target's name."""

    @property
    def id(self) -> int: ...
    @property
    def target_id(self) -> int: ...
    @property
    def dose_number(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def opened_at(self) -> datetime: ...
    @property
    def screened_at(self) -> datetime | None: ...
    @property
    def vaccinated_at(self) -> datetime | None: ...
    @property
    def name(self) -> str: ...


def _desk_list_statement(
    waiting: VisitStatus, today_only: VisitStatus, today_since: QueryableAttribute[Any]
) -> DriverStatement:
    """A desk's list: the faskes' visits ``waiting`` today (open), and those that reached ``today_only`` since the
    start of the local day (``today_since``), each with the target's name.

    Columns, not entities: a list of forty people loads no ORM object, and it reads what the database holds now
    even after a conditional update in the same unit of work (a save reads the list it leaves behind). Run as the
    driver's SQL (core/db/driver_statement.py): a visit reads the desks' lists four times.
    """
    V = models.Visit
    return DriverStatement(
        select(
            V.id, V.target_id, V.dose_number, V.status, V.opened_at, V.screened_at, V.vaccinated_at, models.Target.name
        )
        .join(models.Target, V.target_id == models.Target.id)
        .where(
            V.faskes_code == bindparam("faskes_code"),
            or_(
                and_(V.service_date == bindparam("today"), V.status == waiting.value, V.is_open.is_(True)),
                and_(V.status == today_only.value, today_since >= bindparam("day_start")),
            ),
        )
    )


# Meja 2: waiting for screening, and today's Tunda (editable until the day ends).
_SCREENING_LIST: Final = _desk_list_statement(
    VisitStatus.MENUNGGU_SKRINING, VisitStatus.TUNDA, models.Visit.screened_at
)
# Meja 4: waiting for vaccination, and those under observation since today.
_VACCINATION_LIST: Final = _desk_list_statement(
    VisitStatus.MENUNGGU_VAKSINASI, VisitStatus.OBSERVASI, models.Visit.vaccinated_at
)


class TargetRepository(_Repository):
    async def by_nik(self, nik: str) -> models.Target | None:
        return (await self.session.execute(_TARGET_BY_NIK, {"nik": nik})).scalar_one_or_none()

    async def by_ticket(self, ticket: str) -> models.Target | None:
        return (await self.session.execute(_TARGET_BY_TICKET, {"ticket": ticket})).scalar_one_or_none()

    async def get(self, target_id: int) -> models.Target | None:
        return await self.session.get(models.Target, target_id)

    def add(self, target: models.Target) -> None:
        self.session.add(target)


class VisitRepository(_Repository):
    async def for_target(self, target_id: int) -> list[models.Visit]:
        return list((await self.session.execute(_VISITS_OF_TARGET, {"target_id": target_id})).scalars())

    async def get(self, visit_id: int) -> models.Visit | None:
        return await self.session.get(models.Visit, visit_id)

    async def at_faskes_on(self, faskes_code: str, service_date: date) -> list[models.Visit]:
        stmt = (
            select(models.Visit)
            .where(models.Visit.faskes_code == faskes_code, models.Visit.service_date == service_date)
            .order_by(models.Visit.opened_at)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def screening_list(self, faskes_code: str, today: date, day_start: datetime) -> Sequence[DeskRow]:
        """Meja 2's list in one statement: the faskes' visits waiting for screening today, and its Tunda screened
        since ``day_start`` (the local day's start)."""
        return await self._desk_list(_SCREENING_LIST, faskes_code, today, day_start)

    async def vaccination_list(self, faskes_code: str, today: date, day_start: datetime) -> Sequence[DeskRow]:
        """Meja 4's list in one statement: the faskes' visits waiting for vaccination today, and those vaccinated
        (under observation) since ``day_start``."""
        return await self._desk_list(_VACCINATION_LIST, faskes_code, today, day_start)

    async def _desk_list(
        self, stmt: DriverStatement, faskes_code: str, today: date, day_start: datetime
    ) -> Sequence[DeskRow]:
        rows = await stmt.all(self.session, faskes_code=faskes_code, today=today, day_start=day_start)
        return cast(Sequence[DeskRow], rows)

    def add(self, visit: models.Visit) -> None:
        self.session.add(visit)


# The columns an Actor is made of (core.services.accounts.actor_from_row), read without the ORM's identity map:
# the account is read on every update and on every use case, so this is the hottest read of all.
ACTOR_COLUMNS = (
    models.Account.id,
    models.Account.telegram_id,
    models.Account.name,
    models.Account.kind,
    models.Account.state,
    models.Account.roles,
    models.Account.faskes_code,
    models.Account.kabkota_code,
    models.Account.locale,
)


# Every column of a visit and of a target, to read beside the account in one statement of the driver's
# (core/db/driver_statement.py): the visit a desk opens or saves, the target meja 1 looks up or registers.
VISIT_COLUMNS: Final = EntityColumns(models.Visit, "v")
TARGET_COLUMNS: Final = EntityColumns(models.Target, "t")

# The account's re-check, on nearly every desk update, and the bot's look-up of its sender.
_ACTOR_BY_ID: Final = DriverStatement(select(*ACTOR_COLUMNS).where(models.Account.id == bindparam("account_id")))
_ACTOR_BY_TELEGRAM_ID: Final = DriverStatement(
    select(*ACTOR_COLUMNS).where(models.Account.telegram_id == bindparam("telegram_id"))
)


class AccountRepository(_Repository):
    async def actor_row(self, account_id: int) -> Any:
        return await _ACTOR_BY_ID.first(self.session, account_id=account_id)

    async def actor_row_by_telegram_id(self, telegram_id: int) -> Any:
        return await _ACTOR_BY_TELEGRAM_ID.first(self.session, telegram_id=telegram_id)

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


# --- reference data, cached in-process ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaskesRef:
    code: str
    name: str
    kabkota_code: str
    kind: str
    is_vaccinator: bool


@dataclass(frozen=True, slots=True)
class DistrictRef:
    code: str
    province_code: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class ProductRef:
    code: str
    name: str
    doses: int


@dataclass(frozen=True, slots=True)
class VaccineTables:
    products: tuple[ProductRef, ...]  # by code
    intervals: tuple[IntervalRule, ...]  # by product, then effective_from

    @property
    def doses(self) -> dict[str, int]:
        return {p.code: p.doses for p in self.products}

    def product(self, code: str | None) -> ProductRef | None:
        return next((p for p in self.products if p.code == code), None)


class ReferenceCache:
    """An in-process copy of the reference rows every desk step reads: faskes with their district, the
    vaccine products and their intervals.

    These rows change only by migration, seed or a deliberate admin edit in SQL, never through a use case.
    A copy is trusted for ``ttl`` seconds (monotonic time), so such an edit reaches every worker within
    that time without a restart; ``clear()`` forgets everything at once (tests that edit reference rows,
    or a future admin use case, call it after their commit). One cache per CoreContext, so per engine:
    two databases never share a copy. Only rows that exist are remembered.
    """

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._places: dict[str, tuple[float, FaskesRef, DistrictRef]] = {}
        self._districts: dict[str, tuple[float, DistrictRef]] = {}
        self._vaccines: tuple[float, VaccineTables] | None = None

    def clear(self) -> None:
        self._places.clear()
        self._districts.clear()
        self._vaccines = None

    def _fresh(self, stamp: float) -> bool:
        return time.monotonic() - stamp < self.ttl


class ReferenceRepository(_Repository):
    """Reads of the reference tables through the context's :class:`ReferenceCache`."""

    def __init__(self, session: AsyncSession, cache: ReferenceCache) -> None:
        super().__init__(session)
        self.cache = cache

    async def place(self, faskes_code: str) -> tuple[FaskesRef, DistrictRef] | None:
        """A faskes and its district (kabupaten/kota, with the time zone)."""
        c = self.cache
        hit = c._places.get(faskes_code)
        if hit is not None and c._fresh(hit[0]):
            return hit[1], hit[2]
        F, K = models.Faskes, models.KabKota
        stmt = (
            select(F.code, F.name, F.kabkota_code, F.kind, F.is_vaccinator, K.province_code, K.name, K.timezone)
            .join(K, F.kabkota_code == K.code)
            .where(F.code == faskes_code)
        )
        row = (await self.session.execute(stmt)).first()
        if row is None:
            return None
        faskes = FaskesRef(row[0], row[1], row[2], row[3], bool(row[4]))
        district = DistrictRef(row[2], row[5], row[6], row[7])
        now = time.monotonic()
        c._places[faskes_code] = (now, faskes, district)
        c._districts[district.code] = (now, district)
        return faskes, district

    async def district(self, kabkota_code: str) -> DistrictRef | None:
        c = self.cache
        hit = c._districts.get(kabkota_code)
        if hit is not None and c._fresh(hit[0]):
            return hit[1]
        K = models.KabKota
        stmt = select(K.code, K.province_code, K.name, K.timezone).where(K.code == kabkota_code)
        row = (await self.session.execute(stmt)).first()
        if row is None:
            return None
        district = DistrictRef(row[0], row[1], row[2], row[3])
        c._districts[kabkota_code] = (time.monotonic(), district)
        return district

    async def vaccines(self) -> VaccineTables:
        """The products and the interval table, as PL holds them."""
        c = self.cache
        if c._vaccines is not None and c._fresh(c._vaccines[0]):
            return c._vaccines[1]
        P, Iv = models.VaccineProduct, models.VaccineInterval
        products = (await self.session.execute(select(P.code, P.name, P.doses).order_by(P.code))).all()
        intervals = (
            await self.session.execute(
                select(Iv.product_code, Iv.effective_from, Iv.min_days, Iv.min_days_age_60).order_by(
                    Iv.product_code, Iv.effective_from
                )
            )
        ).all()
        tables = VaccineTables(
            tuple(ProductRef(p[0], p[1], p[2]) for p in products),
            tuple(IntervalRule(r[0], r[1], r[2], r[3]) for r in intervals),
        )
        c._vaccines = (time.monotonic(), tables)
        return tables


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
