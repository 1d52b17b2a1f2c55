"""The desk's statements are built once, not on every call.

Building a SQLAlchemy statement and computing its cache key on every call cost the bot more CPU than PostgreSQL
spends running the statement (docs/performance.md, round seven). The desk's statements are module constants with
their values bound at execution, so each statement's cache key is computed once and remembered. Here a whole visit
goes through the services as the bot calls them (lookup, registration with the card, the Daftar Penerima Vaksin,
meja 2's list, form and save with the list, meja 4's list, form, record with the list, observation), once to warm
up and once counted: the second visit must compute no statement's cache key. A statement built inside a call
(``select(...)`` on every call) computes a new key each time and shows up here by its SQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.sql.cache_key import HasCacheKey

from core.domain.visits import KipiOutcome
from core.services.registry import Services
from tests.core.services.test_registration import MEJA1, MEJA2, MEJA4, actor
from tests.core.services.test_screening_service import NORMAL, all_no, pick_target


async def whole_visit(services: Services, skip: int) -> None:
    """One visit from lookup to observation, as the bot calls the services."""
    target = await pick_target(services, category="nakes", max_age=59, skip=skip)
    meja1, meja2, meja4 = [await actor(services, t) for t in (MEJA1, MEJA2, MEJA4)]
    card = await services.lookup.find(meja1, target.ticket)
    visit_id = (await services.registration.register(meja1, target.id, card.version, with_card=True)).visit_id
    await services.recipients.today(meja1)
    await services.screening.queue(meja2)
    form = await services.screening.open(meja2, visit_id)
    await services.screening.save(meja2, visit_id, NORMAL, all_no(form.subject), with_queue=True)
    await services.vaccination.queue(meja4)
    await services.vaccination.open(meja4, visit_id)
    await services.vaccination.record(
        meja4,
        visit_id,
        product_code="coronavac",
        batch="ab1234",
        expiry=None,
        nik_last4=target.nik[-4:],
        with_queue=True,
    )
    await services.vaccination.observe(meja4, visit_id, KipiOutcome.NONE, early=True)


async def test_a_whole_visit_builds_each_statement_once(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    await whole_visit(services, skip=0)
    built: list[str] = []
    compute = HasCacheKey._generate_cache_key

    def counted(element: Any) -> Any:
        try:
            built.append(str(element))
        except Exception:  # an ORM-internal copy of a statement, which only the ORM can compile
            built.append(repr(element))
        return compute(element)

    monkeypatch.setattr(HasCacheKey, "_generate_cache_key", counted)
    await whole_visit(services, skip=1)
    monkeypatch.undo()
    # pick_target (the test's own read) builds its statement on every call: the one allowed.
    assert len(built) == 1 and "NOT IN" in built[0], "\n\n".join(built)
