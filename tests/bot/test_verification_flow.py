"""Verifikasi Data Sasaran and the Dinkes review, through the real dispatcher (demo database, SQLite and PostgreSQL).

The ``services`` fixture has no reference sources: each test sets ``services.ctx.references`` (fakes whose
answers the test chooses, or the embedded SQL tables through the factory) and the notifier (Telegram,
through the harness's in-process session, so that notifications are recorded like any other message).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiogram.methods import SendMessage, TelegramMethod
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.callbacks import TargetAction
from bot.factory import build_notifier
from bot.flows.review import ReviewCb
from bot.flows.verification import VerifyCb
from core.config import Settings
from core.db import models
from core.domain.identifiers import format_ticket, mask_nik
from core.domain.reference import Source
from core.references.factory import build_reference_sources, close_reference_sources
from core.services.registry import Services
from tests.bot.harness import Harness, Person
from tests.core.services.test_verification import (
    DINKES,
    DINKES_OTHER,
    MEJA1,
    VERIFIER,
    FakeSource,
    demo_people,
    not_in_pl,
    register_at_meja1,
    target_row,
)

verifier, dinkes, dinkes_other, meja1 = Person(VERIFIER), Person(DINKES), Person(DINKES_OTHER), Person(MEJA1)


def vf(action: str, value: str = "") -> str:
    return VerifyCb(action=action, value=value).pack()


def sent_to(calls: list[TelegramMethod[Any]], telegram_id: int) -> list[SendMessage]:
    return [c for c in calls if isinstance(c, SendMessage) and int(c.chat_id) == telegram_id]


@pytest.fixture
def chat(harness: Harness, services: Services) -> Harness:
    """The harness, with notifications sent through it (as the composition root wires them)."""
    services.set_notifier(build_notifier(harness.bot, services, actors=harness.actors))
    return harness


@pytest.fixture
async def embedded(services: Services, engine: AsyncEngine, demo_db_url: str) -> AsyncIterator[None]:
    """The embedded reference tables (seed-demo), built by the factory as the composition root does."""
    sources = build_reference_sources(Settings(database_url=demo_db_url, _env_file=None), engine)
    services.ctx.references = sources
    try:
        yield
    finally:
        await close_reference_sources(sources)


async def open_by_ticket(chat: Harness, ticket: str) -> str:
    await chat.send(verifier, "/verifikasi")
    await chat.press(verifier, vf("fix"))
    return chat.text(await chat.send(verifier, format_ticket(ticket)))


# --------------------------------------------------------------------------------------------
# Corrections
# --------------------------------------------------------------------------------------------


async def test_a_correction_confirmed_by_jkn_is_applied_at_once(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    person = (await demo_people(engine))[0]
    services.ctx.references = (
        FakeSource(Source.JKN, {person.nik: person.record()}),
        FakeSource(Source.DUKCAPIL, {}),
    )
    calls = await chat.send(verifier, "/verifikasi")
    assert ("✏️ Koreksi data", vf("fix")) in chat.buttons(calls)
    await chat.press(verifier, vf("fix"))
    menu = await chat.send(verifier, format_ticket(person.ticket))
    assert person.name in chat.text(menu) and mask_nik(person.nik) in chat.text(menu)
    assert person.nik not in chat.text(menu)  # typed a ticket: the NIK stays masked
    assert ("No HP", vf("f", "phone")) in chat.buttons(menu)

    asked = await chat.press(verifier, vf("f", "phone"))
    assert "nomor HP" in chat.text(asked)
    typed = await chat.send(verifier, "0812 7777 1234")
    assert "✏️ No HP → +62 812-••••-••34" in chat.text(typed)
    assert ("Ringkasan ➜", vf("sum")) in chat.buttons(typed)

    summary = chat.text(await chat.press(verifier, vf("sum")))
    assert "✅ JKN: cocok" in summary and "❔ Dukcapil: tidak ditemukan" in summary
    assert "langsung diterapkan" in summary
    assert "7777" not in summary  # the phone is masked, even to the verifier

    done = await chat.press(verifier, vf("ok"))
    assert "✅ Koreksi diterapkan" in chat.text(done)
    assert chat.buttons(done) == []  # the summary's buttons are gone
    row = await target_row(engine, person.target_id)
    assert row.phone == "+6281277771234" and row.version == person.version + 1
    assert "Tombol ini sudah tidak berlaku" in chat.text(await chat.press(verifier, vf("ok")))


async def test_a_correction_from_the_card_contradicted_by_dukcapil_is_approved_by_dinkes(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    person = (await demo_people(engine))[0]
    new_birth = person.birth_date + timedelta(days=1)
    services.ctx.references = (
        FakeSource(Source.JKN, {person.nik: person.record(birth_date=new_birth)}),
        FakeSource(Source.DUKCAPIL, {person.nik: person.record()}),
    )
    card = TargetAction(action="verify", target_id=person.target_id, version=person.version).pack()
    menu = await chat.press(verifier, card)
    assert person.name in chat.text(menu)
    await chat.press(verifier, vf("f", "birth_date"))
    await chat.send(verifier, new_birth.strftime("%d/%m/%Y"))
    summary = chat.text(await chat.press(verifier, vf("sum")))
    assert "✅ JKN: cocok" in summary and "❌ Dukcapil: beda: tanggal lahir" in summary
    assert "⚠️ Tidak sesuai NIK: tanggal lahir" in summary
    assert "Dinkes akan meninjau" in summary

    done = await chat.press(verifier, vf("ok"))
    assert "📨 Dikirim ke Dinkes" in chat.text(done)
    correction_id = await _last_correction(engine)
    (note,) = sent_to(done, DINKES)  # the district's admin, with the evidence and the buttons
    assert f"Koreksi #{correction_id}" in note.text and "❌ Dukcapil: beda: tanggal lahir" in note.text
    assert mask_nik(person.nik) in note.text and person.nik not in note.text
    approve = ReviewCb(action="ok", correction_id=correction_id).pack()
    assert ("✅ Setujui", approve) in chat.buttons([note])
    assert sent_to(done, DINKES_OTHER) == []
    assert (await target_row(engine, person.target_id)).birth_date == person.birth_date

    denied = await chat.press(dinkes_other, approve)
    assert "di luar kabupaten/kota Anda" in chat.text(denied)
    decided = await chat.press(dinkes, approve)
    assert "✅ Disetujui dan diterapkan" in chat.text(decided)
    (told,) = sent_to(decided, VERIFIER)
    assert f"Koreksi #{correction_id}" in told.text and "disetujui" in told.text
    assert (await target_row(engine, person.target_id)).birth_date == new_birth
    assert "Sudah diputuskan" in chat.text(await chat.press(dinkes, approve))


async def test_tinjau_lists_the_queue_and_a_rejection_asks_a_reason(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    person = (await demo_people(engine))[0]
    services.ctx.references = (FakeSource(Source.JKN, fail=True), FakeSource(Source.DUKCAPIL, fail=True))
    await open_by_ticket(chat, person.ticket)
    await chat.press(verifier, vf("f", "category"))
    await chat.press(verifier, vf("v", "umum"))
    summary = chat.text(await chat.press(verifier, vf("sum")))
    assert summary.count("tidak tersedia") == 2
    assert "📨 Dikirim ke Dinkes" in chat.text(await chat.press(verifier, vf("ok")))
    correction_id = await _last_correction(engine)

    listed = await chat.send(dinkes, "/tinjau")
    assert "Menunggu tinjauan:</b> 1" in chat.text(listed)
    assert f"Koreksi #{correction_id}" in chat.text(listed) and "Kategori" in chat.text(listed)
    assert "Oleh Dewi (verifikator), 3273P001 · Puskesmas Garuda" in chat.text(listed)
    assert "Tidak ada koreksi" in chat.text(await chat.send(dinkes_other, "/tinjau"))

    asked = await chat.press(dinkes, ReviewCb(action="no", correction_id=correction_id).pack())
    assert "Alasan menolak" in chat.text(asked)
    rejected = await chat.send(dinkes, "Kategori sesuai SISDMK")
    assert "✖ Ditolak: Kategori sesuai SISDMK" in chat.text(rejected)
    (told,) = sent_to(rejected, VERIFIER)
    assert "ditolak Dinkes: Kategori sesuai SISDMK" in told.text
    assert (await target_row(engine, person.target_id)).category != "umum"  # the demo has no "umum" targets


async def test_a_correction_is_refused_after_registration_at_meja1(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    first, second = (await demo_people(engine))[:2]
    await register_at_meja1(services, engine, first.target_id, first.version)
    refused = await open_by_ticket(chat, first.ticket)
    assert "sudah terdaftar di meja 1" in refused

    # Registered between the summary and Kirim: nothing is written, the verifier is told.
    services.ctx.references = (FakeSource(Source.JKN, {second.nik: second.record()}),)
    await open_by_ticket(chat, second.ticket)
    await chat.press(verifier, vf("f", "name"))
    await chat.send(verifier, "Nama Yang Lain")
    await chat.press(verifier, vf("sum"))
    await register_at_meja1(services, engine, second.target_id, second.version)
    done = await chat.press(verifier, vf("ok"))
    assert "sudah terdaftar di meja 1" in chat.text(done)
    assert (await target_row(engine, second.target_id)).name == second.name


async def test_a_correction_and_a_registration_racing_exactly_one_wins(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    people = await demo_people(engine, limit=3)
    services.ctx.references = (FakeSource(Source.JKN, {p.nik: p.record() for p in people}),)
    for person in people:
        await open_by_ticket(chat, person.ticket)
        await chat.press(verifier, vf("f", "phone"))
        await chat.send(verifier, "081355554444")
        await chat.press(verifier, vf("sum"))
        pressed, registered = await asyncio.gather(
            chat.press(verifier, vf("ok")),
            register_at_meja1(services, engine, person.target_id, person.version),
            return_exceptions=True,
        )
        assert not isinstance(pressed, BaseException)
        corrected = "✅ Koreksi diterapkan" in chat.text(pressed)
        assert corrected != (not isinstance(registered, BaseException)), (chat.text(pressed), registered)
        if not corrected:
            assert "sudah terdaftar di meja 1" in chat.text(pressed)
        row = await target_row(engine, person.target_id)
        assert (row.phone == "+6281355554444") == corrected
        assert (row.first_desk_at is not None) == (not corrected)


async def test_values_are_checked_and_the_step_waits_for_a_good_one(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    person = (await demo_people(engine))[0]
    await open_by_ticket(chat, person.ticket)
    await chat.press(verifier, vf("f", "birth_date"))
    assert "Tanggal tidak dikenali" in chat.text(await chat.send(verifier, "31-02-1990"))
    assert "masa depan" in chat.text(await chat.send(verifier, "01-01-2090"))
    assert "Tgl lahir → 02-03-1990" in chat.text(await chat.send(verifier, "2-3-1990"))
    await chat.press(verifier, vf("f", "assigned_faskes_code"))
    assert "tidak ditemukan di PL" in chat.text(await chat.send(verifier, "9999X999"))
    assert "✏️ Faskes → 3273K001" in chat.text(await chat.send(verifier, "3273k001"))
    expected = await chat.send(verifier, "hello")  # text where a button is expected
    assert "Pilih data dengan tombol" in chat.text(expected)


async def test_only_verifiers_may_correct(chat: Harness, engine: AsyncEngine) -> None:
    person = (await demo_people(engine))[0]
    assert "Peran Anda tidak mencakup tindakan ini" in chat.text(await chat.send(meja1, "/verifikasi"))
    # The card's button is checked by core too (the id in the button is untrusted).
    card = TargetAction(action="verify", target_id=person.target_id, version=person.version).pack()
    assert "Peran Anda tidak mencakup tindakan ini" in chat.text(await chat.press(meja1, card))
    assert "Peran Anda tidak mencakup tindakan ini" in chat.text(await chat.send(meja1, "/tinjau"))


# --------------------------------------------------------------------------------------------
# Additions
# --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("embedded")
async def test_an_addition_confirmed_by_both_sources_gets_a_fresh_ticket(chat: Harness, engine: AsyncEngine) -> None:
    person = await not_in_pl(engine)
    await chat.send(verifier, "/verifikasi")
    await chat.press(verifier, vf("add"))
    asked = await chat.send(verifier, person.nik)
    assert person.nik in chat.text(asked)  # typed by this verifier: shown whole
    await chat.send(verifier, person.name.title())
    sexes = await chat.send(verifier, person.birth_date.strftime("%d-%m-%Y"))
    assert ("Perempuan", vf("sx", "P")) in chat.buttons(sexes)
    phone = await chat.press(verifier, vf("sx", person.sex))
    assert ("Lewati (tanpa HP)", vf("skip")) in chat.buttons(phone)
    categories = await chat.send(verifier, "0813 1111 2222")
    assert ("Tenaga kesehatan", vf("ct", "nakes")) in chat.buttons(categories)
    summary = chat.text(await chat.press(verifier, vf("ct", "nakes")))
    assert "✅ JKN: cocok" in summary and "✅ Dukcapil: cocok" in summary
    assert "Tidak sesuai NIK" not in summary and "langsung ditambahkan" in summary

    done = chat.text(await chat.press(verifier, vf("ok")))
    assert "✅ Sasaran ditambahkan" in done
    async with engine.connect() as conn:
        row = (await conn.execute(select(models.Target).where(models.Target.nik == person.nik))).one()
    assert f"Tiket: <b>{format_ticket(row.ticket)}</b>" in done
    assert (row.assigned_faskes_code, row.source, row.phone) == ("3273P001", "verifier", "+6281311112222")


@pytest.mark.usefixtures("embedded")
async def test_an_addition_whose_birth_date_disagrees_with_the_nik_must_be_kept_explicitly(
    chat: Harness, engine: AsyncEngine
) -> None:
    person = await not_in_pl(engine)
    typed = person.birth_date + timedelta(days=3)
    await chat.send(verifier, "/verifikasi")
    await chat.press(verifier, vf("add"))
    await chat.send(verifier, person.nik)
    await chat.send(verifier, person.name)
    warned = await chat.send(verifier, typed.strftime("%d-%m-%Y"))
    assert "tidak sesuai NIK" in chat.text(warned)
    assert person.birth_date.strftime("%d-%m-%Y") in chat.text(warned)
    assert [b for _, b in chat.buttons(warned)][:2] == [vf("keep", "birth"), vf("retype", "birth")]
    assert "jenis kelamin" in chat.text(await chat.press(verifier, vf("keep", "birth")))
    await chat.press(verifier, vf("sx", person.sex))
    await chat.press(verifier, vf("skip"))
    summary = chat.text(await chat.press(verifier, vf("ct", "nakes")))
    assert "⚠️ Tidak sesuai NIK: tanggal lahir" in summary
    assert "❌ JKN: beda: tanggal lahir" in summary and "Dinkes akan meninjau" in summary
    done = await chat.press(verifier, vf("ok"))
    assert "📨 Dikirim ke Dinkes" in chat.text(done)
    (note,) = sent_to(done, DINKES)
    assert "Sasaran baru" in note.text and "⚠️ Tidak sesuai NIK: tanggal lahir" in note.text
    assert person.nik not in note.text


async def test_a_nik_already_in_pl_points_at_its_ticket(chat: Harness, engine: AsyncEngine) -> None:
    person = (await demo_people(engine))[0]
    await chat.send(verifier, "/verifikasi")
    await chat.press(verifier, vf("add"))
    refused = chat.text(await chat.send(verifier, person.nik))
    assert format_ticket(person.ticket) in refused and mask_nik(person.nik) in refused


@pytest.mark.usefixtures("embedded")
async def test_a_nik_missing_from_pl_in_koreksi_offers_to_add_it(chat: Harness, engine: AsyncEngine) -> None:
    person = await not_in_pl(engine)
    await chat.send(verifier, "/verifikasi")
    await chat.press(verifier, vf("fix"))
    offered = await chat.send(verifier, person.nik)
    assert "tidak ada di PL" in chat.text(offered)
    assert (("➕ Tambah sasaran", vf("add", "nik"))) in chat.buttons(offered)
    assert "Ketik nama lengkap" in chat.text(await chat.press(verifier, vf("add", "nik")))


# --------------------------------------------------------------------------------------------
# Sources: one timing out, both failing
# --------------------------------------------------------------------------------------------

TIMEOUT = 0.5


async def test_one_source_timing_out_the_other_decides_and_the_chat_answers_within_the_timeout(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    person = (await demo_people(engine))[0]
    hanging = FakeSource(Source.DUKCAPIL, {person.nik: person.record()}, delay=60)
    services.ctx.references = (FakeSource(Source.JKN, {person.nik: person.record()}), hanging)
    services.ctx.reference_timeout = TIMEOUT
    await open_by_ticket(chat, person.ticket)
    await chat.press(verifier, vf("f", "sex"))
    await chat.press(verifier, vf("v", "P" if person.sex == "L" else "L"))
    await chat.press(verifier, vf("f", "sex"))
    await chat.press(verifier, vf("v", person.sex))  # back to the same: not a change
    await chat.press(verifier, vf("f", "phone"))
    await chat.send(verifier, "081244443333")

    started = time.monotonic()
    summary = chat.text(await chat.press(verifier, vf("sum")))
    summary_waited = time.monotonic() - started
    started = time.monotonic()
    done = chat.text(await chat.press(verifier, vf("ok")))
    submit_waited = time.monotonic() - started
    print(
        f"\nreference timeout {TIMEOUT:.2f} s: summary answered in {summary_waited:.3f} s, "
        f"submit in {submit_waited:.3f} s"
    )

    assert "⚠️ Dukcapil: tidak tersedia" in summary and "✅ JKN: cocok" in summary
    assert "✅ Koreksi diterapkan" in done
    assert hanging.calls == 2
    # The chat waited for the timeout, not for the hanging source (60 s).
    assert summary_waited < 10 and submit_waited < 10


async def test_both_sources_failing_queue_the_correction(
    chat: Harness, services: Services, engine: AsyncEngine
) -> None:
    person = (await demo_people(engine))[0]
    services.ctx.references = (FakeSource(Source.JKN, fail=True), FakeSource(Source.DUKCAPIL, fail=True))
    await open_by_ticket(chat, person.ticket)
    await chat.press(verifier, vf("f", "name"))
    await chat.send(verifier, "Nama Yang Benar")
    summary = chat.text(await chat.press(verifier, vf("sum")))
    assert "⚠️ JKN: tidak tersedia" in summary and "⚠️ Dukcapil: tidak tersedia" in summary
    done = await chat.press(verifier, vf("ok"))
    assert "📨 Dikirim ke Dinkes" in chat.text(done)
    assert len(sent_to(done, DINKES)) == 1
    assert (await target_row(engine, person.target_id)).name == person.name


async def _last_correction(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(select(models.Correction.id).order_by(models.Correction.id.desc()).limit(1))
    assert value is not None
    return int(value)
