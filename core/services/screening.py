"""Screening at meja 2: record the vitals and the checklist of the rule set in force, exactly once.

The rule set is chosen by the date of the screening (the faskes' local date) and the target's category;
the age on that date and the visit's dose number decide which items are asked (``core.domain.screening``).
Core computes the outcome itself when saving: what the bot previews is re-judged from PL's own facts, and
a preview that no longer matches (``seen_outcome``) is refused rather than silently saved.

Saving is a conditional update ``WHERE id = :id AND status = 'menunggu_skrining' AND faskes_code = :own``:
a double tap or two desks at once give one screening and one ``Conflict``.

**Editing a Tunda** *(our reading of "a Tunda may be edited until 23:59")*: the same visit is screened
again, completely (vitals and checklist, the previous answers offered as the starting point), by meja 2 of
the same faskes, until 23:59 local time of the day it was screened. The visit stays Tunda until the new
screening is saved; the save replaces the screening fields in one conditional update
(``WHERE status = 'tunda' AND version = :seen``) and may turn the outcome into Lanjut (the visit reopens,
waiting for vaccination; the one-open-visit index refuses it if another visit of the person is open) or
Tidak diberikan. The audit event ``visit.screen_edit`` keeps the replaced screening as ``before``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from core.db import models
from core.db.driver_statement import DriverStatement, DriverWrite
from core.db.repositories import ACTOR_COLUMNS, TARGET_COLUMNS, VISIT_COLUMNS, DeskRow, set_bound, update_params
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import Actor, Role, require_faskes, require_role
from core.domain.audit import AuditDraft
from core.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Refused
from core.domain.identifiers import mask_nik, parse_lookup_key
from core.domain.screening import (
    RULE_SETS,
    Outcome,
    RuleSet,
    ScreeningResult,
    Vitals,
    applicable_items,
    evaluate,
    needs_remeasure,
    select_rule_set,
)
from core.domain.timeutil import age_on, end_of_local_day, local, local_date, start_of_local_day
from core.domain.visits import VisitStatus
from core.domain.vitals import DIASTOLIC_RANGE, SYSTOLIC_RANGE, TEMPERATURE_MAX, TEMPERATURE_MIN
from core.services.accounts import ACTOR_WIDTH, account_id_of, fresh_actor, fresh_from_row
from core.services.context import CoreContext

__all__ = [
    "QUEUE_LIMIT",
    "ChecklistItem",
    "PreviousScreening",
    "QueueEntry",
    "ScreeningForm",
    "ScreeningQueue",
    "ScreeningSaved",
    "ScreeningService",
    "ScreeningSubject",
    "locate_visit",
    "normalize_vitals",
]

#: At most this many visits are listed as buttons; the rest are reached by ticket or NIK.
QUEUE_LIMIT = 20

_TENTH = Decimal("0.1")


# --------------------------------------------------------------------------------------------
# Pure helpers (the bot previews with these; the service saves with the same ones)


def normalize_vitals(vitals: Vitals) -> Vitals:
    """Check the ranges again (input is untrusted) and keep one decimal of temperature, as PL stores it.

    Rounding first means the value judged is exactly the value stored (``Numeric(4, 1)``).
    """
    temperature = vitals.temperature_c.quantize(_TENTH, rounding=ROUND_HALF_UP)
    if not TEMPERATURE_MIN <= temperature <= TEMPERATURE_MAX:
        raise InvalidInput("temperature", got=str(vitals.temperature_c))
    readings = [(vitals.systolic, vitals.diastolic)]
    if vitals.systolic_2 is not None and vitals.diastolic_2 is not None:
        readings.append((vitals.systolic_2, vitals.diastolic_2))
    for systolic, diastolic in readings:
        if not (
            SYSTOLIC_RANGE[0] <= systolic <= SYSTOLIC_RANGE[1]
            and DIASTOLIC_RANGE[0] <= diastolic <= DIASTOLIC_RANGE[1]
            and systolic > diastolic
        ):
            raise InvalidInput("blood_pressure", got=f"{systolic}/{diastolic}")
    return Vitals(temperature, vitals.systolic, vitals.diastolic, vitals.systolic_2, vitals.diastolic_2)


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One question as asked: ``parent_id`` is set for a follow-up (asked only after a yes to the parent)."""

    id: str
    parent_id: str | None = None
    follow_ups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScreeningSubject:
    """What decides a screening: the rule set, the age, the dose, the date. All JSON-friendly values."""

    rule_set_id: str
    age: int
    dose_number: int
    service_date: date

    @property
    def rule_set(self) -> RuleSet:
        return RULE_SETS[self.rule_set_id]

    def items(self) -> tuple[ChecklistItem, ...]:
        """Every applicable item in display order, a follow-up right after its parent."""
        rs = self.rule_set
        out: list[ChecklistItem] = []
        for item in applicable_items(rs, age=self.age, dose_number=self.dose_number):
            parent = rs.parent_of(item.id)
            out.append(ChecklistItem(item.id, parent.id if parent else None, item.follow_ups))
        return tuple(out)

    def visible(self, yes: Iterable[str]) -> tuple[ChecklistItem, ...]:
        """The items to show now: every top-level item, and a follow-up only when its parent is yes."""
        chosen = set(yes)
        return tuple(i for i in self.items() if i.parent_id is None or i.parent_id in chosen)

    def answers(self, yes: Iterable[str]) -> dict[str, bool]:
        """The complete answer map for the visible items: yes for ``yes``, no for every other."""
        chosen = set(yes)
        return {item.id: item.id in chosen for item in self.visible(chosen)}

    def needs_remeasure(self, vitals: Vitals) -> bool:
        return needs_remeasure(self.rule_set, vitals)

    def evaluate(self, vitals: Vitals, answers: Mapping[str, bool]) -> ScreeningResult:
        return evaluate(
            self.rule_set,
            age=self.age,
            dose_number=self.dose_number,
            vitals=normalize_vitals(vitals),
            answers=answers,
            service_date=self.service_date,
        )

    def asked(self, answers: Mapping[str, bool]) -> dict[str, bool]:
        """Only the answers to questions that were asked (what PL stores)."""
        yes = {k for k, v in answers.items() if v}
        return {item.id: bool(answers.get(item.id, False)) for item in self.visible(yes)}


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A visit in a desk's list. Times are local to the faskes."""

    visit_id: int
    target_id: int
    name: str
    dose_number: int
    status: VisitStatus
    opened_at: datetime
    screened_at: datetime | None = None
    vaccinated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScreeningQueue:
    waiting: tuple[QueueEntry, ...]  # menunggu skrining today, oldest first
    editable: tuple[QueueEntry, ...]  # Tunda screened today: may still be edited
    more: int = 0  # waiting visits not listed (beyond QUEUE_LIMIT)


@dataclass(frozen=True, slots=True)
class PreviousScreening:
    """The Tunda being edited, as the starting point of the new screening."""

    temperature_c: Decimal | None
    systolic: int | None
    diastolic: int | None
    systolic_2: int | None
    diastolic_2: int | None
    yes: tuple[str, ...]
    outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class ScreeningForm:
    """Everything meja 2 needs to screen one visit. The NIK is masked."""

    visit_id: int
    version: int
    target_id: int
    name: str
    nik_masked: str
    sex: str
    category: str
    subject: ScreeningSubject
    rule_set_title_key: str
    remeasure: bool  # the rule set asks for a second blood-pressure reading when the first is high
    editing: bool = False
    editable_until: datetime | None = None  # local; for an edit
    previous: PreviousScreening | None = None


@dataclass(frozen=True, slots=True)
class ScreeningSaved:
    visit_id: int
    target_id: int
    name: str
    status: VisitStatus
    result: ScreeningResult
    vitals: Vitals
    answers: dict[str, bool] = field(default_factory=dict)
    edited: bool = False
    editable_until: datetime | None = None  # local 23:59 of the screening day, for a Tunda
    queue: ScreeningQueue | None = None  # the desk's list right after saving (``with_queue=True``)


# --------------------------------------------------------------------------------------------
# Shared queries (vaccination uses them too)

_VisitRow = tuple[models.Visit, models.Target, str]


# The account (re-checked) and the visit with its target, in one statement: built once (see core/db/repositories),
# run as the driver's SQL (core/db/driver_statement.py): meja 2 and meja 4 read it on five updates of a visit.
_VISIT_AS: Final = DriverStatement(
    select(*ACTOR_COLUMNS, *VISIT_COLUMNS.columns, *TARGET_COLUMNS.columns)
    .select_from(models.Account)
    .outerjoin(models.Visit, models.Visit.id == bindparam("visit_id"))
    .outerjoin(models.Target, models.Visit.target_id == models.Target.id)
    .where(models.Account.id == bindparam("account_id"))
)


# What a screening writes besides its status (the rest is in ``_screening_update``).
_SCREENING_COLUMNS: Final = (
    "rule_set_id",
    "temperature_c",
    "systolic",
    "diastolic",
    "systolic_2",
    "diastolic_2",
    "answers",
    "outcome",
    "rujuk",
    "reasons",
    "rescreen_date",
)


def _screening_update(*, edit: bool) -> Any:
    """The screening's conditional update, built once: a new screening of a visit still waiting at this faskes,
    or (``edit``) the replacement of today's Tunda as seen at ``where_version`` (``set_bound``)."""
    V = models.visits_table.c
    expected = VisitStatus.TUNDA if edit else VisitStatus.MENUNGGU_SKRINING
    written = (*_SCREENING_COLUMNS, "status", "is_open", "screened_at", "screened_by")
    stmt = (
        update(models.visits_table)
        .where(
            V.id == bindparam("where_id"),
            V.status == expected.value,
            V.is_open.is_(not edit),
            V.faskes_code == bindparam("where_faskes"),
        )
        .values({**set_bound(*written), "version": V.version + 1})
    )
    return stmt.where(V.version == bindparam("where_version")) if edit else stmt


_SCREEN: Final = DriverWrite(_screening_update(edit=False))  # on the driver on PostgreSQL (core/db/driver_pool.py)
_SCREEN_EDIT: Final = DriverWrite(_screening_update(edit=True))


async def load_visit_as(uow: SqlUnitOfWork, actor: Actor, visit_id: int, role: Role) -> tuple[Actor, _VisitRow]:
    """The fresh actor (holding ``role``) and the visit, its target and the time zone of its faskes.

    One statement reads the account and the visit; the account's checks come first, as with ``fresh_actor``.
    Raises ``PermissionDenied`` and ``NotFound("visit")``.
    """
    row = await _VISIT_AS.first(uow.session, visit_id=visit_id, account_id=account_id_of(actor))
    fresh = fresh_from_row(actor, row)
    require_role(fresh, role)
    assert row is not None
    visit = VISIT_COLUMNS.read(row, ACTOR_WIDTH)
    target = TARGET_COLUMNS.read(row, ACTOR_WIDTH + VISIT_COLUMNS.width)
    place = await uow.references.place(visit.faskes_code) if visit is not None else None
    if visit is None or target is None or place is None:
        raise NotFound("visit")
    return fresh, (visit, target, place[1].timezone)


async def faskes_timezone(uow: SqlUnitOfWork, faskes_code: str | None) -> str:
    found = await uow.references.place(faskes_code) if faskes_code else None
    if found is None:
        raise PermissionDenied("role", needed=["faskes"])
    return found[1].timezone


def entry_of(visit: DeskRow | models.Visit, name: str, tz: str) -> QueueEntry:
    return QueueEntry(
        visit_id=visit.id,
        target_id=visit.target_id,
        name=name,
        dose_number=visit.dose_number,
        status=VisitStatus(visit.status),
        opened_at=local(visit.opened_at, tz),
        screened_at=local(visit.screened_at, tz) if visit.screened_at else None,
        vaccinated_at=local(visit.vaccinated_at, tz) if visit.vaccinated_at else None,
    )


async def locate_visit(uow: SqlUnitOfWork, actor: Actor, raw_key: str, statuses: Iterable[VisitStatus]) -> QueueEntry:
    """The target's (ticket or NIK) latest visit, when it is at the actor's faskes in one of ``statuses``.

    Raises the lookup errors (``InvalidNik``, ``InvalidTicket``, ``NotFound``), ``PermissionDenied("other_faskes")``
    when the person's open visit belongs to another faskes, and ``Refused("no_visit_here")`` otherwise.
    """
    kind, key = parse_lookup_key(raw_key)
    target = await (uow.targets.by_nik(key) if kind == "nik" else uow.targets.by_ticket(key))
    if target is None:
        raise NotFound(kind)
    tz = await faskes_timezone(uow, actor.faskes_code)
    wanted = {s.value for s in statuses}
    visits = await uow.visits.for_target(target.id)
    latest = visits[-1] if visits else None
    if latest is not None and latest.faskes_code == actor.faskes_code and latest.status in wanted:
        return entry_of(latest, target.name, tz)
    if latest is not None and latest.is_open and latest.faskes_code != actor.faskes_code:
        raise PermissionDenied("other_faskes", faskes=latest.faskes_code)
    raise Refused("no_visit_here", name=target.name)


def _check_waiting(visit: models.Visit, name: str) -> None:
    if visit.status != VisitStatus.MENUNGGU_SKRINING.value:
        raise Conflict("already_screened", name=name)
    if not visit.is_open:  # left open on an earlier day and closed by a later registration (lapsed)
        raise Conflict("visit_closed", name=name)


# --------------------------------------------------------------------------------------------
# The service


class ScreeningService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    # --- reading ----------------------------------------------------------------------------

    async def queue(self, actor: Actor, *, limit: int = QUEUE_LIMIT) -> ScreeningQueue:
        """Today's visits at the actor's faskes waiting for screening, and today's Tunda that may be edited."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await self._screener(uow, actor)
            return await self._queue(uow, actor, limit)

    async def locate(self, actor: Actor, raw_key: str) -> QueueEntry:
        """The visit of a ticket or NIK to screen (waiting) or to edit (today's Tunda) at the actor's faskes."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await self._screener(uow, actor)
            return await locate_visit(uow, actor, raw_key, (VisitStatus.MENUNGGU_SKRINING, VisitStatus.TUNDA))

    async def open(self, actor: Actor, visit_id: int) -> ScreeningForm:
        """Start screening a visit waiting for it. ``Conflict("already_screened")`` when it is not waiting."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA2)
            require_faskes(actor, visit.faskes_code)
            _check_waiting(visit, target.name)
            return self._form(visit, target, local_date(uow.clock.now(), tz))

    async def open_edit(self, actor: Actor, visit_id: int) -> ScreeningForm:
        """Start editing today's Tunda of a visit (a complete new screening, the old answers pre-filled)."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA2)
            require_faskes(actor, visit.faskes_code)
            today = local_date(uow.clock.now(), tz)
            until = self._check_editable(visit, tz, today)
            previous = PreviousScreening(
                temperature_c=visit.temperature_c,
                systolic=visit.systolic,
                diastolic=visit.diastolic,
                systolic_2=visit.systolic_2,
                diastolic_2=visit.diastolic_2,
                yes=tuple(k for k, v in (visit.answers or {}).items() if v),
                outcome=Outcome(visit.outcome) if visit.outcome else None,
            )
            return replace(self._form(visit, target, today), editing=True, editable_until=until, previous=previous)

    # --- writing ----------------------------------------------------------------------------

    async def save(
        self,
        actor: Actor,
        visit_id: int,
        vitals: Vitals,
        answers: Mapping[str, bool],
        *,
        seen_outcome: Outcome | None = None,
        with_queue: bool = False,
    ) -> ScreeningSaved:
        """Judge and save the screening of a visit waiting for it, exactly once.

        The outcome is computed here from PL's facts; when ``seen_outcome`` (what the person confirmed) differs,
        nothing is saved (``Conflict("outcome_changed")``). Lanjut: waiting for vaccination (still open);
        Tunda and Tidak diberikan close the visit. ``with_queue``: the result also carries the desk's list as
        it stands after this screening (read in the same transaction).
        """
        async with self.ctx.uow(actor) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA2)
            require_faskes(actor, visit.faskes_code)
            _check_waiting(visit, target.name)
            return await self._write(
                uow,
                actor,
                visit,
                target,
                tz,
                vitals,
                answers,
                seen_outcome=seen_outcome,
                edit=False,
                with_queue=with_queue,
            )

    async def save_edit(
        self,
        actor: Actor,
        visit_id: int,
        vitals: Vitals,
        answers: Mapping[str, bool],
        *,
        seen_version: int,
        seen_outcome: Outcome | None = None,
        with_queue: bool = False,
    ) -> ScreeningSaved:
        """Replace today's Tunda of a visit with a new screening (see the module's note on editing)."""
        async with self.ctx.uow(actor) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA2)
            require_faskes(actor, visit.faskes_code)
            self._check_editable(visit, tz, local_date(uow.clock.now(), tz))
            if visit.version != seen_version:
                raise Conflict("screening_changed", name=target.name)
            later = [v for v in await uow.visits.for_target(target.id) if v.id > visit.id]
            if later:
                raise Refused("tunda_superseded", name=target.name)
            return await self._write(
                uow,
                actor,
                visit,
                target,
                tz,
                vitals,
                answers,
                seen_outcome=seen_outcome,
                edit=True,
                with_queue=with_queue,
            )

    # --- internals --------------------------------------------------------------------------

    async def _screener(self, uow: SqlUnitOfWork, actor: Actor) -> Actor:
        fresh = await fresh_actor(uow, actor)
        require_role(fresh, Role.MEJA2)
        return fresh

    @staticmethod
    async def _queue(uow: SqlUnitOfWork, actor: Actor, limit: int) -> ScreeningQueue:
        """Both halves of the list in one statement, split here."""
        assert actor.faskes_code is not None
        tz = await faskes_timezone(uow, actor.faskes_code)
        today = local_date(uow.clock.now(), tz)
        rows = await uow.visits.screening_list(actor.faskes_code, today, start_of_local_day(today, tz))
        waiting = sorted(
            (r for r in rows if r.status == VisitStatus.MENUNGGU_SKRINING.value), key=lambda r: (r.opened_at, r.id)
        )
        editable = sorted(
            (r for r in rows if r.status == VisitStatus.TUNDA.value),
            key=lambda r: r.screened_at or r.opened_at,
            reverse=True,
        )[:limit]
        return ScreeningQueue(
            tuple(entry_of(r, r.name, tz) for r in waiting[:limit]),
            tuple(entry_of(r, r.name, tz) for r in editable),
            max(0, len(waiting) - limit),
        )

    @staticmethod
    def _form(visit: models.Visit, target: models.Target, today: date) -> ScreeningForm:
        rule_set = select_rule_set(today, target.category)
        subject = ScreeningSubject(rule_set.id, age_on(target.birth_date, today), visit.dose_number, today)
        return ScreeningForm(
            visit_id=visit.id,
            version=visit.version,
            target_id=target.id,
            name=target.name,
            nik_masked=mask_nik(target.nik),
            sex=target.sex,
            category=target.category,
            subject=subject,
            rule_set_title_key=rule_set.title_key,
            remeasure=bool(rule_set.blood_pressure and rule_set.blood_pressure.remeasure),
        )

    @staticmethod
    def _check_editable(visit: models.Visit, tz: str, today: date) -> datetime:
        """Local 23:59 of the day the Tunda was screened; refuses when it is not an editable Tunda."""
        if visit.status != VisitStatus.TUNDA.value or visit.screened_at is None:
            raise Refused("not_tunda")
        day = local_date(visit.screened_at, tz)
        if day != today:
            raise Refused("tunda_edit_closed", date=day)
        return end_of_local_day(day, tz)

    async def _write(
        self,
        uow: SqlUnitOfWork,
        actor: Actor,
        visit: models.Visit,
        target: models.Target,
        tz: str,
        vitals: Vitals,
        answers: Mapping[str, bool],
        *,
        seen_outcome: Outcome | None,
        edit: bool,
        with_queue: bool = False,
    ) -> ScreeningSaved:
        now = uow.clock.now()
        today = local_date(now, tz)
        form = self._form(visit, target, today)
        subject = form.subject
        vitals = normalize_vitals(vitals)
        result = subject.evaluate(vitals, answers)
        if seen_outcome is not None and result.outcome is not seen_outcome:
            raise Conflict("outcome_changed", name=target.name)
        stored_answers = subject.asked(answers)
        status = {
            Outcome.LANJUT: VisitStatus.MENUNGGU_VAKSINASI,
            Outcome.TUNDA: VisitStatus.TUNDA,
            Outcome.TIDAK_DIBERIKAN: VisitStatus.TIDAK_DIBERIKAN,
        }[result.outcome]
        is_open = status is VisitStatus.MENUNGGU_VAKSINASI
        reasons = [{"code": r.code, "outcome": r.outcome.value, "rujuk": r.rujuk} for r in result.reasons]
        values: dict[str, Any] = {
            "rule_set_id": result.rule_set_id,
            "temperature_c": vitals.temperature_c,
            "systolic": vitals.systolic,
            "diastolic": vitals.diastolic,
            "systolic_2": vitals.systolic_2,
            "diastolic_2": vitals.diastolic_2,
            "answers": stored_answers,
            "outcome": result.outcome.value,
            "rujuk": result.rujuk,
            "reasons": reasons,
            "rescreen_date": result.rescreen_date,
        }
        before: dict[str, Any] = {"status": visit.status, "is_open": visit.is_open, "version": visit.version}
        if edit:
            before.update({k: getattr(visit, k) for k in values})
            before["screened_at"] = visit.screened_at
            before["screened_by"] = visit.screened_by
        written = {
            **values,
            "status": status.value,
            "is_open": is_open,
            "screened_at": now,
            "screened_by": actor.account_id,
        }
        seen = {"version": visit.version} if edit else {}
        params = update_params(written, id=visit.id, faskes=actor.faskes_code, **seen)
        try:
            changed = await (_SCREEN_EDIT if edit else _SCREEN).execute(uow.session, **params)
        except IntegrityError as exc:  # reopening while another visit of the person is open
            raise Conflict("open_visit_exists", name=target.name) from exc
        if changed != 1:
            raise Conflict("screening_changed" if edit else "already_screened", name=target.name)
        uow.audit(
            AuditDraft(
                action="visit.screen_edit" if edit else "visit.screen",
                entity="visit",
                entity_id=str(visit.id),
                target_id=target.id,
                before=before,
                after={**values, "status": status.value, "is_open": is_open, "screened_at": now},
                faskes_code=visit.faskes_code,
            )
        )
        queue = await self._queue(uow, actor, QUEUE_LIMIT) if with_queue else None
        await uow.commit()
        until = end_of_local_day(today, tz) if status is VisitStatus.TUNDA else None
        return ScreeningSaved(
            visit_id=visit.id,
            target_id=target.id,
            name=target.name,
            status=status,
            result=result,
            vitals=vitals,
            answers=stored_answers,
            edited=edit,
            editable_until=until,
            queue=queue,
        )
