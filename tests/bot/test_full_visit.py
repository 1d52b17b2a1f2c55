"""One person through meja 1 → 2 → 4 → observation, for both doses, through the real dispatcher.

Each desk is its own persona (Rina meja 1, Budi meja 2, Sari meja 4). After every step the test reads PL.
It also writes the transcript of dose 1 exactly as the staff see it (text without HTML tags, buttons in
brackets) and checks that docs/desk-flows.md holds that same transcript: the doc cannot drift from the
product. ``UPDATE_DOCS=1 pytest tests/bot/test_full_visit.py`` rewrites the doc's transcript.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, TelegramMethod
from sqlalchemy import select

from core.db import models
from core.domain.identifiers import format_ticket
from core.domain.screening import Vitals
from core.ports import FixedClock
from core.services.registry import Services
from tests.bot.harness import Harness, Person
from tests.core.services.test_screening_service import actor, pick_target

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "desk-flows.md"
BEGIN, END = "<!-- transcript:begin -->", "<!-- transcript:end -->"


def _plain(text: str) -> str:
    return html.unescape(re.sub(r"</?(b|i|u|s|code|pre|a)( [^>]*)?>", "", text))


@dataclass
class Desk:
    """One staff member: counts what they type and tap, and keeps the transcript."""

    harness: Harness
    person: Person
    label: str
    log: list[str]
    actions: int = 0
    last: list[TelegramMethod[Any]] = field(default_factory=list)

    def _record(self, what: str) -> None:
        self.actions += 1
        self.log.append(f"**{self.label}** {what}")
        for call in self.last:
            if isinstance(call, SendMessage | EditMessageText):
                verb = "✎ (edited)" if isinstance(call, EditMessageText) else "🤖"
                body = "\n".join(f"> {line}" if line else ">" for line in _plain(call.text).split("\n"))
                self.log.append(f"{verb}\n{body}")
                buttons = self.harness.buttons([call])
                if buttons:
                    self.log.append("> " + " ".join(f"`[{label}]`" for label, _ in buttons))
            elif isinstance(call, AnswerCallbackQuery) and call.text:
                self.log.append(f"💬 pop-up: {_plain(call.text)}")

    async def send(self, text: str) -> str:
        self.last = await self.harness.send(self.person, text)
        self._record(f"types `{text}`")
        return _plain(self.harness.text(self.last))

    async def tap(self, label: str) -> str:
        found = next(((t, d) for t, d in self.harness.buttons(self.last) if t.startswith(label)), None)
        assert found is not None, f"no button {label!r} in {self.harness.buttons(self.last)}"
        self.last = await self.harness.press(self.person, found[1])
        self._record(f"taps `[{found[0]}]`")
        return _plain(self.harness.text(self.last))


async def _visits(services: Services, target_id: int) -> list[models.Visit]:
    async with services.ctx.sessions() as s:
        stmt = select(models.Visit).where(models.Visit.target_id == target_id).order_by(models.Visit.id)
        return list((await s.execute(stmt)).scalars())


async def _first_dose_of_the_day_elsewhere(services: Services) -> None:
    """Sari vaccinated someone earlier today: her batch is the one-tap default, as on any busy day."""
    other = await pick_target(services, category="nakes", max_age=59, skip=1)
    rina, budi, sari = [await actor(services, i) for i in (910001, 910002, 910004)]
    reg = await services.registration.register(rina, other.id, other.version)
    form = await services.screening.open(budi, reg.visit_id)
    answers = {i.id: False for i in form.subject.items()}
    await services.screening.save(budi, reg.visit_id, Vitals(Decimal("36.5"), 120, 80), answers)
    await services.vaccination.record(
        sari,
        reg.visit_id,
        product_code="coronavac",
        batch="SV2611A",
        expiry=date(2027, 6, 30),
        nik_last4=other.nik[-4:],
    )


async def test_two_doses_through_every_desk(harness: Harness, services: Services, clock: FixedClock) -> None:
    transcript_wanted = "sqlite" in str(services.ctx.sessions.kw["bind"].url)  # one transcript is enough
    await _first_dose_of_the_day_elsewhere(services)
    target = await pick_target(services, category="nakes", max_age=59)
    ticket = format_ticket(target.ticket)
    log: list[str] = []
    rina = Desk(harness, Person(910001, "Rina"), "Rina (meja 1)", log)
    budi = Desk(harness, Person(910002, "Budi"), "Budi (meja 2)", log)
    sari = Desk(harness, Person(910004, "Sari"), "Sari (meja 4)", log)

    # --- dose 1 --------------------------------------------------------------------------
    text = await rina.send(ticket)
    assert target.name in text
    await rina.tap("📝 Registrasi")
    [visit] = await _visits(services, target.id)
    assert (visit.dose_number, visit.status, visit.is_open, visit.faskes_code) == (
        1,
        "menunggu_skrining",
        True,
        "3273P001",
    )

    await budi.send(ticket)
    await budi.tap("🩺")
    await budi.send("36,5 120/80")
    await budi.tap("✅ Semua tidak")
    text = await budi.tap("💾 Simpan")
    [visit] = await _visits(services, target.id)
    assert (visit.status, visit.outcome, visit.rule_set_id) == ("menunggu_vaksinasi", "lanjut", "nakes-2021-01")
    assert str(visit.temperature_c) == "36.5" and (visit.systolic, visit.diastolic) == (120, 80)

    await sari.send(ticket)
    await sari.tap("💉")
    await sari.tap("↺ CoronaVac")
    text = await sari.send(target.nik[-4:])
    [visit] = await _visits(services, target.id)
    assert (visit.status, visit.product_code, visit.batch, visit.is_open) == (
        "observasi",
        "coronavac",
        "SV2611A",
        False,
    )
    due = visit.next_due_date
    assert due is not None and due.strftime("%d-%m-%Y") in text

    clock.advance(minutes=30)
    await sari.tap("✅ Tidak ada KIPI")
    [visit] = await _visits(services, target.id)
    assert (visit.status, visit.kipi) == ("selesai", "none")
    counts = (rina.actions, budi.actions, sari.actions)
    total = sum(counts)
    assert total <= 12, counts

    if transcript_wanted:
        _check_doc(log, counts)

    # --- the interval is enforced --------------------------------------------------------
    clock.advance(days=14)
    text = await rina.send(ticket)
    assert "📝 Registrasi" not in " ".join(label for label, _ in harness.buttons(rina.last))
    assert due.strftime("%d-%m-%Y") in text  # the card says from when dose 2 may be given
    assert len(await _visits(services, target.id)) == 1  # nothing written

    # --- dose 2, on the due date -----------------------------------------------------------
    clock.set(clock.now() + timedelta(days=(due - (clock.now() + timedelta(hours=7)).date()).days))
    await rina.send(ticket)
    await rina.tap("📝 Registrasi")
    visits = await _visits(services, target.id)
    assert [(v.dose_number, v.status) for v in visits] == [(1, "selesai"), (2, "menunggu_skrining")]

    await budi.send(ticket)
    await budi.tap("🩺")
    await budi.send("36,7 118/76")
    text = await budi.tap("✅ Semua tidak")
    await budi.tap("💾 Simpan")
    assert (await _visits(services, target.id))[1].status == "menunggu_vaksinasi"

    await sari.send(ticket)
    await sari.tap("💉")
    labels = [label for label, _ in harness.buttons(sari.last)]
    assert not any("Sinopharm" in lb or "AstraZeneca" in lb for lb in labels)  # only the dose-1 product
    await sari.send("SV2612B 07/2027")
    await sari.send(target.nik[-4:])
    clock.advance(minutes=30)
    await sari.tap("✅ Tidak ada KIPI")
    visits = await _visits(services, target.id)
    assert [(v.dose_number, v.status, v.product_code) for v in visits] == [
        (1, "selesai", "coronavac"),
        (2, "selesai", "coronavac"),
    ]
    # The series is complete: the card offers no registration any more.
    await rina.send(ticket)
    assert "📝 Registrasi" not in " ".join(label for label, _ in harness.buttons(rina.last))
    report = await services.audit.verify_chain()
    assert report.ok


def _check_doc(log: list[str], counts: tuple[int, int, int]) -> None:
    transcript = "\n\n".join(log)
    summary = (
        f"Taps and messages: meja 1 {counts[0]}, meja 2 {counts[1]}, meja 4 {counts[2]}: **{sum(counts)} in total**."
    )
    block = f"{BEGIN}\n{transcript}\n\n{summary}\n{END}"
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "desk-flows-transcript.md").write_text(block + "\n")
    doc = DOC.read_text() if DOC.exists() else ""
    if os.environ.get("UPDATE_DOCS") == "1":
        if BEGIN in doc:
            doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END) :]
        else:
            doc = doc + "\n" + block + "\n"
        DOC.write_text(doc)
        return
    if BEGIN not in doc:
        pytest.fail("docs/desk-flows.md has no transcript: run UPDATE_DOCS=1 pytest tests/bot/test_full_visit.py")
    current = doc[doc.index(BEGIN) : doc.index(END) + len(END)]
    assert current == block, "docs/desk-flows.md is out of date: run UPDATE_DOCS=1 pytest tests/bot/test_full_visit.py"
