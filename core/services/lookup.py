"""Look up a target by ticket or NIK: the card staff see at meja 1."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from core.db import models
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import AccountKind, Actor, require_active
from core.domain.errors import NotFound, PermissionDenied
from core.domain.identifiers import mask_nik, mask_phone, parse_lookup_key
from core.domain.timeutil import age_on, local_date
from core.domain.visits import VACCINATED, VisitStatus
from core.services.accounts import fresh_actor
from core.services.context import CoreContext


@dataclass(frozen=True, slots=True)
class VisitSummary:
    visit_id: int
    dose_number: int
    status: VisitStatus
    faskes_code: str
    faskes_name: str
    service_date: date
    product_code: str | None = None
    outcome_reasons: tuple[str, ...] = ()
    rescreen_date: date | None = None
    rujuk: bool = False
    next_due_date: date | None = None


@dataclass(frozen=True, slots=True)
class TargetCard:
    """What staff see of a target. The NIK is whole only when the person typed it."""

    target_id: int
    version: int
    ticket: str
    nik: str  # whole when typed, masked otherwise
    nik_typed: bool
    name: str
    birth_date: date
    age: int
    sex: str
    phone_masked: str | None
    category: str
    assigned_faskes_code: str | None
    assigned_faskes_name: str | None
    scheduled_date: date | None
    visits: tuple[VisitSummary, ...]
    has_desk_entry: bool
    today: date

    @property
    def doses_given(self) -> tuple[VisitSummary, ...]:
        return tuple(v for v in self.visits if v.status in VACCINATED)

    @property
    def open_visit(self) -> VisitSummary | None:
        return next((v for v in self.visits if v.status in (VisitStatus.MENUNGGU_SKRINING, VisitStatus.MENUNGGU_VAKSINASI)), None)


class LookupService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def find(self, actor: Actor, raw_key: str) -> TargetCard:
        """Find by ticket or NIK (exact, after normalising). Raises InvalidNik/InvalidTicket/NotFound."""
        kind, key = parse_lookup_key(raw_key)
        async with self.ctx.uow(actor) as uow:
            actor = await _check_reader(uow, actor)
            target = await (uow.targets.by_nik(key) if kind == "nik" else uow.targets.by_ticket(key))
            if target is None:
                raise NotFound(kind)
            return await build_card(uow, actor, target, nik_typed=kind == "nik")

    async def card(self, actor: Actor, target_id: int, *, nik_typed: bool = False) -> TargetCard:
        """Re-read a card (after an action), by its id from a button: the scope is checked again."""
        async with self.ctx.uow(actor) as uow:
            actor = await _check_reader(uow, actor)
            target = await uow.targets.get(target_id)
            if target is None:
                raise NotFound("target")
            return await build_card(uow, actor, target, nik_typed=nik_typed)


async def _check_reader(uow: SqlUnitOfWork, actor: Actor) -> Actor:
    fresh = await fresh_actor(uow, actor)
    require_active(fresh)
    return fresh


async def build_card(uow: SqlUnitOfWork, actor: Actor, target: models.Target, *, nik_typed: bool) -> TargetCard:
    s = uow.session
    if actor.kind is AccountKind.DINKES:
        await _check_district(uow, actor, target)
    rows = (
        await s.execute(
            select(models.Visit, models.Faskes.name, models.KabKota.timezone)
            .join(models.Faskes, models.Visit.faskes_code == models.Faskes.code)
            .join(models.KabKota, models.Faskes.kabkota_code == models.KabKota.code)
            .where(models.Visit.target_id == target.id)
            .order_by(models.Visit.id)
        )
    ).all()
    visits = tuple(
        VisitSummary(
            visit_id=v.id,
            dose_number=v.dose_number,
            status=VisitStatus(v.status),
            faskes_code=v.faskes_code,
            faskes_name=fname,
            service_date=v.service_date,
            product_code=v.product_code,
            outcome_reasons=tuple(r["code"] if isinstance(r, dict) else str(r) for r in (v.reasons or [])),
            rescreen_date=v.rescreen_date,
            rujuk=v.rujuk,
            next_due_date=v.next_due_date,
        )
        for v, fname, _tz in rows
    )
    assigned_name = None
    tz = "Asia/Jakarta"
    if target.assigned_faskes_code:
        found = await uow.regions.faskes_with_district(target.assigned_faskes_code)
        if found:
            assigned_name = found[0].name
    if actor.faskes_code:
        own = await uow.regions.faskes_with_district(actor.faskes_code)
        if own:
            tz = own[1].timezone
    elif actor.kabkota_code:
        kk = await uow.regions.kabkota(actor.kabkota_code)
        if kk:
            tz = kk.timezone
    today = local_date(uow.clock.now(), tz)
    return TargetCard(
        target_id=target.id,
        version=target.version,
        ticket=target.ticket,
        nik=target.nik if nik_typed else mask_nik(target.nik),
        nik_typed=nik_typed,
        name=target.name,
        birth_date=target.birth_date,
        age=age_on(target.birth_date, today),
        sex=target.sex,
        phone_masked=mask_phone(target.phone) if target.phone else None,
        category=target.category,
        assigned_faskes_code=target.assigned_faskes_code,
        assigned_faskes_name=assigned_name,
        scheduled_date=target.scheduled_date,
        visits=visits,
        has_desk_entry=target.first_desk_at is not None,
        today=today,
    )


async def _check_district(uow: SqlUnitOfWork, actor: Actor, target: models.Target) -> None:
    """A Dinkes admin reads targets assigned to, or served in, their own district only."""
    codes: set[str] = set()
    if target.assigned_faskes_code:
        codes.add(target.assigned_faskes_code)
    codes.update(v.faskes_code for v in await uow.visits.for_target(target.id))
    for code in codes:
        f = await uow.regions.faskes(code)
        if f and f.kabkota_code == actor.kabkota_code:
            return
    raise PermissionDenied("other_district")
