"""Item 5 (hostile input, the whole bot): random messages and button presses from random people,
thrown at one real dispatcher (built by api.runtime over a copy of the demo SQLite database).

A hypothesis state machine. Each step is one update from one actor (the demo accounts, plus strangers):
random text, NIK-like and ticket-like strings (real ones from PL and made-up ones), the commands of
every menu with and without arguments, vitals, NIK codes, batches, dates, names, contact shares (own
and someone else's), button presses with every callback prefix and random ids, garbage callback data,
and the buttons the bot really showed (pressed by their owner or by someone else). The clock moves on
now and then (observation windows, the next day).

After every step:

* nothing escaped the dispatcher, and nothing was logged at ERROR (``bot.handlers.common.on_error``
  logs an unexpected exception at ERROR; typed core errors are answered and logged at INFO);
* at most one open visit per target; an open visit is waiting (skrining or vaksinasi);
  ``vaccinated_at`` is set exactly when the status is observasi or selesai, and only after a Lanjut;
  ``observed_at`` exactly when selesai;
* every visit was opened, screened, vaccinated and observed by accounts of its own faskes;
* the audit chain verifies;
* no account, visit or target changed without an audit event in the same step.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from aiogram.types import Contact
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from api.runtime import Runtime, build_runtime
from core.db import models
from core.domain.screening import Vitals
from core.domain.visits import VACCINATED, WAITING, VisitStatus
from core.ports import FixedClock
from tests.bot.harness import Harness, Person
from tests.conftest import NOW
from tests.core.services.test_screening_service import pick_target
from tests.reliability.support import record_figures, settings_for

pytestmark = pytest.mark.slow

EXAMPLES = 50
STEPS = 25

STAFF = [910001, 910002, 910004, 910005, 910006, 910010, 910011, 910020, 910099]
STRANGERS = [990001, 990002]
ACTORS = STAFF + STRANGERS

COMMANDS = [
    "/start",
    "/bantuan",
    "/help",
    "/menu",
    "/batal",
    "/cancel",
    "/bahasa",
    "/bahasa en",
    "/bahasa id",
    "/bahasa xx",
    "/cari",
    "/antrian",
    "/skrining",
    "/vaksinasi",
    "/verifikasi",
    "/daftar",
    "/permintaan",
    "/akun",
    "/akun 3273P001",
    "/akun 7371P001",
    "/akun ZZZ",
    "/cabut",
    "/cabut 3",
    "/cabut 3 pindah tugas",
    "/cabut x",
    "/setujui",
    "/setujui 1",
    "/setujui 99999999999999999999",
    "/tolak 1 bukan nakes",
    "/tolak",
    "/tinjau",
    "/dinkes",
    "/dinkes 930010 3273 Dinkes Baru",
    "/dinkes 930011 9999 X",
    "/unknown",
    "/start@pcare_frontdesk_bot",
]
SHAPES = [
    "36,5",
    "36.5",
    "37,5",
    "42,6",
    "120/80",
    "181/111",
    "36,5 120/80",
    "38 200/120",
    "0/0",
    "-1",
    "1e9",
    "SV2611A 06/2027",
    "SV2611A",
    "X 13/2027",
    "17-08-1990",
    "31-02-2000",
    "0812 3456 7890",
    "+6281234567890",
    "Nur Aini",
    "dr. Siti Rahma, S.Kep., Ns.",
    "3273P001",
    "3273 p001",
    "7371P001",
    "ya",
    "tidak",
    "1",
    "15",
    "<b>bold</b>",
    "&amp;",
    "' OR 1=1 --",
    "\u202e\u200b",
    "٣٢٧٣",
    "３２７３０１",
    "9" * 5000,
]
VISIT_ACTIONS = ["screen", "vaccinate", "observe", "card", "rescreen", "x"]
TARGET_ACTIONS = ["register", "phone", "verify", "card", "x"]
M2 = ["tog", "done", "back", "vitals", "save", "edit", "x"]
M4 = ["prod", "last", "lastb", "skip", "chg", "kipi", "early", "later", "note", "x"]
VALUES = ["", "coronavac", "astrazeneca", "none", "mild", "serious", "x", "-1", "1"]

ids = st.one_of(
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=-2, max_value=500),
    st.sampled_from([2**31, 2**63 - 1, 2**63, 10**30]),
)
callback_data = st.one_of(
    st.builds(lambda a, i, v: f"t:{a}:{i}:{v}", st.sampled_from(TARGET_ACTIONS), ids, ids),
    st.builds(lambda a, i: f"v:{a}:{i}", st.sampled_from(VISIT_ACTIONS), ids),
    st.builds(lambda a, i, k: f"m2:{a}:{i}:{k}", st.sampled_from(M2), ids, st.integers(-3, 40)),
    st.builds(lambda a, i, v: f"m4:{a}:{i}:{v}", st.sampled_from(M4), ids, st.sampled_from(VALUES)),
    st.builds(lambda a, i, p: f"ar:{a}:{i}:{p}", st.sampled_from(["ok", "no", "x"]), ids, st.integers(-1, 20)),
    st.builds(lambda o: f"arp:{o}", ids),
    st.builds(
        lambda k, i, c: f"rs:{k}:{i}:{c}",
        st.sampled_from(["rq", "ac", "x"]),
        ids,
        st.sampled_from(["not_staff", "moved", "left", "misuse", "x"]),
    ),
    st.builds(lambda a, i, o: f"ac:{a}:{i}:{o}", st.sampled_from(["rv", "rl", "x"]), ids, st.integers(-1, 20)),
    st.builds(lambda f, o: f"acp:{f}:{o}", st.sampled_from(["3273P001", "7371P001", "x"]), ids),
    st.builds(
        lambda a, i, v, m, b: f"rl:{a}:{i}:{v}:{m}:{b}:0",
        st.sampled_from(["t", "ok", "x"]),
        ids,
        ids,
        st.integers(-1, 31),
        st.integers(-1, 8),
    ),
    st.builds(lambda c: f"lg:{c}", st.sampled_from(["id", "en", "xx", ""])),
    st.builds(lambda a, i: f"rv:{a}:{i}", st.sampled_from(["ok", "no", "x"]), ids),
    st.builds(
        lambda a, v: f"su:{a}:{v}",
        st.sampled_from(["fy", "fc", "rt", "rd", "ok", "re", "x"]),
        st.sampled_from(["", "meja1", "meja2", "meja4", "verifikasi", "x"]),
    ),
    st.builds(
        lambda a, v: f"vf:{a}:{v}",
        st.sampled_from(["fix", "add", "f", "sum", "ok", "x", "back"]),
        st.sampled_from(["", "phone", "name", "birth_date", "sex", "category", "faskes", "x"]),
    ),
    st.builds(lambda v, p: f"q:{v}:{p}", st.sampled_from(["all", "m1", "m2", "m4", "x"]), ids),
    st.builds(lambda t, v, p: f"qr:{t}:{v}:{p}", ids, ids, st.integers(-1, 5)),
    st.text(max_size=64),
)


# What Telegram itself would refuse (the in-process session accepts anything, Telegram does not).
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)((?:\s+[a-zA-Z-]+=\"[^\"<>]*\")*)\s*>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "tg-emoji",
    "code",
    "pre",
    "blockquote",
}


def telegram_refusals(call: Any) -> list[str]:
    """Why Telegram would answer 400 to this call: bad HTML, a text too long, callback data over 64 bytes."""
    problems: list[str] = []
    if isinstance(call, SendMessage | EditMessageText):
        text = call.text
        if not text.strip():
            problems.append("empty text")
        if call.parse_mode is not None:  # HTML by default (DefaultBotProperties)
            stack: list[str] = []
            i = 0
            while i < len(text):
                ch = text[i]
                if ch == "<":
                    m = _TAG.match(text, i)
                    if m is None or m.group(2).lower() not in _ALLOWED_TAGS:
                        problems.append(f"unsupported '<' at {i}: {text[i : i + 20]!r}")
                        break
                    name = m.group(2).lower()
                    if m.group(1):
                        if not stack or stack.pop() != name:
                            problems.append(f"unbalanced </{name}>")
                            break
                    else:
                        stack.append(name)
                    i = m.end()
                    continue
                if ch == "&" and _ENTITY.match(text, i) is None:
                    problems.append(f"bare '&' at {i}: {text[i : i + 20]!r}")
                    break
                i += 1
            if stack:
                problems.append(f"unclosed <{stack[-1]}>")
            plain = _ENTITY.sub("x", _TAG.sub("", text))
        else:
            plain = text
        if len(plain) > 4096:
            problems.append(f"text of {len(plain)} characters")
        for label, data in Harness.buttons([call]):
            if not label.strip():
                problems.append("a button without a label")
            if len(data.encode()) > 64:
                problems.append(f"callback data of {len(data.encode())} bytes: {data!r}")
    elif isinstance(call, AnswerCallbackQuery) and call.text and len(call.text) > 200:
        problems.append(f"pop-up of {len(call.text)} characters")
    return problems


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Figures:
    examples = 0
    steps = 0
    messages = 0
    presses = 0
    contacts = 0
    clock_moves = 0
    replies = 0
    writes = 0  # audit events written by the random traffic
    actions: ClassVar[Counter[str]] = Counter()


def make_machine(template: str, workdir: Path, errors: ErrorLog) -> type[RuleBasedStateMachine]:
    class DispatcherUnderFire(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            path = workdir / f"fuzz-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(template, path)
            self.path = path
            self.clock = FixedClock(NOW)
            self.runtime: Runtime = build_runtime(settings_for(f"sqlite+aiosqlite:///{path}"), clock=self.clock)
            self.builder = Harness(dispatcher=None, bot=None, session=None)  # type: ignore[arg-type]
            self.seen: list[tuple[int, str]] = []
            self.latest: dict[int, list[str]] = {}  # the buttons each chat was shown last
            self.errors_before = len(errors.records)
            Figures.examples += 1

        # --- helpers ---------------------------------------------------------------------------

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        async def _read(self) -> dict[str, Any]:
            async with self.runtime.engine.connect() as conn:
                accounts = {
                    r.id: (r.state, r.roles, r.kind, r.faskes_code, r.kabkota_code, r.locale)
                    for r in (await conn.execute(select(models.Account))).all()
                }
                visits = {r.id: r for r in (await conn.execute(select(models.Visit))).all()}
                targets = {
                    r.id: r.version for r in (await conn.execute(select(models.Target.id, models.Target.version))).all()
                }
                head = (await conn.execute(select(models.AuditHead.seq))).scalar_one()
            return {"accounts": accounts, "visits": visits, "targets": targets, "head": head}

        async def _feed(self, update: Any) -> None:
            session = self.runtime.bot.session
            start = len(session.calls)  # type: ignore[attr-defined]
            await self.runtime.dispatcher.feed_update(self.runtime.bot, update)
            calls = session.calls[start:]  # type: ignore[attr-defined]
            Figures.replies += len(calls)
            for c in calls:
                refused = telegram_refusals(c)
                assert not refused, f"Telegram would refuse {type(c).__name__}: {refused}\n{getattr(c, 'text', '')}"
                if isinstance(c, SendMessage | EditMessageText) and c.chat_id is not None:
                    shown = [data for _, data in Harness.buttons([c]) if data]
                    self.seen.extend((int(c.chat_id), data) for data in shown)
                    if shown:
                        self.latest[int(c.chat_id)] = shown
            self.seen = self.seen[-60:]

        def step(self, update: Any) -> None:
            Figures.steps += 1
            before = self.run(self._read())
            self.run(self._feed(update))  # anything escaping the dispatcher fails the test here
            self.run(self._check_writes_are_audited(before))

        # --- setup ----------------------------------------------------------------------------

        @initialize()
        def sample_pl(self) -> None:
            async def sample() -> None:
                async with self.runtime.engine.connect() as conn:
                    rows = (await conn.execute(select(models.Target.nik, models.Target.ticket).limit(40))).all()
                    self.faskes_of = defaultdict(set)
                    for a in (await conn.execute(select(models.Account.id, models.Account.faskes_code))).all():
                        self.faskes_of[a.id].add(a.faskes_code)
                self.niks = [r.nik for r in rows]
                self.tickets = [r.ticket for r in rows]
                await self._visits_at_every_desk()

            self.run(sample())

        async def _visits_at_every_desk(self) -> None:
            """A busy morning: visits waiting at meja 2 and meja 4, one in observation, one postponed,
            and an access request waiting for Dinkes; small ids, so random buttons find real rows."""
            services = self.runtime.services
            rina, budi, sari = [await services.accounts.resolve_actor(i) for i in (910001, 910002, 910004)]
            targets = [await pick_target(services, category="nakes", max_age=59, skip=i) for i in range(6)]
            visits = [(await services.registration.register(rina, t.id, t.version)).visit_id for t in targets]
            for visit_id, temperature in zip(visits[1:5], ("36.5", "36.5", "36.5", "38.0"), strict=True):
                form = await services.screening.open(budi, visit_id)
                answers = {i.id: False for i in form.subject.items()}
                await services.screening.save(budi, visit_id, Vitals(Decimal(temperature), 120, 80), answers)
            await services.vaccination.record(
                sari, visits[3], product_code="coronavac", batch="SV2611A", expiry=None, nik_last4=targets[3].nik[-4:]
            )
            stranger = await services.accounts.resolve_actor(STRANGERS[1])
            await services.access.request_access(
                stranger, name="Nur Aini", phone="081234567890", faskes_code="3273P001", roles=["meja1"]
            )

        # --- rules: what people send ------------------------------------------------------------

        @rule(who=st.sampled_from(ACTORS), text=st.one_of(st.sampled_from(COMMANDS), st.sampled_from(SHAPES)))
        def known_shapes(self, who: int, text: str) -> None:
            Figures.messages += 1
            self.step(self.builder.message_update(Person(who), text))

        @rule(who=st.sampled_from(ACTORS), text=st.text(min_size=1, max_size=60))
        def random_text(self, who: int, text: str) -> None:
            Figures.messages += 1
            self.step(self.builder.message_update(Person(who), text))

        @rule(
            who=st.sampled_from(ACTORS),
            pick=st.integers(min_value=0),
            form=st.sampled_from(["nik", "ticket", "ticket_lower", "last4", "nik_date", "nik_typo", "random_nik"]),
            digits=st.from_regex(r"\A[0-9]{16}\Z"),
        )
        def identifiers(self, who: int, pick: int, form: str, digits: str) -> None:
            nik, ticket = self.niks[pick % len(self.niks)], self.tickets[pick % len(self.tickets)]
            text = {
                "nik": nik,
                "ticket": f"{ticket[:5]}-{ticket[5:]}",
                "ticket_lower": ticket.lower(),
                "last4": nik[-4:],
                "nik_date": f"{nik} 17-08-1990",
                "nik_typo": nik[:-1] + str((int(nik[-1]) + 1) % 10),
                "random_nik": digits,
            }[form]
            Figures.messages += 1
            self.step(self.builder.message_update(Person(who), text))

        @rule(
            who=st.sampled_from([910001, 910002, 910004, 910006]),
            pick=st.integers(min_value=0),
            taps=st.lists(st.integers(min_value=0), max_size=4),
            typed=st.sampled_from(["36,5 120/80", "37,8 120/80", "36,5 190/120", "SV2611A 06/2027", "", "last4"]),
        )
        def desk_walk(self, who: int, pick: int, taps: list[int], typed: str) -> None:
            """A desk types a real ticket and follows the bot's own buttons (deeper into the flows)."""
            ticket = self.tickets[pick % len(self.tickets)]
            Figures.messages += 1
            self.step(self.builder.message_update(Person(who), ticket))
            for i, tap in enumerate(taps):
                mine = [data for owner, data in self.seen[-20:] if owner == who]
                if not mine:
                    break
                Figures.presses += 1
                self.step(self.builder.callback_update(Person(who), mine[tap % len(mine)]))
                if i == 0 and typed:
                    text = self.niks[pick % len(self.niks)][-4:] if typed == "last4" else typed
                    Figures.messages += 1
                    self.step(self.builder.message_update(Person(who), text))

        def _tap_latest(self, who: int, pick: int) -> bool:
            shown = self.latest.get(who)
            if not shown:
                return False
            Figures.presses += 1
            self.step(self.builder.callback_update(Person(who), shown[pick % len(shown)]))
            return True

        def _say(self, who: int, text: str) -> None:
            Figures.messages += 1
            self.step(self.builder.message_update(Person(who), text))

        def _tap(self, who: int, prefix: str) -> bool:
            """Tap the first button starting with ``prefix`` among those the chat was shown last."""
            found = [d for d in self.latest.get(who, []) if d.startswith(prefix)]
            if not found:
                return False
            Figures.presses += 1
            self.step(self.builder.callback_update(Person(who), found[0]))
            return True

        def _visit(self, pick: int, status: str | None) -> int:
            """A visit id: among those in ``status`` (what the desk expects), or among all visits."""
            ids = self.run(self._visit_ids(status)) or self.run(self._visit_ids(None))
            return ids[pick % len(ids)] if ids else pick

        async def _visit_ids(self, status: str | None) -> list[int]:
            stmt = select(models.Visit.id).order_by(models.Visit.id)
            if status is not None:
                stmt = stmt.where(models.Visit.status == status)
            async with self.runtime.engine.connect() as conn:
                return list((await conn.execute(stmt)).scalars())

        @rule(
            who=st.sampled_from([910002, 910002, 910006, 910001, 910020]),
            pick=st.integers(min_value=0),
            expected=st.sampled_from(["menunggu_skrining", "menunggu_skrining", "tunda", None]),
            vitals=st.sampled_from(["36,5 120/80", "36,5 120/80", "37,6 120/80", "36,5 150/95", "36,5 185/115", "x"]),
            toggles=st.lists(st.integers(min_value=0, max_value=25), max_size=3),
            save=st.sampled_from([True, True, False]),
        )
        def screening_walk(
            self, who: int, pick: int, expected: str | None, vitals: str, toggles: list[int], save: bool
        ) -> None:
            """Meja 2 as staff do it (open, vitals, answers, done, save), by the right or the wrong desk."""
            visit_id = self._visit(pick, expected)
            Figures.presses += 1
            self.step(self.builder.callback_update(Person(who), f"v:screen:{visit_id}"))
            self._say(who, vitals)
            if vitals.endswith("185/115"):
                self._say(who, "182/112")  # the re-measure
            for item in toggles:
                self._tap(who, f"m2:tog:{visit_id}:{item}:")
            if self._tap(who, "m2:done:") and save:
                self._tap(who, "m2:save:")

        @rule(
            who=st.sampled_from([910004, 910004, 910006, 910001, 910020]),
            pick=st.integers(min_value=0),
            expected=st.sampled_from(["menunggu_vaksinasi", "menunggu_vaksinasi", "observasi", None]),
            product=st.integers(min_value=0),
            batch=st.sampled_from(["SV2611A 06/2027", "SV2611A 06/2027", "SV2611A", "AZ1 01/2020", "x"]),
            right_code=st.sampled_from([True, True, False]),
            kipi=st.sampled_from(["none", "mild", "serious", ""]),
            wait=st.booleans(),
        )
        def vaccination_walk(
            self,
            who: int,
            pick: int,
            expected: str | None,
            product: int,
            batch: str,
            right_code: bool,
            kipi: str,
            wait: bool,
        ) -> None:
            """Meja 4 as staff do it (open, product, batch, the NIK's last four, KIPI), right or wrong."""
            visit_id = self._visit(pick, expected)
            Figures.presses += 1
            self.step(self.builder.callback_update(Person(who), f"v:vaccinate:{visit_id}"))
            if not self._tap_latest(who, product):
                return
            self._say(who, batch)
            self._say(who, self.run(self._last4(visit_id)) if right_code else "0000")
            if wait:
                Figures.clock_moves += 1
                self.clock.advance(minutes=31)
            if kipi and self._tap(who, f"m4:kipi:{visit_id}:{kipi}"):
                if kipi == "serious":
                    self._say(who, "sesak napas, dirujuk")
                self._tap(who, "m4:")  # a confirmation, when one is asked

        async def _last4(self, visit_id: int) -> str:
            async with self.runtime.engine.connect() as conn:
                nik = (
                    await conn.execute(select(models.Target.nik).join(models.Visit).where(models.Visit.id == visit_id))
                ).scalar()
            return nik[-4:] if nik else "0000"

        @rule(
            who=st.sampled_from(ACTORS),
            own=st.booleans(),
            phone=st.sampled_from(["6281234567890", "+6281234567890", "081234567890", "12345", "+14155550123", ""]),
        )
        def contact(self, who: int, own: bool, phone: str) -> None:
            Figures.contacts += 1
            contact = Contact(phone_number=phone or "0", first_name="X", user_id=who if own else who + 1)
            self.step(self.builder.message_update(Person(who), contact=contact))

        @rule(who=st.sampled_from(ACTORS), data=callback_data)
        def press_anything(self, who: int, data: str) -> None:
            Figures.presses += 1
            self.step(self.builder.callback_update(Person(who), data))

        @precondition(lambda self: bool(self.seen))
        @rule(pick=st.integers(min_value=0))
        def press_own_button(self, pick: int) -> None:
            owner, data = self.seen[pick % len(self.seen)]
            Figures.presses += 1
            self.step(self.builder.callback_update(Person(owner), data))

        @precondition(lambda self: bool(self.seen))
        @rule(who=st.sampled_from(ACTORS), pick=st.integers(min_value=0))
        def press_someone_elses_button(self, who: int, pick: int) -> None:
            _, data = self.seen[pick % len(self.seen)]
            Figures.presses += 1
            self.step(self.builder.callback_update(Person(who), data))

        @rule(minutes=st.sampled_from([1, 29, 31, 60 * 14, 60 * 24]))
        def time_passes(self, minutes: int) -> None:
            Figures.clock_moves += 1
            self.clock.advance(minutes=minutes)

        # --- invariants -------------------------------------------------------------------------

        @invariant()
        def nothing_logged_at_error(self) -> None:
            new = errors.records[self.errors_before :]
            assert not new, "logged at ERROR:\n" + "\n".join(logging.Formatter().format(r) for r in new)

        @invariant()
        def pl_is_consistent(self) -> None:
            self.run(self._check_pl())

        async def _check_pl(self) -> None:
            v = models.Visit
            async with self.runtime.engine.connect() as conn:
                doubles = (
                    await conn.execute(
                        select(v.target_id).where(v.is_open.is_(True)).group_by(v.target_id).having(func.count() > 1)
                    )
                ).all()
                assert not doubles, f"targets with more than one open visit: {doubles}"
                for row in (await conn.execute(select(v))).all():
                    status = VisitStatus(row.status)
                    assert not row.is_open or status in WAITING, row
                    assert (row.vaccinated_at is not None) == (status in VACCINATED), row
                    assert (row.observed_at is not None) == (status is VisitStatus.SELESAI), row
                    if status in VACCINATED or status is VisitStatus.MENUNGGU_VAKSINASI:
                        assert row.outcome == "lanjut", row
                    for who in (row.opened_by, row.screened_by, row.vaccinated_by, row.observed_by):
                        if who is not None:
                            assert row.faskes_code in self.faskes_of[who], (row, who, self.faskes_of[who])
            report = await self.runtime.services.audit.verify_chain()
            assert report.ok, report

        async def _check_writes_are_audited(self, before: dict[str, Any]) -> None:
            after = await self._read()
            async with self.runtime.engine.connect() as conn:
                e = models.AuditEvent
                events = (await conn.execute(select(e).where(e.seq > before["head"]))).all()
            Figures.writes += len(events)
            Figures.actions.update(ev.action for ev in events)
            for account_id, (*_, faskes, _kabkota, _locale) in after["accounts"].items():
                self.faskes_of[account_id].add(faskes)
            by_entity = {(ev.entity, ev.entity_id) for ev in events}
            account_ids = {str((ev.after or {}).get("account_id")) for ev in events}
            touched_targets = {ev.target_id for ev in events} | {
                int(ev.entity_id) for ev in events if ev.entity == "target"
            }
            for account_id, row in after["accounts"].items():
                if before["accounts"].get(account_id) != row:
                    assert ("account", str(account_id)) in by_entity or str(account_id) in account_ids, (
                        f"account {account_id} changed without an audit event: "
                        f"{before['accounts'].get(account_id)} -> {row}"
                    )
            for visit_id, row in after["visits"].items():
                old = before["visits"].get(visit_id)
                if old is None or old.version != row.version or old.status != row.status:
                    assert ("visit", str(visit_id)) in by_entity, f"visit {visit_id} changed without an audit event"
            for target_id, version in after["targets"].items():
                if before["targets"].get(target_id) != version:
                    assert target_id in touched_targets, f"target {target_id} changed without an audit event"

        def teardown(self) -> None:
            try:
                self.run(self.runtime.close())
            finally:
                self.loop.close()
                self.path.unlink(missing_ok=True)

    return DispatcherUnderFire


def test_random_traffic_never_breaks_the_bot_or_pl(sqlite_templates: Any, tmp_path: Path) -> None:
    errors = ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        machine = make_machine(sqlite_templates[True], tmp_path, errors)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
    finally:
        root.removeHandler(errors)
    record_figures(
        "fuzz-dispatcher",
        examples=Figures.examples,
        updates=Figures.steps,
        messages=Figures.messages,
        button_presses=Figures.presses,
        contact_shares=Figures.contacts,
        clock_moves=Figures.clock_moves,
        bot_calls=Figures.replies,
        audit_events_written=Figures.writes,
        audit_actions=dict(Figures.actions),
    )


# --------------------------------------------------------------------------------------------
# What the fuzzing found first: ids no database can hold (deterministic regression, both backends)
# --------------------------------------------------------------------------------------------

HUGE = ["9223372036854775808", "+99999999999999999999", "9_999_999_999_999_999_999", "-9223372036854775809"]
SHAPED = [
    "t:register:{n}:1",
    "t:card:1:{n}",
    "v:screen:{n}",
    "v:vaccinate:{n}",
    "v:observe:{n}",
    "v:card:{n}",
    "v:rescreen:{n}",
    "m2:edit:{n}:-1",
    "m4:kipi:{n}:none",
    "ar:ok:{n}:-1",
    "ar:no:{n}:-1",
    "ac:rv:{n}:0",
    "ac:rl:{n}:0",
    "rl:t:{n}:1:3:1:0",
    "rs:ac:{n}:moved",
    "rv:ok:{n}",
    "rv:no:{n}",
    "qr:{n}:1:0",
    "arp:{n}",
]


async def test_ids_no_database_can_hold_are_stale_buttons(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Found by the state machine above: ``v:screen:9223372036854775808`` ended as an unhandled error
    (SQLite: OverflowError; asyncpg: int64 out of range). Every shape, every desk and admin."""
    caplog.set_level(logging.INFO)
    tried = 0
    for who in (910001, 910002, 910004, 910005, 910006, 910010, 910099):
        for shape in SHAPED:
            for n in HUGE:
                calls = await harness.press(Person(who), shape.format(n=n))
                tried += 1
                assert calls, (who, shape, n)  # answered, never silent
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, logging.Formatter().format(errors[0])
    record_figures("hostile-ids", presses=tried)
