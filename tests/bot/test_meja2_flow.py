"""Meja 2 in chat: the ordinary visit in five taps and messages, the checklist, bad input, taps twice, edits."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import TelegramMethod

from bot.flows.meja2 import SCREENING_TEXTS, screening_text
from bot.i18n import Translator, catalog
from core.db import models
from core.domain.screening import RULE_SETS
from core.services.registry import Services
from tests.bot.harness import Harness, Person
from tests.core.services.test_screening_service import (
    audit_events,
    grant,
    open_visit,
    pick_target,
    visit_row,
)

BUDI = Person(910002, "Budi")  # meja 2 at 3273P001
FAJAR = Person(910020, "Fajar")  # Makassar


class Desk:
    """Drives one person through the dispatcher and counts taps and messages."""

    def __init__(self, harness: Harness, person: Person) -> None:
        self.harness = harness
        self.person = person
        self.actions = 0
        self.last: list[TelegramMethod[Any]] = []

    async def send(self, text: str) -> str:
        self.actions += 1
        self.last = await self.harness.send(self.person, text)
        return self.harness.text(self.last)

    async def press(self, data: str) -> str:
        self.actions += 1
        self.last = await self.harness.press(self.person, data)
        return self.harness.text(self.last)

    async def tap(self, label: str) -> str:
        """Press the button of the last answer whose label starts with ``label``."""
        return await self.press(self.button(label))

    def button(self, label: str) -> str:
        for text, data in self.harness.buttons(self.last):
            if text.startswith(label):
                return data
        raise AssertionError(f"no button {label!r} in {self.harness.buttons(self.last)}")

    def button_exact(self, label: str) -> str:
        return next(data for text, data in self.harness.buttons(self.last) if text == label)

    def labels(self) -> list[str]:
        return [text for text, _ in self.harness.buttons(self.last)]


async def fsm_data(harness: Harness, person: Person) -> dict[str, Any]:
    key = StorageKey(bot_id=harness.bot.id, chat_id=person.telegram_id, user_id=person.telegram_id)
    return await harness.dispatcher.fsm.storage.get_data(key)


async def nakes_visit(services: Services, skip: int = 0) -> tuple[int, models.Target]:
    target = await pick_target(services, category="nakes", max_age=59, skip=skip)
    return await open_visit(services, target.id), target


# --------------------------------------------------------------------------------------------
# The ordinary visit


async def test_an_ordinary_screening_takes_five_taps_and_messages(harness: Harness, services: Services) -> None:
    visit_id, target = await nakes_visit(services)
    desk = Desk(harness, BUDI)

    text = await desk.press(f"v:screen:{visit_id}")  # from the Daftar Penerima Vaksin or the card
    assert target.name in text and target.nik[:6] in text and target.nik not in text
    assert "suhu tubuh" in text
    text = await desk.send("36,5")
    assert "tekanan darah" in text
    text = await desk.send("120/80")
    assert "Pernah terkonfirmasi COVID-19?" in text and "Diabetes melitus?" in text
    assert "HbA1c" not in text  # a follow-up appears only under a YES
    json.dumps(await fsm_data(harness, BUDI))  # FSM data: JSON primitives only
    text = await desk.tap("✅ Semua tidak")
    assert "LANJUT" in text and "Simpan" in desk.labels()[0]
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"  # nothing saved before Simpan
    text = await desk.tap("💾 Simpan")
    assert "Tersimpan" in text and "LANJUT" in text

    assert desk.actions == 5
    v = await visit_row(services, visit_id)
    assert (v.status, v.is_open, v.rule_set_id, v.outcome) == ("menunggu_vaksinasi", True, "nakes-2021-01", "lanjut")
    assert v.answers and not any(v.answers.values())
    assert len(await audit_events(services, "visit.screen", visit_id)) == 1
    assert await fsm_data(harness, BUDI) == {}


async def test_skrining_lists_the_waiting_and_the_next_one_opens_with_one_tap(
    harness: Harness, services: Services
) -> None:
    first, a = await nakes_visit(services)
    second, b = await nakes_visit(services, skip=0)
    desk = Desk(harness, BUDI)
    text = await desk.send("/skrining")
    assert "Menunggu skrining" in text and "(2)" in text
    assert desk.button(a.name) == f"v:screen:{first}" and desk.button(b.name) == f"v:screen:{second}"

    await desk.tap(a.name)
    await desk.send("36.6")
    await desk.send("118/76")
    await desk.tap("✅ Semua tidak")
    text = await desk.tap("💾 Simpan")
    # The result comes with the list of those still waiting: the next visit is one tap away.
    assert "Tersimpan" in text and "Menunggu skrining" in text and desk.button(b.name) == f"v:screen:{second}"


async def test_a_ticket_or_nik_opens_the_visit_while_in_the_flow(harness: Harness, services: Services) -> None:
    visit_id, target = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.send("/skrining")
    text = await desk.send(target.ticket)
    assert "Skrining" in text and target.name in text and "suhu tubuh" in text
    assert (await fsm_data(harness, BUDI))["visit"] == visit_id


async def test_skrining_needs_meja2(harness: Harness) -> None:
    text = Harness.text(await harness.send(Person(910004), "/skrining"))
    assert "Peran Anda tidak mencakup" in text


# --------------------------------------------------------------------------------------------
# The checklist


async def test_follow_ups_appear_under_a_yes_and_the_outcome_follows(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("36,5")
    await desk.send("120/80")
    assert "13. Diabetes melitus? — tidak" in desk.harness.text(desk.last)
    text = await desk.press(desk.button_exact("13"))
    assert "13. Diabetes melitus? — <b>YA</b>" in text and "13a. DM tipe 2 dengan HbA1c &lt; 7,5%? — tidak" in text
    assert "✅ 13" in desk.labels() and "13a" in desk.labels() and "Lanjut ▶ (sisanya tidak)" in desk.labels()
    text = await desk.tap("Lanjut")
    assert "TIDAK DIBERIKAN" in text and "Diabetes melitus?" in text
    text = await desk.tap("✏️ Ubah jawaban")
    text = await desk.tap("13a")
    assert "13a. DM tipe 2 dengan HbA1c &lt; 7,5%? — <b>YA</b>" in text
    text = await desk.tap("Lanjut")
    assert "LANJUT" in text
    # Untoggling the parent drops its follow-up.
    await desk.tap("✏️ Ubah jawaban")
    text = await desk.tap("✅ 13")
    assert "13a" not in text and "✅ Semua tidak" in desk.labels()
    await desk.tap("✅ Semua tidak")
    await desk.tap("💾 Simpan")
    v = await visit_row(services, visit_id)
    assert v.outcome == "lanjut" and v.answers is not None and "diabetes_t2_hba1c_ok" not in v.answers


async def test_a_tunda_shows_its_reason_and_rescreen_date(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("37,8")
    await desk.send("120/80")
    text = await desk.tap("✅ Semua tidak")
    assert "TUNDA" in text and "Suhu tubuh tinggi → tunda" in text and "27-11-2026" in text
    text = await desk.tap("💾 Simpan")
    assert "TUNDA" in text and "23:59" in text and "✏️ Ubah hasil Tunda" in desk.labels()
    v = await visit_row(services, visit_id)
    assert (v.status, v.is_open, str(v.rescreen_date)) == ("tunda", False, "2026-11-27")


async def test_the_umum_rule_set_asks_for_a_remeasure(harness: Harness, services: Services) -> None:
    target = await pick_target(services, category="lansia")
    visit_id = await open_visit(services, target.id)
    desk = Desk(harness, BUDI)
    text = await desk.press(f"v:screen:{visit_id}")
    assert "Skrining umum" in text
    await desk.send("36,7")
    text = await desk.send("190/115")
    assert "ukur ulang" in text
    text = await desk.send("170/100")
    assert "190/115 → 170/100" in text and "Sulit naik 10 anak tangga?" in text
    await desk.tap("✅ Semua tidak")
    await desk.tap("💾 Simpan")
    v = await visit_row(services, visit_id)
    assert (v.rule_set_id, v.systolic_2, v.diastolic_2, v.outcome) == ("umum-2021-02", 170, 100, "lanjut")
    assert desk.actions == 6  # one more message: the re-measure


# --------------------------------------------------------------------------------------------
# Bad input, taps twice, leaving


@pytest.mark.parametrize(
    ("temperature", "bp", "expected"),
    [
        ("abc", None, "Suhu tidak dikenali: abc. Kirim suhu 34–42,5 °C"),
        ("60", None, "Suhu tidak dikenali: 60"),
        ("36,5", "300/20", "Tekanan darah tidak dikenali: 300/20"),
        ("36,5", "120", "mis. 120/80"),
    ],
)
async def test_bad_vitals_say_what_is_expected(
    harness: Harness, services: Services, temperature: str, bp: str | None, expected: str
) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    text = await desk.send(temperature)
    if bp is not None:
        text = await desk.send(bp)
    assert expected in text
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"
    # Still in the same step: the right value goes on.
    if bp is None:
        assert "tekanan darah" in await desk.send("36,5")
    else:
        await desk.send("120/80")
        assert desk.labels()[-1] == "✅ Semua tidak"


async def test_a_double_tap_on_simpan_saves_once(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("36,5")
    await desk.send("120/80")
    await desk.tap("✅ Semua tidak")
    save = desk.button("💾 Simpan")
    await desk.press(save)
    text = await desk.press(save)
    assert "tidak berlaku" in text
    assert len(await audit_events(services, "visit.screen", visit_id)) == 1


async def test_two_desks_at_once_save_one_screening(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    budi, andi = Desk(harness, BUDI), Desk(harness, Person(910006, "Andi"))
    for desk in (budi, andi):
        await desk.press(f"v:screen:{visit_id}")
        await desk.send("36,5")
        await desk.send("120/80")
        await desk.tap("✅ Semua tidak")
    await budi.tap("💾 Simpan")
    text = await andi.tap("💾 Simpan")
    assert "sudah tersimpan" in text
    assert len(await audit_events(services, "visit.screen", visit_id)) == 1
    # And andi's draft is finished: the next tap finds nothing.
    assert await fsm_data(harness, Person(910006)) == {}


async def test_a_second_temperature_message_writes_nothing(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("36,5")
    text = await desk.send("36,5")  # sent twice: now the blood pressure is expected
    assert "Tekanan darah tidak dikenali" in text
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"


async def test_batal_leaves_and_old_buttons_are_stale(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("36,5")
    await desk.send("120/80")
    all_no = desk.button("✅ Semua tidak")
    text = await desk.send("/batal")
    assert "Dibatalkan" in text
    text = await desk.press(all_no)
    assert "tidak berlaku" in text
    assert (await visit_row(services, visit_id)).status == "menunggu_skrining"


async def test_unexpected_input_gets_the_expected_step(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("36,5")
    await desk.send("120/80")
    text = await desk.send("tidak semua")
    assert "tombol" in text


async def test_another_faskes_is_refused(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    text = Harness.text(await harness.press(FAJAR, f"v:screen:{visit_id}"))
    assert "Peran Anda tidak mencakup" in text
    await grant(services, 910020, "meja2")
    text = Harness.text(await harness.press(FAJAR, f"v:screen:{visit_id}"))
    assert "milik faskes lain" in text
    assert await fsm_data(harness, FAJAR) == {}


# --------------------------------------------------------------------------------------------
# Editing a Tunda


async def test_a_tunda_is_edited_from_its_result(harness: Harness, services: Services) -> None:
    visit_id, _ = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("38,1")
    await desk.send("120/80")
    await desk.tap("✅ Semua tidak")
    await desk.tap("💾 Simpan")
    text = await desk.tap("✏️ Ubah hasil Tunda")
    assert "Ubah hasil Tunda" in text and "Sebelumnya: 38,1 °C · TD 120/80" in text
    await desk.send("37,1")
    await desk.send("120/80")
    await desk.tap("✅ Semua tidak")
    text = await desk.tap("💾 Simpan")
    assert "LANJUT" in text and "(hasil Tunda diubah)" in text
    v = await visit_row(services, visit_id)
    assert (v.status, v.is_open, str(v.temperature_c)) == ("menunggu_vaksinasi", True, "37.1")
    assert len(await audit_events(services, "visit.screen_edit", visit_id)) == 1


async def test_skrining_lists_todays_tunda_for_editing(harness: Harness, services: Services) -> None:
    visit_id, target = await nakes_visit(services)
    desk = Desk(harness, BUDI)
    await desk.press(f"v:screen:{visit_id}")
    await desk.send("38,1")
    await desk.send("120/80")
    await desk.tap("✅ Semua tidak")
    await desk.tap("💾 Simpan")
    text = await desk.send("/skrining")
    assert "23:59" in text and desk.button(f"✏️ {target.name}").startswith(f"m2:edit:{visit_id}:")
    # Other lists and cards may emit the shared ``v:rescreen:<id>``.
    text = await desk.press(f"v:rescreen:{visit_id}")
    assert "Ubah hasil Tunda" in text


# --------------------------------------------------------------------------------------------
# Texts


def test_every_item_reason_and_rule_set_has_text_in_both_languages() -> None:
    with SCREENING_TEXTS.open("rb") as fh:
        raw = tomllib.load(fh)
    assert set(raw) == {"id", "en"} and set(raw["id"]) == set(raw["en"])
    for rule_set in RULE_SETS.values():
        keys = {rule_set.title_key, *rule_set.reason_codes, *(item.id for item in rule_set.items)}
        for locale in ("id", "en"):
            missing = sorted(k for k in keys if k not in raw[locale])
            assert not missing, (rule_set.id, locale, missing)
            t = Translator(locale)
            assert all(screening_text(t, k) != k for k in keys)


def test_meja2_texts_in_both_languages() -> None:
    ids = {k for k in catalog("id") if k.startswith("meja2.")}
    assert ids and ids == {k for k in catalog("en") if k.startswith("meja2.")}


def test_names_are_escaped() -> None:
    head = Translator("id")("meja2.head", name="<b>x</b>", nik="", age=1, dose=1, rule_set="")
    assert "&lt;b&gt;x&lt;/b&gt;" in head


async def test_temperature_and_blood_pressure_in_one_message(harness: Harness, services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    budi = Desk(harness, BUDI)
    await budi.press(f"v:screen:{visit_id}")
    text = await budi.send("36,5 120/80")
    assert "36,5" in text and "120/80" in text
    assert "Semua tidak" in " ".join(budi.labels())
    data = await fsm_data(harness, BUDI)
    assert data["temp"] == "36.5" and data["bp"] == [120, 80]


async def test_one_bad_half_of_a_combined_message_keeps_nothing(harness: Harness, services: Services) -> None:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    budi = Desk(harness, BUDI)
    await budi.press(f"v:screen:{visit_id}")
    text = await budi.send("36,5 300/20")
    assert "tekanan darah" in text.lower()
    assert (await fsm_data(harness, BUDI))["temp"] is None
