"""Item 5 (hostile input, every parser): whatever text arrives, each parser either returns a canonical
value or raises the typed ``InvalidInput`` family (which the bot turns into a plain message), never
anything else; and what it returns is plain ASCII in the stored shape, so that look-alike characters
(fullwidth or Arabic-Indic digits, zero-width joiners, RTL overrides, homoglyphs) never reach PL.

The per-parser property tests live in tests/core/domain/ (identifiers, vitals, names, imports). This
file throws one hostile alphabet at all of them, the lookup query parser and the access request's
cleaners included.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain.accounts import parse_roles
from core.domain.errors import FrontdeskError
from core.domain.identifiers import normalize_nik, normalize_phone, normalize_ticket, parse_date, parse_lookup_key
from core.domain.imports import neutralize_cell, normalize_header, parse_category, parse_sex
from core.domain.names import name_similarity, normalize_name
from core.domain.vitals import parse_batch, parse_blood_pressure, parse_expiry, parse_temperature
from core.services.access import clean_faskes_code, clean_name, clean_reason
from core.services.lookup import parse_query
from tests.bot.harness import Person
from tests.reliability.support import record_figures

TODAY = date(2026, 11, 26)

LOOKALIKES = (
    "０１２３４５６７８９"  # fullwidth digits
    "٠١٢٣٤٥٦٧٨٩"  # Arabic-Indic digits
    "۰۱۲۳۴۵۶۷۸۹"  # Extended Arabic-Indic
    "०१२३४५६७८९"  # Devanagari
    "¹²³⁴⁵⁶⁷⁸⁹⁰₀₁"  # super/subscripts (str.isdigit() says yes)
    "ОоІlΙ|Ѕ"  # Cyrillic/Greek homoglyphs of the ticket alphabet
    "\u200b\u200c\u200d\u2060\ufeff"  # zero-width
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # bidi controls
    "\u00a0\u2007\u202f\u3000\t\n\r\x0b\x0c"  # spaces of every kind
    "\x00\x01\x1b\x7f"  # control characters
    "–—‐‒−﹣－"  # dashes
    "=+-@'\"<>&;/\\%$#"  # formula and markup starters
    "😀👍🏽🇮🇩"  # emoji, with modifiers and flags
)
ASCII = "0123456789 ABCDEFGHJKMNPQRSTVWXYZabcdefghjkmnpqrstvwxyz.-/:,°C+()"

hostile = st.one_of(
    st.text(alphabet=st.sampled_from(LOOKALIKES + ASCII), max_size=40),
    st.text(max_size=40),  # all of Unicode
    # real shapes with one hostile character slipped in
    st.builds(
        lambda base, i, ch: base[: i % (len(base) + 1)] + ch + base[i % (len(base) + 1) :],
        st.sampled_from(
            [
                "3273014508900001",
                "Q7QS7-DMN8H",
                "081234567890",
                "+62 812-3456-7890",
                "17-08-1990",
                "36,5",
                "120/80",
                "SV2611A",
                "06/2027",
                "dr. Siti Rahma, S.Kep.",
                "3273P001",
                "meja1,meja2",
            ]
        ),
        st.integers(min_value=0, max_value=40),
        st.sampled_from(list(LOOKALIKES)),
    ),
    st.just("9" * 5000),
    st.just("-" * 4096 + "1"),
)

_NIK_RE = re.compile(r"[0-9]{16}")
_TICKET_RE = re.compile(r"[0-9A-Z]{10}")
_PHONE_RE = re.compile(r"\+628[0-9]{8,11}")


def _check(parser: object, raw: str) -> object:
    try:
        return parser(raw)  # type: ignore[operator]
    except FrontdeskError:
        return None


TRIED = {"inputs": 0}


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile)
def test_every_parser_returns_canonical_ascii_or_a_typed_refusal(raw: str) -> None:
    TRIED["inputs"] += 1
    if (nik := _check(normalize_nik, raw)) is not None:
        assert _NIK_RE.fullmatch(nik), nik  # type: ignore[arg-type]
    if (ticket := _check(normalize_ticket, raw)) is not None:
        assert _TICKET_RE.fullmatch(ticket), ticket  # type: ignore[arg-type]
    if (phone := _check(normalize_phone, raw)) is not None:
        assert _PHONE_RE.fullmatch(phone), phone  # type: ignore[arg-type]
    if (key := _check(parse_lookup_key, raw)) is not None:
        kind, value = key  # type: ignore[misc]
        assert (_NIK_RE if kind == "nik" else _TICKET_RE).fullmatch(value), key
    if (query := _check(parse_query, raw)) is not None:
        assert (_NIK_RE if query.kind == "nik" else _TICKET_RE).fullmatch(query.key), query  # type: ignore[attr-defined]
    if (day := _check(parse_date, raw)) is not None:
        assert 1900 <= day.year <= 2099  # type: ignore[attr-defined]
    if (temp := _check(parse_temperature, raw)) is not None:
        assert 34 <= temp <= 42.5  # type: ignore[operator]
    if (bp := _check(parse_blood_pressure, raw)) is not None:
        assert bp[0] > bp[1]  # type: ignore[index]
    if (batch := _check(parse_batch, raw)) is not None:
        assert re.fullmatch(r"[A-Z0-9/-]{3,20}", batch), batch  # type: ignore[arg-type]
    if (expiry := _check(lambda r: parse_expiry(r, TODAY), raw)) is not None:
        assert expiry >= TODAY  # type: ignore[operator]
    if (code := _check(clean_faskes_code, raw)) is not None:
        assert code.isascii() and code == code.strip(), code  # type: ignore[attr-defined]
    for total in (normalize_name, clean_name, clean_reason, parse_sex, parse_category, normalize_header, parse_roles):
        _check(total, raw)
    name_similarity(raw, "Siti Rahma")
    cell = neutralize_cell(raw)
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r") or cell.startswith("'"), cell


def test_record_the_figures() -> None:
    record_figures("hostile-parsers", inputs=TRIED["inputs"], parsers=19)


# --------------------------------------------------------------------------------------------
# Hostile import files (core.services.imports): refused with a reason or imported; reports inert
# --------------------------------------------------------------------------------------------


def _hostile_files(tmp: Path) -> list[tuple[str, Path]]:
    import csv
    import gzip
    import io
    import random
    import zipfile

    from tests.core.services.test_imports import HEADER, person, write_csv, write_xlsx

    rng = random.Random(7)
    files: list[tuple[str, bytes | Path]] = []
    for i in range(24):  # random bytes, some starting like real formats
        head = [b"", b"PK\x03\x04", b"\xef\xbb\xbf", b"\xff\xfe", b"%PDF-1.4\n", b"Nama,NIK\n"][i % 6]
        files.append((f"random-{i}", head + rng.randbytes(rng.randrange(0, 4096))))
    good = [person(i, rng) for i in range(3)]
    buf = io.StringIO()
    csv.writer(buf).writerows([HEADER, *good])
    text_csv = buf.getvalue()
    files += [
        ("utf-16", text_csv.encode("utf-16")),
        ("utf-32", text_csv.encode("utf-32")),
        ("nul-bytes", text_csv.replace(",", ",\x00", 3).encode()),
        ("one-5mb-line", b"A" * 5_000_000),
        ("a-1mb-cell", (text_csv + "X" * 1_000_000 + "," * 7 + "\n").encode()),
        ("unbalanced-quotes", (text_csv + '"Siti,"3273"' * 1000 + "\n").encode()),
        ("ten-thousand-columns", (",".join(HEADER + [f"c{i}" for i in range(10_000)]) + "\n").encode()),
        ("gzip", gzip.compress(text_csv.encode())),
        ("zip-not-xlsx", _zip({"a.txt": b"hello"}, zipfile)),
        ("xlsx-broken-xml", _zip({"[Content_Types].xml": b"<x", "xl/workbook.xml": b"<<<"}, zipfile)),
        ("bidi-and-zero-width", (text_csv.replace("Nakes", "\u202eNakes\u200b")).encode()),
        (
            "formulas",
            write_csv(
                tmp / "formulas.csv",
                [["=cmd|' /C calc'!A0", "@SUM(1)", "+1", "-1", '=HYPERLINK("http://x")', "\t=1", "\r=1", "=1"]],
            ),
        ),
        (
            "xlsx-formulas",
            write_xlsx(tmp / "formulas.xlsx", [["=1+1", good[0][1], "=TODAY()", "@x", "+62", "-", "=A1", "=B2"]]),
        ),
    ]
    out: list[tuple[str, Path]] = []
    for name, content in files:
        if isinstance(content, Path):
            out.append((name, content))
            continue
        path = tmp / f"{name}.bin"
        path.write_bytes(content)
        out.append((name, path))
    return out


def _zip(members: dict[str, bytes], zipfile: Any) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


async def test_hostile_import_files_are_refused_or_imported_and_reports_are_inert(
    demo_sqlite: str, tmp_path: Path
) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    from core.db.engine import create_engine, create_sessionmaker
    from core.ports import FixedClock
    from core.services.context import CoreContext, NullNotifier
    from core.services.imports import ImportService, report_csv, report_xlsx
    from tests.conftest import NOW

    engine = create_engine(demo_sqlite)
    outcomes: dict[str, str] = {}
    try:
        imports = ImportService(
            CoreContext(sessions=create_sessionmaker(engine), clock=FixedClock(NOW), notifier=NullNotifier())
        )
        for name, path in _hostile_files(tmp_path):
            try:
                report = await imports.run(path, dry_run=True)
            except FrontdeskError as refused:
                outcomes[name] = f"refused: {refused.key}"
                continue
            outcomes[name] = f"read: {report.created} new, {report.rejected} rejected"
            for row in csv.reader(io.StringIO(report_csv(report))):
                for cell in row:
                    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), (name, cell)
            book = load_workbook(io.BytesIO(report_xlsx(report)))
            for sheet in book.worksheets:
                for line in sheet.iter_rows():
                    for cell in line:
                        assert cell.data_type != "f", (name, sheet.title, cell.value)
                        value = cell.value if isinstance(cell.value, str) else ""
                        assert value[:1] not in ("=", "+", "-", "@", "\t", "\r"), (name, value)
    finally:
        await engine.dispose()
    assert outcomes["formulas"].startswith("read") and outcomes["xlsx-formulas"].startswith("read")
    record_figures("hostile-import-files", files=len(outcomes), outcomes=outcomes)


# --------------------------------------------------------------------------------------------
# Control characters in every free-text field, through the bot, on both backends
# --------------------------------------------------------------------------------------------
# PostgreSQL refuses a NUL in text outright; SQLite stores it. Either way a name or a note with
# control characters is not something PL should hold. Found while building the file tests above.

NUL_NAME = "Nur\x00Aini\x1b"

async def _signup(h: Any, person: Any, name: str) -> list[Any]:
    await h.send(person, "/daftar")
    await h.send(person, name)
    await h.share_contact(person, "6281398765432")
    await h.send(person, "3273P001")
    for data in ("su:fy:", "su:rt:meja1", "su:rd:"):
        await h.press(person, data)
    return await h.press(person, "su:ok:")


async def _kipi_note(h: Any, services: Any) -> None:
    from core.domain.screening import Vitals
    from tests.core.services.test_screening_service import actor, pick_target

    target = await pick_target(services, category="nakes", max_age=59)
    rina, budi, sari = [await actor(services, i) for i in (910001, 910002, 910004)]
    reg = await services.registration.register(rina, target.id, target.version)
    form = await services.screening.open(budi, reg.visit_id)
    from decimal import Decimal

    await services.screening.save(
        budi, reg.visit_id, Vitals(Decimal("36.5"), 120, 80), {i.id: False for i in form.subject.items()}
    )
    await services.vaccination.record(
        sari, reg.visit_id, product_code="coronavac", batch="SV2611A", expiry=None, nik_last4=target.nik[-4:]
    )
    sari_chat = Person(910004)
    await h.press(sari_chat, f"m4:kipi:{reg.visit_id}:serious")
    await h.send(sari_chat, "sesak\x00napas \x1b[31m")


async def _verifier_name(h: Any, services: Any) -> None:
    from core.domain.identifiers import format_ticket
    from tests.core.services.test_verification import demo_people

    person = (await demo_people(services.ctx.sessions.kw["bind"], limit=1))[0]
    verifier = Person(910005)
    await h.send(verifier, "/verifikasi")
    await h.press(verifier, "vf:fix:")
    await h.send(verifier, format_ticket(person.ticket))
    await h.press(verifier, "vf:f:name")
    await h.send(verifier, "Siti\x00Rahma")
    await h.press(verifier, "vf:sum:")
    await h.press(verifier, "vf:ok:")


async def _reject_reason(h: Any, services: Any) -> None:
    await _signup(h, Person(930078), "Nur Aini")
    async with services.ctx.sessions() as s:
        from sqlalchemy import select

        from core.db import models

        request_id = (await s.execute(select(models.AccessRequest.id))).scalars().first()
    await h.send(Person(910010), f"/tolak {request_id} bukan\x00nakes di sini")


async def _revoke_reason(h: Any, services: Any) -> None:
    account = await services.accounts.resolve_actor(910001)
    await h.send(Person(910010), f"/cabut {account.account_id} pindah\x00tugas ke kota lain")


@pytest.mark.parametrize(
    "field",
    [
        "kipi_note",
        "verifier_name",
        pytest.param("signup_name"),
        pytest.param("reject_reason"),
        pytest.param("revoke_reason"),
    ],
)
async def test_control_characters_in_free_text_never_break_a_flow_or_reach_pl(
    harness: Any, services: Any, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from sqlalchemy import text

    from bot.factory import build_notifier

    services.set_notifier(build_notifier(harness.bot, services, actors=harness.actors))
    caplog.set_level(logging.INFO)
    if field == "kipi_note":
        await _kipi_note(harness, services)
    elif field == "verifier_name":
        await _verifier_name(harness, services)
    elif field == "signup_name":
        await _signup(harness, Person(930077), NUL_NAME)
    elif field == "reject_reason":
        await _reject_reason(harness, services)
    else:
        await _revoke_reason(harness, services)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, logging.Formatter().format(errors[0])
    async with services.ctx.sessions() as s:
        for table, column in (
            ("accounts", "name"),
            ("accounts", "state_reason"),
            ("access_requests", "name"),
            ("access_requests", "reason"),
            ("targets", "name"),
            ("visits", "kipi_description"),
        ):
            values = (await s.execute(text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"))).scalars()
            assert not [v for v in values if "\x00" in v or "\x1b" in v], (table, column)
