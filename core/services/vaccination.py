"""Vaccination and observation at meja 4: record the dose exactly once, then the KIPI outcome.

* Only after a Lanjut in the same visit (status ``menunggu_vaksinasi``), by meja 4 of the visit's faskes.
* A dose after the first must be the product of the first (refused otherwise).
* The recorder confirms the person by the **last four digits of the NIK**; a wrong code writes nothing.
  (Counting wrong attempts is the conversation's business: nothing is stored for a refusal.)
* Saving is a conditional update ``WHERE status = 'menunggu_vaksinasi'``; the partial unique index
  (one vaccination per target and dose) backs it up. The visit closes (``is_open`` false) and waits in
  ``observasi`` for the KIPI outcome; the next dose's earliest date comes from PL's interval rows.
* Observation: ``none`` is recorded only after 30 minutes unless the recorder confirms an early record
  (``early=True``); ``mild`` and ``serious`` at any time. A serious KIPI needs a description and notifies
  the district's active Dinkes admins right after the commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from core.db import models
from core.db.driver_statement import DriverStatement, DriverWrite
from core.db.repositories import set_bound, update_params
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import Actor, Role, require_faskes, require_role
from core.domain.audit import AuditDraft
from core.domain.errors import Conflict, InvalidInput, Refused
from core.domain.identifiers import mask_nik
from core.domain.timeutil import ZONE_LABELS, age_on, local, local_date, start_of_local_day
from core.domain.vaccines import IntervalRule, earliest_next_dose, is_late
from core.domain.visits import VACCINATED, KipiOutcome, VisitStatus
from core.domain.vitals import parse_batch
from core.services.accounts import fresh_actor
from core.services.context import CoreContext
from core.services.screening import (
    QUEUE_LIMIT,
    QueueEntry,
    entry_of,
    faskes_timezone,
    load_visit_as,
    locate_visit,
)

__all__ = [
    "KIPI_DESCRIPTION_MAX",
    "KIPI_SERIOUS_NOTIFICATION",
    "NIK_CODE_LENGTH",
    "OBSERVATION_MINUTES",
    "LastBatch",
    "ObservationForm",
    "ObservationSaved",
    "ProductChoice",
    "VaccinationForm",
    "VaccinationQueue",
    "VaccinationSaved",
    "VaccinationService",
]

log = logging.getLogger(__name__)

OBSERVATION_MINUTES = 30
NIK_CODE_LENGTH = 4
KIPI_DESCRIPTION_MAX = 500
#: The notification (and locale) key of a serious KIPI, sent to the district's Dinkes admins.
KIPI_SERIOUS_NOTIFICATION = "meja4.kipi_serious"

# The desk's statements, built once (see core/db/repositories.py).
_V = models.Visit
_VISITS = models.visits_table.c
_VACCINATE: Final = DriverWrite(  # on the driver on PostgreSQL (core/db/driver_pool.py)
    update(models.visits_table)
    .where(
        _VISITS.id == bindparam("where_id"),
        _VISITS.status == VisitStatus.MENUNGGU_VAKSINASI.value,
        _VISITS.is_open.is_(True),
        _VISITS.faskes_code == bindparam("where_faskes"),
    )
    .values(
        {
            **set_bound("product_code", "batch", "expiry", "vaccinated_at", "vaccinated_by", "next_due_date"),
            "status": VisitStatus.OBSERVASI.value,
            "is_open": False,
            "version": _VISITS.version + 1,
        }
    )
)
_OBSERVE: Final = DriverWrite(
    update(models.visits_table)
    .where(
        _VISITS.id == bindparam("where_id"),
        _VISITS.status == VisitStatus.OBSERVASI.value,
        _VISITS.faskes_code == bindparam("where_faskes"),
    )
    .values(
        {
            **set_bound("kipi", "kipi_description", "observed_at", "observed_by"),
            "status": VisitStatus.SELESAI.value,
            "version": _VISITS.version + 1,
        }
    )
)
# The target's vaccinated visit of a dose.
_PREVIOUS_DOSE: Final = (
    select(_V)
    .where(
        _V.target_id == bindparam("target_id"),
        _V.dose_number == bindparam("dose_number"),
        _V.vaccinated_at.is_not(None),
    )
    .order_by(_V.vaccinated_at.desc())
    .limit(1)
)
# The recorder's latest batch today at their faskes (as the driver's SQL: core/db/driver_statement.py).
_LAST_BATCH: Final = DriverStatement(
    select(_V.product_code, _V.batch, _V.expiry)
    .where(
        _V.faskes_code == bindparam("faskes_code"),
        _V.vaccinated_by == bindparam("account_id"),
        _V.vaccinated_at >= bindparam("since"),
        _V.batch.is_not(None),
    )
    .order_by(_V.vaccinated_at.desc(), _V.id.desc())
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class ProductChoice:
    code: str
    name: str
    doses: int


@dataclass(frozen=True, slots=True)
class LastBatch:
    """The recorder's latest batch of the day, offered as a one-tap default."""

    product_code: str
    product_name: str
    batch: str
    expiry: date | None


@dataclass(frozen=True, slots=True)
class VaccinationQueue:
    waiting: tuple[QueueEntry, ...]  # screened Lanjut today, oldest first
    observing: tuple[QueueEntry, ...]  # vaccinated, KIPI outcome not yet recorded, oldest first
    more: int = 0  # waiting visits not listed


@dataclass(frozen=True, slots=True)
class VaccinationForm:
    visit_id: int
    target_id: int
    name: str
    nik_masked: str
    age: int
    dose_number: int
    today: date  # local date at the faskes (an expiry before it is refused)
    products: tuple[ProductChoice, ...]  # what may be given: a later dose offers only the first dose's product
    required_product: str | None  # the first dose's product, for a later dose
    last_batch: LastBatch | None  # the recorder's last batch today, when it fits this dose
    previous_dose_date: date | None = None
    late: bool = False  # more than 30 days past the earliest date (allowed; warn)


@dataclass(frozen=True, slots=True)
class VaccinationSaved:
    visit_id: int
    target_id: int
    name: str
    dose_number: int
    product_code: str
    product_name: str
    batch: str
    expiry: date | None
    vaccinated_at: datetime  # local
    observe_until: datetime  # local
    next_due_date: date | None  # None when the series is complete
    zone: str  # WIB | WITA | WIT
    queue: VaccinationQueue | None = None  # the desk's list right after recording (``with_queue=True``)


@dataclass(frozen=True, slots=True)
class ObservationForm:
    visit_id: int
    name: str
    dose_number: int
    product_name: str
    batch: str
    vaccinated_at: datetime  # local
    elapsed_minutes: int
    zone: str

    @property
    def ready(self) -> bool:
        return self.elapsed_minutes >= OBSERVATION_MINUTES


@dataclass(frozen=True, slots=True)
class ObservationSaved:
    visit_id: int
    name: str
    outcome: KipiOutcome
    description: str | None
    elapsed_minutes: int
    notified: int  # Dinkes admins told (serious KIPI)


def _minutes(since: datetime, now: datetime) -> int:
    return max(0, int((now - since) / timedelta(minutes=1)))


def _check_code(raw: str) -> str:
    code = "".join(raw.split())
    if len(code) != NIK_CODE_LENGTH or not code.isascii() or not code.isdigit():
        raise InvalidInput("nik_code")
    return code


class VaccinationService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    # --- reading ----------------------------------------------------------------------------

    async def queue(self, actor: Actor, *, limit: int = QUEUE_LIMIT) -> VaccinationQueue:
        """Today's visits at the actor's faskes waiting for the dose, and those in observation."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await self._recorder(uow, actor)
            return await self._queue(uow, actor, limit)

    async def locate(self, actor: Actor, raw_key: str) -> QueueEntry:
        """The visit of a ticket or NIK to vaccinate or to observe at the actor's faskes."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await self._recorder(uow, actor)
            return await locate_visit(uow, actor, raw_key, (VisitStatus.MENUNGGU_VAKSINASI, VisitStatus.OBSERVASI))

    async def open(self, actor: Actor, visit_id: int) -> VaccinationForm:
        """Start recording the dose of a visit screened Lanjut."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA4)
            require_faskes(actor, visit.faskes_code)
            self._check_waiting(visit, target.name)
            today = local_date(uow.clock.now(), tz)
            products = await self._products(uow)
            previous = await self._previous_dose(uow, visit)
            required = previous.product_code if previous else None
            allowed = tuple(p for p in products.values() if required is None or p.code == required)
            last = await self._last_batch(uow, actor, tz, today, products)
            if last is not None and required is not None and last.product_code != required:
                last = None
            age = age_on(target.birth_date, today)
            late = False
            previous_date = None
            if previous is not None and previous.vaccinated_at is not None and previous.product_code:
                previous_date = local_date(previous.vaccinated_at, tz)
                rules = await self._intervals(uow)
                try:
                    late = is_late(rules, previous.product_code, previous_date, age, today)
                except InvalidInput:
                    late = False
            return VaccinationForm(
                visit_id=visit.id,
                target_id=target.id,
                name=target.name,
                nik_masked=mask_nik(target.nik),
                age=age,
                dose_number=visit.dose_number,
                today=today,
                products=allowed,
                required_product=required,
                last_batch=last,
                previous_dose_date=previous_date,
                late=late,
            )

    async def observation(self, actor: Actor, visit_id: int) -> ObservationForm:
        """A visit in observation: how long since the injection."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA4)
            require_faskes(actor, visit.faskes_code)
            if visit.status != VisitStatus.OBSERVASI.value or visit.vaccinated_at is None:
                raise Conflict("not_in_observation", name=target.name)
            products = await self._products(uow)
            return ObservationForm(
                visit_id=visit.id,
                name=target.name,
                dose_number=visit.dose_number,
                product_name=self._product_name(products, visit.product_code),
                batch=visit.batch or "",
                vaccinated_at=local(visit.vaccinated_at, tz),
                elapsed_minutes=_minutes(visit.vaccinated_at, uow.clock.now()),
                zone=ZONE_LABELS.get(tz, tz),
            )

    # --- writing ----------------------------------------------------------------------------

    async def record(
        self,
        actor: Actor,
        visit_id: int,
        *,
        product_code: str,
        batch: str,
        expiry: date | None,
        nik_last4: str,
        with_queue: bool = False,
    ) -> VaccinationSaved:
        """Record the dose, exactly once. ``Refused("nik_code_mismatch")`` writes nothing.

        ``with_queue``: the result also carries the desk's list as it stands after recording (same transaction).
        """
        code = _check_code(nik_last4)
        batch = parse_batch(batch)
        async with self.ctx.uow(actor) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA4)
            require_faskes(actor, visit.faskes_code)
            self._check_waiting(visit, target.name)
            now = uow.clock.now()
            today = local_date(now, tz)
            products = await self._products(uow)
            product = products.get(product_code)
            if product is None:
                raise InvalidInput("product", got=product_code)
            previous = await self._previous_dose(uow, visit)
            if previous is not None and previous.product_code and previous.product_code != product.code:
                raise Refused(
                    "product_mismatch",
                    product=self._product_name(products, previous.product_code),
                    dose=visit.dose_number - 1,
                )
            if visit.dose_number > product.doses:
                raise Refused("dose_beyond_series", doses=product.doses, dose=visit.dose_number)
            if expiry is not None and expiry < today:
                raise InvalidInput("expiry_past", got=expiry.isoformat(), expiry=expiry, today=today)
            if not secrets.compare_digest(code, target.nik[-NIK_CODE_LENGTH:]):
                raise Refused("nik_code_mismatch")
            next_due: date | None = None
            if visit.dose_number < product.doses:
                rules = await self._intervals(uow)
                next_due = earliest_next_dose(rules, product.code, today, age_on(target.birth_date, today))
            values: dict[str, Any] = {
                "product_code": product.code,
                "batch": batch,
                "expiry": expiry,
                "vaccinated_at": now,
                "vaccinated_by": actor.account_id,
                "next_due_date": next_due,
            }
            params = update_params(values, id=visit.id, faskes=actor.faskes_code)
            try:
                changed = await _VACCINATE.execute(uow.session, **params)
            except IntegrityError as exc:  # the unique index: this dose of this person is already recorded
                raise Conflict("already_vaccinated", name=target.name) from exc
            if changed != 1:
                raise Conflict("already_vaccinated", name=target.name)
            uow.audit(
                AuditDraft(
                    action="visit.vaccinate",
                    entity="visit",
                    entity_id=str(visit.id),
                    target_id=target.id,
                    before={"status": visit.status, "is_open": visit.is_open, "version": visit.version},
                    after={
                        **values,
                        "dose_number": visit.dose_number,
                        "status": VisitStatus.OBSERVASI.value,
                        "is_open": False,
                    },
                    faskes_code=visit.faskes_code,
                )
            )
            queue = await self._queue(uow, actor, QUEUE_LIMIT) if with_queue else None
            await uow.commit()
        at = local(now, tz)
        return VaccinationSaved(
            visit_id=visit.id,
            target_id=target.id,
            name=target.name,
            dose_number=visit.dose_number,
            product_code=product.code,
            product_name=product.name,
            batch=batch,
            expiry=expiry,
            vaccinated_at=at,
            observe_until=at + timedelta(minutes=OBSERVATION_MINUTES),
            next_due_date=next_due,
            zone=ZONE_LABELS.get(tz, tz),
            queue=queue,
        )

    async def observe(
        self,
        actor: Actor,
        visit_id: int,
        outcome: KipiOutcome,
        description: str | None = None,
        *,
        early: bool = False,
    ) -> ObservationSaved:
        """Record the KIPI outcome, exactly once. A serious KIPI notifies the district's Dinkes admins.

        ``Refused("observation_early", minutes=, remaining=)`` for "none" before 30 minutes unless ``early``.
        """
        # Free text: control characters dropped (PostgreSQL refuses a NUL; none belongs in PL).
        note = " ".join("".join(ch for ch in description or "" if ch.isprintable() or ch.isspace()).split()) or None
        if outcome is KipiOutcome.SERIOUS and note is None:
            raise InvalidInput("kipi_description")
        if note is not None and len(note) > KIPI_DESCRIPTION_MAX:
            raise InvalidInput("kipi_description_long", max=KIPI_DESCRIPTION_MAX, got=len(note))
        if outcome is KipiOutcome.NONE:
            note = None
        recipients: list[int] = []
        params: dict[str, object] = {}
        async with self.ctx.uow(actor) as uow:
            actor, (visit, target, tz) = await load_visit_as(uow, actor, visit_id, Role.MEJA4)
            require_faskes(actor, visit.faskes_code)
            if visit.status != VisitStatus.OBSERVASI.value or visit.vaccinated_at is None:
                raise Conflict("not_in_observation", name=target.name)
            now = uow.clock.now()
            elapsed = _minutes(visit.vaccinated_at, now)
            if outcome is KipiOutcome.NONE and elapsed < OBSERVATION_MINUTES and not early:
                raise Refused("observation_early", minutes=elapsed, remaining=OBSERVATION_MINUTES - elapsed)
            observed = {
                "kipi": outcome.value,
                "kipi_description": note,
                "observed_at": now,
                "observed_by": actor.account_id,
            }
            params = update_params(observed, id=visit.id, faskes=actor.faskes_code)
            if await _OBSERVE.execute(uow.session, **params) != 1:
                raise Conflict("not_in_observation", name=target.name)
            uow.audit(
                AuditDraft(
                    action="visit.observe",
                    entity="visit",
                    entity_id=str(visit.id),
                    target_id=target.id,
                    before={"status": visit.status, "version": visit.version},
                    after={
                        "status": VisitStatus.SELESAI.value,
                        "kipi": outcome.value,
                        "kipi_description": note,
                        "observed_at": now,
                        "elapsed_minutes": elapsed,
                    },
                    faskes_code=visit.faskes_code,
                )
            )
            if outcome is KipiOutcome.SERIOUS:
                found = await uow.references.place(visit.faskes_code)
                faskes_name = found[0].name if found else visit.faskes_code
                kabkota = found[1].code if found else None
                if kabkota is not None:
                    recipients = [a.telegram_id for a in await uow.accounts.active_dinkes_of(kabkota)]
                products = await self._products(uow)
                assert visit.vaccinated_at is not None
                params = {
                    "name": target.name,
                    "nik": mask_nik(target.nik),
                    "faskes": faskes_name,
                    "faskes_code": visit.faskes_code,
                    "product": self._product_name(products, visit.product_code),
                    "batch": visit.batch or "",
                    "dose": visit.dose_number,
                    "vaccinated_at": local(visit.vaccinated_at, tz).strftime("%d-%m-%Y %H:%M"),
                    "zone": ZONE_LABELS.get(tz, tz),
                    "description": note or "",
                    "visit_id": visit.id,
                }
            await uow.commit()
        notified = 0
        for telegram_id in recipients:
            try:
                await self.ctx.notifier.notify(telegram_id, KIPI_SERIOUS_NOTIFICATION, **params)
                notified += 1
            except Exception:
                log.warning("serious KIPI of visit %s: a Dinkes admin could not be notified", visit_id, exc_info=True)
        return ObservationSaved(
            visit_id=visit_id,
            name=target.name,
            outcome=outcome,
            description=note,
            elapsed_minutes=elapsed,
            notified=notified,
        )

    # --- internals --------------------------------------------------------------------------

    async def _recorder(self, uow: SqlUnitOfWork, actor: Actor) -> Actor:
        fresh = await fresh_actor(uow, actor)
        require_role(fresh, Role.MEJA4)
        return fresh

    @staticmethod
    async def _queue(uow: SqlUnitOfWork, actor: Actor, limit: int) -> VaccinationQueue:
        """Both halves of the list in one statement, split here."""
        assert actor.faskes_code is not None
        tz = await faskes_timezone(uow, actor.faskes_code)
        today = local_date(uow.clock.now(), tz)
        rows = await uow.visits.vaccination_list(actor.faskes_code, today, start_of_local_day(today, tz))
        waiting = sorted(
            (r for r in rows if r.status == VisitStatus.MENUNGGU_VAKSINASI.value),
            key=lambda r: (r.screened_at is None, r.screened_at or r.opened_at, r.id),
        )
        observing = sorted(
            (r for r in rows if r.status == VisitStatus.OBSERVASI.value),
            key=lambda r: (r.vaccinated_at, r.id),
        )[:limit]
        return VaccinationQueue(
            tuple(entry_of(r, r.name, tz) for r in waiting[:limit]),
            tuple(entry_of(r, r.name, tz) for r in observing),
            max(0, len(waiting) - limit),
        )

    @staticmethod
    def _check_waiting(visit: models.Visit, name: str) -> None:
        if visit.status == VisitStatus.MENUNGGU_VAKSINASI.value:
            if not visit.is_open:  # lapsed: closed by a later registration
                raise Conflict("visit_closed", name=name)
            return
        if visit.status in {s.value for s in VACCINATED}:
            raise Conflict("already_vaccinated", name=name)
        if visit.status == VisitStatus.MENUNGGU_SKRINING.value:
            raise Refused("not_screened", name=name)
        raise Refused("not_lanjut", name=name)

    @staticmethod
    async def _products(uow: SqlUnitOfWork) -> dict[str, ProductChoice]:
        return {p.code: ProductChoice(p.code, p.name, p.doses) for p in (await uow.references.vaccines()).products}

    @staticmethod
    def _product_name(products: dict[str, ProductChoice], code: str | None) -> str:
        if code is None:
            return ""
        product = products.get(code)
        return product.name if product else code

    @staticmethod
    async def _intervals(uow: SqlUnitOfWork) -> Sequence[IntervalRule]:
        return (await uow.references.vaccines()).intervals

    @staticmethod
    async def _previous_dose(uow: SqlUnitOfWork, visit: models.Visit) -> models.Visit | None:
        """The target's vaccinated visit of the previous dose (None for a first dose)."""
        if visit.dose_number <= 1:
            return None
        params = {"target_id": visit.target_id, "dose_number": visit.dose_number - 1}
        return (await uow.session.execute(_PREVIOUS_DOSE, params)).scalars().first()

    @staticmethod
    async def _last_batch(
        uow: SqlUnitOfWork, actor: Actor, tz: str, today: date, products: dict[str, ProductChoice]
    ) -> LastBatch | None:
        """The recorder's latest vaccinated visit today at their faskes (from PL), as a default; None when expired.

        The faskes bounds the read to today's doses there (``ix_visits_faskes_vaccinated``); by the recorder alone it
        would read every visit in PL."""
        since = start_of_local_day(today, tz)
        row = await _LAST_BATCH.first(
            uow.session, faskes_code=actor.faskes_code, account_id=actor.account_id, since=since
        )
        if row is None:
            return None
        product_code, batch, expiry = row
        if product_code is None or batch is None or product_code not in products:
            return None
        if expiry is not None and expiry < today:
            return None
        return LastBatch(product_code, products[product_code].name, batch, expiry)
