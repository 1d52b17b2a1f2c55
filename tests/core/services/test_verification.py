"""Verifikasi Data Sasaran in core: corrections, additions, the reference check, the Dinkes review.

On the demo database (SQLite and PostgreSQL). The reference sources are either the embedded SQL
tables (``ref_jkn`` / ``ref_dukcapil``, through ``core.references.factory``) or small fakes whose
answers the test chooses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.db import models
from core.db.seed import DEMO_FASKES_CODE
from core.domain.accounts import Actor
from core.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Refused, Unavailable
from core.domain.identifiers import format_ticket, mask_nik, normalize_ticket
from core.domain.names import names_match, normalize_name
from core.domain.reference import Decision, ReferenceRecord, Source, VerdictKind
from core.ports import FixedClock
from core.references.factory import build_reference_sources, close_reference_sources
from core.references.tables import ref_dukcapil, ref_jkn
from core.services.registry import Services, build_services
from core.services.verification import NewTarget

VERIFIER, MEJA1, DINKES, DINKES_OTHER = 910005, 910001, 910010, 910011


# --------------------------------------------------------------------------------------------
# Helpers (the flow tests import them too)
# --------------------------------------------------------------------------------------------


@dataclass
class RecordingNotifier:
    sent: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    async def notify(self, telegram_id: int, message: str, **params: object) -> None:
        self.sent.append((telegram_id, message, dict(params)))

    async def refresh_menu(self, telegram_id: int) -> None:
        return None

    def to(self, telegram_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [(m, p) for t, m, p in self.sent if t == telegram_id]


class FakeSource:
    """A reference source answering from a dict, or failing / hanging as told."""

    def __init__(
        self,
        source: Source,
        records: Mapping[str, ReferenceRecord] | None = None,
        *,
        fail: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.source = source
        self.records = dict(records or {})
        self.fail = fail
        self.delay = delay
        self.calls = 0

    async def fetch(self, nik: str) -> ReferenceRecord | None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise Unavailable("reference", source=self.source.value, detail="connection")
        return self.records.get(nik)


async def actor_of(services: Services, telegram_id: int) -> Actor:
    return await services.accounts.resolve_actor(telegram_id)


@dataclass(frozen=True)
class Person:
    target_id: int
    version: int
    nik: str
    ticket: str
    name: str  # in PL
    birth_date: date
    sex: str
    ref_name: str  # in the sources

    def record(self, **changes: Any) -> ReferenceRecord:
        values: dict[str, Any] = {
            "nik": self.nik,
            "name": self.ref_name,
            "birth_date": self.birth_date,
            "sex": self.sex,
            **changes,
        }
        return ReferenceRecord(**values)


async def demo_people(engine: AsyncEngine, *, misspelt: bool = False, limit: int = 5) -> list[Person]:
    """Targets at the demo faskes, no desk entry, in both sources with the same birth date;
    ``misspelt``: those whose PL name is spelt otherwise than the sources' (a correction to make)."""
    t = models.Target
    stmt = (
        select(t.id, t.version, t.nik, t.ticket, t.name, t.birth_date, t.sex, ref_jkn.c.name)
        .join(ref_jkn, ref_jkn.c.nik == t.nik)
        .join(ref_dukcapil, ref_dukcapil.c.nik == t.nik)
        .where(
            t.assigned_faskes_code == DEMO_FASKES_CODE,
            t.first_desk_at.is_(None),
            t.birth_date == ref_jkn.c.birth_date,
            t.birth_date == ref_dukcapil.c.birth_date,
        )
        .order_by(t.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    # The seed's misspellings are spelling variants ("Oejang" / "Ujang") that still match; tell
    # them apart by the normalised spelling.
    out = [Person(*row) for row in rows if (normalize_name(row[4]) != normalize_name(row[7])) == misspelt]
    assert all(names_match(p.name, p.ref_name) for p in out)
    assert len(out) >= min(limit, 1), "the demo data set has such people"
    return out[:limit]


async def not_in_pl(engine: AsyncEngine) -> ReferenceRecord:
    """A person both sources know and PL does not (the seed's NOT_IN_PL case), in the demo district."""
    stmt = (
        select(ref_dukcapil.c.nik, ref_dukcapil.c.name, ref_dukcapil.c.birth_date, ref_dukcapil.c.sex)
        .join(ref_jkn, ref_jkn.c.nik == ref_dukcapil.c.nik)
        .outerjoin(models.Target, models.Target.nik == ref_dukcapil.c.nik)
        .where(models.Target.id.is_(None), ref_dukcapil.c.kabkota_code == "3273")
        .order_by(ref_dukcapil.c.nik)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    assert row is not None
    return ReferenceRecord(nik=row[0], name=row[1], birth_date=row[2], sex=row[3])


async def target_row(engine: AsyncEngine, target_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(models.Target).where(models.Target.id == target_id))).one()


async def audit_actions(engine: AsyncEngine) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    e = models.AuditEvent
    async with engine.connect() as conn:
        rows = (await conn.execute(select(e.action, e.before, e.after).order_by(e.seq))).all()
    return [(r[0], r[1], r[2]) for r in rows]


async def register_at_meja1(services: Services, engine: AsyncEngine, target_id: int, seen_version: int) -> None:
    """A registration at meja 1 as the registration service does it (its own use case when present)."""
    register = getattr(services.registration, "register", None)
    if register is not None:
        await register(await actor_of(services, MEJA1), target_id, seen_version)
        return
    now = services.ctx.clock.now()  # pragma: no cover - before the registration service existed
    async with engine.begin() as conn:  # pragma: no cover
        result = await conn.execute(
            update(models.Target)
            .where(models.Target.id == target_id, models.Target.version == seen_version)
            .values(first_desk_at=now, version=seen_version + 1)
        )
        if result.rowcount != 1:
            raise Conflict("target_changed")
        account = await conn.scalar(select(models.Account.id).where(models.Account.telegram_id == MEJA1))
        await conn.execute(
            insert(models.Visit).values(
                target_id=target_id,
                dose_number=1,
                faskes_code=DEMO_FASKES_CODE,
                service_date=now.date(),
                status="menunggu_skrining",
                is_open=True,
                version=1,
                opened_at=now,
                opened_by=account,
            )
        )


def with_sources(
    engine: AsyncEngine, clock: FixedClock, *sources: Any, timeout: float = 2.0
) -> tuple[Services, RecordingNotifier]:
    notifier = RecordingNotifier()
    services = build_services(
        engine, clock=clock, notifier=notifier, references=tuple(sources), reference_timeout=timeout
    )
    return services, notifier


# --------------------------------------------------------------------------------------------
# Corrections
# --------------------------------------------------------------------------------------------


async def test_a_correction_confirmed_by_jkn_is_applied_at_once(engine: AsyncEngine, clock: FixedClock) -> None:
    person = (await demo_people(engine))[0]
    new_phone = "0812-7777-1234"
    jkn = FakeSource(Source.JKN, {person.nik: person.record()})
    dukcapil = FakeSource(Source.DUKCAPIL, {})  # not found: no contradiction
    services, notifier = with_sources(engine, clock, jkn, dukcapil)
    verifier = await actor_of(services, VERIFIER)

    editable = await services.verification.open_target(verifier, format_ticket(person.ticket))
    assert editable.nik == mask_nik(person.nik) and not editable.nik_typed
    changes = {"phone": new_phone, "sex": person.sex}
    preview = await services.verification.preview_correction(verifier, person.target_id, person.version, changes)
    assert preview.decision is Decision.APPLY
    assert [c.field for c in preview.changes] == ["phone"]  # the same sex is not a change
    assert "7777" not in (preview.changes[0].after or "")  # masked
    done = await services.verification.submit_correction(verifier, person.target_id, person.version, changes)

    assert done.status == "applied"
    assert {v.source: v.kind for v in done.verdicts} == {
        Source.JKN: VerdictKind.CONFIRMED,
        Source.DUKCAPIL: VerdictKind.NOT_FOUND,
    }
    row = await target_row(engine, person.target_id)
    assert row.phone == "+6281277771234" and row.version == person.version + 1
    assert notifier.sent == []  # nobody to ask
    actions = await audit_actions(engine)
    assert [a for a, _, _ in actions] == ["verification.submitted", "target.corrected"]
    _, before, after = actions[1]
    assert before is not None and after is not None
    assert before["version"] == person.version and after["version"] == person.version + 1
    assert [e["kind"] for e in after["evidence"]] == ["confirmed", "not_found"]
    assert "7777" not in str(after["fields"])  # the trail keeps the phone masked
    assert (await services.audit.verify_chain()).ok


async def test_a_misspelt_name_corrected_against_the_embedded_sources(
    engine: AsyncEngine, clock: FixedClock, demo_db_url: str
) -> None:
    person = (await demo_people(engine, misspelt=True))[0]
    sources = build_reference_sources(Settings(database_url=demo_db_url, _env_file=None), engine)
    try:
        services, _ = with_sources(engine, clock, *sources)
        verifier = await actor_of(services, VERIFIER)
        preview = await services.verification.preview_correction(
            verifier, person.target_id, person.version, {"name": person.ref_name.title()}
        )
        assert [v.kind for v in preview.verdicts] == [VerdictKind.CONFIRMED, VerdictKind.CONFIRMED]
        done = await services.verification.submit_correction(
            verifier, person.target_id, person.version, {"name": person.ref_name.title()}
        )
    finally:
        await close_reference_sources(sources)
    assert done.status == "applied"
    assert (await target_row(engine, person.target_id)).name == person.ref_name.title()


async def test_a_correction_contradicted_by_dukcapil_is_queued_and_approved_by_dinkes(
    engine: AsyncEngine, clock: FixedClock
) -> None:
    person = (await demo_people(engine))[0]
    new_birth = person.birth_date - timedelta(days=2)
    jkn = FakeSource(Source.JKN, {person.nik: person.record(birth_date=new_birth)})
    dukcapil = FakeSource(Source.DUKCAPIL, {person.nik: person.record()})  # keeps the old date
    services, notifier = with_sources(engine, clock, jkn, dukcapil)
    verifier, dinkes = await actor_of(services, VERIFIER), await actor_of(services, DINKES)

    done = await services.verification.submit_correction(
        verifier, person.target_id, person.version, {"birth_date": new_birth.strftime("%d-%m-%Y")}
    )
    assert done.status == "queued"
    assert [(v.source, v.kind, v.fields) for v in done.verdicts] == [
        (Source.JKN, VerdictKind.CONFIRMED, ()),
        (Source.DUKCAPIL, VerdictKind.CONTRADICTED, ("birth_date",)),
    ]
    assert done.nik_mismatches == ("birth_date",)  # the NIK still encodes the old date: shown as a warning
    assert (await target_row(engine, person.target_id)).birth_date == person.birth_date  # not yet
    ((message, params),) = notifier.to(DINKES)
    assert message == "verification.queued" and params["correction_id"] == done.correction_id
    assert params["nik"] == mask_nik(person.nik)
    assert notifier.to(DINKES_OTHER) == []  # another district

    queued = await services.verification.queued(dinkes)
    assert [q.correction_id for q in queued] == [done.correction_id]
    assert queued[0].changes[0].field == "birth_date"
    assert await services.verification.queued(await actor_of(services, DINKES_OTHER)) == ()

    result = await services.verification.approve(dinkes, done.correction_id)
    assert result.status == "approved"
    row = await target_row(engine, person.target_id)
    assert row.birth_date == new_birth and row.version == person.version + 1
    assert notifier.to(VERIFIER) == [
        (
            "verification.approved",
            {
                "correction_id": done.correction_id,
                "kind": "correction",
                "name": person.name,
                "ticket": "",
                "reason": "",
            },
        )
    ]
    with pytest.raises(Conflict) as second:
        await services.verification.approve(dinkes, done.correction_id)
    assert second.value.reason == "already_decided"
    assert [a for a, _, _ in await audit_actions(engine)] == [
        "verification.submitted",
        "target.corrected",
        "verification.approved",
    ]
    assert (await services.audit.verify_chain()).ok


async def test_a_rejection_needs_a_reason_and_tells_the_verifier(engine: AsyncEngine, clock: FixedClock) -> None:
    person = (await demo_people(engine))[0]
    services, notifier = with_sources(engine, clock)  # no source at all: nothing confirms, queued
    verifier, dinkes = await actor_of(services, VERIFIER), await actor_of(services, DINKES)
    done = await services.verification.submit_correction(
        verifier, person.target_id, person.version, {"sex": "P" if person.sex == "L" else "L"}
    )
    assert done.status == "queued" and done.verdicts == ()

    with pytest.raises(InvalidInput):
        await services.verification.reject(dinkes, done.correction_id, "   ")
    with pytest.raises(PermissionDenied):
        await services.verification.reject(await actor_of(services, DINKES_OTHER), done.correction_id, "no")
    with pytest.raises(PermissionDenied):
        await services.verification.approve(verifier, done.correction_id)
    result = await services.verification.reject(dinkes, done.correction_id, "KTP tidak  sesuai")
    assert result.status == "rejected" and result.reason == "KTP tidak sesuai"
    assert (await target_row(engine, person.target_id)).sex == person.sex
    assert notifier.to(VERIFIER)[0][0] == "verification.rejected"
    assert notifier.to(VERIFIER)[0][1]["reason"] == "KTP tidak sesuai"


async def test_corrections_are_refused_after_registration_at_meja1(engine: AsyncEngine, clock: FixedClock) -> None:
    person = (await demo_people(engine))[0]
    services, _ = with_sources(engine, clock, FakeSource(Source.JKN, {person.nik: person.record()}))
    verifier = await actor_of(services, VERIFIER)
    await register_at_meja1(services, engine, person.target_id, person.version)

    with pytest.raises(Refused) as opening:
        await services.verification.open_target(verifier, person.nik)
    assert opening.value.reason == "desk_entry"
    with pytest.raises(Refused) as submitting:
        await services.verification.submit_correction(
            verifier, person.target_id, person.version + 1, {"phone": "081277771234"}
        )
    assert submitting.value.reason == "desk_entry"


async def test_a_queued_correction_goes_stale_when_the_person_is_registered_meanwhile(
    engine: AsyncEngine, clock: FixedClock
) -> None:
    person = (await demo_people(engine))[0]
    services, notifier = with_sources(engine, clock, FakeSource(Source.JKN, fail=True))
    verifier, dinkes = await actor_of(services, VERIFIER), await actor_of(services, DINKES)
    done = await services.verification.submit_correction(
        verifier, person.target_id, person.version, {"name": "Nama Baru Sekali"}
    )
    assert done.status == "queued"
    await register_at_meja1(services, engine, person.target_id, person.version)

    result = await services.verification.approve(dinkes, done.correction_id)
    assert (result.status, result.reason) == ("stale", "desk_entry")
    assert (await target_row(engine, person.target_id)).name == person.name
    assert notifier.to(VERIFIER)[-1][0] == "verification.stale"
    assert "verification.stale" in [a for a, _, _ in await audit_actions(engine)]


async def test_a_stale_version_is_a_conflict_and_nothing_changed_is_invalid(
    engine: AsyncEngine, clock: FixedClock
) -> None:
    person = (await demo_people(engine))[0]
    services, _ = with_sources(engine, clock)
    verifier = await actor_of(services, VERIFIER)
    with pytest.raises(Conflict) as stale:
        await services.verification.submit_correction(verifier, person.target_id, person.version - 1, {"name": "X Y"})
    assert stale.value.reason == "target_changed"
    with pytest.raises(InvalidInput) as same:
        await services.verification.submit_correction(
            verifier, person.target_id, person.version, {"name": f" {person.name} "}
        )
    assert same.value.reason == "no_changes"


@pytest.mark.parametrize(
    ("field", "raw", "error", "reason"),
    [
        ("phone", "0211234567", InvalidInput, "not_mobile"),
        ("birth_date", "31-02-1990", InvalidInput, "date"),
        ("birth_date", "01-01-2090", InvalidInput, "birth_date_future"),
        ("sex", "X", InvalidInput, "target_sex"),
        ("category", "pejabat", InvalidInput, "target_category"),
        ("assigned_faskes_code", "9999X999", NotFound, "assigned_faskes"),
        ("name", "4321", InvalidInput, "target_name"),
        ("nik", "3273010101900001", InvalidInput, "correction_field"),
    ],
)
async def test_values_are_validated_like_everywhere_else(
    services: Services, field: str, raw: str, error: type[Exception], reason: str
) -> None:
    verifier = await actor_of(services, VERIFIER)
    with pytest.raises(error) as caught:
        await services.verification.check_value(verifier, field, raw)
    assert getattr(caught.value, "reason", None) == reason


async def test_values_are_canonical(services: Services) -> None:
    verifier = await actor_of(services, VERIFIER)
    check = services.verification.check_value
    assert await check(verifier, "phone", "0812 3456 7890") == "+6281234567890"
    assert await check(verifier, "birth_date", "17-08-1990") == "1990-08-17"
    assert await check(verifier, "sex", "perempuan") == "P"
    assert await check(verifier, "assigned_faskes_code", " 3273k001 ") == "3273K001"
    assert await check(verifier, "name", "  dr.  Siti   Aminah ") == "dr. Siti Aminah"


async def test_only_verifiers_correct_and_only_in_their_district(engine: AsyncEngine, services: Services) -> None:
    person = (await demo_people(engine))[0]
    with pytest.raises(PermissionDenied):
        await services.verification.open_target(await actor_of(services, MEJA1), person.nik)
    async with engine.connect() as conn:
        elsewhere = await conn.scalar(
            select(models.Target.id).where(models.Target.assigned_faskes_code.like("7371%")).limit(1)
        )
    with pytest.raises(PermissionDenied) as denied:
        await services.verification.open_target_by_id(await actor_of(services, VERIFIER), elsewhere)
    assert denied.value.reason == "other_district"


# --------------------------------------------------------------------------------------------
# Additions
# --------------------------------------------------------------------------------------------


def draft_of(person: ReferenceRecord, **changes: str | None) -> NewTarget:
    values: dict[str, Any] = {
        "nik": person.nik,
        "name": person.name.title(),
        "birth_date": person.birth_date.strftime("%d-%m-%Y"),
        "sex": person.sex,
        "phone": "081311112222",
        "category": "nakes",
        **changes,
    }
    return NewTarget(**values)


async def test_an_addition_confirmed_gets_a_fresh_ticket_at_the_verifiers_faskes(
    engine: AsyncEngine, clock: FixedClock, demo_db_url: str
) -> None:
    person = await not_in_pl(engine)
    sources = build_reference_sources(Settings(database_url=demo_db_url, _env_file=None), engine)
    try:
        services, _ = with_sources(engine, clock, *sources)
        verifier = await actor_of(services, VERIFIER)
        new = await services.verification.check_new_nik(verifier, person.nik)
        assert (new.birth_date, new.sex) == (person.birth_date, person.sex)
        done = await services.verification.submit_addition(verifier, draft_of(person))
    finally:
        await close_reference_sources(sources)
    assert done.status == "applied" and done.ticket is not None and done.target_id is not None
    row = await target_row(engine, done.target_id)
    assert format_ticket(row.ticket) == done.ticket and normalize_ticket(done.ticket) == row.ticket
    assert (row.nik, row.assigned_faskes_code, row.source, row.version) == (person.nik, DEMO_FASKES_CODE, "verifier", 1)
    assert row.phone == "+6281311112222" and row.first_desk_at is None
    async with engine.connect() as conn:
        correction = (await conn.execute(select(models.Correction))).scalar_one_or_none()
        status, target_id = (await conn.execute(select(models.Correction.status, models.Correction.target_id))).one()
    assert correction is not None and (status, target_id) == ("applied", done.target_id)
    actions = await audit_actions(engine)
    assert [a for a, _, _ in actions] == ["verification.submitted", "target.added"]
    assert person.nik not in str(actions)  # masked in the trail

    verifier_view = await services.verification.open_target(verifier, person.nik)  # now correctable
    assert verifier_view.target_id == done.target_id


async def test_an_addition_of_a_nik_already_in_pl_points_at_its_ticket(engine: AsyncEngine, services: Services) -> None:
    person = (await demo_people(engine))[0]
    verifier = await actor_of(services, VERIFIER)
    with pytest.raises(Refused) as refused:
        await services.verification.check_new_nik(verifier, person.nik)
    assert refused.value.reason == "nik_exists"
    assert refused.value.params == {"ticket": format_ticket(person.ticket), "nik": mask_nik(person.nik)}
    record = person.record()
    with pytest.raises(Refused):
        await services.verification.submit_addition(verifier, draft_of(record))


async def test_an_addition_whose_birth_date_disagrees_with_the_nik_says_so(
    engine: AsyncEngine, clock: FixedClock
) -> None:
    person = await not_in_pl(engine)
    typed = person.birth_date + timedelta(days=1)
    services, notifier = with_sources(
        engine, clock, FakeSource(Source.JKN, {person.nik: person}), FakeSource(Source.DUKCAPIL, {person.nik: person})
    )
    verifier = await actor_of(services, VERIFIER)
    preview = await services.verification.preview_addition(verifier, draft_of(person, birth_date=typed.isoformat()))
    assert preview.nik_mismatches == ("birth_date",)
    assert [v.fields for v in preview.verdicts] == [("birth_date",), ("birth_date",)]
    done = await services.verification.submit_addition(verifier, draft_of(person, birth_date=typed.isoformat()))
    assert done.status == "queued" and done.ticket is None
    assert notifier.to(DINKES)[0][1]["nik_mismatches"] == ["birth_date"]
    item = (await services.verification.queued(await actor_of(services, DINKES)))[0]
    assert item.kind == "addition" and item.nik_mismatches == ("birth_date",)

    result = await services.verification.approve(await actor_of(services, DINKES), done.correction_id)
    assert result.status == "approved" and result.ticket is not None
    assert notifier.to(VERIFIER)[0][1]["ticket"] == result.ticket


async def test_an_addition_approved_after_the_nik_reached_pl_goes_stale(engine: AsyncEngine, clock: FixedClock) -> None:
    person = await not_in_pl(engine)
    services, _ = with_sources(engine, clock)
    verifier, dinkes = await actor_of(services, VERIFIER), await actor_of(services, DINKES)
    first = await services.verification.submit_addition(verifier, draft_of(person))
    second = await services.verification.submit_addition(verifier, draft_of(person, phone=None))
    assert first.status == second.status == "queued"
    assert (await services.verification.approve(dinkes, first.correction_id)).status == "approved"
    late = await services.verification.approve(dinkes, second.correction_id)
    assert (late.status, late.reason) == ("stale", "nik_exists")
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).where(models.Target.nik == person.nik)) == 1


# --------------------------------------------------------------------------------------------
# Sources: timeouts and failures
# --------------------------------------------------------------------------------------------


async def test_one_source_timing_out_does_not_hold_up_the_other(engine: AsyncEngine, clock: FixedClock) -> None:
    person = (await demo_people(engine))[0]
    slow = FakeSource(Source.DUKCAPIL, {person.nik: person.record()}, delay=30)
    services, _ = with_sources(engine, clock, FakeSource(Source.JKN, {person.nik: person.record()}), slow, timeout=0.3)
    verifier = await actor_of(services, VERIFIER)
    started = time.monotonic()
    done = await services.verification.submit_correction(
        verifier, person.target_id, person.version, {"phone": "081299990000"}
    )
    waited = time.monotonic() - started
    assert done.status == "applied"
    assert [(v.kind, v.detail) for v in done.verdicts] == [
        (VerdictKind.CONFIRMED, None),
        (VerdictKind.UNAVAILABLE, "timeout"),
    ]
    assert waited < 10  # bounded by the timeout (0.3 s), nowhere near the source's 30 s


async def test_both_sources_failing_queue_the_correction(engine: AsyncEngine, clock: FixedClock) -> None:
    person = (await demo_people(engine))[0]
    services, notifier = with_sources(
        engine, clock, FakeSource(Source.JKN, fail=True), FakeSource(Source.DUKCAPIL, fail=True)
    )
    verifier = await actor_of(services, VERIFIER)
    done = await services.verification.submit_correction(
        verifier, person.target_id, person.version, {"category": "umum"}
    )
    assert done.status == "queued"
    assert [(v.kind, v.detail) for v in done.verdicts] == [
        (VerdictKind.UNAVAILABLE, "connection"),
        (VerdictKind.UNAVAILABLE, "connection"),
    ]
    assert [m for m, _ in notifier.to(DINKES)] == ["verification.queued"]


# --------------------------------------------------------------------------------------------
# The race with meja 1
# --------------------------------------------------------------------------------------------


async def test_a_registration_holding_the_row_makes_the_correction_lose(engine: AsyncEngine, clock: FixedClock) -> None:
    """Registration's transaction updates the target first and commits while the correction waits."""
    person = (await demo_people(engine))[0]
    services, _ = with_sources(engine, clock, FakeSource(Source.JKN, {person.nik: person.record()}))
    verifier = await actor_of(services, VERIFIER)
    now = clock.now()
    async with engine.connect() as conn:
        tx = await conn.begin()
        await conn.execute(
            update(models.Target)
            .where(models.Target.id == person.target_id, models.Target.version == person.version)
            .values(first_desk_at=now, version=person.version + 1)
        )
        correction = asyncio.create_task(
            services.verification.submit_correction(
                verifier, person.target_id, person.version, {"phone": "081288887777"}
            )
        )
        await asyncio.sleep(0.5)  # the correction is now waiting for the row (PostgreSQL) or the lock (SQLite)
        assert not correction.done()
        await tx.commit()
    with pytest.raises(Refused) as lost:
        await correction
    assert lost.value.reason == "desk_entry"
    row = await target_row(engine, person.target_id)
    assert row.phone != "+6281288887777" and row.version == person.version + 1


async def test_a_correction_and_a_registration_racing_exactly_one_wins(engine: AsyncEngine, clock: FixedClock) -> None:
    people = await demo_people(engine, limit=4)
    services, _ = with_sources(engine, clock, *[FakeSource(Source.JKN, {p.nik: p.record() for p in people})])
    verifier = await actor_of(services, VERIFIER)
    for person in people:
        results = await asyncio.gather(
            services.verification.submit_correction(
                verifier, person.target_id, person.version, {"phone": "081266665555"}
            ),
            register_at_meja1(services, engine, person.target_id, person.version),
            return_exceptions=True,
        )
        won = [not isinstance(r, BaseException) for r in results]
        assert sum(won) == 1, results
        for r in results:
            assert not isinstance(r, BaseException) or isinstance(r, Refused | Conflict), r
        row = await target_row(engine, person.target_id)
        assert row.version == person.version + 1
        assert (row.phone == "+6281266665555") == won[0]
        assert (row.first_desk_at is not None) == won[1]
