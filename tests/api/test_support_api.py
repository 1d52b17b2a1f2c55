"""The support API: every route without a token, with a wrong one, a wrong scope, a wrong region, and the
right token; region filtering, masking, pagination, and imports over HTTP."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from api.eventloop import running_loop_name
from api.main import create_app
from core.config import Settings
from core.db import models
from core.domain.accounts import AccountKind, AccountState, Actor
from core.domain.audit import AuditDraft
from core.services.context import CoreContext
from core.services.tokens import SCOPES, TokenService
from tests.conftest import NOW, TODAY
from tests.core.services.test_imports import make_nik

V1 = "/api/v1"
YESTERDAY = TODAY - timedelta(days=1)


@dataclass
class World:
    """What the tests refer to: targets per district, ids of seeded rows."""

    targets: dict[str, models.Target] = field(default_factory=dict)  # by label
    accounts: dict[int, int] = field(default_factory=dict)  # telegram id -> account id
    visits: dict[str, int] = field(default_factory=dict)


@dataclass
class Api:
    client: httpx.AsyncClient
    ctx: CoreContext
    world: World

    async def token(self, scopes: list[str] | tuple[str, ...], regions: list[str] | str = "*") -> dict[str, str]:
        regions = [regions] if isinstance(regions, str) else regions
        _, clear = await TokenService(self.ctx).create("test", scopes, regions)
        return {"Authorization": f"Bearer {clear}"}


async def _target_at(ctx: CoreContext, faskes: str, n: int = 1, offset: int = 0) -> list[models.Target]:
    async with ctx.uow() as uow:
        stmt = (
            select(models.Target)
            .where(models.Target.assigned_faskes_code == faskes)
            .order_by(models.Target.id)
            .offset(offset)
            .limit(n)
        )
        rows = list((await uow.session.execute(stmt)).scalars())
        uow.session.expunge_all()
        return rows


def _at(day: date, hour: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


async def seed_activity(ctx: CoreContext) -> World:
    """Visits in three districts (finished, open today, stuck), access requests, a queued correction,
    and audit events (through the unit of work, so the hash chain stays whole)."""
    world = World()
    async with ctx.uow() as uow:
        rows = (await uow.session.execute(select(models.Account.telegram_id, models.Account.id))).all()
        world.accounts = {tg: acc for tg, acc in rows}
    bdg = await _target_at(ctx, "3273P001", 3, offset=10)
    mks = await _target_at(ctx, "7371P001", 2)
    jyp = await _target_at(ctx, "9471P001", 1)
    world.targets = {
        "bdg_done": bdg[0],
        "bdg_open": bdg[1],
        "bdg_stuck": bdg[2],
        "mks_tunda": mks[0],
        "mks_stuck": mks[1],
        "jyp_tidak": jyp[0],
    }
    staff_bdg = world.accounts[910006]
    staff_mks = world.accounts[910020]

    def visit(label: str, faskes: str, day: date, status: str, by: int, **extra: Any) -> dict[str, Any]:
        return {
            "target_id": world.targets[label].id,
            "dose_number": 1,
            "faskes_code": faskes,
            "service_date": day,
            "status": status,
            "is_open": status in ("menunggu_skrining", "menunggu_vaksinasi"),
            "version": 1,
            "opened_at": _at(day),
            "opened_by": by,
            "rujuk": False,
            **extra,
        }

    done = {
        "outcome": "lanjut",
        "screened_at": _at(TODAY, 2),
        "screened_by": staff_bdg,
        "product_code": None,
        "vaccinated_at": _at(TODAY, 3),
        "vaccinated_by": staff_bdg,
        "batch": "A1",
        "kipi": "none",
        "observed_at": _at(TODAY, 3),
        "observed_by": staff_bdg,
    }
    async with ctx.uow() as uow:
        product = (await uow.session.execute(select(models.VaccineProduct.code).limit(1))).scalar_one()
        done["product_code"] = product
        visits = [
            visit("bdg_done", "3273P001", TODAY, "selesai", staff_bdg, **done),
            visit("bdg_open", "3273P001", TODAY, "menunggu_skrining", staff_bdg),
            visit("bdg_stuck", "3273P001", YESTERDAY, "menunggu_vaksinasi", staff_bdg, outcome="lanjut"),
            visit("mks_tunda", "7371P001", YESTERDAY, "tunda", staff_mks, outcome="tunda", rujuk=True),
            visit(
                "mks_stuck",
                "7371P001",
                TODAY - timedelta(days=2),
                "observasi",
                staff_mks,
                outcome="lanjut",
                product_code=product,
                vaccinated_at=_at(TODAY - timedelta(days=2)),
                batch="B2",
            ),
            visit("jyp_tidak", "9471P001", TODAY, "tidak_diberikan", staff_mks, outcome="tidak_diberikan"),
        ]
        for v in visits:
            result = await uow.session.execute(insert(models.Visit).returning(models.Visit.id), v)
            world.visits[v["status"] + ":" + v["faskes_code"]] = result.scalar_one()
        for name, faskes, kk in (("Pemohon Bandung", "3273K001", "3273"), ("Pemohon Makassar", "7371K001", "7371")):
            acc = models.Account(
                telegram_id=hash(name) % 10**9,
                name=name,
                phone="+6281299990000",
                kind="faskes",
                roles="meja1",
                faskes_code=faskes,
                kabkota_code=kk,
                state="pending",
                locale="id",
                version=1,
                created_at=NOW,
            )
            uow.session.add(acc)
            await uow.session.flush()
            uow.session.add(
                models.AccessRequest(
                    account_id=acc.id,
                    name=name,
                    phone="+6281299990000",
                    faskes_code=faskes,
                    kabkota_code=kk,
                    roles="meja1",
                    status="pending",
                    created_at=NOW,
                )
            )
        target = world.targets["bdg_open"]
        uow.session.add(
            models.Correction(
                kind="correction",
                target_id=target.id,
                nik=target.nik,
                faskes_code="3273P001",
                kabkota_code="3273",
                submitted_by=world.accounts[910005],
                submitted_at=NOW,
                base_version=1,
                before={"name": target.name, "phone": target.phone or "+6281211112222"},
                after={"name": "Nama Dikoreksi", "phone": "+6281233334444", "nik": target.nik},
                evidence=[{"source": "jkn", "verdict": "contradicts", "nik": target.nik}],
                status="queued",
            )
        )
        await uow.commit()
    actor_bdg = Actor(
        telegram_id=910006,
        account_id=staff_bdg,
        kind=AccountKind.FASKES,
        state=AccountState.ACTIVE,
        faskes_code="3273P001",
        kabkota_code="3273",
    )
    actor_mks = Actor(
        telegram_id=910020,
        account_id=staff_mks,
        kind=AccountKind.FASKES,
        state=AccountState.ACTIVE,
        faskes_code="7371P001",
        kabkota_code="7371",
    )
    for actor, label in ((actor_bdg, "bdg_done"), (actor_bdg, "bdg_open"), (actor_mks, "mks_tunda")):
        t = world.targets[label]
        async with ctx.uow(actor) as uow:
            uow.audit(
                AuditDraft(
                    action="visit.register",
                    entity="visit",
                    entity_id=str(t.id),
                    target_id=t.id,
                    after={"nik": t.nik, "phone": "+6281234567890", "dose": 1},
                )
            )
            await uow.commit()
    return world


@pytest.fixture
async def api(demo_db_url: str, clock) -> AsyncIterator[Api]:
    app = create_app(
        Settings(database_url=demo_db_url, redis_url=None, telegram_bot_token=None), clock=clock, run_bot=False
    )
    async with app.router.lifespan_context(app):
        ctx: CoreContext = app.state.runtime.services.ctx
        world = await seed_activity(ctx)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk") as client:
            yield Api(client, ctx, world)


def _csv_upload(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["nama", "nik", "tgl_lahir", "jk", "no_hp", "kategori", "kode_faskes", "tgl_jadwal"])
    writer.writerows(rows)
    return out.getvalue().encode()


def _list_row(kabkota: str, serial: int, faskes: str) -> list[str]:
    return [
        "Nakes Uji",
        make_nik(kabkota, date(1991, 2, 3), "L", serial),
        "03-02-1991",
        "L",
        "081211112222",
        "nakes",
        faskes,
        "",
    ]


# --------------------------------------------------------------------------------------------
# The matrix: every route x (no token, bad token, wrong scope, wrong region, right token)
# --------------------------------------------------------------------------------------------

FAKE_REPORT = "0" * 32


def routes(world: World) -> list[tuple[str, str, dict[str, Any], str | None]]:
    """(method, path, request kwargs, scope) of every /api/v1 route, asking for Makassar (7371) data."""
    mks = world.targets["mks_tunda"]
    upload = {"files": {"file": ("list.csv", _csv_upload([_list_row("7371", 1, "7371P001")]), "text/csv")}}
    return [
        ("GET", f"{V1}/whoami", {}, None),
        ("GET", f"{V1}/progress?group_by=faskes&date_from=2026-11-20", {}, "read_progress"),
        ("GET", f"{V1}/stuck", {}, "read_progress"),
        ("GET", f"{V1}/faskes/7371P001/recipients?date={YESTERDAY}", {}, "read_targets"),
        ("POST", f"{V1}/targets/lookup", {"json": {"key": mks.ticket}}, "read_targets"),
        ("GET", f"{V1}/targets/{mks.id}", {}, "read_targets"),
        ("GET", f"{V1}/corrections", {}, "read_targets"),
        ("GET", f"{V1}/audit", {}, "read_audit"),
        ("GET", f"{V1}/accounts", {}, "read_accounts"),
        ("GET", f"{V1}/access-requests", {}, "read_accounts"),
        ("GET", f"{V1}/districts", {}, "read_accounts"),
        ("POST", f"{V1}/imports", upload, "import"),
        ("GET", f"{V1}/imports/{FAKE_REPORT}", {}, "import"),
        ("GET", f"{V1}/imports/{FAKE_REPORT}/report.csv", {}, "import"),
        ("GET", f"{V1}/imports/{FAKE_REPORT}/report.xlsx", {}, "import"),
    ]


def out_of_region(world: World) -> list[tuple[str, str, dict[str, Any], str]]:
    """The same routes asking, explicitly, for Bandung (3273) data."""
    bdg = world.targets["bdg_open"]
    return [
        ("GET", f"{V1}/progress?province=32", {}, "read_progress"),
        ("GET", f"{V1}/progress?kabkota=3273", {}, "read_progress"),
        ("GET", f"{V1}/progress?faskes=3273P001", {}, "read_progress"),
        ("GET", f"{V1}/stuck?kabkota=3273", {}, "read_progress"),
        ("GET", f"{V1}/stuck?faskes=3273P001", {}, "read_progress"),
        ("GET", f"{V1}/faskes/3273P001/recipients", {}, "read_targets"),
        ("POST", f"{V1}/targets/lookup", {"json": {"key": bdg.ticket}}, "read_targets"),
        ("POST", f"{V1}/targets/lookup", {"json": {"key": bdg.nik}}, "read_targets"),
        ("GET", f"{V1}/targets/{bdg.id}", {}, "read_targets"),
        ("GET", f"{V1}/corrections?kabkota=3273", {}, "read_targets"),
        ("GET", f"{V1}/audit?faskes=3273P001", {}, "read_audit"),
        ("GET", f"{V1}/audit?kabkota=3273", {}, "read_audit"),
        ("GET", f"{V1}/accounts?kabkota=3273", {}, "read_accounts"),
        ("GET", f"{V1}/accounts?faskes=3273P001", {}, "read_accounts"),
        ("GET", f"{V1}/access-requests?kabkota=3273", {}, "read_accounts"),
    ]


ALL = list(SCOPES)


async def _call(api: Api, method: str, path: str, kwargs: dict[str, Any], headers: dict[str, str] | None = None):
    return await api.client.request(method, path, headers=headers or {}, **kwargs)


async def test_no_token_is_401_on_every_route(api: Api) -> None:
    for method, path, kwargs, _ in routes(api.world):
        response = await _call(api, method, path, kwargs)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"]["code"] == "auth.missing"


@pytest.mark.parametrize(
    "header",
    ["Bearer pfd_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "pfd_only-the-token", "Bearer " + "x" * 500],
)
async def test_a_bad_token_is_401_on_every_route(api: Api, header: str) -> None:
    for method, path, kwargs, _ in routes(api.world):
        response = await _call(api, method, path, kwargs, {"Authorization": header})
        assert response.status_code == 401, (method, path, response.text)


async def test_a_revoked_token_is_401(api: Api) -> None:
    info, clear = await TokenService(api.ctx).create("soon gone", ALL, ["*"])
    headers = {"Authorization": f"Bearer {clear}"}
    assert (await api.client.get(f"{V1}/whoami", headers=headers)).status_code == 200
    await TokenService(api.ctx).revoke(info.id)
    assert (await api.client.get(f"{V1}/whoami", headers=headers)).status_code == 401


async def test_a_token_without_the_scope_is_403_on_every_route(api: Api) -> None:
    for method, path, kwargs, scope in routes(api.world):
        if scope is None:
            continue
        headers = await api.token([s for s in ALL if s != scope])
        response = await _call(api, method, path, kwargs, headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["detail"] == {"code": "denied.scope", "params": {"needed": scope}}


async def test_a_token_of_another_region_is_403_on_every_route(api: Api) -> None:
    makassar = await api.token(ALL, "73")
    for method, path, kwargs, _ in out_of_region(api.world):
        response = await _call(api, method, path, kwargs, makassar)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["detail"]["code"] == "denied.other_region"


async def test_the_right_token_is_200_on_every_route(api: Api) -> None:
    makassar = await api.token(ALL, ["7371"])
    report_id = None
    for method, path, kwargs, _ in routes(api.world):
        if report_id is not None:
            path = path.replace(FAKE_REPORT, report_id)
        response = await _call(api, method, path, kwargs, makassar)
        assert response.status_code == 200, (method, path, response.text)
        if path.endswith("/imports"):
            report_id = response.json()["id"]
            assert response.json()["created"] == 1


async def test_unknown_things_are_404(api: Api) -> None:
    everything = await api.token(ALL)
    missing = [
        ("GET", f"{V1}/targets/999999", {}),
        ("POST", f"{V1}/targets/lookup", {"json": {"key": make_nik("3273", date(1990, 1, 1), "L", 1)}}),
        ("GET", f"{V1}/faskes/XX999/recipients", {}),
        ("GET", f"{V1}/progress?faskes=XX999", {}),
        ("GET", f"{V1}/imports/{FAKE_REPORT}", {}),
    ]
    for method, path, kwargs in missing:
        response = await _call(api, method, path, kwargs, everything)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"]["code"].startswith("not_found.")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", f"{V1}/progress?date_from=2026-01-01&date_to=2026-11-26", {}),  # more than 92 days
        ("GET", f"{V1}/progress?date_from=2026-11-26&date_to=2026-11-01", {}),
        ("GET", f"{V1}/progress?date_to=1999-01-01", {}),
        ("GET", f"{V1}/progress?group_by=planet", {}),
        ("GET", f"{V1}/progress?kabkota=32", {}),
        ("GET", f"{V1}/audit?limit=0", {}),
        ("GET", f"{V1}/audit?action=DROP%20TABLE", {}),
        ("GET", f"{V1}/audit?since=yesterday", {}),
        ("POST", f"{V1}/targets/lookup", {"json": {"key": "12345"}}),
        ("POST", f"{V1}/targets/lookup", {"json": {"key": "3273015705900000"}}),
        ("POST", f"{V1}/targets/lookup", {"json": {}}),
        ("GET", f"{V1}/targets/0", {}),
    ],
)
async def test_bad_parameters_are_422(api: Api, method: str, path: str, kwargs: dict[str, Any]) -> None:
    response = await _call(api, method, path, kwargs, await api.token(ALL))
    assert response.status_code == 422, response.text


# --------------------------------------------------------------------------------------------
# What each route answers
# --------------------------------------------------------------------------------------------


async def test_whoami(api: Api) -> None:
    response = await api.client.get(f"{V1}/whoami", headers=await api.token(["read_audit", "read_progress"], "32"))
    body = response.json()
    assert body["scopes"] == ["read_audit", "read_progress"] and body["regions"] == "32" and body["name"] == "test"


async def test_progress_counts_by_status_and_region(api: Api) -> None:
    everything = await api.token(["read_progress"])
    body = (await api.client.get(f"{V1}/progress?group_by=province&date_from=2026-11-20", headers=everything)).json()
    by_province = {r["province_code"]: r for r in body["rows"]}
    assert set(by_province) == {"32", "73", "94"}
    jabar = by_province["32"]
    assert jabar["province_name"] == "Jawa Barat" and jabar["registered"] == 3
    assert jabar["screened"] == {"lanjut": 2, "tunda": 0, "tidak_diberikan": 0}
    assert jabar["vaccinated"] == {"1": 1} and jabar["kipi"] == {"none": 1, "mild": 0, "serious": 0}
    assert by_province["73"]["screened"]["tunda"] == 1 and by_province["73"]["rujuk"] == 1
    assert by_province["94"]["screened"]["tidak_diberikan"] == 1
    totals = body["totals"]
    assert totals["registered"] == 6 and totals["vaccinated"] == {"1": 2}
    assert body["date_from"] == "2026-11-20" and body["date_to"] == "2026-11-26"

    by_day = (
        await api.client.get(f"{V1}/progress?group_by=day&group_by=faskes&faskes=3273P001", headers=everything)
    ).json()
    assert [(r["day"], r["faskes_code"], r["registered"]) for r in by_day["rows"]] == [
        (str(YESTERDAY), "3273P001", 1),
        (str(TODAY), "3273P001", 2),
    ]

    default = (await api.client.get(f"{V1}/progress", headers=everything)).json()
    assert [r["day"] for r in default["rows"]] == [str(TODAY - timedelta(days=2)), str(YESTERDAY), str(TODAY)]

    bandung = await api.token(["read_progress"], "3273")
    scoped = (await api.client.get(f"{V1}/progress?group_by=kabkota", headers=bandung)).json()
    assert [r["kabkota_code"] for r in scoped["rows"]] == ["3273"] and scoped["totals"]["registered"] == 3

    paged = (await api.client.get(f"{V1}/progress?group_by=faskes&limit=2", headers=everything)).json()
    assert len(paged["rows"]) == 2 and paged["next_offset"] == 2 and paged["totals"]["registered"] == 6


async def test_stuck_visits_are_those_open_past_their_day(api: Api) -> None:
    body = (await api.client.get(f"{V1}/stuck", headers=await api.token(["read_progress"]))).json()
    stuck = {(i["target_id"], i["status"], i["days_open"]) for i in body["items"]}
    w = api.world.targets
    assert stuck == {(w["mks_stuck"].id, "observasi", 2), (w["bdg_stuck"].id, "menunggu_vaksinasi", 1)}
    assert body["items"][0]["nik"].endswith("••••••••••")
    west_java = (await api.client.get(f"{V1}/stuck", headers=await api.token(["read_progress"], "32"))).json()
    assert [i["target_id"] for i in west_java["items"]] == [w["bdg_stuck"].id]


async def test_the_recipient_list_of_a_faskes_for_a_day(api: Api) -> None:
    headers = await api.token(["read_targets"], "3273")
    body = (await api.client.get(f"{V1}/faskes/3273p001/recipients?date={TODAY}", headers=headers)).json()
    assert body["faskes_code"] == "3273P001" and body["faskes_name"] == "Puskesmas Garuda"
    assert [(i["target_id"], i["status"]) for i in body["items"]] == [
        (api.world.targets["bdg_done"].id, "selesai"),
        (api.world.targets["bdg_open"].id, "menunggu_skrining"),
    ]
    assert body["items"][0]["kipi"] == "none" and body["items"][0]["vaccinated_at"] is not None
    assert all(i["nik"].endswith("•" * 10) for i in body["items"])
    assert body["scheduled_not_arrived"] >= 58  # the demo faskes has at least 60 people today
    assert (
        await api.client.get(f"{V1}/faskes/3273P001/recipients?date={TODAY}&unmask=true", headers=headers)
    ).status_code == 403


async def test_a_target_masked_by_default_and_unmasked_with_the_scope(api: Api) -> None:
    target = api.world.targets["bdg_done"]
    reader = await api.token(["read_targets"], "32")
    for key in (target.ticket, target.ticket.lower(), f"{target.ticket[:5]}-{target.ticket[5:]}", target.nik):
        body = (await api.client.post(f"{V1}/targets/lookup", json={"key": key}, headers=reader)).json()
        assert body["target_id"] == target.id, key
        assert body["nik"] == target.nik[:6] + "•" * 10 and not body["unmasked"]
        assert body["phone"] is None or "•" in body["phone"]
        assert [(v["status"], v["dose_number"]) for v in body["visits"]] == [("selesai", 1)]
    response = await api.client.post(f"{V1}/targets/lookup", json={"key": target.nik, "unmask": True}, headers=reader)
    assert response.status_code == 403 and response.json()["detail"]["params"] == {"needed": "read_targets_unmasked"}

    unmasked = await api.token(["read_targets", "read_targets_unmasked", "read_audit"], "32")
    body = (await api.client.get(f"{V1}/targets/{target.id}?unmask=true", headers=unmasked)).json()
    assert body["nik"] == target.nik and body["phone"] == target.phone and body["unmasked"]
    audit = (await api.client.get(f"{V1}/audit?action=target.read_unmasked", headers=unmasked)).json()
    [event] = audit["items"]
    assert event["target_id"] == target.id and event["after"]["by"].startswith("token:")


async def test_the_audit_trail_filtered_masked_and_paged(api: Api) -> None:
    everything = await api.token(["read_audit"])
    body = (await api.client.get(f"{V1}/audit", headers=everything)).json()
    actions = [e["action"] for e in body["items"]]
    assert actions[0] == "token.create"  # this test's own token, the newest event
    assert actions[1:4] == ["visit.register"] * 3
    seqs = [e["seq"] for e in body["items"]]
    assert seqs == sorted(seqs, reverse=True)
    for e in body["items"]:
        if e["action"] == "visit.register":
            assert e["after"]["nik"].endswith("•" * 10) and "•" in e["after"]["phone"] and e["after"]["dose"] == 1

    bdg = api.world.targets["bdg_open"]
    only = (await api.client.get(f"{V1}/audit?target={bdg.id}", headers=everything)).json()
    assert [e["target_id"] for e in only["items"]] == [bdg.id]
    by_actor = (await api.client.get(f"{V1}/audit?actor={api.world.accounts[910020]}", headers=everything)).json()
    assert [e["faskes_code"] for e in by_actor["items"]] == ["7371P001"]
    by_faskes = (await api.client.get(f"{V1}/audit?faskes=3273P001&action=visit.register", headers=everything)).json()
    assert len(by_faskes["items"]) == 2
    later = (
        await api.client.get(
            f"{V1}/audit", params={"since": (NOW + timedelta(hours=1)).isoformat()}, headers=everything
        )
    ).json()
    assert later["items"] == []
    until = (await api.client.get(f"{V1}/audit?until=2026-11-26T02:59:59", headers=everything)).json()
    assert until["items"] == []

    pages, cursor = [], None
    while True:
        query = f"{V1}/audit?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.client.get(query, headers=everything)).json()
        pages.extend(e["seq"] for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == seqs

    makassar = await api.token(["read_audit"], "73")
    regional = (await api.client.get(f"{V1}/audit", headers=makassar)).json()
    assert {e["kabkota_code"] for e in regional["items"]} == {"7371"}  # no system events, no Bandung

    unmasked = await api.token(["read_audit", "read_targets_unmasked"])
    whole = (await api.client.get(f"{V1}/audit?action=visit.register&unmask=true", headers=unmasked)).json()
    assert {e["after"]["nik"] for e in whole["items"]} >= {bdg.nik}


async def test_accounts_requests_and_districts(api: Api) -> None:
    bandung = await api.token(["read_accounts"], "3273")
    accounts = (await api.client.get(f"{V1}/accounts", headers=bandung)).json()
    names = {a["name"] for a in accounts["items"]}
    assert "Rina (meja 1)" in names and "Dinkes Kota Bandung" in names and "Pemohon Bandung" in names
    assert "Fajar (meja 1, Makassar)" not in names and "Admin Pusat" not in names
    assert all(a["phone"] is None or "•" in a["phone"] for a in accounts["items"])
    active = (await api.client.get(f"{V1}/accounts?state=active&kind=dinkes", headers=bandung)).json()
    assert [a["name"] for a in active["items"]] == ["Dinkes Kota Bandung"]
    first = (await api.client.get(f"{V1}/accounts?limit=2", headers=bandung)).json()
    second = (await api.client.get(f"{V1}/accounts?limit=2&offset={first['next_offset']}", headers=bandung)).json()
    assert first["next_offset"] == 2 and not {a["account_id"] for a in first["items"]} & {
        a["account_id"] for a in second["items"]
    }

    requests = (await api.client.get(f"{V1}/access-requests", headers=bandung)).json()
    assert [(r["name"], r["kabkota_code"], r["status"]) for r in requests["items"]] == [
        ("Pemohon Bandung", "3273", "pending")
    ]
    assert "•" in requests["items"][0]["phone"]

    west_java = await api.token(["read_accounts"], "32")
    districts = (await api.client.get(f"{V1}/districts", headers=west_java)).json()
    assert [d["kabkota_code"] for d in districts] == ["3204", "3273"]
    kota_bandung = districts[1]
    assert kota_bandung["pending_requests"] == 1 and kota_bandung["queued_corrections"] == 1
    assert kota_bandung["accounts_by_state"]["active"] == 6 and kota_bandung["accounts_by_state"]["pending"] == 1


async def test_corrections_waiting_for_review(api: Api) -> None:
    target = api.world.targets["bdg_open"]
    reader = await api.token(["read_targets"], "3273")
    body = (await api.client.get(f"{V1}/corrections", headers=reader)).json()
    [item] = body["items"]
    assert item["target_id"] == target.id and item["status"] == "queued" and item["kabkota_code"] == "3273"
    assert item["nik"] == target.nik[:6] + "•" * 10 and item["after"]["nik"] == item["nik"]
    assert "•" in item["after"]["phone"] and item["after"]["name"] == "Nama Dikoreksi"
    assert item["evidence"][0]["nik"] == item["nik"]
    assert (await api.client.get(f"{V1}/corrections?status=applied", headers=reader)).json()["items"] == []
    makassar = await api.token(["read_targets"], "7371")
    assert (await api.client.get(f"{V1}/corrections", headers=makassar)).json()["items"] == []


# --------------------------------------------------------------------------------------------
# Imports over HTTP
# --------------------------------------------------------------------------------------------


async def test_import_multipart_report_and_downloads(api: Api) -> None:
    importer = await api.token(["import"], "32")
    rows = [
        _list_row("3273", 1, "3273P001"),
        _list_row("3273", 2, "7371P001"),
        _list_row("3273", 3, "3273P001"),
        ["=cmd()", "x", "", "", "", "", "", ""],
    ]
    files = {"file": ("daftar.csv", _csv_upload(rows), "text/csv")}
    response = await api.client.post(f"{V1}/imports", files=files, headers=importer)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["filename"], report["rows"], report["created"], report["rejected"]) == ("daftar.csv", 4, 2, 2)
    assert {(i["line"], i["reason"]) for i in report["issues"]} == {(3, "faskes.out_of_region"), (5, "nik.not_digits")}
    assert report["report_csv"] == f"{V1}/imports/{report['id']}/report.csv"

    again = (await api.client.get(f"{V1}/imports/{report['id']}", headers=importer)).json()
    assert again["id"] == report["id"] and again["created"] == 2

    csv_response = await api.client.get(report["report_csv"], headers=importer)
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
    assert lines[0] == ["line", "outcome", "reason", "field", "detail", "nik"] and len(lines) == 3

    xlsx_response = await api.client.get(report["report_xlsx"], headers=importer)
    assert xlsx_response.status_code == 200 and xlsx_response.content[:2] == b"PK"

    other = await api.token(["import"], "32")  # another token cannot read this report
    assert (await api.client.get(report["report_csv"], headers=other)).status_code == 404

    rerun = (await api.client.post(f"{V1}/imports", files=files, headers=importer)).json()
    assert (rerun["created"], rerun["unchanged"], rerun["rejected"]) == (0, 2, 2)


async def test_import_raw_body_dry_run_and_bad_files(api: Api) -> None:
    importer = await api.token(["import"])
    body = _csv_upload([_list_row("7371", 5, "7371P001")])
    response = await api.client.post(
        f"{V1}/imports?dry_run=true&filename=raw.csv", content=body, headers={**importer, "Content-Type": "text/csv"}
    )
    assert response.status_code == 200 and response.json()["created"] == 1 and response.json()["dry_run"]
    lookup = await api.client.post(
        f"{V1}/targets/lookup", json={"key": _list_row("7371", 5, "x")[1]}, headers=await api.token(["read_targets"])
    )
    assert lookup.status_code == 404  # the dry run wrote nothing

    for content, content_type in (
        (b"just some text\n", "text/csv"),
        (b"", "application/octet-stream"),
        (
            b'--x\r\nContent-Disposition: form-data; name="other"\r\n\r\nhi\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
        ),
        (b"garbage", "multipart/form-data"),
    ):
        response = await api.client.post(
            f"{V1}/imports", content=content, headers={**importer, "Content-Type": content_type}
        )
        assert response.status_code == 422, (content, response.text)
        assert response.json()["detail"]["code"].startswith("invalid.import")


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------


async def test_health_ready_metrics_and_openapi(api: Api) -> None:
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    ready = await api.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    metrics = await api.client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "frontdesk_updates_total" in metrics.text and "frontdesk_actions_total" in metrics.text
    # The app's lifespan records the loop it started on (the suite runs on the product's: api/eventloop.py).
    assert f'frontdesk_event_loop_info{{loop="{running_loop_name()}"}} 1.0' in metrics.text
    schema = (await api.client.get("/openapi.json")).json()
    paths = set(schema["paths"])
    assert {f"{V1}/progress", f"{V1}/targets/lookup", f"{V1}/audit", f"{V1}/imports", "/telegram/webhook"} <= paths
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert (await api.client.get("/docs")).status_code == 200
