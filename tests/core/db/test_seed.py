"""The demo seed: a deterministic, structurally valid data set with deliberate discrepancies."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select

from core.db import models
from core.db.engine import create_engine
from core.db.migrate import upgrade
from core.db.seed import (
    CHUNK_ROWS,
    DEMO_ACCOUNTS,
    DEMO_FASKES_CODE,
    DEMO_KABKOTA_CODE,
    DISCREPANCY_KINDS,
    MISSING_DUKCAPIL,
    MISSING_JKN,
    MISSPELT_NAME,
    NOT_IN_PL,
    WRONG_BIRTH_DATE,
    SeedError,
    SeedSummary,
    is_empty,
    seed_demo,
)
from core.domain.accounts import format_roles
from core.domain.identifiers import Sex, nik_mismatches, normalize_phone, normalize_ticket, parse_nik
from core.domain.names import names_match, normalize_name
from core.domain.timeutil import age_on
from core.references.tables import ref_dukcapil, ref_jkn

TODAY = date(2021, 2, 1)
NOW = datetime(2021, 1, 31, 22, 0, tzinfo=UTC)  # 05:00 WIB on TODAY
TARGETS = 3000

PL_TABLES: tuple[Table, ...] = tuple(
    models.Base.metadata.tables[name] for name in ("provinces", "kabkota", "faskes", "accounts", "targets")
)
REF_TABLES = (ref_jkn, ref_dukcapil)

Rows = dict[str, list[dict[str, Any]]]


def _url(directory: Path, name: str = "x.db") -> str:
    return f"sqlite+aiosqlite:///{directory}/{name}"


async def _dump(url: str) -> Rows:
    """Every row of the seeded tables, ordered by primary key."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            out: Rows = {}
            for table in (*PL_TABLES, *REF_TABLES):
                rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
                out[table.name] = [dict(row._mapping) for row in rows]
            return out
    finally:
        await engine.dispose()


async def _migrate_and_seed(url: str, **kwargs: Any) -> SeedSummary:
    await upgrade(url)
    engine = create_engine(url)
    try:
        return await seed_demo(engine, **kwargs)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, SeedSummary, Rows]:
    """One seeded database for the read-only checks (seeded once: it is the same every time)."""
    url = _url(tmp_path_factory.mktemp("seed"))

    async def run() -> tuple[SeedSummary, Rows]:
        summary = await _migrate_and_seed(url, targets=TARGETS, today=TODAY, now=NOW)
        return summary, await _dump(url)

    summary, rows = asyncio.run(run())
    return url, summary, rows


@pytest.fixture
def summary(seeded: tuple[str, SeedSummary, Rows]) -> SeedSummary:
    return seeded[1]


@pytest.fixture
def rows(seeded: tuple[str, SeedSummary, Rows]) -> Rows:
    return seeded[2]


def _by_nik(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["nik"]: row for row in rows}


# --- counts and structure ------------------------------------------------------------------


def test_counts(summary: SeedSummary, rows: Rows) -> None:
    assert (summary.provinces, summary.kabkota, summary.faskes) == (3, 6, 18)
    assert summary.accounts == len(DEMO_ACCOUNTS) == len(rows["accounts"])
    assert summary.targets == TARGETS == len(rows["targets"])
    assert summary.ref_jkn == len(rows["ref_jkn"]) == TARGETS - summary.missing_jkn + summary.not_in_pl
    assert summary.ref_dukcapil == len(rows["ref_dukcapil"]) == TARGETS - summary.missing_dukcapil + summary.not_in_pl
    # ~3 % misspelt, ~1 % wrong birth date, ~2 % + ~2 % missing from one source, ~1 % missing from PL
    assert (
        summary.misspelt_names, summary.wrong_birth_dates, summary.missing_jkn, summary.missing_dukcapil,
        summary.not_in_pl,
    ) == (90, 30, 60, 60, 30)
    assert summary.today == TODAY and summary.demo_faskes_code == DEMO_FASKES_CODE
    # the CLI prints str(summary): counts only, no NIK
    assert "3000 targets" in str(summary)
    assert not any(nik in str(summary) for niks in summary.examples.values() for nik in niks)


def test_regions_and_faskes(rows: Rows) -> None:
    zones = {p["code"]: p["timezone"] for p in rows["provinces"]}
    assert zones == {"32": "Asia/Jakarta", "73": "Asia/Makassar", "94": "Asia/Jayapura"}
    kabkota = {k["code"]: k for k in rows["kabkota"]}
    assert set(kabkota) == {"3273", "3204", "7371", "7302", "9471", "9403"}
    for code, k in kabkota.items():
        assert k["province_code"] == code[:2] and k["timezone"] == zones[code[:2]]
    assert kabkota["3273"]["name"] == "Kota Bandung"
    for f in rows["faskes"]:
        code = f["code"]
        assert len(code) == 8 and code[:4] == f["kabkota_code"] and code[5:].isdigit()
        assert f["is_vaccinator"] is True
        assert f["kind"] == {"P": "puskesmas", "K": "klinik", "R": "rumah_sakit"}[code[4]]
    per_kabkota = Counter((f["kabkota_code"], f["kind"]) for f in rows["faskes"])
    assert set(per_kabkota.values()) == {1} and len(per_kabkota) == 18
    demo = next(f for f in rows["faskes"] if f["code"] == DEMO_FASKES_CODE)
    assert demo["name"] == "Puskesmas Garuda" and demo["kabkota_code"] == DEMO_KABKOTA_CODE


def test_accounts(rows: Rows) -> None:
    by_telegram = {a["telegram_id"]: a for a in rows["accounts"]}
    assert set(by_telegram) == {910001, 910002, 910004, 910005, 910006, 910010, 910011, 910020, 910099}
    for persona in DEMO_ACCOUNTS:
        account = by_telegram[persona.telegram_id]
        assert account["state"] == "active"
        assert (account["name"], account["kind"], account["roles"]) == (
            persona.name, persona.kind.value, format_roles(persona.roles)
        )
        assert (account["faskes_code"], account["kabkota_code"]) == (persona.faskes_code, persona.kabkota_code)
        assert account["phone"] is None or normalize_phone(account["phone"]) == account["phone"]
    assert by_telegram[910006]["roles"] == "meja1,meja2,meja4"
    assert by_telegram[910005]["roles"] == "verifikasi"
    assert (by_telegram[910010]["kind"], by_telegram[910010]["kabkota_code"]) == ("dinkes", "3273")
    assert (by_telegram[910011]["kind"], by_telegram[910011]["kabkota_code"]) == ("dinkes", "7371")
    assert (by_telegram[910020]["roles"], by_telegram[910020]["faskes_code"]) == ("meja1", "7371P001")
    assert by_telegram[910099]["kind"] == "central"
    assert len({p.label_key for p in DEMO_ACCOUNTS}) == len(DEMO_ACCOUNTS)


# --- targets ----------------------------------------------------------------------------------


def test_every_nik_is_valid_and_agrees_with_the_record(summary: SeedSummary, rows: Rows) -> None:
    """NIKs encode the true birth date: only PL's deliberately wrong birth dates disagree."""
    faskes_kabkota = {f["code"]: f["kabkota_code"] for f in rows["faskes"]}
    mismatched = {}
    for t in rows["targets"]:
        facts = parse_nik(t["nik"], today=TODAY)
        assert facts.kabkota_code == faskes_kabkota[t["assigned_faskes_code"]]
        assert 1 <= int(t["nik"][4:6]) <= 20 and t["nik"][12:] != "0000"
        if problems := nik_mismatches(facts, t["birth_date"], Sex(t["sex"])):
            mismatched[t["nik"]] = problems
    assert mismatched == {nik: ["birth_date"] for nik in summary.cases[WRONG_BIRTH_DATE]}
    # the sources agree with every NIK they hold, exactly (century included)
    for table in ("ref_jkn", "ref_dukcapil"):
        for r in rows[table]:
            facts = parse_nik(r["nik"], today=TODAY)
            assert (facts.birth_date, facts.sex.value) == (r["birth_date"], r["sex"])
    for r in rows["ref_dukcapil"]:
        assert r["kabkota_code"] == r["nik"][:4]


def test_people_look_real(rows: Rows) -> None:
    targets = rows["targets"]
    assert len({t["nik"] for t in targets}) == len(targets)
    faskes = {f["code"] for f in rows["faskes"]}
    for t in targets:
        age = age_on(t["birth_date"], TODAY)
        assert 19 <= age <= 75
        assert t["category"] == "lansia" if age >= 60 else t["category"] in {"nakes", "petugas_publik"}
        assert t["phone"] is None or normalize_phone(t["phone"]) == t["phone"]
        assert TODAY - timedelta(days=2) <= t["scheduled_date"] <= TODAY + timedelta(days=5)
        assert t["assigned_faskes_code"] in faskes
        assert (t["source"], t["version"], t["first_desk_at"]) == ("demo", 1, None)
        assert t["created_at"] == t["updated_at"] == NOW
        assert t["name"] == t["name"].strip() and "  " not in t["name"]
    categories = Counter(t["category"] for t in targets)
    assert categories["nakes"] > len(targets) * 0.7
    assert categories["lansia"] > 0 and 0 < categories["petugas_publik"] < len(targets) * 0.1
    assert 0.85 < sum(t["phone"] is not None for t in targets) / len(targets) < 0.95
    assert {t["sex"] for t in targets} == {"L", "P"}
    assert {t["assigned_faskes_code"] for t in targets} == faskes
    assert {t["scheduled_date"] for t in targets} == {TODAY + timedelta(days=d) for d in range(-2, 6)}
    names = [t["name"] for t in targets]
    assert len(set(names)) > len(names) * 0.5
    for title in ("dr. ", "Ns. ", ", S.Kep.", "Bd. ", ", A.Md.Keb.", "Hj. "):
        assert any(title in n for n in names), title


def test_tickets_are_valid_and_unique(rows: Rows) -> None:
    tickets = [t["ticket"] for t in rows["targets"]]
    assert all(normalize_ticket(t) == t for t in tickets)
    assert len(set(tickets)) == len(tickets)
    # random, not sequential: the first symbols are spread over the alphabet
    assert len({t[0] for t in tickets}) == 31


def test_the_demo_faskes_has_a_day_of_work(summary: SeedSummary, rows: Rows) -> None:
    today_there = [
        t for t in rows["targets"] if t["assigned_faskes_code"] == DEMO_FASKES_CODE and t["scheduled_date"] == TODAY
    ]
    assert len(today_there) >= 40
    assert summary.demo_today == len(today_there)


# --- reference sources and discrepancies ------------------------------------------------------


def test_discrepancies_are_real(summary: SeedSummary, rows: Rows) -> None:
    pl, jkn, dukcapil = _by_nik(rows["targets"]), _by_nik(rows["ref_jkn"]), _by_nik(rows["ref_dukcapil"])
    cases = summary.cases
    assert set(cases) == set(summary.examples) == set(DISCREPANCY_KINDS)
    every = [nik for kind in DISCREPANCY_KINDS for nik in cases[kind]]
    assert len(every) == len(set(every))  # disjoint

    for nik in cases[MISSPELT_NAME]:
        target, sources = pl[nik], (jkn[nik], dukcapil[nik])
        for ref in sources:
            assert normalize_name(target["name"]) != normalize_name(ref["name"])
            assert names_match(target["name"], ref["name"])  # a small spelling difference
            assert (ref["birth_date"], ref["sex"]) == (target["birth_date"], target["sex"])
        assert sources[0]["name"] == sources[1]["name"]

    for nik in cases[WRONG_BIRTH_DATE]:
        target, sources = pl[nik], (jkn[nik], dukcapil[nik])
        for ref in sources:
            assert ref["birth_date"] != target["birth_date"]
            assert ref["birth_date"] == parse_nik(nik, today=TODAY).birth_date
            assert normalize_name(ref["name"]) == normalize_name(target["name"]) and ref["sex"] == target["sex"]

    for nik in cases[MISSING_JKN]:
        assert nik in pl and nik not in jkn and nik in dukcapil
    for nik in cases[MISSING_DUKCAPIL]:
        assert nik in pl and nik in jkn and nik not in dukcapil

    for nik in cases[NOT_IN_PL]:
        assert nik not in pl and nik in jkn and nik in dukcapil
        parse_nik(nik, today=TODAY)
        assert 19 <= age_on(dukcapil[nik]["birth_date"], TODAY) <= 75
        assert jkn[nik]["name"] == dukcapil[nik]["name"]
    assert sum(nik[:4] == DEMO_KABKOTA_CODE for nik in cases[NOT_IN_PL]) > len(cases[NOT_IN_PL]) / 2

    # everyone else agrees everywhere
    special = set(every)
    for nik, target in pl.items():
        if nik in special:
            continue
        for ref in (jkn[nik], dukcapil[nik]):
            assert normalize_name(ref["name"]) == normalize_name(target["name"])
            assert (ref["birth_date"], ref["sex"]) == (target["birth_date"], target["sex"])
            assert ref["name"] == ref["name"].upper()


def test_examples_come_from_the_demo_faskes_first(summary: SeedSummary, rows: Rows) -> None:
    pl = _by_nik(rows["targets"])
    for kind in DISCREPANCY_KINDS:
        examples = summary.examples[kind]
        assert 1 <= len(examples) <= 5 and examples == list(summary.cases[kind][: len(examples)])
        if kind != NOT_IN_PL:
            for nik in examples[:2]:
                assert (pl[nik]["assigned_faskes_code"], pl[nik]["scheduled_date"]) == (DEMO_FASKES_CODE, TODAY)


def test_jkn_card_numbers(rows: Rows) -> None:
    cards = [r["card_number"] for r in rows["ref_jkn"]]
    assert all(isinstance(c, str) and len(c) == 13 and c.isdigit() and c.startswith("000") for c in cards)
    assert len(set(cards)) == len(cards)


# --- behaviour -----------------------------------------------------------------------------------


async def test_seeding_is_deterministic(tmp_path: Path, seeded: tuple[str, SeedSummary, Rows]) -> None:
    _, summary, rows = seeded
    url = _url(tmp_path, "again.db")
    again = await _migrate_and_seed(url, targets=TARGETS, today=TODAY, now=NOW)
    assert again == summary
    assert await _dump(url) == rows

    other = _url(tmp_path, "other.db")
    await _migrate_and_seed(other, targets=TARGETS, today=TODAY, now=NOW, seed=7)
    other_rows = await _dump(other)
    assert {t["ticket"] for t in other_rows["targets"]}.isdisjoint(t["ticket"] for t in rows["targets"])


async def test_is_empty_before_and_after_and_no_second_seed(tmp_path: Path) -> None:
    url = _url(tmp_path)
    await upgrade(url)
    engine = create_engine(url)
    try:
        assert await is_empty(engine)
        summary = await seed_demo(engine, targets=50, today=TODAY, now=NOW)
        assert not await is_empty(engine)
        with pytest.raises(SeedError):
            await seed_demo(engine, targets=50, today=TODAY, now=NOW)
    finally:
        await engine.dispose()
    assert summary.targets == len((await _dump(url))["targets"]) == 50


async def test_today_defaults_to_the_demo_faskes_local_date(tmp_path: Path) -> None:
    url = _url(tmp_path)
    summary = await _migrate_and_seed(url, targets=5, now=datetime(2021, 1, 31, 18, 0, tzinfo=UTC))
    assert summary.today == date(2021, 2, 1)  # 01:00 WIB
    assert summary.demo_today == 5
    assert all(len(v) == 1 for v in summary.examples.values())  # tiny sets still carry every case


@pytest.mark.slow
async def test_many_targets_go_in_chunks(tmp_path: Path) -> None:
    url = _url(tmp_path)
    n = 2 * CHUNK_ROWS + 123
    summary = await _migrate_and_seed(url, targets=n, today=TODAY, now=NOW)
    rows = await _dump(url)
    assert summary.targets == len(rows["targets"]) == n
    assert len({t["ticket"] for t in rows["targets"]}) == n
    assert summary.ref_jkn == len(rows["ref_jkn"]) and summary.ref_dukcapil == len(rows["ref_dukcapil"])
    assert summary.misspelt_names == round(n * 0.03)


async def test_postgresql_gets_the_same_rows(
    postgres_server: Any, seeded: tuple[str, SeedSummary, Rows]
) -> None:
    _, summary, rows = seeded
    postgres_server.create_database("seed_test")
    url = postgres_server.url("seed_test")
    try:
        again = await _migrate_and_seed(url, targets=TARGETS, today=TODAY, now=NOW)
        assert again == summary
        assert await _dump(url) == rows
    finally:
        postgres_server.drop_database("seed_test")
