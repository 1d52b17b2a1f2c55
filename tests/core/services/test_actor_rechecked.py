"""The account is re-checked in each use case's first statement (``fresh_from_row``): an Actor built before
the account was revoked, re-bound to another Telegram user, stripped of the role or moved to another faskes
is refused, and nothing is written.

Already covered elsewhere and not repeated here: a revoked meja 1 registering
(test_registration.py::test_revoked_account_cannot_register_even_with_an_old_actor) and a revoked meja 2
saving a screening (test_screening_service.py::test_revoked_staff_cannot_screen). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import update

from core.db import models
from core.domain.errors import PermissionDenied
from core.domain.visits import VisitStatus
from core.services.registry import Services
from tests.core.services.test_registration import MEJA1, a_target, actor, get_target, visits_of
from tests.core.services.test_screening_service import NORMAL, all_no, open_visit, pick_target, visit_row
from tests.core.services.test_vaccination_service import screened_visit

MEJA2, MEJA4 = 910002, 910004
OTHER_FASKES = "7371P001"  # Makassar

# How the account changes after the Actor was built, and the refusal that follows.
CHANGES: dict[str, tuple[dict[str, Any], str]] = {
    "revoked": ({"state": "revoked"}, "state_revoked"),
    "rebound": ({"telegram_id": 987_654_321}, "no_account"),  # the account now belongs to someone else
    "role_taken": ({"roles": "verifikasi"}, "role"),
    "moved": ({"faskes_code": OTHER_FASKES, "kabkota_code": "7371"}, "other_faskes"),
}


async def change(services: Services, telegram_id: int, how: str) -> None:
    async with services.ctx.sessions() as s:
        await s.execute(
            update(models.Account).where(models.Account.telegram_id == telegram_id).values(**CHANGES[how][0])
        )
        await s.commit()


Call = Callable[[], Awaitable[object]]
Check = Callable[[], Awaitable[None]]


async def _nothing_to_check() -> None:
    return None


async def _lookup_find(services: Services) -> tuple[int, Call, Check]:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    return MEJA1, lambda: services.lookup.find(rina, target.ticket), _nothing_to_check


async def _lookup_card(services: Services) -> tuple[int, Call, Check]:
    target = await a_target(services)
    rina = await actor(services, MEJA1)
    return MEJA1, lambda: services.lookup.card(rina, target.id), _nothing_to_check


async def _lookup_card_for_visit(services: Services) -> tuple[int, Call, Check]:
    target = await pick_target(services)
    visit_id = await open_visit(services, target.id)
    rina = await actor(services, MEJA1)
    return MEJA1, lambda: services.lookup.card_for_visit(rina, visit_id), _nothing_to_check


async def _register(services: Services) -> tuple[int, Call, Check]:
    target = await a_target(services)
    rina = await actor(services, MEJA1)

    async def nothing_written() -> None:
        assert await visits_of(services, target.id) == []
        assert (await get_target(services, target.id)).version == target.version

    return MEJA1, lambda: services.registration.register(rina, target.id, target.version), nothing_written


async def _screening_open(services: Services) -> tuple[int, Call, Check]:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    budi = await actor(services, MEJA2)
    return MEJA2, lambda: services.screening.open(budi, visit_id), _nothing_to_check


async def _screening_save(services: Services) -> tuple[int, Call, Check]:
    target = await pick_target(services, category="nakes", max_age=59)
    visit_id = await open_visit(services, target.id)
    budi = await actor(services, MEJA2)
    form = await services.screening.open(budi, visit_id)

    async def nothing_written() -> None:
        assert (await visit_row(services, visit_id)).status == VisitStatus.MENUNGGU_SKRINING.value

    return MEJA2, lambda: services.screening.save(budi, visit_id, NORMAL, all_no(form.subject)), nothing_written


async def _vaccination_open(services: Services) -> tuple[int, Call, Check]:
    visit_id, _ = await screened_visit(services)
    sari = await actor(services, MEJA4)
    return MEJA4, lambda: services.vaccination.open(sari, visit_id), _nothing_to_check


async def _vaccination_record(services: Services) -> tuple[int, Call, Check]:
    visit_id, target = await screened_visit(services)
    sari = await actor(services, MEJA4)
    await services.vaccination.open(sari, visit_id)

    async def nothing_written() -> None:
        visit = await visit_row(services, visit_id)
        assert visit.status == VisitStatus.MENUNGGU_VAKSINASI.value and visit.vaccinated_at is None

    def call() -> Awaitable[object]:
        return services.vaccination.record(
            sari, visit_id, product_code="coronavac", batch="ab1234", expiry=None, nik_last4=target.nik[-4:]
        )

    return MEJA4, call, nothing_written


USE_CASES: dict[str, Callable[[Services], Awaitable[tuple[int, Call, Check]]]] = {
    "lookup.find": _lookup_find,
    "lookup.card": _lookup_card,
    "lookup.card_for_visit": _lookup_card_for_visit,
    "registration.register": _register,
    "screening.open": _screening_open,
    "screening.save": _screening_save,
    "vaccination.open": _vaccination_open,
    "vaccination.record": _vaccination_record,
}

COVERED_ELSEWHERE = {("registration.register", "revoked"), ("screening.save", "revoked")}
# A lookup asks only for an active account (any kind, any role); registering is not bound to a faskes
# of the target's, so a moved meja 1 registers at the new one.
NOT_REFUSED = {
    ("lookup.find", "role_taken"),
    ("lookup.find", "moved"),
    ("lookup.card", "role_taken"),
    ("lookup.card", "moved"),
    ("lookup.card_for_visit", "role_taken"),
    ("lookup.card_for_visit", "moved"),
    ("registration.register", "moved"),
}
CASES = [
    pytest.param(use_case, how, id=f"{use_case}-{how}")
    for use_case in USE_CASES
    for how in CHANGES
    if (use_case, how) not in COVERED_ELSEWHERE | NOT_REFUSED
]


@pytest.mark.parametrize(("use_case", "how"), CASES)
async def test_an_actor_built_before_the_account_changed_is_refused(
    services: Services, use_case: str, how: str
) -> None:
    telegram_id, call, nothing_written = await USE_CASES[use_case](services)
    await call()  # the same call is allowed before the change
    if use_case in ("registration.register", "screening.save", "vaccination.record"):
        # That call wrote: set the case up again on fresh rows.
        telegram_id, call, nothing_written = await USE_CASES[use_case](services)
    await change(services, telegram_id, how)
    with pytest.raises(PermissionDenied) as refused:
        await call()
    assert refused.value.reason == CHANGES[how][1]
    await nothing_written()
