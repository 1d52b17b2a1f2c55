"""Monitoring for BPJS branches and Dinkes: read-only queries behind the support API.

Everything here reads PL, aggregates in SQL, and is limited by a :class:`RegionScope`: a principal for
province 32 sees only districts 32xx and their faskes. Asking for a region outside the scope raises
``PermissionDenied("other_region")``; without an explicit region the results are filtered to the scope.
NIKs and phone numbers come masked unless ``unmask`` is asked for (the API checks the scope for it).
Nothing here writes, except :meth:`StatsService.target` with ``unmask``, which records who read a whole
NIK in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    or_,
    select,
    true,
)

from core.db import models
from core.db.uow import SqlUnitOfWork
from core.domain.audit import AuditDraft
from core.domain.errors import InvalidInput, NotFound
from core.domain.identifiers import mask_nik, mask_phone, parse_lookup_key
from core.domain.timeutil import WIB, local_date
from core.domain.visits import UNFINISHED
from core.services.context import CoreContext
from core.services.tokens import Principal, RegionScope

__all__ = [
    "GROUPINGS",
    "MAX_PROGRESS_DAYS",
    "UNFINISHED",
    "AccessRequestView",
    "AccountView",
    "AuditEventView",
    "AuditPage",
    "CorrectionView",
    "DistrictAccounts",
    "Page",
    "ProgressReport",
    "ProgressRow",
    "RecipientList",
    "RecipientView",
    "StatsService",
    "StuckVisit",
    "TargetView",
    "VisitView",
    "mask_personal",
]

GROUPINGS: Final = ("day", "province", "kabkota", "faskes")
MAX_PROGRESS_DAYS: Final = 92
OUTCOMES: Final = ("lanjut", "tunda", "tidak_diberikan")
KIPI_LEVELS: Final = ("none", "mild", "serious")
#: A visit in one of these states at the end of its day was opened but not finished: stuck.

_V, _T, _F, _K, _P = models.Visit, models.Target, models.Faskes, models.KabKota, models.Province


def _kabkota_in(regions: RegionScope, kabkota: Any) -> ColumnElement[bool]:
    """SQL: a district code column is inside the scope (district codes start with the province's)."""
    if regions.everything:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if regions.kabkota:
        clauses.append(kabkota.in_(sorted(regions.kabkota)))
    if regions.provinces:
        clauses.append(func.substr(kabkota, 1, 2).in_(sorted(regions.provinces)))
    return or_(*clauses) if clauses else false()


# --------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------

_NIK_KEYS: Final = frozenset({"nik"})
_PHONE_KEYS: Final = frozenset({"phone", "phone_number", "no_hp"})


def mask_personal(value: Any) -> Any:
    """JSON (audit before/after, correction evidence) with every ``nik`` and ``phone`` value masked."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _NIK_KEYS and isinstance(item, str):
                out[key] = mask_nik(item)
            elif key in _PHONE_KEYS and isinstance(item, str):
                out[key] = mask_phone(item)
            else:
                out[key] = mask_personal(item)
        return out
    if isinstance(value, list):
        return [mask_personal(v) for v in value]
    return value


def _nik(nik: str, unmask: bool) -> str:
    return nik if unmask else mask_nik(nik)


def _phone(phone: str | None, unmask: bool) -> str | None:
    if phone is None:
        return None
    return phone if unmask else mask_phone(phone)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgressRow:
    """Counts of visits for one group (a day, a region, a faskes, or a combination)."""

    day: date | None = None
    province_code: str | None = None
    province_name: str | None = None
    kabkota_code: str | None = None
    kabkota_name: str | None = None
    faskes_code: str | None = None
    faskes_name: str | None = None
    registered: int = 0
    screened: dict[str, int] = field(default_factory=dict)  # by outcome: lanjut, tunda, tidak_diberikan
    rujuk: int = 0
    vaccinated: dict[int, int] = field(default_factory=dict)  # by dose number
    kipi: dict[str, int] = field(default_factory=dict)  # by severity: none, mild, serious


@dataclass(frozen=True, slots=True)
class ProgressReport:
    date_from: date
    date_to: date
    group_by: tuple[str, ...]
    rows: tuple[ProgressRow, ...]
    totals: ProgressRow
    next_offset: int | None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class RecipientView:
    visit_id: int
    target_id: int
    ticket: str
    name: str
    nik: str
    phone: str | None
    dose_number: int
    status: str
    opened_at: datetime
    screened_at: datetime | None
    outcome: str | None
    rujuk: bool
    vaccinated_at: datetime | None
    product_code: str | None
    kipi: str | None
    observed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecipientList:
    """A faskes' Daftar Penerima Vaksin for one day: who came, each with their desk status."""

    faskes_code: str
    faskes_name: str
    day: date
    scheduled_not_arrived: int  # assigned to this faskes for the day, no visit anywhere that day
    items: tuple[RecipientView, ...]
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class VisitView:
    visit_id: int
    dose_number: int
    status: str
    faskes_code: str
    faskes_name: str
    service_date: date
    opened_at: datetime
    outcome: str | None
    rujuk: bool
    rescreen_date: date | None
    product_code: str | None
    batch: str | None
    vaccinated_at: datetime | None
    next_due_date: date | None
    kipi: str | None
    observed_at: datetime | None


@dataclass(frozen=True, slots=True)
class TargetView:
    target_id: int
    ticket: str
    nik: str
    name: str
    birth_date: date
    sex: str
    phone: str | None
    category: str
    assigned_faskes_code: str | None
    assigned_faskes_name: str | None
    scheduled_date: date | None
    source: str
    version: int
    has_desk_entry: bool
    created_at: datetime
    updated_at: datetime
    visits: tuple[VisitView, ...]
    unmasked: bool


@dataclass(frozen=True, slots=True)
class AuditEventView:
    seq: int
    at: datetime
    actor_account_id: int | None
    actor_role: str
    faskes_code: str | None
    kabkota_code: str | None
    action: str
    entity: str
    entity_id: str
    target_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: tuple[AuditEventView, ...]
    next_cursor: int | None  # pass as ``cursor`` for the next (older) page


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: int
    name: str
    phone: str | None
    kind: str
    roles: tuple[str, ...]
    faskes_code: str | None
    kabkota_code: str | None
    state: str
    created_at: datetime
    state_changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccessRequestView:
    request_id: int
    account_id: int
    name: str
    phone: str
    faskes_code: str
    kabkota_code: str
    roles: tuple[str, ...]
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DistrictAccounts:
    kabkota_code: str
    kabkota_name: str
    accounts_by_state: dict[str, int]
    pending_requests: int
    queued_corrections: int


@dataclass(frozen=True, slots=True)
class CorrectionView:
    correction_id: int
    kind: str
    target_id: int | None
    nik: str
    faskes_code: str
    kabkota_code: str
    submitted_by: int
    submitted_at: datetime
    status: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    evidence: list[Any]


@dataclass(frozen=True, slots=True)
class StuckVisit:
    visit_id: int
    target_id: int
    ticket: str
    name: str
    nik: str
    dose_number: int
    status: str
    faskes_code: str
    faskes_name: str
    kabkota_code: str
    service_date: date
    opened_at: datetime
    days_open: int


def _page(items: Sequence[T], limit: int, offset: int) -> tuple[tuple[T, ...], int | None]:
    """Items were fetched with ``limit + 1``: the extra one says there is a next page."""
    more = len(items) > limit
    return tuple(items[:limit]), (offset + limit if more else None)


def _detach(uow: SqlUnitOfWork) -> None:
    """Keep the rows read usable after the (read-only) unit of work rolls back and closes."""
    uow.session.expunge_all()


def _roles(raw: str) -> tuple[str, ...]:
    return tuple(r for r in raw.split(",") if r)


# --------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------


class StatsService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    def today(self) -> date:
        """Today in WIB: the default end of a progress range."""
        return local_date(self.ctx.clock.now(), WIB)

    # --- regions ----------------------------------------------------------------------------

    @staticmethod
    async def _faskes(uow: SqlUnitOfWork, regions: RegionScope, code: str) -> models.Faskes:
        faskes = await uow.regions.faskes(code)
        if faskes is None:
            raise NotFound("faskes")
        regions.require_kabkota(faskes.kabkota_code)
        return faskes

    async def _narrow(
        self,
        uow: SqlUnitOfWork,
        regions: RegionScope,
        *,
        province: str | None,
        kabkota: str | None,
        faskes: str | None,
        kabkota_col: Any,
        faskes_col: Any | None = None,
    ) -> list[ColumnElement[bool]]:
        """WHERE clauses for the scope and an optional explicit region (403 when outside the scope)."""
        where = [_kabkota_in(regions, kabkota_col)]
        if province is not None:
            if (
                not regions.everything
                and province not in regions.provinces
                and not any(k.startswith(province) for k in regions.kabkota)
            ):
                regions.require_province(province)
            where.append(func.substr(kabkota_col, 1, 2) == province)
        if kabkota is not None:
            regions.require_kabkota(kabkota)
            where.append(kabkota_col == kabkota)
        if faskes is not None:
            found = await self._faskes(uow, regions, faskes)
            if faskes_col is None:
                where.append(kabkota_col == found.kabkota_code)
            else:
                where.append(faskes_col == faskes)
        return where

    # --- progress ---------------------------------------------------------------------------

    async def progress(
        self,
        regions: RegionScope,
        *,
        date_from: date | None = None,
        date_to: date | None = None,
        group_by: Iterable[str] = ("day",),
        province: str | None = None,
        kabkota: str | None = None,
        faskes: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> ProgressReport:
        """Visits per group: registered, screened by outcome (and rujuk), vaccinated per dose, KIPI by
        severity. The day is the visit's service date (local to the faskes). Default range: the last 7
        days to today (WIB); at most :data:`MAX_PROGRESS_DAYS` days."""
        groups = tuple(g for g in GROUPINGS if g in set(group_by))
        unknown = set(group_by) - set(GROUPINGS)
        if unknown:
            raise InvalidInput("group_by", got=",".join(sorted(unknown))[:40])
        date_to = date_to or self.today()
        date_from = date_from or date_to - timedelta(days=6)
        if date_from > date_to or (date_to - date_from).days >= MAX_PROGRESS_DAYS:
            raise InvalidInput("date_range", max_days=MAX_PROGRESS_DAYS)

        keys: list[Any] = []
        if "day" in groups:
            keys.append(_V.service_date.label("day"))
        if "province" in groups:
            keys += [_K.province_code.label("province_code"), _P.name.label("province_name")]
        if "kabkota" in groups:
            keys += [_F.kabkota_code.label("kabkota_code"), _K.name.label("kabkota_name")]
        if "faskes" in groups:
            keys += [_V.faskes_code.label("faskes_code"), _F.name.label("faskes_name")]

        def n(cond: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

        async with self.ctx.uow(read_only=True) as uow:
            where = await self._narrow(
                uow,
                regions,
                province=province,
                kabkota=kabkota,
                faskes=faskes,
                kabkota_col=_F.kabkota_code,
                faskes_col=_V.faskes_code,
            )
            where.append(_V.service_date.between(date_from, date_to))

            def base(group: list[Any], *cols: Any) -> Select[Any]:
                return (
                    select(*group, *cols)
                    .select_from(_V)
                    .join(_F, _F.code == _V.faskes_code)
                    .join(_K, _K.code == _F.kabkota_code)
                    .join(_P, _P.code == _K.province_code)
                    .where(*where)
                )

            async def fetch(group: list[Any]) -> tuple[list[Any], dict[tuple[Any, ...], dict[int, int]]]:
                counts = base(
                    group,
                    func.count().label("registered"),
                    *(n(_V.outcome == o).label(f"o_{o}") for o in OUTCOMES),
                    n(_V.rujuk.is_(True)).label("rujuk"),
                    *(n(_V.kipi == k).label(f"k_{k}") for k in KIPI_LEVELS),
                )
                if group:
                    counts = counts.group_by(*group).order_by(*group).limit(limit + 1).offset(offset)
                rows = list((await uow.session.execute(counts)).mappings().all())
                dose_stmt = base(group, _V.dose_number, func.count().label("n")).where(_V.vaccinated_at.is_not(None))
                doses: dict[tuple[Any, ...], dict[int, int]] = {}
                for row in (await uow.session.execute(dose_stmt.group_by(*group, _V.dose_number))).mappings():
                    key = tuple(row[k.name] for k in group)
                    doses.setdefault(key, {})[int(row["dose_number"])] = int(row["n"])
                return rows, doses

            rows, doses = await fetch(keys) if keys else ([], {})
            total_rows, total_doses = await fetch([])

        items, next_offset = _page(rows, limit, offset)
        out = tuple(self._progress_row(row, keys, doses) for row in items)
        total = self._progress_row(total_rows[0], [], total_doses)
        return ProgressReport(date_from, date_to, groups, out, total, next_offset)

    @staticmethod
    def _progress_row(
        row: Mapping[str, Any], keys: list[Any], doses: dict[tuple[Any, ...], dict[int, int]]
    ) -> ProgressRow:
        key = tuple(row[k.name] for k in keys)
        names = {k.name: row[k.name] for k in keys}
        return ProgressRow(
            day=names.get("day"),
            province_code=names.get("province_code"),
            province_name=names.get("province_name"),
            kabkota_code=names.get("kabkota_code"),
            kabkota_name=names.get("kabkota_name"),
            faskes_code=names.get("faskes_code"),
            faskes_name=names.get("faskes_name"),
            registered=int(row["registered"]),
            screened={o: int(row[f"o_{o}"]) for o in OUTCOMES},
            rujuk=int(row["rujuk"]),
            vaccinated=dict(sorted(doses.get(key, {}).items())),
            kipi={k: int(row[f"k_{k}"]) for k in KIPI_LEVELS},
        )

    # --- a faskes' list for a day -----------------------------------------------------------

    async def recipients(
        self,
        regions: RegionScope,
        faskes_code: str,
        day: date,
        *,
        unmask: bool = False,
        limit: int = 500,
        offset: int = 0,
    ) -> RecipientList:
        """The Daftar Penerima Vaksin of ``faskes_code`` on ``day``: the visits opened there that day, in
        the order people arrived, each with its desk status."""
        async with self.ctx.uow(read_only=True) as uow:
            faskes = await self._faskes(uow, regions, faskes_code)
            stmt = (
                select(_V, _T.ticket, _T.name, _T.nik, _T.phone)
                .join(_T, _T.id == _V.target_id)
                .where(_V.faskes_code == faskes_code, _V.service_date == day)
                .order_by(_V.opened_at, _V.id)
                .limit(limit + 1)
                .offset(offset)
            )
            rows = (await uow.session.execute(stmt)).all()
            came = exists().where(_V.target_id == _T.id, _V.service_date == day)
            waiting = await uow.session.scalar(
                select(func.count())
                .select_from(_T)
                .where(_T.assigned_faskes_code == faskes_code, _T.scheduled_date == day, ~came)
            )
            _detach(uow)
        page, next_offset = _page(rows, limit, offset)
        items = tuple(
            RecipientView(
                visit_id=v.id,
                target_id=v.target_id,
                ticket=ticket,
                name=name,
                nik=_nik(nik, unmask),
                phone=_phone(phone, unmask),
                dose_number=v.dose_number,
                status=v.status,
                opened_at=v.opened_at,
                screened_at=v.screened_at,
                outcome=v.outcome,
                rujuk=v.rujuk,
                vaccinated_at=v.vaccinated_at,
                product_code=v.product_code,
                kipi=v.kipi,
                observed_at=v.observed_at,
            )
            for v, ticket, name, nik, phone in page
        )
        return RecipientList(faskes.code, faskes.name, day, int(waiting or 0), items, next_offset)

    # --- one target -------------------------------------------------------------------------

    async def target(
        self, principal: Principal, *, key: str | None = None, target_id: int | None = None, unmask: bool = False
    ) -> TargetView:
        """A target by ticket or NIK (``key``) or by id, with its visits. Inside the principal's regions
        when assigned to, or served at, a faskes there (or, with neither, registered there by NIK).
        Reading a whole NIK is recorded in the audit trail (``target.read_unmasked``)."""
        regions = principal.regions
        async with self.ctx.uow(read_only=not unmask) as uow:  # unmasking is recorded (an audit event)
            target: models.Target | None
            if key is not None:
                kind, value = parse_lookup_key(key)
                target = await (uow.targets.by_nik(value) if kind == "nik" else uow.targets.by_ticket(value))
            elif target_id is not None:
                target = await uow.targets.get(target_id)
            else:
                raise InvalidInput("lookup_key", got=0)
            if target is None:
                raise NotFound("target")
            rows = (
                await uow.session.execute(
                    select(_V, _F.name, _F.kabkota_code)
                    .join(_F, _F.code == _V.faskes_code)
                    .where(_V.target_id == target.id)
                    .order_by(_V.id)
                )
            ).all()
            assigned = await uow.regions.faskes(target.assigned_faskes_code) if target.assigned_faskes_code else None
            districts = {kk for _, _, kk in rows} | ({assigned.kabkota_code} if assigned else set())
            if not districts:
                districts = {target.nik[:4]}
            if not any(regions.allows_kabkota(d) for d in districts):
                regions.require_kabkota(sorted(districts)[0])
            if unmask:
                uow.audit(
                    AuditDraft(
                        action="target.read_unmasked",
                        entity="target",
                        entity_id=str(target.id),
                        target_id=target.id,
                        after={"by": principal.label},
                        kabkota_code=assigned.kabkota_code if assigned else None,
                    )
                )
                await uow.commit()
            visits = tuple(
                VisitView(
                    visit_id=v.id,
                    dose_number=v.dose_number,
                    status=v.status,
                    faskes_code=v.faskes_code,
                    faskes_name=fname,
                    service_date=v.service_date,
                    opened_at=v.opened_at,
                    outcome=v.outcome,
                    rujuk=v.rujuk,
                    rescreen_date=v.rescreen_date,
                    product_code=v.product_code,
                    batch=v.batch,
                    vaccinated_at=v.vaccinated_at,
                    next_due_date=v.next_due_date,
                    kipi=v.kipi,
                    observed_at=v.observed_at,
                )
                for v, fname, _ in rows
            )
            return TargetView(
                target_id=target.id,
                ticket=target.ticket,
                nik=_nik(target.nik, unmask),
                name=target.name,
                birth_date=target.birth_date,
                sex=target.sex,
                phone=_phone(target.phone, unmask),
                category=target.category,
                assigned_faskes_code=target.assigned_faskes_code,
                assigned_faskes_name=assigned.name if assigned else None,
                scheduled_date=target.scheduled_date,
                source=target.source,
                version=target.version,
                has_desk_entry=target.first_desk_at is not None,
                created_at=target.created_at,
                updated_at=target.updated_at,
                visits=visits,
                unmasked=unmask,
            )

    # --- the audit trail --------------------------------------------------------------------

    async def audit(
        self,
        regions: RegionScope,
        *,
        actor: int | None = None,
        target_id: int | None = None,
        faskes: str | None = None,
        kabkota: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: int | None = None,
        limit: int = 100,
        unmask: bool = False,
    ) -> AuditPage:
        """Audit events, newest first, filtered; ``cursor`` (a ``seq``) continues below it. Events without
        a district (system events: imports, tokens) are visible to all-region principals only."""
        e = models.AuditEvent
        async with self.ctx.uow(read_only=True) as uow:
            where = await self._narrow(
                uow,
                regions,
                province=None,
                kabkota=kabkota,
                faskes=faskes,
                kabkota_col=e.kabkota_code,
                faskes_col=e.faskes_code,
            )
            if actor is not None:
                where.append(e.actor_account_id == actor)
            if target_id is not None:
                where.append(e.target_id == target_id)
            if action is not None:
                where.append(e.action == action)
            if since is not None:
                where.append(e.at >= since)
            if until is not None:
                where.append(e.at < until)
            if cursor is not None:
                where.append(e.seq < cursor)
            stmt = select(e).where(*where).order_by(e.seq.desc()).limit(limit + 1)
            events = list((await uow.session.execute(stmt)).scalars())
            _detach(uow)
        page = events[:limit]
        items = tuple(
            AuditEventView(
                seq=ev.seq,
                at=ev.at,
                actor_account_id=ev.actor_account_id,
                actor_role=ev.actor_role,
                faskes_code=ev.faskes_code,
                kabkota_code=ev.kabkota_code,
                action=ev.action,
                entity=ev.entity,
                entity_id=ev.entity_id,
                target_id=ev.target_id,
                before=ev.before if unmask else mask_personal(ev.before),
                after=ev.after if unmask else mask_personal(ev.after),
                hash=ev.hash,
            )
            for ev in page
        )
        return AuditPage(items, page[-1].seq if len(events) > limit else None)

    # --- accounts, access requests, corrections ----------------------------------------------

    async def accounts(
        self,
        regions: RegionScope,
        *,
        kabkota: str | None = None,
        faskes: str | None = None,
        state: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AccountView]:
        """Accounts of faskes staff and Dinkes admins, by district (phones masked)."""
        a = models.Account
        district = func.coalesce(a.kabkota_code, _F.kabkota_code)
        async with self.ctx.uow(read_only=True) as uow:
            where = await self._narrow(
                uow,
                regions,
                province=None,
                kabkota=kabkota,
                faskes=faskes,
                kabkota_col=district,
                faskes_col=a.faskes_code,
            )
            if state is not None:
                where.append(a.state == state)
            if kind is not None:
                where.append(a.kind == kind)
            stmt = (
                select(a, district.label("district"))
                .outerjoin(_F, _F.code == a.faskes_code)
                .where(*where)
                .order_by(a.id)
                .limit(limit + 1)
                .offset(offset)
            )
            rows = (await uow.session.execute(stmt)).all()
            _detach(uow)
        page, next_offset = _page(rows, limit, offset)
        return Page(
            tuple(
                AccountView(
                    account_id=acc.id,
                    name=acc.name,
                    phone=_phone(acc.phone, False),
                    kind=acc.kind,
                    roles=_roles(acc.roles),
                    faskes_code=acc.faskes_code,
                    kabkota_code=kk,
                    state=acc.state,
                    created_at=acc.created_at,
                    state_changed_at=acc.state_changed_at,
                )
                for acc, kk in page
            ),
            next_offset,
        )

    async def access_requests(
        self,
        regions: RegionScope,
        *,
        kabkota: str | None = None,
        status: str = "pending",
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AccessRequestView]:
        """Access requests (pending by default), oldest first: what each Dinkes still has to decide."""
        r = models.AccessRequest
        async with self.ctx.uow(read_only=True) as uow:
            where = await self._narrow(
                uow, regions, province=None, kabkota=kabkota, faskes=None, kabkota_col=r.kabkota_code
            )
            stmt = (
                select(r).where(*where, r.status == status).order_by(r.created_at, r.id).limit(limit + 1).offset(offset)
            )
            rows = list((await uow.session.execute(stmt)).scalars())
            _detach(uow)
        page, next_offset = _page(rows, limit, offset)
        return Page(
            tuple(
                AccessRequestView(
                    request_id=req.id,
                    account_id=req.account_id,
                    name=req.name,
                    phone=mask_phone(req.phone),
                    faskes_code=req.faskes_code,
                    kabkota_code=req.kabkota_code,
                    roles=_roles(req.roles),
                    status=req.status,
                    created_at=req.created_at,
                )
                for req in page
            ),
            next_offset,
        )

    async def districts(self, regions: RegionScope) -> tuple[DistrictAccounts, ...]:
        """Per district in scope: accounts by state, pending access requests, corrections waiting."""
        a, r, c = models.Account, models.AccessRequest, models.Correction
        district = func.coalesce(a.kabkota_code, _F.kabkota_code)
        async with self.ctx.uow(read_only=True) as uow:
            names = dict(
                (
                    await uow.session.execute(
                        select(_K.code, _K.name).where(_kabkota_in(regions, _K.code)).order_by(_K.code)
                    )
                ).all()
            )
            accounts = (
                await uow.session.execute(
                    select(district, a.state, func.count())
                    .select_from(a)
                    .outerjoin(_F, _F.code == a.faskes_code)
                    .where(_kabkota_in(regions, district), district.is_not(None))
                    .group_by(district, a.state)
                )
            ).all()
            pending = dict(
                (
                    await uow.session.execute(
                        select(r.kabkota_code, func.count())
                        .where(r.status == "pending", _kabkota_in(regions, r.kabkota_code))
                        .group_by(r.kabkota_code)
                    )
                ).all()
            )
            queued = dict(
                (
                    await uow.session.execute(
                        select(c.kabkota_code, func.count())
                        .where(c.status == "queued", _kabkota_in(regions, c.kabkota_code))
                        .group_by(c.kabkota_code)
                    )
                ).all()
            )
        by_state: dict[str, dict[str, int]] = {}
        for code, state, count in accounts:
            by_state.setdefault(code, {})[state] = int(count)
        return tuple(
            DistrictAccounts(
                kabkota_code=code,
                kabkota_name=name,
                accounts_by_state=by_state.get(code, {}),
                pending_requests=int(pending.get(code, 0)),
                queued_corrections=int(queued.get(code, 0)),
            )
            for code, name in names.items()
        )

    async def corrections(
        self,
        regions: RegionScope,
        *,
        kabkota: str | None = None,
        status: str = "queued",
        unmask: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[CorrectionView]:
        """Corrections and additions (waiting for a Dinkes decision by default), oldest first."""
        c = models.Correction
        async with self.ctx.uow(read_only=True) as uow:
            where = await self._narrow(
                uow, regions, province=None, kabkota=kabkota, faskes=None, kabkota_col=c.kabkota_code
            )
            stmt = (
                select(c)
                .where(*where, c.status == status)
                .order_by(c.submitted_at, c.id)
                .limit(limit + 1)
                .offset(offset)
            )
            rows = list((await uow.session.execute(stmt)).scalars())
            _detach(uow)
        page, next_offset = _page(rows, limit, offset)
        return Page(
            tuple(
                CorrectionView(
                    correction_id=x.id,
                    kind=x.kind,
                    target_id=x.target_id,
                    nik=_nik(x.nik, unmask),
                    faskes_code=x.faskes_code,
                    kabkota_code=x.kabkota_code,
                    submitted_by=x.submitted_by,
                    submitted_at=x.submitted_at,
                    status=x.status,
                    before=x.before if unmask else mask_personal(x.before),
                    after=x.after if unmask else mask_personal(x.after),
                    evidence=x.evidence if unmask else mask_personal(x.evidence),
                )
                for x in page
            ),
            next_offset,
        )

    # --- stuck records ----------------------------------------------------------------------

    async def stuck(
        self,
        regions: RegionScope,
        *,
        kabkota: str | None = None,
        faskes: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[StuckVisit]:
        """Visits opened but not finished (waiting for screening or vaccination, or vaccinated without
        an observation) by the end of their day, in the faskes' own time zone; oldest first."""
        now = self.ctx.clock.now()
        async with self.ctx.uow(read_only=True) as uow:
            where = await self._narrow(
                uow,
                regions,
                province=None,
                kabkota=kabkota,
                faskes=faskes,
                kabkota_col=_F.kabkota_code,
                faskes_col=_V.faskes_code,
            )
            if kabkota is not None and faskes is None:
                # The district's faskes by code, so that each is looked up in the unfinished visits' faskes index
                # (a join by district leaves the planner free to walk the whole index instead).
                codes = (await uow.session.execute(select(_F.code).where(_F.kabkota_code == kabkota))).scalars()
                where.append(_V.faskes_code.in_(list(codes)))
            zones = list((await uow.session.execute(select(_K.timezone).distinct())).scalars())
            past_day = or_(*(and_(_K.timezone == tz, _V.service_date < local_date(now, tz)) for tz in zones))
            # The statuses as literals (rendered at execution), so that the partial indexes on unfinished visits
            # serve the query; the latest "today" anywhere bounds the day range for the index as well.
            unfinished: BindParameter[list[str]] = bindparam(
                "unfinished", [s.value for s in UNFINISHED], expanding=True, literal_execute=True
            )
            before = max((local_date(now, tz) for tz in zones), default=local_date(now, WIB))
            stmt = (
                select(_V, _T.ticket, _T.name, _T.nik, _F.name, _F.kabkota_code, _K.timezone)
                .join(_T, _T.id == _V.target_id)
                .join(_F, _F.code == _V.faskes_code)
                .join(_K, _K.code == _F.kabkota_code)
                .where(
                    *where,
                    _V.status.in_(unfinished),
                    _V.service_date < before,
                    past_day if zones else false(),
                )
                .order_by(_V.service_date, _V.id)
                .limit(limit + 1)
                .offset(offset)
            )
            rows = (await uow.session.execute(stmt)).all()
            _detach(uow)
        page, next_offset = _page(rows, limit, offset)
        return Page(
            tuple(
                StuckVisit(
                    visit_id=v.id,
                    target_id=v.target_id,
                    ticket=ticket,
                    name=name,
                    nik=mask_nik(nik),
                    dose_number=v.dose_number,
                    status=v.status,
                    faskes_code=v.faskes_code,
                    faskes_name=fname,
                    kabkota_code=kk,
                    service_date=v.service_date,
                    opened_at=v.opened_at,
                    days_open=(local_date(now, tz) - v.service_date).days,
                )
                for v, ticket, name, nik, fname, kk, tz in page
            ),
            next_offset,
        )


def _sum_dicts(dicts: Iterable[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))
