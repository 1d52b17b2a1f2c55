"""The actor cache (bot/actors.py): one query less per update, never a wider door.

Unit tests of the cache's rules on a counting resolver, then the real dispatcher: a revocation made by
another worker (whose notifier cannot reach this worker's cache) is still refused by core on the very
next action, and the refusal drops the stale entry so the update after it sees the revoked account.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.actors import ActorCache
from bot.i18n import catalog
from core.db import models
from core.domain.accounts import AccountKind, AccountState, Actor
from core.services.context import NullNotifier
from core.services.registry import Services
from tests.bot.harness import Harness, Person

ID = catalog("id")
RINA = Person(910001, "Rina")  # meja 1 at 3273P001
DINKES = 910010


class Resolver:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.calls = 0

    async def __call__(self, telegram_id: int) -> Actor:
        self.calls += 1
        return self.actor


def _active(telegram_id: int = 1) -> Actor:
    return Actor(telegram_id=telegram_id, account_id=7, kind=AccountKind.FASKES, state=AccountState.ACTIVE)


async def test_an_active_actor_is_read_once_within_the_ttl() -> None:
    resolve = Resolver(_active())
    cache = ActorCache(resolve, ttl=30)
    assert (await cache.get(1)).is_active
    assert (await cache.get(1)).is_active
    assert resolve.calls == 1


@pytest.mark.parametrize(
    "actor",
    [
        Actor(telegram_id=1),  # a stranger
        Actor(telegram_id=1, account_id=7, kind=AccountKind.FASKES, state=AccountState.PENDING),
        Actor(telegram_id=1, account_id=7, kind=AccountKind.FASKES, state=AccountState.REVOKED),
    ],
    ids=["stranger", "pending", "revoked"],
)
async def test_only_active_accounts_are_remembered(actor: Actor) -> None:
    """An approval must count from the person's very next message: nothing but an active account is kept."""
    resolve = Resolver(actor)
    cache = ActorCache(resolve, ttl=30)
    await cache.get(1)
    await cache.get(1)
    assert resolve.calls == 2 and len(cache) == 0


async def test_an_entry_expires_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("bot.actors.time.monotonic", lambda: now[0])
    resolve = Resolver(_active())
    cache = ActorCache(resolve, ttl=30)
    await cache.get(1)
    now[0] += 29.9
    await cache.get(1)
    assert resolve.calls == 1
    now[0] += 0.2
    await cache.get(1)
    assert resolve.calls == 2


async def test_refresh_replaces_and_a_revoked_refresh_forgets() -> None:
    resolve = Resolver(_active())
    cache = ActorCache(resolve, ttl=30)
    await cache.get(1)
    resolve.actor = Actor(telegram_id=1, account_id=7, kind=AccountKind.FASKES, state=AccountState.REVOKED)
    assert (await cache.get(1)).is_active  # still remembered
    assert not (await cache.refresh(1)).is_active
    assert not (await cache.get(1)).is_active and len(cache) == 0


async def test_ttl_zero_turns_the_cache_off_and_the_size_is_bounded() -> None:
    resolve = Resolver(_active())
    off = ActorCache(resolve, ttl=0)
    await off.get(1)
    await off.get(1)
    assert resolve.calls == 2 and len(off) == 0

    small = ActorCache(lambda tid: Resolver(_active(tid))(tid), ttl=30, max_size=3)
    for tid in range(1, 6):
        await small.get(tid)
    assert len(small) == 3
    small.forget(5)
    assert len(small) == 2


async def _revoke_elsewhere(services: Services, telegram_id: int) -> None:
    """Dinkes revokes through core with a notifier that cannot reach this worker (another process)."""
    own = services.ctx.notifier
    services.ctx.notifier = NullNotifier()
    try:
        dinkes = await services.accounts.resolve_actor(DINKES)
        target = await services.accounts.resolve_actor(telegram_id)
        assert target.account_id is not None
        await services.access.revoke(dinkes, target.account_id, "Pindah tugas")
    finally:
        services.ctx.notifier = own


async def test_a_revocation_in_another_worker_is_refused_by_core_and_heals_the_cache(
    harness: Harness, services: Services
) -> None:
    async with services.ctx.sessions() as s:
        nik, name = (await s.execute(select(models.Target.nik, models.Target.name).limit(1))).one()
    assert harness.actors is not None
    harness.text(await harness.send(RINA, "/start"))
    assert len(harness.actors) == 1  # Rina, active, remembered

    await _revoke_elsewhere(services, RINA.telegram_id)
    assert len(harness.actors) == 1  # this worker did not hear of it

    # The bot still offers the lookup (stale menu), but core checks PL: nothing of the target is shown.
    text = harness.text(await harness.send(RINA, nik))
    assert name not in text
    assert text == ID["error.denied.state_revoked"]
    assert len(harness.actors) == 0  # the refusal dropped the stale entry

    # The next update reads PL: the bot now answers as for a revoked account, saying by whom and why.
    text = harness.text(await harness.send(RINA, "/start"))
    assert "dicabut" in text and "Pindah tugas" in text
