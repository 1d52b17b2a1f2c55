"""Access in core: requests, decisions, revocation, desk changes, admins; roles and scope checked in core."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db import models
from core.domain.accounts import AccountKind, AccountState, Actor, Role
from core.domain.errors import Conflict, InvalidInput, InvalidPhone, NotFound, PermissionDenied, Refused
from core.services.access import N_APPROVED, N_NEW_REQUEST, N_REJECTED, N_REVOKED, N_ROLES
from core.services.registry import Services

DINKES, DINKES_OTHER, CENTRAL = 910010, 910011, 910099
MEJA1, MEJA1_OTHER, VERIFIER = 910001, 910020, 910005
STRANGER = 930001
DEMO_NIK_QUERY = select(models.Target.nik).order_by(models.Target.id).limit(1)


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, dict[str, Any]]] = []
        self.menus: list[int] = []

    async def notify(self, telegram_id: int, message: str, **params: object) -> None:
        self.sent.append((telegram_id, message, dict(params)))

    async def refresh_menu(self, telegram_id: int) -> None:
        self.menus.append(telegram_id)

    def to(self, telegram_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [(m, p) for t, m, p in self.sent if t == telegram_id]


@pytest.fixture
def notifier(services: Services) -> RecordingNotifier:
    rec = RecordingNotifier()
    services.set_notifier(rec)
    return rec


async def actor(services: Services, telegram_id: int) -> Actor:
    return await services.accounts.resolve_actor(telegram_id)


async def ask(services: Services, telegram_id: int = STRANGER, *, faskes: str = "3273P001", **kw: Any) -> int:
    fields: dict[str, Any] = {"name": "Nur Aini", "phone": "0812-3456-7890", "faskes_code": faskes, "roles": ["meja1"]}
    fields.update(kw)
    submitted = await services.access.request_access(await actor(services, telegram_id), **fields)
    return submitted.request.request_id


async def snapshot(services: Services) -> tuple[Any, ...]:
    async with services.ctx.uow() as uow:
        s = uow.session
        accounts = (await s.execute(select(models.Account).order_by(models.Account.id))).scalars().all()
        requests = (await s.execute(select(models.AccessRequest).order_by(models.AccessRequest.id))).scalars().all()
        head = await uow.audit_log.head()
        return (
            [(a.id, a.telegram_id, a.state, a.roles, a.kind, a.version, a.locale) for a in accounts],
            [(r.id, r.status, r.decided_by, r.reason) for r in requests],
            (head.seq, head.hash),
        )


async def audit_actions(services: Services) -> list[tuple[str, str, int | None]]:
    async with services.ctx.uow() as uow:
        return [(e.action, e.actor_role, e.actor_account_id) for e in await uow.audit_log.chain()]


# --- describing a faskes ---------------------------------------------------------------------


async def test_describe_faskes_normalises_the_code_and_names_the_district(services: Services) -> None:
    info = await services.access.describe_faskes(" 3273p001 ")
    assert (info.code, info.name, info.kabkota_code, info.kabkota_name) == (
        "3273P001",
        "Puskesmas Garuda",
        "3273",
        "Kota Bandung",
    )
    assert info.province_name == "Jawa Barat"


@pytest.mark.parametrize(
    ("raw", "error", "key"),
    [("9999P999", NotFound, "not_found.faskes_code"), ("?!", InvalidInput, "invalid.faskes_code")],
)
async def test_describe_faskes_refuses_unknown_and_malformed_codes(
    services: Services, raw: str, error: type[Exception], key: str
) -> None:
    with pytest.raises(error) as info:
        await services.access.describe_faskes(raw)
    assert info.value.key == key  # type: ignore[attr-defined]


# --- asking --------------------------------------------------------------------------------


async def test_a_stranger_asks_and_the_district_admins_are_told(
    services: Services, notifier: RecordingNotifier
) -> None:
    stranger = await actor(services, STRANGER)
    submitted = await services.access.request_access(
        stranger,
        name="  Nur   Aini ",
        phone="0812 3456 7890",
        faskes_code="3273P001",
        roles=["meja2", "meja1"],
        locale="en",
    )
    req = submitted.request
    assert req.name == "Nur Aini" and req.status == "pending"
    assert req.roles == (Role.MEJA1, Role.MEJA2)
    assert "3456" not in req.phone_masked and req.phone_masked.startswith("+62 812")
    assert submitted.admins_notified == 1
    async with services.ctx.uow() as uow:
        account = await uow.accounts.by_telegram_id(STRANGER)
        assert account is not None
        assert (account.state, account.kind, account.roles, account.phone, account.locale) == (
            "pending",
            "faskes",
            "",
            "+6281234567890",
            "en",
        )
        account_id = account.id
        row = await uow.access_requests.pending_for_account(account.id)
        assert row is not None and row.kabkota_code == "3273" and row.roles == "meja1,meja2"
    # Only the Dinkes admin of Kota Bandung hears of it, with a masked phone.
    assert [t for t, _, _ in notifier.sent] == [DINKES]
    key, params = notifier.to(DINKES)[0]
    assert key == N_NEW_REQUEST and params["request_id"] == req.request_id
    assert params["phone_masked"] == req.phone_masked and params["roles"] == ["meja1", "meja2"]
    assert "+6281234567890" not in repr(notifier.sent)
    actions = await audit_actions(services)
    assert actions[-1][0] == "access.request" and actions[-1][2] == account_id


async def test_a_second_request_while_one_waits_is_refused_and_changes_nothing(
    services: Services, notifier: RecordingNotifier
) -> None:
    await ask(services)
    before = await snapshot(services)
    with pytest.raises(Refused) as info:
        await ask(services, faskes="7371P001")
    assert info.value.key == "refused.request_pending" and info.value.params["office"] == "Kota Bandung"
    with pytest.raises(Refused):
        await services.access.check_can_request(await actor(services, STRANGER))
    assert await snapshot(services) == before


async def test_two_simultaneous_requests_leave_one(services: Services, notifier: RecordingNotifier) -> None:
    results = await asyncio.gather(ask(services), ask(services), return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, Refused) for r in results) == 1
    async with services.ctx.uow() as uow:
        n = await uow.session.scalar(select(func.count()).select_from(models.AccessRequest))
    assert n == 1


@pytest.mark.parametrize("who", [MEJA1, DINKES, CENTRAL])
async def test_active_accounts_do_not_ask_again(services: Services, who: int) -> None:
    before = await snapshot(services)
    with pytest.raises(Refused) as info:
        await ask(services, who)
    assert info.value.key == "refused.account_active"
    assert await snapshot(services) == before


@pytest.mark.parametrize(
    ("fields", "error", "key"),
    [
        ({"roles": []}, InvalidInput, "invalid.access_roles"),
        ({"roles": ["meja3"]}, InvalidInput, "invalid.access_roles"),
        ({"roles": ["dinkes"]}, InvalidInput, "invalid.access_roles"),
        ({"phone": "022-1234567"}, InvalidPhone, "invalid.phone.not_mobile"),
        ({"name": "1"}, InvalidInput, "invalid.requester_name"),
        ({"faskes": "0000X000"}, NotFound, "not_found.faskes_code"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_written(
    services: Services, fields: dict[str, Any], error: type[Exception], key: str
) -> None:
    before = await snapshot(services)
    with pytest.raises(error) as info:
        await ask(services, **fields)
    assert info.value.key == key  # type: ignore[attr-defined]
    assert await snapshot(services) == before


# --- listing and deciding ----------------------------------------------------------------------


async def test_pending_lists_follow_the_district(services: Services, notifier: RecordingNotifier) -> None:
    bandung = [await ask(services, STRANGER + i, name=f"Petugas {i}") for i in range(7)]
    makassar = await ask(services, STRANGER + 50, faskes="7371P001")
    own = await services.access.pending_requests(await actor(services, DINKES), limit=5)
    assert [r.request_id for r in own.items] == bandung[:5] and own.total == 7
    assert own.has_next and not own.has_prev and own.kabkota_name == "Kota Bandung"
    second = await services.access.pending_requests(await actor(services, DINKES), offset=5, limit=5)
    assert [r.request_id for r in second.items] == bandung[5:] and not second.has_next
    other = await services.access.pending_requests(await actor(services, DINKES_OTHER))
    assert [r.request_id for r in other.items] == [makassar]
    everything = await services.access.pending_requests(await actor(services, CENTRAL), limit=50)
    assert everything.total == 8 and everything.kabkota_code is None
    for who, reason in [(MEJA1, "denied.role"), (VERIFIER, "denied.role"), (STRANGER + 99, "denied.no_account")]:
        with pytest.raises(PermissionDenied) as info:
            await services.access.pending_requests(await actor(services, who))
        assert info.value.key == reason


async def test_approve_activates_tells_and_refreshes_the_menu(services: Services, notifier: RecordingNotifier) -> None:
    rid = await ask(services, roles=["meja1", "meja4"])
    decision = await services.access.approve(await actor(services, DINKES), rid)
    assert decision.request.status == "approved" and decision.decided_by_name == "Dinkes Kota Bandung"
    now = await actor(services, STRANGER)
    assert now.is_active and now.roles == frozenset({Role.MEJA1, Role.MEJA4}) and now.faskes_code == "3273P001"
    assert notifier.to(STRANGER) == [(N_APPROVED, {"faskes_name": "Puskesmas Garuda", "roles": ["meja1", "meja4"]})]
    assert notifier.menus == [STRANGER]
    # The new member of staff can look up a target at once.
    async with services.ctx.uow() as uow:
        nik = await uow.session.scalar(DEMO_NIK_QUERY)
    assert nik is not None
    card = await services.lookup.find(now, nik)
    assert card.nik == nik
    assert (await audit_actions(services))[-1] == (
        "access.approve",
        "dinkes",
        (await actor(services, DINKES)).account_id,
    )


async def test_a_second_approval_is_told_who_decided(services: Services, notifier: RecordingNotifier) -> None:
    rid = await ask(services)
    dinkes = await actor(services, DINKES)
    await services.access.approve(dinkes, rid)
    before = await snapshot(services)
    for attempt in (
        services.access.approve(dinkes, rid),
        services.access.reject(await actor(services, CENTRAL), rid, "nope nope"),
    ):
        with pytest.raises(Conflict) as info:
            await attempt
        assert info.value.key == "conflict.request_approved"
        assert info.value.params == {"by": "Dinkes Kota Bandung"}
    assert await snapshot(services) == before


async def test_two_admins_pressing_at_once_decide_once(services: Services, notifier: RecordingNotifier) -> None:
    rid = await ask(services)
    dinkes, central = await actor(services, DINKES), await actor(services, CENTRAL)
    results = await asyncio.gather(
        services.access.approve(dinkes, rid),
        services.access.approve(central, rid),
        services.access.reject(dinkes, rid, "double tap"),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException)), results
    decisions = [a for a, _, _ in await audit_actions(services) if a in ("access.approve", "access.reject")]
    assert len(decisions) == 1


async def test_reject_keeps_the_reason_and_the_office(services: Services, notifier: RecordingNotifier) -> None:
    rid = await ask(services)
    decision = await services.access.reject(await actor(services, DINKES), rid, "  Bukan petugas   faskes ini ")
    assert decision.request.status == "rejected" and decision.request.reason == "Bukan petugas faskes ini"
    me = await actor(services, STRANGER)
    assert me.state is AccountState.REJECTED and not me.is_active
    assert notifier.to(STRANGER) == [
        (
            N_REJECTED,
            {
                "faskes_name": "Puskesmas Garuda",
                "office": "Kota Bandung",
                "office_kind": "dinkes",
                "reason": "Bukan petugas faskes ini",
            },
        )
    ]
    standing = await services.access.standing(me)
    assert (standing.state, standing.reason, standing.office_kind, standing.office_name) == (
        AccountState.REJECTED,
        "Bukan petugas faskes ini",
        AccountKind.DINKES,
        "Kota Bandung",
    )
    # A rejected person may ask again; the same account becomes pending.
    again = await ask(services, roles=["verifikasi"])
    assert again != rid and (await actor(services, STRANGER)).state is AccountState.PENDING


async def test_reject_needs_a_reason(services: Services, notifier: RecordingNotifier) -> None:
    rid = await ask(services)
    before = await snapshot(services)
    for bad in ("  ", "3273011708900001", "ok"):  # empty; a NIK typed in the wrong place; too short
        with pytest.raises(InvalidInput) as info:
            await services.access.reject(await actor(services, DINKES), rid, bad)
        assert info.value.key == "invalid.decision_reason"
    assert await snapshot(services) == before


@pytest.mark.parametrize(
    ("who", "which", "key"),
    [
        (DINKES_OTHER, "own", "denied.other_district"),
        (DINKES, "other", "denied.other_district"),
        (DINKES, "missing", "not_found.access_request"),
        (MEJA1, "own", "denied.role"),
        (MEJA1_OTHER, "other", "denied.role"),
        (VERIFIER, "own", "denied.role"),
        (STRANGER + 99, "own", "denied.no_account"),
        (STRANGER + 1, "own", "denied.state_pending"),
        (MEJA1, "missing", "denied.role"),
    ],
)
async def test_decisions_outside_the_actors_scope_are_refused(
    services: Services, notifier: RecordingNotifier, who: int, which: str, key: str
) -> None:
    rids = {
        "own": await ask(services, STRANGER),
        "other": await ask(services, STRANGER + 1, faskes="7371P001"),
        "missing": 987654,
    }
    before = await snapshot(services)
    someone = await actor(services, who)
    for call in (
        services.access.approve(someone, rids[which]),
        services.access.reject(someone, rids[which], "alasan apa saja"),
        services.access.request(someone, rids[which]),
    ):
        with pytest.raises((PermissionDenied, NotFound)) as info:
            await call
        assert info.value.key == key
    assert await snapshot(services) == before


async def test_a_forged_actor_is_refused(services: Services, notifier: RecordingNotifier) -> None:
    rid = await ask(services)
    dinkes = await actor(services, DINKES)
    forged = Actor(
        telegram_id=MEJA1,
        account_id=dinkes.account_id,
        kind=AccountKind.DINKES,
        state=AccountState.ACTIVE,
        kabkota_code="3273",
    )
    with pytest.raises(PermissionDenied):
        await services.access.approve(forged, rid)


# --- accounts: list, revoke, change desks ------------------------------------------------------


async def test_accounts_of_a_faskes_are_listed_for_its_district_only(services: Services) -> None:
    page = await services.access.accounts_of_faskes(await actor(services, DINKES), "3273p001")
    names = [a.name for a in page.items]
    assert page.faskes.name == "Puskesmas Garuda" and page.total == 5 and "Rina (meja 1)" in names
    assert all(a.phone_masked and "•" in a.phone_masked for a in page.items)
    await services.access.accounts_of_faskes(await actor(services, CENTRAL), "7371P001")
    for who, key in [(DINKES_OTHER, "denied.other_district"), (MEJA1, "denied.role"), (STRANGER, "denied.no_account")]:
        with pytest.raises(PermissionDenied) as info:
            await services.access.accounts_of_faskes(await actor(services, who), "3273P001")
        assert info.value.key == key
    with pytest.raises(NotFound):
        await services.access.accounts_of_faskes(await actor(services, DINKES), "3273P999")


async def test_revoke_keeps_who_and_why_and_bites_at_once(services: Services, notifier: RecordingNotifier) -> None:
    rina = await actor(services, MEJA1)
    assert rina.account_id is not None
    view = await services.access.revoke(await actor(services, DINKES), rina.account_id, "Pindah tugas")
    assert view.state is AccountState.REVOKED and view.state_reason == "Pindah tugas"
    assert notifier.to(MEJA1) == [
        (N_REVOKED, {"office": "Kota Bandung", "office_kind": "dinkes", "reason": "Pindah tugas"})
    ]
    assert notifier.menus == [MEJA1]
    standing = await services.access.standing(rina)
    assert (standing.office_kind, standing.office_name, standing.reason) == (
        AccountKind.DINKES,
        "Kota Bandung",
        "Pindah tugas",
    )
    # The actor Rina's chat resolved before the revocation is stale: core re-reads it and refuses.
    async with services.ctx.uow() as uow:
        nik = await uow.session.scalar(DEMO_NIK_QUERY)
    assert nik is not None
    with pytest.raises(PermissionDenied) as info:
        await services.lookup.find(rina, nik)
    assert info.value.key == "denied.state_revoked"
    # A second revocation finds nothing to do.
    with pytest.raises(Conflict) as again:
        await services.access.revoke(await actor(services, DINKES), rina.account_id, "Pindah tugas")
    assert again.value.key == "conflict.account_revoked"
    assert [a for a, _, _ in await audit_actions(services)] == ["account.revoke"]
    # Revoked staff may ask again.
    await ask(services, MEJA1)
    assert (await actor(services, MEJA1)).state is AccountState.PENDING


@pytest.mark.parametrize(
    ("who", "target", "error", "key"),
    [
        (DINKES_OTHER, MEJA1, PermissionDenied, "denied.other_district"),
        (DINKES, MEJA1_OTHER, PermissionDenied, "denied.other_district"),
        (DINKES, DINKES_OTHER, PermissionDenied, "denied.admin_account"),
        (DINKES, DINKES, Refused, "refused.own_account"),
        (DINKES, CENTRAL, Refused, "refused.central_account"),
        (MEJA1, VERIFIER, PermissionDenied, "denied.role"),
        (VERIFIER, MEJA1, PermissionDenied, "denied.role"),
    ],
)
async def test_revoke_and_desk_changes_outside_scope_are_refused(
    services: Services, notifier: RecordingNotifier, who: int, target: int, error: type[Exception], key: str
) -> None:
    target_id = (await actor(services, target)).account_id
    assert target_id is not None
    before = await snapshot(services)
    someone = await actor(services, who)
    for call in (
        services.access.revoke(someone, target_id, "alasan uji"),
        services.access.change_roles(someone, target_id, ["meja2"]),
        services.access.account(someone, target_id),
    ):
        with pytest.raises(error) as info:
            await call
        assert info.value.key == key  # type: ignore[attr-defined]
    assert await snapshot(services) == before
    assert notifier.sent == [] and notifier.menus == []


async def test_central_admins_revoke_dinkes_admins(services: Services, notifier: RecordingNotifier) -> None:
    other = await actor(services, DINKES_OTHER)
    assert other.account_id is not None
    await services.access.revoke(await actor(services, CENTRAL), other.account_id, "Masa tugas selesai")
    assert (await actor(services, DINKES_OTHER)).state is AccountState.REVOKED
    standing = await services.access.standing(other)
    assert standing.office_kind is AccountKind.CENTRAL and standing.office_name is None
    # The revoked admin's stale actor no longer lists anything.
    with pytest.raises(PermissionDenied) as info:
        await services.access.pending_requests(other)
    assert info.value.key == "denied.state_revoked"


async def test_change_roles(services: Services, notifier: RecordingNotifier) -> None:
    dinkes = await actor(services, DINKES)
    rina = await actor(services, MEJA1)
    assert rina.account_id is not None
    seen = await services.access.account(dinkes, rina.account_id)
    change = await services.access.change_roles(dinkes, rina.account_id, ["meja4", "meja1"], seen_version=seen.version)
    assert change.changed and change.before == (Role.MEJA1,) and change.account.roles == (Role.MEJA1, Role.MEJA4)
    assert (await actor(services, MEJA1)).roles == frozenset({Role.MEJA1, Role.MEJA4})
    assert notifier.to(MEJA1) == [(N_ROLES, {"roles": ["meja1", "meja4"], "faskes_name": "Puskesmas Garuda"})]
    assert notifier.menus == [MEJA1]
    # The same view pressed again is stale.
    before = await snapshot(services)
    with pytest.raises(Conflict):
        await services.access.change_roles(dinkes, rina.account_id, ["meja2"], seen_version=seen.version)
    unchanged = await services.access.change_roles(dinkes, rina.account_id, ["meja1", "meja4"])
    assert not unchanged.changed
    with pytest.raises(InvalidInput):
        await services.access.change_roles(dinkes, rina.account_id, [])
    assert await snapshot(services) == before
    assert [a for a, _, _ in await audit_actions(services)] == ["account.roles"]


async def test_desks_of_a_pending_account_cannot_be_changed(services: Services, notifier: RecordingNotifier) -> None:
    await ask(services)
    pending = await actor(services, STRANGER)
    assert pending.account_id is not None
    with pytest.raises(Conflict) as info:
        await services.access.change_roles(await actor(services, DINKES), pending.account_id, ["meja2"])
    assert info.value.key == "conflict.account_pending"


# --- admins ------------------------------------------------------------------------------------


async def test_central_grants_a_dinkes_admin_in_chat(services: Services, notifier: RecordingNotifier) -> None:
    view = await services.access.grant_dinkes(await actor(services, CENTRAL), 940001, "3204", "Dinkes Kab. Bandung")
    assert view.kind is AccountKind.DINKES and view.kabkota_name == "Kab. Bandung" and view.state is AccountState.ACTIVE
    new = await actor(services, 940001)
    assert new.is_active and new.kabkota_code == "3204"
    assert notifier.menus == [940001]
    assert (await audit_actions(services))[-1][:2] == ("account.grant_dinkes", "central")
    # The new admin now sees requests of Kab. Bandung.
    await ask(services, faskes="3204P001")
    assert (await services.access.pending_requests(new)).total == 1


@pytest.mark.parametrize(
    ("who", "tid", "kabkota", "error", "key"),
    [
        (DINKES, 940001, "3204", PermissionDenied, "denied.role"),
        (MEJA1, 940001, "3204", PermissionDenied, "denied.role"),
        (STRANGER, 940001, "3204", PermissionDenied, "denied.no_account"),
        (CENTRAL, 940001, "9999", NotFound, "not_found.kabkota_code"),
        (CENTRAL, MEJA1, "3204", Refused, "refused.account_exists"),
    ],
)
async def test_granting_dinkes_is_for_central_admins(
    services: Services, who: int, tid: int, kabkota: str, error: type[Exception], key: str
) -> None:
    before = await snapshot(services)
    with pytest.raises(error) as info:
        await services.access.grant_dinkes(await actor(services, who), tid, kabkota, "Dinkes Baru")
    assert info.value.key == key  # type: ignore[attr-defined]
    assert await snapshot(services) == before


async def test_the_cli_side_grants_act_as_the_system(services: Services) -> None:
    view = await services.access.add_dinkes(940002, "7302", "Dinkes Bulukumba")
    assert view.kabkota_code == "7302"
    central = await services.access.add_central(940003, "Pusat Dua")
    assert central.kind is AccountKind.CENTRAL
    assert (await audit_actions(services))[-2:] == [
        ("account.grant_dinkes", "system", None),
        ("account.grant_central", "system", None),
    ]
    with pytest.raises(Refused):
        await services.access.add_dinkes(940002, "7302", "Again")
    with pytest.raises(NotFound):
        await services.access.add_dinkes(940004, "0000", "Nowhere")
    report = await services.audit.verify_chain()
    assert report.ok and report.checked == 2


async def test_set_locale(services: Services, notifier: RecordingNotifier) -> None:
    choice = await services.access.set_locale(await actor(services, MEJA1), "en")
    assert choice.stored and (await actor(services, MEJA1)).locale == "en"
    assert notifier.menus == [MEJA1]
    assert not (await services.access.set_locale(STRANGER, "en")).stored
    with pytest.raises(InvalidInput):
        await services.access.set_locale(MEJA1, "fr")
    assert [a for a, _, _ in await audit_actions(services)] == ["account.locale"]


async def test_the_whole_trail_verifies(services: Services, notifier: RecordingNotifier) -> None:
    rid = await ask(services)
    await services.access.approve(await actor(services, DINKES), rid)
    me = await actor(services, STRANGER)
    assert me.account_id is not None
    await services.access.change_roles(await actor(services, DINKES), me.account_id, ["meja2"])
    await services.access.revoke(await actor(services, CENTRAL), me.account_id, "Uji coba selesai")
    report = await services.audit.verify_chain()
    assert report.ok and report.checked == 4
