"""Daftar Penerima Vaksin in chat: views per desk, pages, Refresh in place, registering from "belum datang"."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, TelegramMethod

from bot.callbacks import VisitAction
from bot.render import PAGE_SIZE, Queue
from core.domain.visits import VisitStatus
from core.services.registry import Services
from tests.bot.harness import Harness, Person
from tests.conftest import TODAY
from tests.core.services.test_registration import add_visit, audit_events, fresh_targets, visits_of

RINA = Person(910001, "Rina")  # meja 1
BUDI = Person(910002, "Budi")  # meja 2
SARI = Person(910004, "Sari")  # meja 4
DEWI = Person(910005, "Dewi")  # verifier


def _buttons(calls: list[TelegramMethod[Any]], prefix: str) -> list[str]:
    return [d for _, d in Harness.buttons(calls) if d.startswith(prefix)]


def _answers(calls: list[TelegramMethod[Any]]) -> list[AnswerCallbackQuery]:
    return [c for c in calls if isinstance(c, AnswerCallbackQuery)]


async def _day(services: Services) -> dict[VisitStatus, list[int]]:
    """Two visits waiting for screening, one for vaccination, one in observation, one done."""
    targets = await fresh_targets(services)
    plan = [
        VisitStatus.MENUNGGU_SKRINING,
        VisitStatus.MENUNGGU_SKRINING,
        VisitStatus.MENUNGGU_VAKSINASI,
        VisitStatus.OBSERVASI,
        VisitStatus.SELESAI,
    ]
    out: dict[VisitStatus, list[int]] = {}
    for target, status in zip(targets, plan, strict=False):
        visit = await add_visit(services, target.id, status=status, service_date=TODAY, product="coronavac")
        out.setdefault(status, []).append(visit)
    return out


async def test_meja1_sees_everything_with_counts(harness: Harness, services: Services) -> None:
    day = await _day(services)
    calls = await harness.send(RINA, "/antrian")
    text = harness.text(calls)
    assert "Daftar Penerima Vaksin" in text and "Puskesmas Garuda" in text and "26-11-2026" in text
    assert "10:00 WIB" in text
    assert "Skrining 2" in text and "Vaksin 1" in text and "Observasi 1" in text and "Selesai 1" in text
    assert "••••••••••" in text  # NIKs masked
    # Meja 1 holds no further desk: every entry opens the card.
    cards = _buttons(calls, "v:card:")
    assert len(cards) == 5
    assert cards[0] == VisitAction(action="card", visit_id=day[VisitStatus.MENUNGGU_SKRINING][0]).pack()
    assert _buttons(calls, "q:b:0")  # the "belum datang" tab
    assert _buttons(calls, "q:a:0")  # Refresh of this view


async def test_each_desk_sees_its_queue_first_with_its_next_step(harness: Harness, services: Services) -> None:
    day = await _day(services)
    budi = await harness.send(BUDI, "/antrian")
    assert "Menunggu skrining" in harness.text(budi)
    assert _buttons(budi, "v:screen:") == [
        VisitAction(action="screen", visit_id=v).pack() for v in day[VisitStatus.MENUNGGU_SKRINING]
    ]
    assert _buttons(budi, "v:card:") == []
    sari = await harness.send(SARI, "/antrian")
    assert _buttons(sari, "v:vaccinate:") == [
        VisitAction(action="vaccinate", visit_id=day[VisitStatus.MENUNGGU_VAKSINASI][0]).pack()
    ]
    observation = await harness.press(SARI, Queue(view="o").pack())
    assert _buttons(observation, "v:observe:") == [
        VisitAction(action="observe", visit_id=day[VisitStatus.OBSERVASI][0]).pack()
    ]


async def test_not_arrived_pages_and_registering_in_one_tap(harness: Harness, services: Services) -> None:
    await harness.send(RINA, "/antrian")
    first = await harness.press(RINA, Queue(view="b").pack())
    edit = [c for c in first if isinstance(c, EditMessageText)]
    assert edit and "Belum datang" in edit[0].text
    registers = _buttons(first, "qr:")
    assert len(registers) == PAGE_SIZE
    assert _buttons(first, "q:b:1")  # ▶
    second = await harness.press(RINA, Queue(view="b", page=1).pack())
    assert _buttons(second, "q:b:0") and set(_buttons(second, "qr:")).isdisjoint(registers)

    target_id = int(registers[0].split(":")[1])
    done = await harness.press(RINA, registers[0])
    assert any("terdaftar" in (a.text or "") for a in _answers(done))
    (visit,) = await visits_of(services, target_id)
    assert visit.status == "menunggu_skrining"
    assert not any(d.split(":")[1] == str(target_id) for d in _buttons(done, "qr:"))  # moved out of the view
    # The same button again: nothing written, told why.
    again = await harness.press(RINA, registers[0])
    assert any(a.show_alert and "terdaftar" in (a.text or "") for a in _answers(again))
    assert len(await visits_of(services, target_id)) == 1
    assert len(await audit_events(services, "visit.register")) == 1


async def test_refresh_edits_in_place_and_survives_not_modified(harness: Harness, services: Services) -> None:
    calls = await harness.send(BUDI, "/antrian")
    refresh = _buttons(calls, "q:s:0")[-1]
    target = (await fresh_targets(services))[0]
    await add_visit(services, target.id, status=VisitStatus.MENUNGGU_SKRINING, service_date=TODAY)
    refreshed = await harness.press(BUDI, refresh)
    edit = [c for c in refreshed if isinstance(c, EditMessageText)]
    assert edit and target.name in edit[0].text and "Skrining 1" in edit[0].text

    # Telegram refuses an edit that changes nothing: the press is answered, not failed.
    original = harness.session._result

    def not_modified(method: Any) -> Any:
        if isinstance(method, EditMessageText):
            raise TelegramBadRequest(method=method, message="Bad Request: message is not modified")
        return original(method)

    harness.session._result = not_modified  # type: ignore[method-assign]
    same = await harness.press(BUDI, refresh)
    assert [a.text for a in _answers(same)] == ["Tidak ada perubahan."]


async def test_only_desk_staff_get_the_list(harness: Harness) -> None:
    text = harness.text(await harness.send(DEWI, "/antrian"))
    assert "Peran Anda" in text


@pytest.mark.parametrize("view", ["t", "x", "d", "zz"])
async def test_empty_and_unknown_views_are_answered(harness: Harness, view: str) -> None:
    calls = await harness.press(BUDI, Queue(view=view).pack())
    assert any(isinstance(c, EditMessageText) for c in calls)
