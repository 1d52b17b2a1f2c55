"""Look up a target by ticket or NIK: the card staff see at meja 1.

The card carries what the person may do with it (``actions``), computed here for the acting account, so
that the bot only draws buttons: Registrasi (meja 1, when rule 2 allows it), Ubah No HP (meja 1, before
any visit or while the open visit at the actor's faskes waits for screening), Verifikasi (verifier, only
while the target has no desk entry) and the next step of today's visit at the actor's faskes for a person
holding that desk. Every action is checked again by its own use case.

A lookup may carry a birth date after the key (``3273... 17-08-1990``): the card (or the "not found"
error) then says whether the NIK's birth date disagrees with the one typed, the commonest sign of a
mistyped NIK. Lookups are rate-limited per account (rule 10): ``ctx.lookups_per_minute``, shared by
workers through Redis.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, bindparam, select

from core.db import models
from core.db.driver_statement import DriverStatement
from core.db.repositories import ACTOR_COLUMNS, TARGET_COLUMNS, DistrictRef, FaskesRef
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import AccountKind, Actor, Role, require_active
from core.domain.errors import InvalidInput, InvalidNik, NotFound, PermissionDenied, Refused
from core.domain.identifiers import (
    Sex,
    mask_nik,
    mask_phone,
    nik_mismatches,
    parse_date,
    parse_lookup_key,
    parse_nik,
)
from core.domain.timeutil import age_on, local_date
from core.domain.visits import VACCINATED, WAITING, VisitStatus
from core.services.accounts import ACTOR_WIDTH, account_id_of, fresh_from_row
from core.services.context import CoreContext
from core.services.recipients import next_step
from core.services.registration import DosePlan, VisitRow, facts_of, phone_changeable, plan_for, visit_rows

log = logging.getLogger(__name__)

__all__ = [
    "CardAction",
    "LookupQuery",
    "LookupService",
    "TargetCard",
    "VisitSummary",
    "build_card",
    "parse_query",
]

ActionKind = Literal["register", "phone", "verify", "screen", "vaccinate", "observe"]
# What identifies a target to ``reader_and_target``.
TargetKey = Literal["nik", "ticket", "id", "visit"]

# At most this many lookups per account in each window (enumerating NIKs or tickets must be slow).


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
    is_open: bool = True

    @property
    def lapsed(self) -> bool:
        """A visit left waiting on an earlier day and closed by a later registration."""
        return self.status in WAITING and not self.is_open


@dataclass(frozen=True, slots=True)
class CardAction:
    kind: ActionKind
    visit_id: int | None = None  # for the next step of a visit (screen, vaccinate, observe)


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
    # Rule 2 for the next dose at the actor's faskes today (None for accounts without a faskes).
    plan: DosePlan | None = None
    actions: tuple[CardAction, ...] = ()
    # The record's birth date or sex disagrees with what the NIK encodes ("birth_date", "sex").
    nik_mismatches: tuple[str, ...] = ()
    # A birth date typed with the key, and whether it disagrees with the NIK / with the record.
    typed_birth_date: date | None = None
    typed_birth_vs_nik: bool = False
    typed_birth_vs_record: bool = False
    nik_birth_date: date | None = None  # only when the NIK was typed (it reveals digits 7-12)

    @property
    def doses_given(self) -> tuple[VisitSummary, ...]:
        return tuple(v for v in self.visits if v.status in VACCINATED)

    @property
    def open_visit(self) -> VisitSummary | None:
        return next((v for v in self.visits if v.status in WAITING and v.is_open), None)

    def can(self, kind: ActionKind) -> bool:
        return any(a.kind == kind for a in self.actions)


@dataclass(frozen=True, slots=True)
class LookupQuery:
    kind: Literal["nik", "ticket"]
    key: str
    typed_birth_date: date | None = None


_TRAILING_DATE = re.compile(
    r"^(?P<key>.*?\S)\s+(?P<date>[0-9]{1,2}(?P<s1>[-/.])[0-9]{1,2}(?P=s1)[0-9]{4}"
    r"|[0-9]{4}(?P<s2>[-/.])[0-9]{1,2}(?P=s2)[0-9]{1,2})\s*$"
)


_NIK_LENGTH = 16
_NIK_LIKE_FROM = 11  # more digits than a ticket has: meant as a NIK


def parse_query(raw: str) -> LookupQuery:
    """A ticket or NIK, optionally followed by a birth date (``3273... 17-08-1990``).

    Raises the typed errors of :func:`parse_lookup_key` and ``InvalidInput("date")``.
    """
    typed: date | None = None
    text = raw.strip()
    if match := _TRAILING_DATE.match(text):
        text = match["key"]
        typed = parse_date(match["date"])
    digits = "".join(ch for ch in text if not (ch.isspace() or ch in ".-"))
    nik_like = digits.isascii() and digits.isdigit() and not digits.startswith("0")  # 08...: a phone number
    if nik_like and len(digits) > _NIK_LIKE_FROM and len(digits) != _NIK_LENGTH:
        raise InvalidNik("length", got=len(digits))  # all digits and long: a NIK with digits missing or extra
    kind, key = parse_lookup_key(text)
    return LookupQuery(kind, key, typed)


class LookupService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def find(self, actor: Actor, raw_key: str) -> TargetCard:
        """Find by ticket or NIK (exact, after normalising), optionally followed by a birth date.

        Raises InvalidNik/InvalidTicket/InvalidInput, ``Refused("rate_limited", seconds=)`` and
        ``NotFound("nik" | "ticket")``; for a typed NIK and birth date that disagree, the NotFound carries
        ``nik_birth`` and ``typed_birth``.
        """
        query = parse_query(raw_key)
        async with self.ctx.uow(actor, read_only=True) as uow:
            kind, key = query.kind, query.key
            actor, target = await reader_and_target(uow, actor, kind, key)
            assert actor.account_id is not None
            wait = await self.ctx.rate_limiter.hit(
                f"lookup:{actor.account_id}", self.ctx.lookups_per_minute, uow.clock.now()
            )
            if wait:
                # Visible: a lookup storm from one account is what scraping PL by NIK looks like.
                log.warning("lookup rate limit reached by account %s", actor.account_id)
                raise Refused("rate_limited", seconds=wait)
            if target is None:
                hint: dict[str, date] = {}
                if kind == "nik" and query.typed_birth_date is not None:
                    facts = parse_nik(key, today=local_date(uow.clock.now(), "Asia/Jakarta"))
                    if nik_mismatches(facts, query.typed_birth_date, None):
                        hint = {"nik_birth": facts.birth_date, "typed_birth": query.typed_birth_date}
                raise NotFound(kind, **hint)
            return await build_card(
                uow, actor, target, nik_typed=kind == "nik", typed_birth_date=query.typed_birth_date
            )

    async def card(self, actor: Actor, target_id: int, *, nik_typed: bool = False) -> TargetCard:
        """Re-read a card (after an action), by its id from a button: the scope is checked again."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor, target = await reader_and_target(uow, actor, "id", target_id)
            if target is None:
                raise NotFound("target")
            return await build_card(uow, actor, target, nik_typed=nik_typed)

    async def card_for_visit(self, actor: Actor, visit_id: int) -> TargetCard:
        """The card of a visit's target (a button of the Daftar Penerima Vaksin)."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor, target = await reader_and_target(uow, actor, "visit", visit_id)
            if target is None:
                raise NotFound("target")
            return await build_card(uow, actor, target, nik_typed=False)


def _reader_and_target(on: ColumnElement[bool], via: tuple[Any, ColumnElement[bool]] | None = None) -> DriverStatement:
    stmt = select(*ACTOR_COLUMNS, *TARGET_COLUMNS.columns).select_from(models.Account)
    if via is not None:
        stmt = stmt.outerjoin(*via)
    return DriverStatement(stmt.outerjoin(models.Target, on).where(models.Account.id == bindparam("account_id")))


# The reading account and the target, by what identifies the target (``key``): built once (core/db/repositories.py),
# run as the driver's SQL (core/db/driver_statement.py).
_READER_AND_TARGET: Final[dict[TargetKey, DriverStatement]] = {
    "nik": _reader_and_target(models.Target.nik == bindparam("key")),
    "ticket": _reader_and_target(models.Target.ticket == bindparam("key")),
    "id": _reader_and_target(models.Target.id == bindparam("key")),
    "visit": _reader_and_target(
        models.Target.id == models.Visit.target_id, via=(models.Visit, models.Visit.id == bindparam("key"))
    ),
}


async def reader_and_target(
    uow: SqlUnitOfWork, actor: Actor, by: TargetKey, key: str | int
) -> tuple[Actor, models.Target | None]:
    """The reading account, re-checked (active), and the target whose ``by`` is ``key`` (a NIK, a ticket, the
    target's id, or the id of one of its visits), in one statement.

    The app's lookup read; the benchmark times it as is (bench/lookup.py).
    """
    row = await _READER_AND_TARGET[by].first(uow.session, key=key, account_id=account_id_of(actor))
    fresh = fresh_from_row(actor, row)
    require_active(fresh)
    return fresh, TARGET_COLUMNS.read(row, ACTOR_WIDTH)


async def build_card(
    uow: SqlUnitOfWork,
    actor: Actor,
    target: models.Target,
    *,
    nik_typed: bool,
    typed_birth_date: date | None = None,
    rows: list[VisitRow] | None = None,
) -> TargetCard:
    """The card of ``target`` for ``actor`` (fresh); ``rows``: the target's visit rows when already read."""
    if actor.kind is AccountKind.DINKES:
        await _check_district(uow, actor, target)
    if rows is None:
        rows = await visit_rows(uow, target.id)
    visits = tuple(
        VisitSummary(
            visit_id=v.id,
            dose_number=v.dose_number,
            status=VisitStatus(v.status),
            faskes_code=v.faskes_code,
            faskes_name=r.faskes_name,
            service_date=v.service_date,
            product_code=v.product_code,
            outcome_reasons=tuple(x["code"] if isinstance(x, dict) else str(x) for x in (v.reasons or [])),
            rescreen_date=v.rescreen_date,
            rujuk=v.rujuk,
            next_due_date=v.next_due_date,
            is_open=v.is_open,
        )
        for r in rows
        for v in (r.visit,)
    )
    assigned_name = None
    tz = "Asia/Jakarta"
    if target.assigned_faskes_code:
        found = await uow.references.place(target.assigned_faskes_code)
        if found:
            assigned_name = found[0].name
    own: tuple[FaskesRef, DistrictRef] | None = None
    if actor.faskes_code:
        own = await uow.references.place(actor.faskes_code)
        if own:
            tz = own[1].timezone
    elif actor.kabkota_code:
        kk = await uow.references.district(actor.kabkota_code)
        if kk:
            tz = kk.timezone
    now = uow.clock.now()
    today = local_date(now, tz)

    plan: DosePlan | None = None
    actions: list[CardAction] = []
    if actor.kind is AccountKind.FASKES and actor.is_active and own is not None:
        plan = await plan_for(uow, target, rows, today)
        if Role.MEJA1 in actor.roles:
            if plan.possible and own[0].is_vaccinator:
                actions.append(CardAction("register"))
            if phone_changeable(facts_of(rows, now), actor.faskes_code):
                actions.append(CardAction("phone"))
        if Role.VERIFIKASI in actor.roles and target.first_desk_at is None:
            actions.append(CardAction("verify"))
        for v in visits:
            if v.faskes_code != actor.faskes_code or v.service_date != today:
                continue
            if v.status in WAITING and not v.is_open:
                continue
            step = next_step(v.status, actor.roles)
            if step is not None:
                actions.append(CardAction(step, v.visit_id))

    facts = parse_nik(target.nik, today=today) if _nik_parses(target.nik, today) else None
    mismatches: tuple[str, ...] = ()
    typed_vs_nik = False
    if facts is not None:
        mismatches = tuple(nik_mismatches(facts, target.birth_date, _sex(target.sex)))
        if typed_birth_date is not None and nik_typed:
            typed_vs_nik = bool(nik_mismatches(facts, typed_birth_date, None))
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
        plan=plan,
        actions=tuple(actions),
        nik_mismatches=mismatches,
        typed_birth_date=typed_birth_date,
        typed_birth_vs_nik=typed_vs_nik,
        typed_birth_vs_record=typed_birth_date is not None and typed_birth_date != target.birth_date,
        nik_birth_date=facts.birth_date if facts is not None and nik_typed else None,
    )


def _nik_parses(nik: str, today: date) -> bool:
    try:
        parse_nik(nik, today=today)
    except InvalidInput:
        return False
    return True


def _sex(raw: str) -> Sex | None:
    return Sex(raw) if raw in Sex.__members__ else None


async def _check_district(uow: SqlUnitOfWork, actor: Actor, target: models.Target) -> None:
    """A Dinkes admin reads targets assigned to, or served in, their own district only."""
    codes: set[str] = set()
    if target.assigned_faskes_code:
        codes.add(target.assigned_faskes_code)
    codes.update(v.faskes_code for v in await uow.visits.for_target(target.id))
    for code in codes:
        found = await uow.references.place(code)
        if found and found[0].kabkota_code == actor.kabkota_code:
            return
    raise PermissionDenied("other_district")
