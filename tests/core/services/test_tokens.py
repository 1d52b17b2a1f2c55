"""Support API tokens: created once in clear, stored hashed, scoped, limited to regions, revocable."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from core.db import models
from core.db.engine import create_sessionmaker
from core.domain.errors import InvalidInput, NotFound, PermissionDenied
from core.services.context import CoreContext, NullNotifier
from core.services.tokens import ALL_REGIONS, RegionScope, TokenService


@pytest.fixture
def ctx(engine, clock) -> CoreContext:
    return CoreContext(sessions=create_sessionmaker(engine), clock=clock, notifier=NullNotifier())


@pytest.fixture
def tokens(ctx: CoreContext) -> TokenService:
    return TokenService(ctx)


async def _audit(ctx: CoreContext, action: str) -> list[models.AuditEvent]:
    async with ctx.uow() as uow:
        stmt = select(models.AuditEvent).where(models.AuditEvent.action == action)
        events = list((await uow.session.execute(stmt)).scalars())
        uow.session.expunge_all()  # keep them readable after the unit of work rolls back
        return events


async def test_create_shows_the_token_once_and_stores_only_its_hash(tokens: TokenService, ctx: CoreContext) -> None:
    info, clear = await tokens.create("BPJS KC Bandung", ["read_progress", "read_audit"], ["32"])
    assert clear.startswith("pfd_") and len(clear) > 40
    assert info.scopes == ("read_progress", "read_audit") and info.regions == "32" and info.active
    async with ctx.uow() as uow:
        row = await uow.session.get(models.ApiToken, info.id)
        assert row is not None
        stored_hash = row.token_hash
        assert stored_hash == hashlib.sha256(clear.encode()).hexdigest()
        assert clear not in (row.token_hash, row.scopes, row.regions, row.name)
    [event] = await _audit(ctx, "token.create")
    assert event.entity_id == str(info.id)
    assert event.after == {"name": "BPJS KC Bandung", "scopes": ["read_progress", "read_audit"], "regions": "32"}
    assert clear not in str(event.after) and stored_hash not in str(event.after)


async def test_verify_gives_the_principal_and_notes_the_use(tokens: TokenService, ctx: CoreContext, clock) -> None:
    info, clear = await tokens.create("Dinkes", ["read_targets"], ["3273", "7371"])
    principal = await tokens.verify(clear)
    assert principal is not None
    assert principal.token_id == info.id and principal.scopes == {"read_targets"}
    assert principal.regions == RegionScope(False, frozenset(), frozenset({"3273", "7371"}))
    assert principal.label == f"token:{info.id}:Dinkes"
    [listed] = await tokens.list_tokens()
    assert listed.last_used_at == clock.now()


@pytest.mark.parametrize("presented", ["", "pfd_", "pfd_wrong", "not-a-token", "pfd_" + "x" * 300])
async def test_unknown_tokens_are_refused(tokens: TokenService, presented: str) -> None:
    await tokens.create("x", ["read_progress"], ["*"])
    assert await tokens.verify(presented) is None


async def test_revoke_stops_the_token_at_once(tokens: TokenService, ctx: CoreContext) -> None:
    info, clear = await tokens.create("x", ["read_progress"], ["*"])
    revoked = await tokens.revoke(info.id)
    assert not revoked.active
    assert await tokens.verify(clear) is None
    again = await tokens.revoke(info.id)  # a no-op
    assert again.revoked_at == revoked.revoked_at
    assert len(await _audit(ctx, "token.revoke")) == 1
    with pytest.raises(NotFound):
        await tokens.revoke(99999)


@pytest.mark.parametrize(
    ("scopes", "regions", "reason"),
    [
        ([], ["*"], "scope"),
        (["read_everything"], ["*"], "scope"),
        (["read_progress"], [], "region"),
        (["read_progress"], ["*", "32"], "region"),
        (["read_progress"], ["3"], "region"),
        (["read_progress"], ["ab"], "region"),
        (["read_progress"], ["99"], "region"),  # no such province in PL
        (["read_progress"], ["3299"], "region"),  # no such district in PL
    ],
)
async def test_create_refuses_unknown_scopes_and_regions(tokens: TokenService, scopes, regions, reason) -> None:
    with pytest.raises(InvalidInput) as err:
        await tokens.create("x", scopes, regions)
    assert err.value.reason == reason


async def test_create_refuses_an_empty_name(tokens: TokenService) -> None:
    with pytest.raises(InvalidInput):
        await tokens.create("   ", ["read_progress"], ["*"])


def test_region_scope_rules() -> None:
    west_java = RegionScope.parse("32")
    assert west_java.allows_kabkota("3273") and west_java.allows_kabkota("3204")
    assert not west_java.allows_kabkota("7371") and not west_java.allows_kabkota(None)
    assert west_java.allows_province("32") and not west_java.allows_province("73")
    bandung = RegionScope.parse(["3273"])
    assert bandung.allows_kabkota("3273") and not bandung.allows_kabkota("3204")
    assert not bandung.allows_province("32")  # a district does not see its whole province
    assert RegionScope.parse("32,3273") == west_java  # the district adds nothing
    assert str(RegionScope.parse(" 7371 , 32 ")) == "32,7371"
    assert RegionScope.parse("*") is ALL_REGIONS and ALL_REGIONS.allows_kabkota(None)
    with pytest.raises(PermissionDenied) as err:
        bandung.require_kabkota("7371")
    assert err.value.key == "denied.other_region"
