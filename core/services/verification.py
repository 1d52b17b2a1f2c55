"""Verifikasi Data Sasaran: a verifier corrects a target, or adds one missing from PL (DOMAIN.md rules 6, 7, 9).

A submission goes through three steps:

1. **Read** (a short unit of work): the verifier's role and district, the target, its editability
   (no desk entry), the typed values validated as everywhere else.
2. **Reference check** outside any transaction: the JKN master file and Dukcapil queried in
   parallel, each bounded by ``ctx.reference_timeout`` (:func:`check_references`); a source that is
   slow or failing becomes an ``unavailable`` verdict and never blocks the other.
3. **Write** (one unit of work): everything is re-checked, the correction is recorded with its
   evidence, and either applied at once (``decide`` says APPLY) or queued for the district's
   Dinkes admins, who approve or reject it later.

Applying is a conditional update ``WHERE id = :id AND version = :seen AND first_desk_at IS NULL``:
the row count decides, so a correction and a registration at meja 1 (which sets ``first_desk_at``
and bumps ``version`` in its own transaction) cannot both win.

Results carry display-safe values: phone numbers masked, NIKs masked unless the verifier typed them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError

from core.db import models
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import Actor, Role, require_dinkes, require_role
from core.domain.audit import AuditDraft
from core.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Refused, Unavailable
from core.domain.identifiers import (
    Sex,
    format_ticket,
    generate_ticket,
    mask_nik,
    mask_phone,
    nik_mismatches,
    normalize_phone,
    parse_date,
    parse_lookup_key,
    parse_nik,
)
from core.domain.reference import Claim, Decision, JsonValue, SourceVerdict, compare, decide, sex_code, unavailable
from core.domain.screening import CATEGORIES
from core.domain.timeutil import WIB, local_date
from core.ports import ReferenceSource
from core.services.accounts import fresh_actor
from core.services.context import CoreContext

__all__ = [
    "FIELDS",
    "EditableTarget",
    "FieldChange",
    "NewNik",
    "NewTarget",
    "Preview",
    "QueuedItem",
    "ReviewResult",
    "Submission",
    "VerificationService",
    "check_references",
]

log = logging.getLogger(__name__)

#: The fields a correction may change, in menu order (the NIK is corrected by adding the right target).
FIELDS: Final[tuple[str, ...]] = ("name", "birth_date", "sex", "phone", "category", "assigned_faskes_code")
_IDENTITY: Final = ("name", "birth_date", "sex")
_NAME_MAX: Final = 120
_REASON_MAX: Final = 500
_TICKET_ATTEMPTS: Final = 5
_WRITE_ATTEMPTS: Final = 3

CORRECTION, ADDITION = "correction", "addition"
APPLIED, QUEUED, APPROVED, REJECTED, STALE = "applied", "queued", "approved", "rejected", "stale"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field before and after, for display: phone masked, faskes as ``code · name``, dates ISO."""

    field: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class EditableTarget:
    """A target the verifier may correct, as they see it before changing anything."""

    target_id: int
    version: int
    ticket: str
    nik: str  # whole only when the verifier typed it
    nik_typed: bool
    name: str
    birth_date: date
    sex: str
    phone_masked: str | None
    category: str
    assigned_faskes: str | None  # "code · name"


@dataclass(frozen=True, slots=True)
class NewNik:
    """A NIK that passed the offline checks and is not in PL yet; what it encodes."""

    nik: str
    birth_date: date
    sex: str


@dataclass(frozen=True, slots=True)
class NewTarget:
    """An addition as typed (raw or canonical strings; core validates every field again)."""

    nik: str
    name: str
    birth_date: str
    sex: str
    phone: str | None
    category: str


@dataclass(frozen=True, slots=True)
class Preview:
    """What a submission would do: the changes, each source's verdict, and the decision."""

    kind: str  # correction | addition
    target_id: int | None
    version: int | None
    name: str  # the name after the change
    changes: tuple[FieldChange, ...]
    verdicts: tuple[SourceVerdict, ...]
    decision: Decision
    nik_mismatches: tuple[str, ...]  # fields that disagree with what the NIK encodes (a warning)


@dataclass(frozen=True, slots=True)
class Submission:
    correction_id: int
    kind: str
    status: str  # applied | queued
    target_id: int | None
    ticket: str | None  # formatted; an applied addition's new ticket
    name: str
    changes: tuple[FieldChange, ...]
    verdicts: tuple[SourceVerdict, ...]
    nik_mismatches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """A submission waiting for the Dinkes admin, with its evidence."""

    correction_id: int
    kind: str
    target_id: int | None
    nik_masked: str
    name: str
    changes: tuple[FieldChange, ...]
    verdicts: tuple[SourceVerdict, ...]
    nik_mismatches: tuple[str, ...]
    submitted_by: str
    faskes: str
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewResult:
    correction_id: int
    kind: str
    status: str  # approved | rejected | stale
    reason: str | None  # the rejection reason, or why it went stale (desk_entry | target_changed | nik_exists)
    target_id: int | None
    ticket: str | None
    name: str


# --------------------------------------------------------------------------------------------
# The reference check (no transaction is open while it runs)
# --------------------------------------------------------------------------------------------


async def _ask(source: ReferenceSource, claim: Claim, time_limit: float) -> SourceVerdict:
    try:
        record = await asyncio.wait_for(source.fetch(claim.nik), time_limit)
    except TimeoutError:
        return unavailable(source.source, "timeout")
    except Unavailable as exc:
        return unavailable(source.source, str(exc.params.get("detail") or "error"))
    except Exception:  # a broken adapter is an unavailable source, not a failed chat
        log.warning("reference source %s failed", source.source.value, exc_info=True)
        return unavailable(source.source, "error")
    return compare(source.source, claim, record)


async def check_references(
    sources: Sequence[ReferenceSource], claim: Claim, time_limit: float
) -> tuple[SourceVerdict, ...]:
    """Every source's verdict on ``claim``, queried concurrently, each bounded by ``time_limit`` seconds.

    A source that times out, raises ``Unavailable`` or fails in any other way becomes an
    ``unavailable`` verdict; the others are not held up by it.
    """
    return tuple(await asyncio.gather(*(_ask(source, claim, time_limit) for source in sources)))


def _evidence(verdicts: Sequence[SourceVerdict]) -> list[JsonValue]:
    return [v.to_json() for v in verdicts]


def _verdicts(evidence: Sequence[Any]) -> tuple[SourceVerdict, ...]:
    out: list[SourceVerdict] = []
    for item in evidence:
        try:
            out.append(SourceVerdict.from_json(item))
        except (ValueError, AttributeError):
            continue
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _name(raw: str) -> str:
    name = " ".join(raw.split())
    letters = sum(ch.isalpha() for ch in name)
    # Not printable: control characters (a NUL is refused by PostgreSQL outright), bidi overrides.
    if letters < 2 or len(name) > _NAME_MAX or any(ch.isdigit() for ch in name) or not name.isprintable():
        raise InvalidInput("target_name")
    return name


def _sex(raw: str) -> str:
    code = sex_code(raw)
    if code not in (Sex.L.value, Sex.P.value):
        raise InvalidInput("target_sex")
    return code


def _category(raw: str) -> str:
    value = raw.strip().lower()
    if value not in CATEGORIES:
        raise InvalidInput("target_category", got=raw.strip()[:20])
    return value


def _birth_date(raw: str, today: date) -> date:
    born = parse_date(raw)
    if born > today:
        raise InvalidInput("birth_date_future")
    return born


def _stored(target: models.Target) -> dict[str, Any]:
    return {
        "name": target.name,
        "birth_date": target.birth_date.isoformat(),
        "sex": target.sex,
        "phone": target.phone,
        "category": target.category,
        "assigned_faskes_code": target.assigned_faskes_code,
    }


def _db_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical strings to column values (the birth date back to a date)."""
    out = dict(fields)
    if isinstance(out.get("birth_date"), str):
        out["birth_date"] = date.fromisoformat(out["birth_date"])
    return out


async def _faskes_label(uow: SqlUnitOfWork, code: str | None) -> str | None:
    if code is None:
        return None
    faskes = await uow.regions.faskes(code)
    return f"{code} · {faskes.name}" if faskes else code


async def _display(uow: SqlUnitOfWork, field: str, value: Any) -> str | None:
    if value is None:
        return None
    if field == "phone":
        return mask_phone(str(value))
    if field == "assigned_faskes_code":
        return await _faskes_label(uow, str(value))
    return str(value)


async def _changes(
    uow: SqlUnitOfWork, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> tuple[FieldChange, ...]:
    out: list[FieldChange] = []
    for field in (*FIELDS, "nik"):
        if field not in after:
            continue
        old = before.get(field) if before is not None else None
        if field == "nik":
            out.append(FieldChange("nik", None, mask_nik(str(after["nik"]))))
            continue
        out.append(FieldChange(field, await _display(uow, field, old), await _display(uow, field, after[field])))
    return tuple(out)


def _audited(fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Fields as the audit trail keeps them: NIK and phone masked (support staff read and export the
    trail); the whole values stay in the target and correction rows of PL."""
    if fields is None:
        return None
    out = dict(fields)
    if out.get("phone"):
        out["phone"] = mask_phone(str(out["phone"]))
    if out.get("nik"):
        out["nik"] = mask_nik(str(out["nik"]))
    return out


def _mismatches(nik: str, birth_date: str, sex: str, today: date) -> tuple[str, ...]:
    facts = parse_nik(nik, today)
    return tuple(nik_mismatches(facts, date.fromisoformat(birth_date), Sex(sex)))


# --------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------


class VerificationService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    # --- shared checks ---------------------------------------------------------------------

    async def _verifier(self, uow: SqlUnitOfWork, actor: Actor) -> tuple[Actor, models.Faskes, models.KabKota]:
        actor = await fresh_actor(uow, actor)
        require_role(actor, Role.VERIFIKASI)
        found = await uow.regions.faskes_with_district(actor.faskes_code or "")
        if found is None:
            raise PermissionDenied("role", needed=[Role.VERIFIKASI.value])
        return actor, found[0], found[1]

    @staticmethod
    async def _check_scope(uow: SqlUnitOfWork, district: models.KabKota, target: models.Target) -> None:
        """A verifier corrects targets assigned in their own district (or assigned nowhere)."""
        if target.assigned_faskes_code is None:
            return
        faskes = await uow.regions.faskes(target.assigned_faskes_code)
        if faskes is not None and faskes.kabkota_code != district.code:
            raise PermissionDenied("other_district", kabkota=faskes.kabkota_code)

    @staticmethod
    async def _check_editable(uow: SqlUnitOfWork, target: models.Target) -> None:
        if target.first_desk_at is not None or await uow.visits.for_target(target.id):
            raise Refused("desk_entry")

    async def _target(self, uow: SqlUnitOfWork, district: models.KabKota, target_id: int) -> models.Target:
        target = await uow.targets.get(target_id)
        if target is None:
            raise NotFound("target")
        await self._check_scope(uow, district, target)
        await self._check_editable(uow, target)
        return target

    async def _value(self, uow: SqlUnitOfWork, field: str, raw: str | None, today: date) -> Any:
        """One field, validated like everywhere else, as a canonical string (None clears the phone)."""
        if field == "name":
            return _name(raw or "")
        if field == "birth_date":
            return _birth_date(raw or "", today).isoformat()
        if field == "sex":
            return _sex(raw or "")
        if field == "phone":
            return None if raw is None or not raw.strip() else normalize_phone(raw)
        if field == "category":
            return _category(raw or "")
        if field == "assigned_faskes_code":
            code = (raw or "").strip().upper()
            faskes = await uow.regions.faskes(code) if code else None
            if faskes is None:
                raise NotFound("assigned_faskes", code=code[:12])
            if not faskes.is_vaccinator:
                raise Refused("faskes_not_vaccinator", code=code)
            return code
        raise InvalidInput("correction_field", got=field[:30])

    async def _new_values(
        self, uow: SqlUnitOfWork, current: Mapping[str, Any], changes: Mapping[str, str | None], today: date
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(before, after) of the fields that really change; ``InvalidInput("no_changes")`` when none."""
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for field, raw in changes.items():
            value = await self._value(uow, field, raw, today)
            if value != current[field]:
                before[field], after[field] = current[field], value
        if not after:
            raise InvalidInput("no_changes")
        return before, after

    @staticmethod
    def _today(district: models.KabKota, now: datetime) -> date:
        return local_date(now, district.timezone or WIB)

    # --- opening ---------------------------------------------------------------------------

    async def open_target(self, actor: Actor, raw_key: str) -> EditableTarget:
        """The target to correct, by ticket or NIK as typed. Refused once it has a desk entry."""
        kind, key = parse_lookup_key(raw_key)
        async with self.ctx.uow(actor, read_only=True) as uow:
            _, _, district = await self._verifier(uow, actor)
            found = await (uow.targets.by_nik(key) if kind == "nik" else uow.targets.by_ticket(key))
            if found is None:
                raise NotFound(kind)
            target = await self._target(uow, district, found.id)
            return await self._editable(uow, target, nik_typed=kind == "nik")

    async def open_target_by_id(self, actor: Actor, target_id: int) -> EditableTarget:
        """The target behind the card's "Verifikasi" button (the id is untrusted: scope re-checked)."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            _, _, district = await self._verifier(uow, actor)
            target = await self._target(uow, district, target_id)
            return await self._editable(uow, target, nik_typed=False)

    @staticmethod
    async def _editable(uow: SqlUnitOfWork, target: models.Target, *, nik_typed: bool) -> EditableTarget:
        return EditableTarget(
            target_id=target.id,
            version=target.version,
            ticket=format_ticket(target.ticket),
            nik=target.nik if nik_typed else mask_nik(target.nik),
            nik_typed=nik_typed,
            name=target.name,
            birth_date=target.birth_date,
            sex=target.sex,
            phone_masked=mask_phone(target.phone) if target.phone else None,
            category=target.category,
            assigned_faskes=await _faskes_label(uow, target.assigned_faskes_code),
        )

    async def check_value(self, actor: Actor, field: str, raw: str | None) -> str | None:
        """Validate one typed value as the submission will (the chat asks again on an error)."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            _, _, district = await self._verifier(uow, actor)
            value = await self._value(uow, field, raw, self._today(district, uow.clock.now()))
            return None if value is None else str(value)

    async def check_new_nik(self, actor: Actor, raw_nik: str) -> NewNik:
        """A NIK for an addition: valid offline, and not in PL (else refused, pointing at its ticket)."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            _, _, district = await self._verifier(uow, actor)
            facts = parse_nik(raw_nik, self._today(district, uow.clock.now()))
            await self._require_new(uow, facts.nik)
            return NewNik(nik=facts.nik, birth_date=facts.birth_date, sex=facts.sex.value)

    @staticmethod
    async def _require_new(uow: SqlUnitOfWork, nik: str) -> None:
        existing = await uow.targets.by_nik(nik)
        if existing is not None:
            raise Refused("nik_exists", ticket=format_ticket(existing.ticket), nik=mask_nik(nik))

    # --- corrections -----------------------------------------------------------------------

    async def _read_correction(
        self, actor: Actor, target_id: int, version: int, changes: Mapping[str, str | None]
    ) -> tuple[Claim, tuple[FieldChange, ...], str, tuple[str, ...]]:
        async with self.ctx.uow(actor, read_only=True) as uow:
            _, _, district = await self._verifier(uow, actor)
            target, before, after, mismatches = await self._correction(uow, district, target_id, version, changes)
            final = {**_stored(target), **after}
            return (
                self._claim({**final, "nik": target.nik}),
                await _changes(uow, before, after),
                final["name"],
                mismatches,
            )

    async def _correction(
        self,
        uow: SqlUnitOfWork,
        district: models.KabKota,
        target_id: int,
        version: int,
        changes: Mapping[str, str | None],
    ) -> tuple[models.Target, dict[str, Any], dict[str, Any], tuple[str, ...]]:
        """The target (editable, at the version seen), the fields' before and after, and NIK mismatches."""
        target = await self._target(uow, district, target_id)
        if target.version != version:
            raise Conflict("target_changed")
        today = self._today(district, uow.clock.now())
        current = _stored(target)
        before, after = await self._new_values(uow, current, changes, today)
        final = {**current, **after}
        mismatches: tuple[str, ...] = ()
        if set(after) & {"birth_date", "sex"}:
            mismatches = _mismatches(target.nik, final["birth_date"], final["sex"], today)
        return target, before, after, mismatches

    async def preview_correction(
        self, actor: Actor, target_id: int, version: int, changes: Mapping[str, str | None]
    ) -> Preview:
        """The before/after of a correction and what the reference sources say, without writing."""
        claim, shown, name, mismatches = await self._read_correction(actor, target_id, version, changes)
        verdicts = await check_references(self.ctx.references, claim, self.ctx.reference_timeout)
        return Preview(CORRECTION, target_id, version, name, shown, verdicts, decide(verdicts), mismatches)

    async def submit_correction(
        self, actor: Actor, target_id: int, version: int, changes: Mapping[str, str | None]
    ) -> Submission:
        """Check the correction against the sources, then apply it at once or queue it for Dinkes.

        ``version`` is the one the verifier saw. Refused (``desk_entry``) once the target has a
        desk entry, also when a registration wins the race; ``Conflict("target_changed")`` when
        the target changed otherwise in the meantime.
        """
        claim, _, _, _ = await self._read_correction(actor, target_id, version, changes)
        verdicts = await check_references(self.ctx.references, claim, self.ctx.reference_timeout)
        decision = decide(verdicts)
        async with self.ctx.uow(actor) as uow:
            actor, faskes, district = await self._verifier(uow, actor)
            target, before, after, mismatches = await self._correction(uow, district, target_id, version, changes)
            final = {**_stored(target), **after}
            now = uow.clock.now()
            status = APPLIED if decision is Decision.APPLY else QUEUED
            correction = models.Correction(
                kind=CORRECTION,
                target_id=target.id,
                nik=target.nik,
                faskes_code=faskes.code,
                kabkota_code=district.code,
                submitted_by=actor.account_id,
                submitted_at=now,
                base_version=version,
                before=before,
                after=after,
                evidence=_evidence(verdicts),
                status=status,
                decided_at=now if status == APPLIED else None,
            )
            uow.corrections.add(correction)
            await _flush(uow)
            uow.audit(
                AuditDraft(
                    action="verification.submitted",
                    entity="correction",
                    entity_id=str(correction.id),
                    target_id=target.id,
                    before={"fields": _audited(before), "version": version},
                    after={
                        "kind": CORRECTION,
                        "fields": _audited(after),
                        "evidence": _evidence(verdicts),
                        "decision": decision.value,
                        "nik_mismatches": list(mismatches),
                    },
                )
            )
            if status == APPLIED:
                await _apply_correction(uow, target.id, version, after, now)
                uow.audit(_corrected(correction.id, target.id, before, after, version, verdicts))
            shown = await _changes(uow, before, after)
            correction_id = correction.id
            await uow.commit()
        submission = Submission(
            correction_id, CORRECTION, status, target_id, None, final["name"], shown, verdicts, mismatches
        )
        if status == QUEUED:
            await self._tell_dinkes(district.code, submission, mask_nik(claim.nik), actor, faskes)
        return submission

    # --- additions -------------------------------------------------------------------------

    async def _read_addition(self, actor: Actor, draft: NewTarget) -> tuple[dict[str, Any], tuple[str, ...]]:
        async with self.ctx.uow(actor) as uow:
            _, faskes, district = await self._verifier(uow, actor)
            fields, mismatches = await self._addition_fields(uow, draft, faskes, district)
            return fields, mismatches

    async def _addition_fields(
        self, uow: SqlUnitOfWork, draft: NewTarget, faskes: models.Faskes, district: models.KabKota
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        today = self._today(district, uow.clock.now())
        facts = parse_nik(draft.nik, today)
        await self._require_new(uow, facts.nik)
        fields: dict[str, Any] = {
            "nik": facts.nik,
            "name": _name(draft.name),
            "birth_date": _birth_date(draft.birth_date, today).isoformat(),
            "sex": _sex(draft.sex),
            "phone": await self._value(uow, "phone", draft.phone, today),
            "category": _category(draft.category),
            "assigned_faskes_code": faskes.code,
        }
        return fields, _mismatches(facts.nik, fields["birth_date"], fields["sex"], today)

    @staticmethod
    def _claim(fields: Mapping[str, Any]) -> Claim:
        return Claim(
            nik=fields["nik"],
            name=fields["name"],
            birth_date=date.fromisoformat(fields["birth_date"]),
            sex=fields["sex"],
        )

    async def preview_addition(self, actor: Actor, draft: NewTarget) -> Preview:
        fields, mismatches = await self._read_addition(actor, draft)
        claim = self._claim(fields)
        verdicts = await check_references(self.ctx.references, claim, self.ctx.reference_timeout)
        async with self.ctx.uow(actor) as uow:
            shown = await _changes(uow, None, fields)
        return Preview(ADDITION, None, None, fields["name"], shown, verdicts, decide(verdicts), mismatches)

    async def submit_addition(self, actor: Actor, draft: NewTarget) -> Submission:
        """Check the new target against the sources; added at once (with a new ticket) or queued.

        The NIK must not be in PL: refused with the existing target's ticket, also when another
        addition of the same NIK wins a race (the unique NIK decides; the write is retried once).
        """
        fields, _ = await self._read_addition(actor, draft)
        verdicts = await check_references(self.ctx.references, self._claim(fields), self.ctx.reference_timeout)
        decision = decide(verdicts)
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return await self._write_addition(actor, draft, verdicts, decision)
            except Conflict:
                # A lost race on the NIK (the next attempt refuses with its ticket) or a ticket collision.
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write_addition(
        self, actor: Actor, draft: NewTarget, verdicts: tuple[SourceVerdict, ...], decision: Decision
    ) -> Submission:
        async with self.ctx.uow(actor) as uow:
            actor, faskes, district = await self._verifier(uow, actor)
            fields, mismatches = await self._addition_fields(uow, draft, faskes, district)
            now = uow.clock.now()
            status = APPLIED if decision is Decision.APPLY else QUEUED
            correction = models.Correction(
                kind=ADDITION,
                target_id=None,
                nik=fields["nik"],
                faskes_code=faskes.code,
                kabkota_code=district.code,
                submitted_by=actor.account_id,
                submitted_at=now,
                base_version=None,
                before=None,
                after=fields,
                evidence=_evidence(verdicts),
                status=status,
                decided_at=now if status == APPLIED else None,
            )
            uow.corrections.add(correction)
            await _flush(uow)
            uow.audit(
                AuditDraft(
                    action="verification.submitted",
                    entity="correction",
                    entity_id=str(correction.id),
                    before=None,
                    after={
                        "kind": ADDITION,
                        "fields": _audited(fields),
                        "evidence": _evidence(verdicts),
                        "decision": decision.value,
                        "nik_mismatches": list(mismatches),
                    },
                )
            )
            target_id: int | None = None
            ticket: str | None = None
            if status == APPLIED:
                target = await _add_target(uow, fields, now)
                target_id, ticket = target.id, target.ticket
                await _set_correction(uow, correction.id, target_id=target_id)
                uow.audit(_added(correction.id, target, fields, verdicts))
            shown = await _changes(uow, None, fields)
            correction_id = correction.id
            await uow.commit()
        submission = Submission(
            correction_id,
            ADDITION,
            status,
            target_id,
            format_ticket(ticket) if ticket else None,
            fields["name"],
            shown,
            verdicts,
            mismatches,
        )
        if status == QUEUED:
            await self._tell_dinkes(district.code, submission, mask_nik(fields["nik"]), actor, faskes)
        return submission

    # --- the Dinkes review -----------------------------------------------------------------

    async def queued(self, actor: Actor) -> tuple[QueuedItem, ...]:
        """Submissions waiting in the admin's district (all districts for a central admin), oldest first."""
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            require_dinkes(actor)
            rows = await uow.corrections.queued_in(actor.kabkota_code if actor.kabkota_code else None)
            return tuple([await self._item(uow, c) for c in rows])

    async def queued_item(self, actor: Actor, correction_id: int) -> QueuedItem:
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            require_dinkes(actor)
            correction = await uow.corrections.get(correction_id)
            if correction is None:
                raise NotFound("correction")
            require_dinkes(actor, correction.kabkota_code)
            if correction.status != QUEUED:
                raise Conflict("already_decided")
            return await self._item(uow, correction)

    @staticmethod
    async def _item(uow: SqlUnitOfWork, c: models.Correction) -> QueuedItem:
        submitter = await uow.accounts.get(c.submitted_by)
        final: dict[str, Any] = dict(c.after)
        if c.target_id is not None:
            target = await uow.targets.get(c.target_id)
            final = {**(_stored(target) if target else {}), **c.after}
        mismatches: tuple[str, ...] = ()
        if (c.kind == ADDITION or set(c.after) & {"birth_date", "sex"}) and "birth_date" in final:
            today = local_date(uow.clock.now(), WIB)
            mismatches = _mismatches(c.nik, final["birth_date"], final["sex"], today)
        name = final.get("name", "")
        return QueuedItem(
            correction_id=c.id,
            kind=c.kind,
            target_id=c.target_id,
            nik_masked=mask_nik(c.nik),
            name=str(name or ""),
            changes=await _changes(uow, c.before, c.after),
            verdicts=_verdicts(c.evidence),
            nik_mismatches=mismatches,
            submitted_by=submitter.name if submitter else "",
            faskes=await _faskes_label(uow, c.faskes_code) or c.faskes_code,
            submitted_at=c.submitted_at,
        )

    async def approve(self, actor: Actor, correction_id: int) -> ReviewResult:
        """Apply a queued submission. It goes stale (and both sides are told) when the target got a
        desk entry or changed meanwhile, or when the added NIK has reached PL another way."""
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                result = await self._approve(actor, correction_id)
                break
            except Conflict as exc:
                if exc.reason == "already_decided" or attempt == _WRITE_ATTEMPTS - 1:
                    raise
        await self._tell_verifier(result)
        return result

    async def _approve(self, actor: Actor, correction_id: int) -> ReviewResult:
        async with self.ctx.uow(actor) as uow:
            actor, c = await self._reviewable(uow, actor, correction_id)
            now = uow.clock.now()
            verdicts = _verdicts(c.evidence)
            after = dict(c.after)
            stale: str | None = None
            target_id, ticket = c.target_id, None
            if c.kind == CORRECTION:
                assert c.target_id is not None and c.base_version is not None
                try:
                    await _apply_correction(uow, c.target_id, c.base_version, after, now)
                except (Refused, Conflict) as exc:
                    stale = exc.reason
                else:
                    uow.audit(_corrected(c.id, c.target_id, c.before or {}, after, c.base_version, verdicts))
                name = after.get("name") or await _target_name(uow, c.target_id)
            else:
                name = after["name"]
                if await uow.targets.by_nik(c.nik) is not None:
                    stale = "nik_exists"
                else:
                    target = await _add_target(uow, after, now)
                    target_id, ticket = target.id, target.ticket
                    uow.audit(_added(c.id, target, after, verdicts))
            status = STALE if stale else APPROVED
            await _decide(uow, c.id, status, actor, now, reason=stale, target_id=target_id)
            uow.audit(_decision(c, status, stale, verdicts, target_id))
            await uow.commit()
        return ReviewResult(
            c.id, c.kind, status, stale, target_id, format_ticket(ticket) if ticket else None, str(name)
        )

    async def reject(self, actor: Actor, correction_id: int, reason: str) -> ReviewResult:
        """Reject a queued submission with a reason, which the verifier is told."""
        text = " ".join(reason.split())
        if not text or len(text) > _REASON_MAX:
            raise InvalidInput("review_reason", max=_REASON_MAX)
        async with self.ctx.uow(actor) as uow:
            actor, c = await self._reviewable(uow, actor, correction_id)
            now = uow.clock.now()
            await _decide(uow, c.id, REJECTED, actor, now, reason=text, target_id=c.target_id)
            uow.audit(_decision(c, REJECTED, text, _verdicts(c.evidence), c.target_id))
            name = c.after.get("name") or (await _target_name(uow, c.target_id) if c.target_id else "")
            await uow.commit()
        result = ReviewResult(c.id, c.kind, REJECTED, text, c.target_id, None, str(name))
        await self._tell_verifier(result)
        return result

    @staticmethod
    async def _reviewable(uow: SqlUnitOfWork, actor: Actor, correction_id: int) -> tuple[Actor, models.Correction]:
        actor = await fresh_actor(uow, actor)
        require_dinkes(actor)
        correction = await uow.corrections.get(correction_id)
        if correction is None:
            raise NotFound("correction")
        require_dinkes(actor, correction.kabkota_code)
        if correction.status != QUEUED:
            raise Conflict("already_decided")
        return actor, correction

    # --- notifications (after the commit) --------------------------------------------------

    async def _notify(self, telegram_id: int, message: str, **params: object) -> None:
        try:
            await self.ctx.notifier.notify(telegram_id, message, **params)
        except Exception:  # PL has the record; a lost notification must not fail the use case
            log.warning("notification %s not delivered", message, exc_info=True)

    async def _tell_dinkes(
        self, kabkota_code: str, s: Submission, nik_masked: str, actor: Actor, faskes: models.Faskes
    ) -> None:
        async with self.ctx.uow() as uow:
            admins = [a.telegram_id for a in await uow.accounts.active_dinkes_of(kabkota_code)]
        params: dict[str, object] = {
            "correction_id": s.correction_id,
            "kind": s.kind,
            "name": s.name,
            "nik": nik_masked,
            "changes": [[c.field, c.before, c.after] for c in s.changes],
            "evidence": _evidence(s.verdicts),
            "nik_mismatches": list(s.nik_mismatches),
            "by": actor.name or "",
            "faskes": f"{faskes.code} · {faskes.name}",
        }
        await asyncio.gather(*(self._notify(telegram_id, "verification.queued", **params) for telegram_id in admins))

    async def _tell_verifier(self, result: ReviewResult) -> None:
        async with self.ctx.uow() as uow:
            correction = await uow.corrections.get(result.correction_id)
            account = await uow.accounts.get(correction.submitted_by) if correction else None
            telegram_id = account.telegram_id if account else None
        if telegram_id is None:
            return
        await self._notify(
            telegram_id,
            f"verification.{result.status}",
            correction_id=result.correction_id,
            kind=result.kind,
            name=result.name,
            ticket=result.ticket or "",
            reason=result.reason or "",
        )


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


async def _flush(uow: SqlUnitOfWork) -> None:
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict("concurrent_change") from exc


async def _apply_correction(
    uow: SqlUnitOfWork, target_id: int, seen: int, after: Mapping[str, Any], now: datetime
) -> None:
    """The conditional update: only the version seen, only before any desk entry; the row count decides."""
    t = models.Target
    stmt = (
        update(t)
        .where(t.id == target_id, t.version == seen, t.first_desk_at.is_(None))
        .values(**_db_values(after), version=t.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await uow.session.execute(stmt))
    if result.rowcount == 1:
        return
    # A column query, not the session's cached object: what the database holds now.
    row = (await uow.session.execute(select(t.first_desk_at).where(t.id == target_id))).first()
    if row is not None and row.first_desk_at is not None:
        raise Refused("desk_entry")
    raise Conflict("target_changed")


async def _add_target(uow: SqlUnitOfWork, fields: Mapping[str, Any], now: datetime) -> models.Target:
    for _ in range(_TICKET_ATTEMPTS):
        ticket = generate_ticket()
        if await uow.targets.by_ticket(ticket) is None:
            break
    else:  # pragma: no cover - 31**9 tickets
        raise Conflict("ticket_collision")
    values = _db_values(fields)
    target = models.Target(
        nik=values["nik"],
        ticket=ticket,
        name=values["name"],
        birth_date=values["birth_date"],
        sex=values["sex"],
        phone=values["phone"],
        category=values["category"],
        assigned_faskes_code=values["assigned_faskes_code"],
        scheduled_date=None,
        source="verifier",
        version=1,
        first_desk_at=None,
        created_at=now,
        updated_at=now,
    )
    uow.targets.add(target)
    await _flush(uow)
    return target


async def _set_correction(uow: SqlUnitOfWork, correction_id: int, **values: Any) -> None:
    c = models.Correction
    await uow.session.execute(
        update(c).where(c.id == correction_id).values(**values).execution_options(synchronize_session=False)
    )


async def _decide(
    uow: SqlUnitOfWork,
    correction_id: int,
    status: str,
    actor: Actor,
    now: datetime,
    *,
    reason: str | None,
    target_id: int | None,
) -> None:
    """queued → approved | rejected | stale, exactly once (a second admin's tap finds it decided)."""
    c = models.Correction
    stmt = (
        update(c)
        .where(c.id == correction_id, c.status == QUEUED)
        .values(status=status, decided_by=actor.account_id, decided_at=now, reason=reason, target_id=target_id)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await uow.session.execute(stmt))
    if result.rowcount != 1:
        raise Conflict("already_decided")


async def _target_name(uow: SqlUnitOfWork, target_id: int | None) -> str:
    if target_id is None:
        return ""
    name = await uow.session.scalar(select(models.Target.name).where(models.Target.id == target_id))
    return name or ""


# --------------------------------------------------------------------------------------------
# Audit drafts
# --------------------------------------------------------------------------------------------


def _corrected(
    correction_id: int,
    target_id: int,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    version: int,
    verdicts: Sequence[SourceVerdict],
) -> AuditDraft:
    return AuditDraft(
        action="target.corrected",
        entity="target",
        entity_id=str(target_id),
        target_id=target_id,
        before={"fields": _audited(before), "version": version},
        after={
            "fields": _audited(after),
            "version": version + 1,
            "correction_id": correction_id,
            "evidence": _evidence(verdicts),
        },
    )


def _added(
    correction_id: int, target: models.Target, fields: Mapping[str, Any], verdicts: Sequence[SourceVerdict]
) -> AuditDraft:
    return AuditDraft(
        action="target.added",
        entity="target",
        entity_id=str(target.id),
        target_id=target.id,
        before=None,
        after={
            "fields": {**(_audited(fields) or {}), "ticket": target.ticket, "source": "verifier"},
            "version": 1,
            "correction_id": correction_id,
            "evidence": _evidence(verdicts),
        },
    )


def _decision(
    c: models.Correction,
    status: str,
    reason: str | None,
    verdicts: Sequence[SourceVerdict],
    target_id: int | None,
) -> AuditDraft:
    return AuditDraft(
        action=f"verification.{status}",
        entity="correction",
        entity_id=str(c.id),
        target_id=target_id,
        before={"status": QUEUED, "fields": _audited(c.before)},
        after={"status": status, "reason": reason, "fields": _audited(c.after), "evidence": _evidence(verdicts)},
        faskes_code=c.faskes_code,
        kabkota_code=c.kabkota_code,
    )
