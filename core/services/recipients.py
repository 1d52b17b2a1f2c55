"""Daftar Penerima Vaksin: today's visits at the actor's faskes by desk status, and who has not arrived.

Read straight from PL at every call (the *Refresh* button calls it again): the front desk keeps no copy.
Names are shown, NIKs masked. "Belum datang" are the targets assigned to this faskes for today who have
no visit today at any faskes (a ticket locks no faskes: someone served elsewhere today has arrived).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Final, Literal

from sqlalchemy import bindparam, exists, select

from core.db import models
from core.domain.accounts import Actor, Role, require_role
from core.domain.errors import NotFound
from core.domain.identifiers import mask_nik
from core.domain.timeutil import local, local_date
from core.domain.visits import VisitStatus
from core.services.accounts import fresh_actor
from core.services.context import CoreContext

__all__ = [
    "GROUPS",
    "NEXT_STEP",
    "AwaitedTarget",
    "RecipientEntry",
    "RecipientList",
    "RecipientsService",
    "StepKind",
    "next_step",
]

StepKind = Literal["screen", "vaccinate", "observe"]

# The desk that takes a visit in each status to its next step.
NEXT_STEP: Mapping[VisitStatus, tuple[StepKind, Role]] = MappingProxyType(
    {
        VisitStatus.MENUNGGU_SKRINING: ("screen", Role.MEJA2),
        VisitStatus.MENUNGGU_VAKSINASI: ("vaccinate", Role.MEJA4),
        VisitStatus.OBSERVASI: ("observe", Role.MEJA4),
    }
)

# The list's sections, in the order a visit moves through the desks, then the closed ones.
GROUPS: tuple[VisitStatus, ...] = (
    VisitStatus.MENUNGGU_SKRINING,
    VisitStatus.MENUNGGU_VAKSINASI,
    VisitStatus.OBSERVASI,
    VisitStatus.SELESAI,
    VisitStatus.TUNDA,
    VisitStatus.TIDAK_DIBERIKAN,
)


def next_step(status: VisitStatus, roles: Iterable[Role]) -> StepKind | None:
    """The next step of a visit in ``status`` for a person holding ``roles`` (None: not theirs, or none)."""
    step = NEXT_STEP.get(status)
    if step is None or step[1] not in set(roles):
        return None
    return step[0]


@dataclass(frozen=True, slots=True)
class RecipientEntry:
    visit_id: int
    target_id: int
    name: str
    nik_masked: str
    dose_number: int
    status: VisitStatus
    opened_at: datetime
    rujuk: bool = False
    rescreen_date: date | None = None


@dataclass(frozen=True, slots=True)
class AwaitedTarget:
    """Assigned to this faskes for today, not arrived yet (no visit today anywhere)."""

    target_id: int
    version: int
    name: str
    nik_masked: str


@dataclass(frozen=True, slots=True)
class RecipientList:
    faskes_code: str
    faskes_name: str
    service_date: date
    as_of: datetime  # aware, local time of the faskes
    timezone: str
    entries: tuple[RecipientEntry, ...]  # grouped in GROUPS order, arrival order within a group
    not_arrived: tuple[AwaitedTarget, ...]  # by name

    def in_status(self, status: VisitStatus) -> tuple[RecipientEntry, ...]:
        return tuple(e for e in self.entries if e.status is status)

    @property
    def counts(self) -> dict[VisitStatus, int]:
        out = dict.fromkeys(GROUPS, 0)
        for e in self.entries:
            out[e.status] = out.get(e.status, 0) + 1
        return out


# The day's list in two statements, built once (see core/db/repositories.py): who arrived at the faskes today, and who
# was scheduled there today and has not arrived.
_V, _T = models.Visit, models.Target
_ARRIVED: Final = (
    select(_V.id, _V.target_id, _T.name, _T.nik, _V.dose_number, _V.status, _V.opened_at, _V.rujuk, _V.rescreen_date)
    .join(_T, _V.target_id == _T.id)
    .where(_V.faskes_code == bindparam("faskes_code"), _V.service_date == bindparam("today"))
    .order_by(_V.opened_at, _V.id)
)
_AWAITED: Final = (
    select(_T.id, _T.version, _T.name, _T.nik)
    .where(
        _T.assigned_faskes_code == bindparam("faskes_code"),
        _T.scheduled_date == bindparam("today"),
        ~exists().where(_V.target_id == _T.id, _V.service_date == bindparam("today")),
    )
    .order_by(_T.name, _T.id)
)


class RecipientsService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def today(self, actor: Actor) -> RecipientList:
        """Today's list at the actor's faskes (desk staff: meja 1, 2 or 4)."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await fresh_actor(uow, actor)
            require_role(actor, Role.MEJA1, Role.MEJA2, Role.MEJA4)
            assert actor.faskes_code is not None
            found = await uow.references.place(actor.faskes_code)
            if found is None:
                raise NotFound("faskes")
            faskes, kabkota = found
            now = uow.clock.now()
            today = local_date(now, kabkota.timezone)
            s = uow.session
            params = {"faskes_code": faskes.code, "today": today}
            rows = (await s.execute(_ARRIVED, params)).all()
            entries = [
                RecipientEntry(
                    visit_id=r.id,
                    target_id=r.target_id,
                    name=r.name,
                    nik_masked=mask_nik(r.nik),
                    dose_number=r.dose_number,
                    status=VisitStatus(r.status),
                    opened_at=r.opened_at,
                    rujuk=r.rujuk,
                    rescreen_date=r.rescreen_date,
                )
                for r in rows
            ]
            order = {status: i for i, status in enumerate(GROUPS)}
            entries.sort(key=lambda e: order.get(e.status, len(GROUPS)))  # stable: arrival order kept
            awaited = (await s.execute(_AWAITED, params)).all()
            return RecipientList(
                faskes_code=faskes.code,
                faskes_name=faskes.name,
                service_date=today,
                as_of=local(now, kabkota.timezone),
                timezone=kabkota.timezone,
                entries=tuple(entries),
                not_arrived=tuple(AwaitedTarget(r.id, r.version, r.name, mask_nik(r.nik)) for r in awaited),
            )
