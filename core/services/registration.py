"""Meja 1: register an arrival (open a visit for the next dose) and correct the target's phone number.

Registration opens a visit at the actor's faskes for the *local* date there (the faskes' kabkota time
zone), status ``menunggu_skrining``. In the same transaction it stamps ``targets.first_desk_at`` (when
still NULL) and bumps ``targets.version`` with a conditional update on the version the person saw on the
card: a verifier's correction (``WHERE first_desk_at IS NULL AND version = :seen``) and a registration can
therefore never both win, and a registration made from a stale card is refused (``target_changed``).

Rule 2 of DOMAIN.md is :func:`plan_next_dose`, pure and shared with the lookup card (which shows the
Registrasi button only when the plan allows it). Decisions where the specification is silent:

* **Visits left open on an earlier day** (a person registered yesterday who never reached meja 2 or 4)
  would block the target for ever, and nobody could close them from another faskes. The next
  registration closes them as *lapsed*: ``is_open`` becomes false (the status stays what it was, so the
  day's list keeps its history), the visit's version is bumped, and a ``visit.lapse`` audit event is
  written in the same transaction. An open visit of *today* (local date at its faskes) refuses with
  ``open_visit`` and says where.
* **A Tunda without a re-screen date** ("until controlled") does not block: the next screening decides.
* **Tidak diberikan** does not block registration (rule 2 does not list it); the card and the result
  carry its date so that meja 1 can point it out.
* When both a Tunda and the minimum interval block, the later of the two dates is given.
* **Phone changes** are allowed to meja 1 before the target has any visit, and while the target's open
  visit at the actor's own faskes still waits for screening. The open visit's row is locked
  (``SELECT ... FOR UPDATE``) so that screening saved concurrently makes one of the two lose. The audit
  event ``target.phone`` stores the numbers **masked** in before/after (``+62 812-••••-•78``): the audit
  trail is read by support staff and exported, and the full number stays only in the target row.
  Registration and phone changes both bump ``targets.version``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import CursorResult, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from core.db import models
from core.db.driver_statement import DriverStatement, DriverWrite
from core.db.repositories import (
    ACTOR_COLUMNS,
    TARGET_COLUMNS,
    VISIT_COLUMNS,
    DistrictRef,
    FaskesRef,
    set_bound,
    update_params,
)
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import Actor, Role, require_faskes, require_role
from core.domain.audit import AuditDraft
from core.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Refused
from core.domain.identifiers import mask_phone, normalize_phone
from core.domain.timeutil import age_on, local_date
from core.domain.vaccines import (
    PRODUCTS,
    IntervalRule,
    earliest_next_dose,
    is_late,
    min_interval_days,
)
from core.domain.visits import VACCINATED, VisitStatus
from core.services.accounts import ACTOR_WIDTH, account_id_of, fresh_actor, fresh_from_row
from core.services.context import CoreContext

if TYPE_CHECKING:
    from core.services.lookup import TargetCard

__all__ = [
    "DosePlan",
    "PhoneChange",
    "Registration",
    "RegistrationService",
    "VisitFacts",
    "VisitRow",
    "phone_changeable",
    "plan_next_dose",
    "visit_rows",
]

DEFAULT_DOSES = 2


# --------------------------------------------------------------------------------------------
# Pure rules


@dataclass(frozen=True, slots=True)
class VisitFacts:
    """What rule 2 needs to know of one earlier visit."""

    visit_id: int
    dose_number: int
    status: VisitStatus
    is_open: bool
    faskes_code: str
    faskes_name: str
    service_date: date
    local_today: date  # today at the visit's own faskes
    product_code: str | None = None
    rescreen_date: date | None = None


@dataclass(frozen=True, slots=True)
class DosePlan:
    """Whether the target may be registered today, for which dose, and what to warn about.

    ``refusal`` is the reason of the :class:`Refused` (or None) and ``params`` its values.
    """

    dose_number: int | None
    refusal: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    lapse: tuple[int, ...] = ()  # open visits of an earlier day that registering closes
    late_due: date | None = None  # the next dose's earliest date, when more than 30 days ago
    tidak_diberikan_on: date | None = None  # the last "Tidak diberikan", shown as a warning

    @property
    def possible(self) -> bool:
        return self.refusal is None

    def refuse(self) -> Refused:
        return Refused(self.refusal, **self.params)


def plan_next_dose(
    visits: Iterable[VisitFacts],
    *,
    birth_date: date,
    today: date,
    intervals: Sequence[IntervalRule],
    doses_by_product: Mapping[str, int],
) -> DosePlan:
    """Rule 2 of DOMAIN.md for one target on ``today`` (the local date at the registering faskes)."""
    visits = sorted(visits, key=lambda v: (v.service_date, v.visit_id))
    tidak = max((v.service_date for v in visits if v.status is VisitStatus.TIDAK_DIBERIKAN), default=None)

    lapse: list[int] = []
    for v in visits:
        if not v.is_open:
            continue
        if v.service_date < v.local_today:
            lapse.append(v.visit_id)
        else:
            return DosePlan(
                dose_number=v.dose_number,
                refusal="open_visit",
                params={"faskes": v.faskes_name, "date": v.service_date, "dose": v.dose_number},
                tidak_diberikan_on=tidak,
            )

    given = [v for v in visits if v.status in VACCINATED]
    doses_done = {v.dose_number for v in given}
    product = next((v.product_code for v in given if v.product_code), None)
    doses = doses_by_product.get(product, DEFAULT_DOSES) if product else DEFAULT_DOSES
    if len(doses_done) >= doses:
        return DosePlan(dose_number=None, refusal="series_complete", params={"doses": doses})
    dose = max(doses_done, default=0) + 1

    last = max(given, key=lambda v: (v.dose_number, v.service_date), default=None)
    blocks: list[tuple[date, str, dict[str, Any]]] = []
    for v in visits:  # a Tunda counts for the dose still to come, i.e. after the last dose given
        if v.status is not VisitStatus.TUNDA or v.rescreen_date is None or v.rescreen_date <= today:
            continue
        if last is None or v.service_date >= last.service_date:
            blocks.append((v.rescreen_date, "tunda_until", {"until": v.rescreen_date, "date": v.service_date}))

    late_due: date | None = None
    last_product = last.product_code if last else None
    if last is not None and last_product:
        age = age_on(birth_date, today)
        name = PRODUCTS[last_product].name if last_product in PRODUCTS else last_product
        try:
            earliest = earliest_next_dose(intervals, last_product, last.service_date, age, not_before=today)
        except InvalidInput:
            return DosePlan(dose_number=dose, refusal="interval_unknown", params={"product": name})
        if earliest > today:
            blocks.append((earliest, "interval_not_passed", {"earliest": earliest, "product": name, "dose": dose}))
        elif is_late(intervals, last_product, last.service_date, age, today):
            late_due = last.service_date + timedelta(days=min_interval_days(intervals, last_product, today, age))

    if blocks:
        _, reason, params = max(blocks, key=lambda b: b[0])
        return DosePlan(dose_number=dose, refusal=reason, params=params, tidak_diberikan_on=tidak)
    return DosePlan(dose_number=dose, lapse=tuple(lapse), late_due=late_due, tidak_diberikan_on=tidak)


def phone_changeable(visits: Iterable[VisitFacts], faskes_code: str | None) -> bool:
    """Meja 1 may change the phone before any visit, or while the open visit at its faskes awaits screening."""
    visits = list(visits)
    if not visits:
        return True
    return any(v.is_open and v.status is VisitStatus.MENUNGGU_SKRINING and v.faskes_code == faskes_code for v in visits)


# --------------------------------------------------------------------------------------------
# Reading what the rules need


@dataclass(frozen=True, slots=True)
class VisitRow:
    visit: models.Visit
    faskes_name: str
    kabkota_code: str
    timezone: str


# Meja 1's statements, built once (see core/db/repositories.py) and run as the driver's SQL
# (core/db/driver_statement.py).
_VISIT_ROWS: Final = DriverStatement(
    select(*VISIT_COLUMNS.columns, models.Faskes.name, models.KabKota.code, models.KabKota.timezone)
    .join(models.Faskes, models.Visit.faskes_code == models.Faskes.code)
    .join(models.KabKota, models.Faskes.kabkota_code == models.KabKota.code)
    .where(models.Visit.target_id == bindparam("target_id"))
    .order_by(models.Visit.id)
)
# The account (re-checked) and the target, in one statement.
_ACTOR_AND_TARGET: Final = DriverStatement(
    select(*ACTOR_COLUMNS, *TARGET_COLUMNS.columns)
    .select_from(models.Account)
    .outerjoin(models.Target, models.Target.id == bindparam("target_id"))
    .where(models.Account.id == bindparam("account_id"))
)
# The registration's conditional update of the target row, as seen at ``where_version`` (``set_bound``).
_T = models.targets_table.c
_BUMP_TARGET: Final = DriverWrite(  # on the driver on PostgreSQL (core/db/driver_pool.py)
    update(models.targets_table)
    .where(_T.id == bindparam("where_id"), _T.version == bindparam("where_version"))
    .values({**set_bound("first_desk_at", "updated_at"), "version": _T.version + 1})
)


# The new visit of a registration; its id comes back (a DriverWrite: on the driver on PostgreSQL).
_OPENED_WITH: Final = ("target_id", "dose_number", "faskes_code", "service_date", "opened_at", "opened_by")
_OPENED_AS: Final = {"status": VisitStatus.MENUNGGU_SKRINING.value, "is_open": True, "version": 1, "rujuk": False}
_OPEN_VISIT: Final = DriverWrite(
    insert(models.visits_table)
    .values(
        {
            **{name: bindparam(name) for name in _OPENED_WITH},
            **_OPENED_AS,
        }
    )
    .returning(models.visits_table.c.id)
)


async def visit_rows(uow: SqlUnitOfWork, target_id: int) -> list[VisitRow]:
    """The target's visits, oldest first, each with its faskes' name, district and time zone."""
    width = VISIT_COLUMNS.width
    rows = await _VISIT_ROWS.all(uow.session, target_id=target_id)
    return [VisitRow(cast(models.Visit, VISIT_COLUMNS.read(row, 0)), *row[width:]) for row in rows]


def facts_of(rows: Iterable[VisitRow], now: datetime) -> list[VisitFacts]:
    return [
        VisitFacts(
            visit_id=r.visit.id,
            dose_number=r.visit.dose_number,
            status=VisitStatus(r.visit.status),
            is_open=r.visit.is_open,
            faskes_code=r.visit.faskes_code,
            faskes_name=r.faskes_name,
            service_date=r.visit.service_date,
            local_today=local_date(now, r.timezone),
            product_code=r.visit.product_code,
            rescreen_date=r.visit.rescreen_date,
        )
        for r in rows
    ]


async def interval_rules(uow: SqlUnitOfWork) -> tuple[Sequence[IntervalRule], dict[str, int]]:
    """The interval table and the doses of each product, as PL holds them (cached, see ReferenceCache)."""
    tables = await uow.references.vaccines()
    return tables.intervals, tables.doses


async def actor_faskes(uow: SqlUnitOfWork, actor: Actor) -> tuple[FaskesRef, DistrictRef]:
    if actor.faskes_code is None:
        raise PermissionDenied("role", needed=[Role.MEJA1.value])
    found = await uow.references.place(actor.faskes_code)
    if found is None:
        raise NotFound("faskes")
    return found


async def plan_for(uow: SqlUnitOfWork, target: models.Target, rows: Iterable[VisitRow], today: date) -> DosePlan:
    rules, doses = await interval_rules(uow)
    return plan_next_dose(
        facts_of(rows, uow.clock.now()),
        birth_date=target.birth_date,
        today=today,
        intervals=rules,
        doses_by_product=doses,
    )


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Lapsed:
    visit_id: int
    faskes_name: str
    service_date: date


@dataclass(frozen=True, slots=True)
class Registration:
    visit_id: int
    target_id: int
    target_version: int  # the target's version after registration
    dose_number: int
    faskes_code: str
    faskes_name: str
    service_date: date
    status: VisitStatus
    late_due: date | None = None  # warn: the dose is more than 30 days past this earliest date
    tidak_diberikan_on: date | None = None  # warn: an earlier screening refused the dose
    lapsed: tuple[Lapsed, ...] = ()  # open visits of earlier days closed by this registration
    card: TargetCard | None = None  # the card as it stands after registering (``with_card=True``)


@dataclass(frozen=True, slots=True)
class PhoneChange:
    target_id: int
    target_version: int
    phone: str  # E.164: the number as typed, normalised (shown back to the person who typed it)
    changed: bool  # False when the number was already this one (nothing written)


# --------------------------------------------------------------------------------------------
# The use cases


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


class RegistrationService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def register(
        self, actor: Actor, target_id: int, seen_version: int, *, with_card: bool = False
    ) -> Registration:
        """Open a visit for the target's next dose at the actor's faskes, today.

        ``with_card``: also return the target's card as it stands after registering (read in the same
        transaction), so that meja 1 need not read it again.

        Raises ``Refused`` (``open_visit``, ``series_complete``, ``interval_not_passed``, ``tunda_until``,
        ``interval_unknown``, ``meja1_not_vaccinator``), ``Conflict("already_registered", faskes=, date=)`` when
        someone registered the target first, ``Conflict("target_changed")`` when the target changed since
        the card showed ``seen_version``, ``PermissionDenied``, ``NotFound("target")``.
        """
        try:
            return await self._register(actor, target_id, seen_version, with_card)
        except Conflict as exc:
            if exc.reason == "already_registered":
                raise
            where = await self._open_visit_where(actor, target_id)
            if where is not None:
                raise Conflict("already_registered", faskes=where[0], date=where[1]) from exc
            raise Conflict("target_changed") from exc

    async def _register(self, actor: Actor, target_id: int, seen_version: int, with_card: bool) -> Registration:
        async with self.ctx.uow(actor) as uow:
            s = uow.session
            # The account (re-checked) and the target in one statement.
            first = await _ACTOR_AND_TARGET.first(s, target_id=target_id, account_id=account_id_of(actor))
            actor = fresh_from_row(actor, first)
            require_role(actor, Role.MEJA1)
            faskes, kabkota = await actor_faskes(uow, actor)
            if not faskes.is_vaccinator:
                raise Refused("meja1_not_vaccinator", faskes=faskes.name)
            now = uow.clock.now()
            today = local_date(now, kabkota.timezone)
            target = TARGET_COLUMNS.read(first, ACTOR_WIDTH) if first is not None else None
            if target is None:
                raise NotFound("target")
            if target.version != seen_version:
                raise Conflict("stale")
            first_desk_at = target.first_desk_at
            # The conditional update decides every race on the target row (and locks it on PostgreSQL).
            bumped = await _BUMP_TARGET.execute(
                s,
                **update_params(
                    {"first_desk_at": first_desk_at if first_desk_at is not None else now, "updated_at": now},
                    id=target_id,
                    version=seen_version,
                ),
            )
            if bumped != 1:
                raise Conflict("stale")
            rows = await visit_rows(uow, target_id)
            plan = await plan_for(uow, target, rows, today)
            if not plan.possible:
                raise plan.refuse()
            assert plan.dose_number is not None
            lapsed = []
            by_id = {r.visit.id: r for r in rows}
            for visit_id in plan.lapse:
                row = by_id[visit_id]
                old = row.visit
                closed = await s.execute(
                    update(models.Visit)
                    .where(
                        models.Visit.id == visit_id,
                        models.Visit.is_open.is_(True),
                        models.Visit.version == old.version,
                    )
                    .values(is_open=False, version=old.version + 1)
                    .execution_options(synchronize_session=False)
                )
                if _rowcount(closed) != 1:
                    raise Conflict("stale")
                lapsed.append(Lapsed(visit_id, row.faskes_name, old.service_date))
                uow.audit(
                    AuditDraft(
                        action="visit.lapse",
                        entity="visit",
                        entity_id=str(visit_id),
                        target_id=target_id,
                        before={"is_open": True, "status": old.status},
                        after={"is_open": False, "status": old.status, "closed_by_registration_at": faskes.code},
                        faskes_code=old.faskes_code,
                        kabkota_code=row.kabkota_code,
                    )
                )
            opened = {
                "target_id": target_id,
                "dose_number": plan.dose_number,
                "faskes_code": faskes.code,
                "service_date": today,
                "opened_at": now,
                "opened_by": actor.account_id,
            }
            try:
                visit_id = await _OPEN_VISIT.returning(s, **opened)
            except IntegrityError as exc:  # the partial unique index (one open visit per target) speaks here
                raise Conflict("stale") from exc
            # The new visit as written, for the card (held by no session, as the visits read with it).
            visit = models.Visit(id=visit_id, **opened, **_OPENED_AS)
            uow.audit(
                AuditDraft(
                    action="visit.register",
                    entity="visit",
                    entity_id=str(visit.id),
                    target_id=target_id,
                    before={"target_version": seen_version, "first_desk_at": first_desk_at},
                    after={
                        "target_version": seen_version + 1,
                        "first_desk_at": first_desk_at or now,
                        "dose_number": plan.dose_number,
                        "faskes_code": faskes.code,
                        "service_date": today,
                        "status": VisitStatus.MENUNGGU_SKRINING.value,
                        "late_due": plan.late_due,
                    },
                    faskes_code=faskes.code,
                    kabkota_code=kabkota.code,
                )
            )
            card = None
            if with_card:
                from core.services.lookup import build_card  # the card module builds on this one

                # The rows as just written, without reading them again: the conditional updates above bypassed the
                # identity map, so the target's and the lapsed visits' new values are set here; the new visit is as
                # written (it has no server-side default besides its id) and comes last, by id.
                set_committed_value(target, "version", seen_version + 1)
                set_committed_value(target, "first_desk_at", first_desk_at or now)
                for visit_id in plan.lapse:
                    old = by_id[visit_id].visit
                    set_committed_value(old, "is_open", False)
                    set_committed_value(old, "version", old.version + 1)
                after = [*rows, VisitRow(visit, faskes.name, kabkota.code, kabkota.timezone)]
                card = await build_card(uow, actor, target, nik_typed=False, rows=after)
            await uow.commit()
            return Registration(
                visit_id=visit.id,
                target_id=target_id,
                target_version=seen_version + 1,
                dose_number=plan.dose_number,
                faskes_code=faskes.code,
                faskes_name=faskes.name,
                service_date=today,
                status=VisitStatus.MENUNGGU_SKRINING,
                late_due=plan.late_due,
                tidak_diberikan_on=plan.tidak_diberikan_on,
                lapsed=tuple(lapsed),
                card=card,
            )

    async def _open_visit_where(self, actor: Actor, target_id: int) -> tuple[str, date] | None:
        """After a lost race: where the target's open visit is now (faskes name, date), if any."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            stmt = (
                select(models.Faskes.name, models.Visit.service_date)
                .join(models.Faskes, models.Visit.faskes_code == models.Faskes.code)
                .where(models.Visit.target_id == target_id, models.Visit.is_open.is_(True))
            )
            row = (await uow.session.execute(stmt)).first()
            return (row[0], row[1]) if row else None

    async def change_phone(
        self, actor: Actor, target_id: int, raw: str, *, seen_version: int | None = None
    ) -> PhoneChange:
        """Correct the target's phone (meja 1), before any visit or until screening is saved.

        Raises ``InvalidPhone`` (nothing read or written), ``Refused("phone_locked")``,
        ``Conflict("target_changed")`` (someone changed the target since ``seen_version``, or concurrently),
        ``PermissionDenied``, ``NotFound("target")``.
        """
        phone = normalize_phone(raw)
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            require_role(actor, Role.MEJA1)
            await actor_faskes(uow, actor)
            s = uow.session
            target = await uow.targets.get(target_id)
            if target is None:
                raise NotFound("target")
            if seen_version is not None and target.version != seen_version:
                raise Conflict("target_changed")
            version = target.version
            visits = await uow.visits.for_target(target_id)
            if visits:
                # Lock the waiting visit: screening saved at the same moment makes one of the two lose.
                waiting = (
                    await s.execute(
                        select(models.Visit)
                        .where(
                            models.Visit.target_id == target_id,
                            models.Visit.is_open.is_(True),
                            models.Visit.status == VisitStatus.MENUNGGU_SKRINING.value,
                        )
                        .with_for_update()
                        .execution_options(populate_existing=True)
                    )
                ).scalar_one_or_none()
                if waiting is None:
                    raise Refused("phone_locked")
                require_faskes(actor, waiting.faskes_code)
            if target.phone == phone:
                return PhoneChange(target_id, version, phone, changed=False)
            now = uow.clock.now()
            changed = await s.execute(
                update(models.Target)
                .where(models.Target.id == target_id, models.Target.version == version)
                .values(phone=phone, version=version + 1, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(changed) != 1:
                raise Conflict("target_changed")
            uow.audit(
                AuditDraft(
                    action="target.phone",
                    entity="target",
                    entity_id=str(target_id),
                    target_id=target_id,
                    before={"phone": mask_phone(target.phone) if target.phone else None, "version": version},
                    after={"phone": mask_phone(phone), "version": version + 1},
                )
            )
            await uow.commit()
            return PhoneChange(target_id, version + 1, phone, changed=True)
