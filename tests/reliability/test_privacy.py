"""Item 7: no full NIK or phone number in any log line; in chat, a NIK whole only to whoever typed it.

One morning through the real runtime (api.runtime, offline) with every logger at DEBUG: a full visit
(meja 1 looks the person up by the NIK they typed, then meja 1, 2, 4 and the observation by ticket),
a lookup with a mistyped NIK, an access request (the newcomer shares their phone through Telegram's
contact button) approved by Dinkes, and a verifier's correction of another person's phone number.

(a) Without the masking filter: our own code (``core``, ``bot``, ``api``) and aiogram log no NIK and no
    phone number, in any format, in any message or traceback. (Two libraries do at DEBUG: aiosqlite
    and SQLAlchemy print statement parameters; that is what (b) is for.)
(b) With ``api.logging.configure_logging("DEBUG")`` as ``frontdesk serve`` installs it, plus SQL echo
    with result rows, an HTTP reference source (httpx logs the URL, which carries the NIK) and
    identifiers injected on purpose (arguments, f-strings, an exception message in a traceback):
    the whole output holds no full NIK or phone number.
(c) Chat: no message to anyone holds a full NIK they did not type, or a full phone number they did
    not type or share.
"""

from __future__ import annotations

import io
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, TelegramMethod
from aiogram.types import Contact, Update
from sqlalchemy import select

from api.logging import configure_logging
from bot.flows.verification import VerifyCb
from core.db import models
from core.domain.identifiers import format_ticket, normalize_phone
from core.domain.reference import Source
from core.ports import FixedClock
from core.references.http import HttpReferenceSource
from tests.bot.harness import Harness, Person
from tests.bot.test_full_visit import _first_dose_of_the_day_elsewhere
from tests.conftest import NOW
from tests.core.services.test_screening_service import pick_target
from tests.core.services.test_verification import demo_people
from tests.reliability.support import (
    BUDI,
    RINA,
    SARI,
    Courier,
    DeliveryPlan,
    Desk,
    Worker,
    record_figures,
    start_worker,
)

pytestmark = pytest.mark.slow

NEWCOMER = Person(930001, "Nur")
DINKES = Person(910010, "Dinkes")
VERIFIER = Person(910005, "Dewi")
NEWCOMER_PHONE = "6281398765432"  # not the locale's example number (0812-3456-7890)
CORRECTED_PHONE = "0812 7777 1234"
OUR_CODE = ("core", "bot", "api", "aiogram", "tests")


def vf(action: str, value: str = "") -> str:
    return VerifyCb(action=action, value=value).pack()


class TypedDesk(Desk):
    """A desk that remembers what its person typed or shared (what they may see whole in chat)."""

    typed: ClassVar[dict[int, list[str]]] = defaultdict(list)
    queries: ClassVar[dict[str, int]] = {}  # callback query id -> who pressed (pop-ups go to them)

    async def tap(self, label: str, *, exact: bool = False) -> str:
        found = next((d for t, d in Harness.buttons(self.last) if (t == label if exact else t.startswith(label))), None)
        assert found is not None, f"no button {label!r}"
        return await self.press(found)

    async def send(self, text: str) -> str:
        TypedDesk.typed[self.person.telegram_id].append(text)
        return await super().send(text)

    async def press(self, data: str) -> str:
        update = self._builder.callback_update(self.person, data)
        assert update.callback_query is not None
        TypedDesk.queries[update.callback_query.id] = self.person.telegram_id
        self.last = await self.courier.deliver(update)
        return _text(self.last)

    async def share(self, phone: str) -> str:
        TypedDesk.typed[self.person.telegram_id].append(phone)
        contact = Contact(phone_number=phone, first_name=self.person.first_name, user_id=self.person.telegram_id)
        update: Update = self._builder.message_update(self.person, contact=contact)
        self.last = await self.courier.deliver(update)
        return _text(self.last)


def _text(calls: list[TelegramMethod[Any]]) -> str:
    return "\n".join(c.text for c in calls if isinstance(c, SendMessage | EditMessageText))


async def morning(worker: Worker, clock: FixedClock) -> dict[str, Any]:
    """The script; returns the identifiers of the people involved."""
    TypedDesk.typed.clear()
    TypedDesk.queries.clear()
    services = worker.runtime.services
    courier = Courier([worker], DeliveryPlan(redeliver=False))
    rina, budi, sari = TypedDesk(courier, RINA), TypedDesk(courier, BUDI), TypedDesk(courier, SARI)
    newcomer, dinkes, verifier = TypedDesk(courier, NEWCOMER), TypedDesk(courier, DINKES), TypedDesk(courier, VERIFIER)

    await _first_dose_of_the_day_elsewhere(services)
    target = await pick_target(services, category="nakes", max_age=59)
    ticket = format_ticket(target.ticket)

    # Meja 1 looks the person up by the NIK they typed (shown whole to them), mistypes it once.
    assert target.nik in await rina.send(target.nik)
    await rina.send(target.nik[:-1])
    await rina.send(ticket)
    await rina.tap("📝 Registrasi")
    await budi.send(ticket)
    await budi.tap("🩺")
    await budi.send("36,5 120/80")
    await budi.tap("✅ Semua tidak")
    await budi.tap("💾 Simpan")
    await sari.send(ticket)
    await sari.tap("💉")
    await sari.tap("↺ CoronaVac")
    assert "Tersimpan" in await sari.send(target.nik[-4:])
    clock.advance(minutes=30)
    await sari.tap("✅ Tidak ada KIPI")

    # An access request with the phone shared by contact, approved by Dinkes from the notification.
    await newcomer.send("/daftar")
    await newcomer.send("Nur Aini")
    await newcomer.share(NEWCOMER_PHONE)
    await newcomer.send("3273 p001")
    await newcomer.press("su:fy:")
    await newcomer.press("su:rt:meja1")
    await newcomer.press("su:rd:")
    await newcomer.press("su:ok:")
    approve = next(
        data
        for c in courier.workers[0].session.calls
        if isinstance(c, SendMessage) and int(c.chat_id) == DINKES.telegram_id
        for _, data in _buttons(c)
        if data.startswith("ar:ok:")
    )
    assert "Disetujui" in await dinkes.press(approve)

    # A verifier corrects another person's phone number.
    other = (await demo_people(worker.runtime.engine, limit=3))[-1]
    await verifier.send("/verifikasi")
    await verifier.press(vf("fix"))
    await verifier.send(format_ticket(other.ticket))
    await verifier.press(vf("f", "phone"))
    await verifier.send(CORRECTED_PHONE)
    await verifier.press(vf("sum"))
    await verifier.press(vf("ok"))

    async with worker.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(models.Target.nik, models.Target.phone))).all()
        account_phones = (await conn.execute(select(models.Account.phone))).scalars().all()
    involved_niks = {target.nik, other.nik}
    return {
        "involved_niks": involved_niks,
        "niks": {r.nik for r in rows},
        "phones": {r.phone for r in rows if r.phone}
        | {p for p in account_phones if p}
        | {normalize_phone(NEWCOMER_PHONE), normalize_phone(CORRECTED_PHONE)},
        "updates": courier.index,
    }


def _buttons(call: Any) -> list[tuple[str, str]]:
    return Harness.buttons([call])


_SEPARATOR_BETWEEN_DIGITS = re.compile(r"(?<=\d)[ .\-](?=\d)")


def leaks(text: str, niks: set[str], phones: set[str]) -> list[str]:
    """Every full NIK or phone number (national digits after +62) in ``text``, in any common format."""
    joined = _SEPARATOR_BETWEEN_DIGITS.sub("", text)
    found = [nik for nik in niks if nik in joined]
    found += [phone for phone in phones if phone.startswith("+62") and phone[3:] in joined]
    return found


# --------------------------------------------------------------------------------------------
# (a) our code logs no identifiers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def everything_at_debug() -> Iterator[None]:
    """Every logger at DEBUG (as LOG_LEVEL=DEBUG does through the root), restored afterwards."""
    root = logging.getLogger()
    saved = root.level
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    levels = [(lg, lg.level) for lg in loggers]
    root.setLevel(logging.DEBUG)
    for lg in loggers:
        if not lg.name.startswith("sqlalchemy"):  # SQLAlchemy's echo is its own switch; see (b)
            lg.setLevel(logging.NOTSET)
    try:
        yield
    finally:
        root.setLevel(saved)
        for lg, level in levels:
            lg.setLevel(level)


async def test_a_full_morning_logs_no_identifier_from_our_code(
    demo_db_url: str, everything_at_debug: None, caplog: pytest.LogCaptureFixture, request: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FixedClock(NOW)
    worker = start_worker(demo_db_url, clock)
    try:
        ids = await morning(worker, clock)
    finally:
        await worker.close()

    ours = [r for r in caplog.records if r.name.split(".")[0] in OUR_CODE]
    assert len(ours) > 20  # the capture works: aiogram and our code did log at DEBUG/INFO
    bad = []
    for record in ours:
        line = logging.Formatter().format(record)  # message and traceback
        found = leaks(line, ids["niks"], ids["phones"])
        if found:
            bad.append(f"{record.name}: {line[:300]} -> {found}")
    assert not bad, "\n".join(bad)
    others = sorted({r.name for r in caplog.records if r.name.split(".")[0] not in OUR_CODE})
    record_figures(
        f"privacy-logs-{request.node.callspec.id}",
        updates=ids["updates"],
        log_records=len(caplog.records),
        records_of_our_code=len(ours),
        other_loggers=others,
        identifiers_searched=len(ids["niks"]) + len(ids["phones"]),
    )


# --------------------------------------------------------------------------------------------
# (b) with the filter, nothing gets through, not even on purpose
# --------------------------------------------------------------------------------------------


@pytest.fixture
def served_logging() -> Iterator[io.StringIO]:
    """``configure_logging("DEBUG")`` as ``frontdesk serve`` calls it, its handler writing to a buffer;
    SQLAlchemy's echo on too (statements, parameters and result rows). Restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    sa = logging.getLogger("sqlalchemy.engine")
    sa_level = sa.level
    uvicorn = [
        (logging.getLogger(n), logging.getLogger(n).handlers[:], logging.getLogger(n).propagate)
        for n in ("uvicorn", "uvicorn.error", "uvicorn.access")
    ]
    buffer = io.StringIO()
    configure_logging("DEBUG")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    sa.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        sa.setLevel(sa_level)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for lg, handlers, propagate in uvicorn:
            lg.handlers[:] = handlers
            lg.propagate = propagate


def _jkn_over_http(niks: dict[str, Any]) -> HttpReferenceSource:
    """A JKN master file over HTTP (httpx logs each request line, and the URL carries the NIK)."""

    def answer(request: httpx.Request) -> httpx.Response:
        nik = request.url.path.rsplit("/", 1)[-1]
        person = niks.get(nik)
        if person is None:
            return httpx.Response(404)
        return httpx.Response(200, json=person)

    return HttpReferenceSource(Source.JKN, "http://jkn.test/v1", "key", transport=httpx.MockTransport(answer))


async def test_with_the_filter_installed_no_identifier_reaches_the_output(
    demo_db_url: str, served_logging: io.StringIO, request: Any
) -> None:
    clock = FixedClock(NOW)
    worker = start_worker(demo_db_url, clock)
    people = await demo_people(worker.runtime.engine, limit=3)
    records = {
        p.nik: {"nik": p.nik, "name": p.ref_name, "birth_date": p.birth_date.isoformat(), "sex": p.sex} for p in people
    }
    sql_sources = worker.runtime.services.ctx.references
    worker.runtime.services.ctx.references = (
        _jkn_over_http(records),
        *[s for s in sql_sources if s.source is not Source.JKN],
    )
    log = logging.getLogger("core.services.injected")
    try:
        ids = await morning(worker, clock)
        nik = next(iter(ids["involved_niks"]))
        phone = normalize_phone(NEWCOMER_PHONE)
        # Deliberate slips, as a careless line of code would write them:
        log.info("lookup nik=%s phone=%s", nik, phone)
        log.warning(f"phone {phone[:3]} {phone[3:6]}-{phone[6:10]}-{phone[10:]} / 0{phone[3:]} / {phone[1:]}")
        log.debug("nik with dots %s.%s.%s", nik[:6], nik[6:12], nik[12:])
        try:
            raise ValueError(f"target {nik} has phone {phone}")
        except ValueError:
            log.exception("failed for %s", nik)
    finally:
        await worker.runtime.close()
        for source in worker.runtime.services.ctx.references:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    output = served_logging.getvalue()
    assert "HTTP Request: GET http://jkn.test/v1/nik/" in output  # httpx did log the URL...
    assert "327301••••••••••" in output or "••••••••••" in output  # ... masked
    assert "Traceback" in output and "ValueError" in output
    found = leaks(output, ids["niks"], ids["phones"])
    assert not found, f"{len(found)} identifiers in the log output, e.g. {found[:3]}"
    record_figures(
        f"privacy-filter-{request.node.callspec.id}",
        updates=ids["updates"],
        log_lines=output.count("\n"),
        identifiers_searched=len(ids["niks"]) + len(ids["phones"]),
        injected_slips=5,
    )


# --------------------------------------------------------------------------------------------
# (c) chat
# --------------------------------------------------------------------------------------------


async def test_chat_shows_a_nik_or_phone_whole_only_to_whoever_typed_it(demo_db_url: str, request: Any) -> None:
    clock = FixedClock(NOW)
    worker = start_worker(demo_db_url, clock)
    try:
        ids = await morning(worker, clock)
        calls = list(worker.session.calls)
    finally:
        await worker.close()

    queries = TypedDesk.queries
    per_chat: dict[int, list[str]] = defaultdict(list)
    for c in calls:
        if isinstance(c, SendMessage | EditMessageText) and c.chat_id is not None:
            per_chat[int(c.chat_id)].append(c.text)
            for row in getattr(c.reply_markup, "inline_keyboard", None) or []:
                per_chat[int(c.chat_id)].extend(b.text for b in row)
        elif isinstance(c, AnswerCallbackQuery) and c.text:
            per_chat[queries[c.callback_query_id]].append(c.text)
    assert {RINA.telegram_id, BUDI.telegram_id, SARI.telegram_id, NEWCOMER.telegram_id} <= set(per_chat)

    shown_whole = 0
    for chat, texts in per_chat.items():
        typed = " ".join(TypedDesk.typed.get(chat, []))
        allowed_niks = {n for n in ids["niks"] if n in _SEPARATOR_BETWEEN_DIGITS.sub("", typed)}
        allowed_phones = {p for p in ids["phones"] if leaks(typed, set(), {p})}
        for text in texts:
            found = leaks(text, ids["niks"], ids["phones"])
            shown_whole += len(found)
            wrong = [f for f in found if f not in allowed_niks and f not in allowed_phones]
            assert not wrong, f"chat {chat} was shown {wrong} it did not type:\n{text}"
    # Whole values were shown, to the people who typed them (so the check above is not vacuous).
    assert shown_whole >= 2
    record_figures(
        f"privacy-chat-{request.node.callspec.id}",
        chats=len(per_chat),
        messages=sum(len(t) for t in per_chat.values()),
        whole_values_shown_to_their_typist=shown_whole,
    )
