"""Every access command and button × every kind of actor, through the real dispatcher.

Exactly the allowed combinations act; every other one gets a clear message (the localised refusal, never the
generic error) and leaves PL as it was: the accounts and access_requests tables and the audit chain's head are
compared before and after. Forged callback data (another district's ids, ids that do not exist, garbage) is
part of the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from bot.factory import build_notifier
from bot.i18n import catalog
from core.db import models
from core.services.registry import Services
from tests.bot.harness import Harness, Person

ID = catalog("id")

# --- the actors ----------------------------------------------------------------------------------

ACTORS: dict[str, int] = {
    "stranger": 930100,
    "pending": 930101,
    "rejected": 930102,
    "revoked": 930103,
    "meja1": 910001,
    "meja2": 910002,
    "meja4": 910004,
    "verifier": 910005,
    "dinkes_own": 910010,
    "dinkes_other": 910011,
    "central": 910099,
}
STAFF = {"meja1", "meja2", "meja4", "verifier"}
ADMINS_OWN = frozenset({"dinkes_own", "central"})  # may act on Kota Bandung (3273)
ADMINS_OTHER = frozenset({"dinkes_other", "central"})  # may act on Kota Makassar (7371)
EVERY_ADMIN = frozenset({"dinkes_own", "dinkes_other", "central"})
NOBODY: frozenset[str] = frozenset()

APPLICANT_OWN, APPLICANT_OTHER = 930110, 930111  # pending requests in 3273 and in 7371
SUBJECT_OWN, SUBJECT_OTHER = 910006, 910020  # active faskes accounts in 3273 and in 7371


@dataclass
class World:
    """Ids of what the cases act on, set up fresh for every test."""

    req_own: int
    req_other: int
    acct_own: int
    acct_own_version: int
    acct_other: int
    acct_other_version: int
    dinkes_other_acct: int


async def _ask(services: Services, telegram_id: int, faskes: str) -> int:
    actor = await services.accounts.resolve_actor(telegram_id)
    done = await services.access.request_access(
        actor, name=f"Pemohon {telegram_id}", phone="081234567890", faskes_code=faskes, roles=["meja1"]
    )
    return done.request.request_id


async def build_world(services: Services) -> World:
    dinkes = await services.accounts.resolve_actor(ACTORS["dinkes_own"])
    await _ask(services, ACTORS["pending"], "3273P001")
    rejected = await _ask(services, ACTORS["rejected"], "3273P001")
    await services.access.reject(dinkes, rejected, "Bukan petugas")
    revoked = await _ask(services, ACTORS["revoked"], "3273P001")
    await services.access.approve(dinkes, revoked)
    revoked_account = (await services.accounts.resolve_actor(ACTORS["revoked"])).account_id
    assert revoked_account is not None
    await services.access.revoke(dinkes, revoked_account, "Pindah tugas")
    req_own = await _ask(services, APPLICANT_OWN, "3273P001")
    req_other = await _ask(services, APPLICANT_OTHER, "7371P001")
    async with services.ctx.uow() as uow:
        own = await uow.accounts.by_telegram_id(SUBJECT_OWN)
        other = await uow.accounts.by_telegram_id(SUBJECT_OTHER)
        admin = await uow.accounts.by_telegram_id(ACTORS["dinkes_other"])
        assert own is not None and other is not None and admin is not None
        return World(req_own, req_other, own.id, own.version, other.id, other.version, admin.id)


async def snapshot(services: Services) -> tuple[Any, ...]:
    async with services.ctx.uow() as uow:
        s = uow.session
        accounts = (await s.execute(select(models.Account).order_by(models.Account.id))).scalars().all()
        requests = (await s.execute(select(models.AccessRequest).order_by(models.AccessRequest.id))).scalars().all()
        head = await uow.audit_log.head()
        return (
            tuple(
                (a.id, a.telegram_id, a.kind, a.state, a.roles, a.version, a.locale, a.state_reason) for a in accounts
            ),
            tuple((r.id, r.account_id, r.status, r.decided_by, r.reason) for r in requests),
            (head.seq, head.hash),
        )


async def request_status(services: Services, request_id: int) -> str:
    async with services.ctx.uow() as uow:
        req = await uow.access_requests.get(request_id)
        assert req is not None
        return req.status


@dataclass(frozen=True)
class AccountRow:
    state: str
    roles: str
    kind: str
    kabkota_code: str | None
    locale: str


async def account_of(services: Services, telegram_id: int) -> AccountRow | None:
    async with services.ctx.uow() as uow:
        a = await uow.accounts.by_telegram_id(telegram_id)
        return AccountRow(a.state, a.roles, a.kind, a.kabkota_code, a.locale) if a else None


# --- the cases -----------------------------------------------------------------------------------

Steps = Callable[[World], list[tuple[str, str]]]  # ("send" | "press", text or data)
Effect = Callable[[Services, World, str], Any]  # checks what an allowed actor changed (None: nothing)


@dataclass
class Case:
    name: str
    steps: Steps
    allowed: frozenset[str]
    effect: Effect | None = None  # None: an allowed actor reads only; PL stays as it was
    shows: str | None = None  # a catalog key whose text (its first line) an allowed actor sees
    refusal: dict[str, str] = field(default_factory=dict)  # actor kind -> locale key, overriding the default


async def _approved_own(services: Services, w: World, who: str) -> None:
    assert await request_status(services, w.req_own) == "approved"
    applicant = await account_of(services, APPLICANT_OWN)
    assert applicant is not None and applicant.state == "active"


async def _rejected_own(services: Services, w: World, who: str) -> None:
    assert await request_status(services, w.req_own) == "rejected"


async def _approved_other(services: Services, w: World, who: str) -> None:
    assert await request_status(services, w.req_other) == "approved"


async def _rejected_other(services: Services, w: World, who: str) -> None:
    assert await request_status(services, w.req_other) == "rejected"


async def _revoked_own(services: Services, w: World, who: str) -> None:
    a = await account_of(services, SUBJECT_OWN)
    assert a is not None and a.state == "revoked"


async def _revoked_other(services: Services, w: World, who: str) -> None:
    a = await account_of(services, SUBJECT_OTHER)
    assert a is not None and a.state == "revoked"


async def _roles_own(services: Services, w: World, who: str) -> None:
    a = await account_of(services, SUBJECT_OWN)
    assert a is not None and a.roles == "meja1"


async def _roles_other(services: Services, w: World, who: str) -> None:
    a = await account_of(services, SUBJECT_OTHER)
    assert a is not None and a.roles == "meja2"


async def _revoked_dinkes_other(services: Services, w: World, who: str) -> None:
    a = await account_of(services, ACTORS["dinkes_other"])
    assert a is not None and a.state == "revoked"


async def _dinkes_granted(services: Services, w: World, who: str) -> None:
    a = await account_of(services, 930150)
    assert a is not None and a.kind == "dinkes" and a.kabkota_code == "3204" and a.state == "active"


async def _locale_en(services: Services, w: World, who: str) -> Any:
    if who == "stranger":
        return None  # nothing to store: a stranger's language follows Telegram
    a = await account_of(services, ACTORS[who])
    assert a is not None and a.locale == "en"
    return True


EVERYONE = frozenset(ACTORS)
CAN_ASK = frozenset({"stranger", "rejected", "revoked"})

CASES: list[Case] = [
    # commands
    Case(
        "/daftar",
        lambda w: [("send", "/daftar")],
        CAN_ASK,
        shows="signup.ask_name",
        refusal={
            "pending": "error.refused.request_pending",
            **dict.fromkeys(STAFF | EVERY_ADMIN, "error.refused.account_active"),
        },
    ),
    Case("/permintaan", lambda w: [("send", "/permintaan")], EVERY_ADMIN, shows="admin.pending_title"),
    Case("/setujui own", lambda w: [("send", f"/setujui {w.req_own}")], ADMINS_OWN, _approved_own),
    Case("/setujui other district", lambda w: [("send", f"/setujui {w.req_other}")], ADMINS_OTHER, _approved_other),
    Case("/setujui missing", lambda w: [("send", "/setujui 987654")], NOBODY),
    Case("/tolak own", lambda w: [("send", f"/tolak {w.req_own} Bukan petugas")], ADMINS_OWN, _rejected_own),
    Case(
        "/tolak own, reason asked",
        lambda w: [("send", f"/tolak {w.req_own}"), ("send", "Bukan petugas")],
        ADMINS_OWN,
        _rejected_own,
    ),
    Case("/akun own", lambda w: [("send", "/akun 3273P001")], ADMINS_OWN, shows="admin.accounts_title"),
    Case("/akun other district", lambda w: [("send", "/akun 7371P001")], ADMINS_OTHER, shows="admin.accounts_title"),
    Case("/cabut own", lambda w: [("send", f"/cabut {w.acct_own} Pindah tugas")], ADMINS_OWN, _revoked_own),
    Case(
        "/cabut other district",
        lambda w: [("send", f"/cabut {w.acct_other} Pindah tugas")],
        ADMINS_OTHER,
        _revoked_other,
    ),
    Case(
        "/dinkes",
        lambda w: [("send", "/dinkes 930150 3204 Dinkes Kab Bandung")],
        frozenset({"central"}),
        _dinkes_granted,
    ),
    Case("/bahasa en", lambda w: [("send", "/bahasa en")], EVERYONE, _locale_en),
    # buttons
    Case("approve own", lambda w: [("press", f"ar:ok:{w.req_own}:-1")], ADMINS_OWN, _approved_own),
    Case("approve own, from the list", lambda w: [("press", f"ar:ok:{w.req_own}:0")], ADMINS_OWN, _approved_own),
    Case(
        "reject own (asks the reason)",
        lambda w: [("press", f"ar:no:{w.req_own}:-1")],
        ADMINS_OWN,
        shows="admin.ask_reject_reason",
    ),
    Case(
        "reject own, typed reason",
        lambda w: [("press", f"ar:no:{w.req_own}:0"), ("send", "Bukan petugas")],
        ADMINS_OWN,
        _rejected_own,
    ),
    Case(
        "reject own, one-tap reason", lambda w: [("press", f"rs:rq:{w.req_own}:not_staff")], ADMINS_OWN, _rejected_own
    ),
    Case("page of requests", lambda w: [("press", "arp:0")], EVERY_ADMIN, shows="admin.pending_title"),
    Case("accounts page own", lambda w: [("press", "acp:3273P001:0")], ADMINS_OWN, shows="admin.accounts_title"),
    Case(
        "revoke own (asks the reason)",
        lambda w: [("press", f"ac:rv:{w.acct_own}:0")],
        ADMINS_OWN,
        shows="admin.ask_revoke_reason",
    ),
    Case("revoke own, one-tap reason", lambda w: [("press", f"rs:ac:{w.acct_own}:moved")], ADMINS_OWN, _revoked_own),
    Case(
        "desks own (opens toggles)",
        lambda w: [("press", f"ac:rl:{w.acct_own}:0")],
        ADMINS_OWN,
        shows="admin.roles_title",
    ),
    Case("desks own, toggle", lambda w: [("press", f"rl:t:{w.acct_own}:{w.acct_own_version}:7:1:0")], ADMINS_OWN),
    Case(
        "desks own, save",
        lambda w: [("press", f"rl:ok:{w.acct_own}:{w.acct_own_version}:1:0:0")],
        ADMINS_OWN,
        _roles_own,
    ),
    Case("language button", lambda w: [("press", "lg:en")], EVERYONE, _locale_en),
    # forged: another district's ids, ids that do not exist, garbage
    Case(
        "forged: approve other district",
        lambda w: [("press", f"ar:ok:{w.req_other}:-1")],
        ADMINS_OTHER,
        _approved_other,
    ),
    Case(
        "forged: reject other district",
        lambda w: [("press", f"rs:rq:{w.req_other}:wrong_role")],
        ADMINS_OTHER,
        _rejected_other,
    ),
    Case(
        "forged: revoke other district",
        lambda w: [("press", f"rs:ac:{w.acct_other}:misuse")],
        ADMINS_OTHER,
        _revoked_other,
    ),
    Case(
        "forged: desks other district",
        lambda w: [("press", f"rl:ok:{w.acct_other}:{w.acct_other_version}:2:0:0")],
        ADMINS_OTHER,
        _roles_other,
    ),
    Case(
        "forged: accounts page other district",
        lambda w: [("press", "acp:7371P001:0")],
        ADMINS_OTHER,
        shows="admin.accounts_title",
    ),
    Case("forged: approve missing id", lambda w: [("press", "ar:ok:987654:-1")], NOBODY),
    Case("forged: revoke missing id", lambda w: [("press", "rs:ac:987654:moved")], NOBODY),
    Case(
        "forged: revoke a Dinkes admin",
        lambda w: [("press", f"rs:ac:{w.dinkes_other_acct}:misuse")],
        frozenset({"central"}),
        _revoked_dinkes_other,
        refusal={"dinkes_own": "error.denied.admin_account", "dinkes_other": "error.refused.own_account"},
    ),
    Case(
        "garbage: approve",
        lambda w: [("press", "ar:ok:abc")],
        NOBODY,
        refusal=dict.fromkeys(ACTORS, "error.stale_button"),
    ),
    Case(
        "garbage: reason code",
        lambda w: [("press", f"rs:rq:{w.req_own}:drop table")],
        NOBODY,
        refusal=dict.fromkeys(ACTORS, "error.stale_button"),
    ),
    Case(
        "garbage: unknown prefix",
        lambda w: [("press", "zz:1:2")],
        NOBODY,
        refusal=dict.fromkeys(ACTORS, "error.stale_button"),
    ),
]

DEFAULT_REFUSAL = {
    "stranger": "error.denied.no_account",
    "pending": "error.denied.state_pending",
    "rejected": "error.denied.state_rejected",
    "revoked": "error.denied.state_revoked",
    **dict.fromkeys(STAFF, "error.denied.role"),
}


def expected_refusal(case: Case, who: str) -> str:
    if who in case.refusal:
        return case.refusal[who]
    if who in DEFAULT_REFUSAL:
        return DEFAULT_REFUSAL[who]
    # An admin outside the case's scope.
    if "missing" in case.name:
        return (
            "error.not_found.access_request"
            if "approve" in case.name or "setujui" in case.name
            else "error.not_found.account_id"
        )
    if case.name == "/dinkes":
        return "error.denied.role"
    return "error.denied.other_district"


def _first_line(key: str) -> str:
    return ID[key].split("\n")[0].split("{")[0].strip()


@pytest.fixture
def bot(harness: Harness, services: Services) -> Harness:
    services.set_notifier(build_notifier(harness.bot, services, actors=harness.actors))
    return harness


ALLOWED = [(case, who) for case in CASES for who in ACTORS if who in case.allowed]


async def _run(bot: Harness, case: Case, world: World, who: str) -> str:
    person = Person(ACTORS[who], who)
    texts: list[str] = []
    for kind, payload in case.steps(world):
        calls = await (bot.send(person, payload) if kind == "send" else bot.press(person, payload))
        texts += Harness.texts(calls)
    seen = "\n".join(texts)
    assert ID["error.generic"] not in seen, f"{who} / {case.name}: {seen!r}"
    return seen


@pytest.mark.parametrize(("case", "who"), ALLOWED, ids=[f"{c.name}-{w}" for c, w in ALLOWED])
async def test_allowed_actors_act(bot: Harness, services: Services, case: Case, who: str) -> None:
    world = await build_world(services)
    before = await snapshot(services)
    seen = await _run(bot, case, world, who)
    after = await snapshot(services)
    if case.effect is None:
        assert after == before, f"{who} / {case.name} should only read"
    elif await case.effect(services, world, who) is None and who == "stranger":
        assert after == before  # /bahasa: a stranger's choice is not stored
    else:
        assert after != before
    if case.shows:
        assert _first_line(case.shows) in seen, f"{who} / {case.name}: {seen!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_everyone_else_is_refused_and_nothing_changes(bot: Harness, services: Services, case: Case) -> None:
    """Each refused actor in turn, on the same PL: the refusal is said, and PL is exactly as it was."""
    world = await build_world(services)
    before = await snapshot(services)
    refused = [who for who in ACTORS if who not in case.allowed]
    for who in refused:
        seen = await _run(bot, case, world, who)
        key = expected_refusal(case, who)
        assert seen, f"{who} / {case.name}: a refusal is always said"
        assert ID[key].split("{")[0] in seen, f"{who} / {case.name}: expected {key!r}, saw {seen!r}"
        assert await snapshot(services) == before, f"{who} changed PL with {case.name}"


def test_the_matrix_covers_every_command_button_and_actor() -> None:
    from bot.flows.signup import build_router as signup_router
    from bot.handlers.admin import build_router as admin_router

    commands = {"/daftar", "/permintaan", "/setujui", "/tolak", "/akun", "/cabut", "/dinkes", "/bahasa"}
    sample = World(1, 2, 3, 1, 4, 1, 5)
    sent = {p.split()[0] for c in CASES for k, p in c.steps(sample) if k == "send" and p.startswith("/")}
    pressed = {p.split(":")[0] for c in CASES for k, p in c.steps(sample) if k == "press"}
    assert commands <= sent
    assert {"ar", "arp", "rs", "ac", "acp", "rl", "lg"} <= pressed
    assert signup_router() and admin_router()
    assert len(CASES) * len(ACTORS) == len(ALLOWED) + sum(len(ACTORS) - len(c.allowed) for c in CASES)
