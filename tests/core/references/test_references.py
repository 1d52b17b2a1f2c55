"""The reference sources: the embedded SQL tables, the HTTP adapter against a real local server, the factory,
and the parallel query with a timeout per source."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.db.engine import create_engine
from core.domain.errors import Unavailable
from core.domain.reference import Claim, ReferenceRecord, Source, VerdictKind
from core.references.factory import build_reference_sources, close_reference_sources
from core.references.http import HttpReferenceSource
from core.references.sql import SqlReferenceSource, reader_engine
from core.references.tables import ref_dukcapil, ref_jkn
from core.services.verification import check_references
from tests.servers import free_port

NIK = "3273015708900001"
API_KEY = "test-key-123"
RECORD = {"nik": NIK, "name": "SITI AMINAH", "birth_date": "1990-08-17", "sex": "P", "card_number": "0001234567890"}


# --------------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1, in the test's event loop
# --------------------------------------------------------------------------------------------


class Reference:
    """The fake institution: answers GET /nik/{nik} as docs/verification.md describes."""

    def __init__(self) -> None:
        self.records: dict[str, object] = {NIK: RECORD}
        self.status: int | None = None  # force a status
        self.delay = 0.0
        self.body: str | None = None  # force a raw body
        self.seen_keys: list[str | None] = []
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen_keys.append(request.headers.get("X-API-Key"))
        self.paths.append(request.path)
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.headers.get("X-API-Key") != API_KEY:
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.status is not None:
            return web.Response(status=self.status, text="down")
        if self.body is not None:
            return web.Response(status=200, text=self.body, content_type="application/json")
        record = self.records.get(request.match_info["nik"])
        if record is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(record)


@pytest.fixture
async def reference() -> AsyncIterator[tuple[Reference, str]]:
    ref = Reference()
    app = web.Application()
    app.router.add_get("/v1/nik/{nik}", ref.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield ref, f"http://{host}:{port}/v1/"
    finally:
        await runner.cleanup()


async def _fetch(base: str, nik: str = NIK, *, key: str | None = API_KEY, limit: float = 2.0) -> ReferenceRecord | None:
    source = HttpReferenceSource(Source.JKN, base, key, limit)
    try:
        return await source.fetch(nik)
    finally:
        await source.aclose()


async def test_http_reads_a_record_with_the_api_key(reference: tuple[Reference, str]) -> None:
    ref, base = reference
    record = await _fetch(base)
    assert record == ReferenceRecord(NIK, "SITI AMINAH", date(1990, 8, 17), "P", "0001234567890")
    assert ref.seen_keys == [API_KEY] and ref.paths == [f"/v1/nik/{NIK}"]


async def test_http_404_is_not_found(reference: tuple[Reference, str]) -> None:
    _, base = reference
    assert await _fetch(base, "3273015708900002") is None


@pytest.mark.parametrize(
    ("setup", "detail"),
    [
        ({"status": 503}, "http_503"),
        ({"status": 500}, "http_500"),
        ({"body": "<html>oops"}, "bad_response"),
        ({"body": json.dumps({**RECORD, "card_number": 1234567890})}, "bad_response"),  # leading zeros lost
        ({"body": json.dumps({**RECORD, "birth_date": "17-08-1990"})}, "bad_response"),
        ({"body": "[]"}, "bad_response"),
    ],
)
async def test_http_errors_are_unavailable(
    reference: tuple[Reference, str], setup: dict[str, object], detail: str
) -> None:
    ref, base = reference
    for name, value in setup.items():
        setattr(ref, name, value)
    with pytest.raises(Unavailable) as caught:
        await _fetch(base)
    assert caught.value.reason == "reference"
    assert caught.value.params == {"source": "jkn", "detail": detail}


async def test_http_wrong_key_is_unavailable(reference: tuple[Reference, str]) -> None:
    _, base = reference
    with pytest.raises(Unavailable) as caught:
        await _fetch(base, key="wrong")
    assert caught.value.params["detail"] == "http_401"


async def test_http_slow_source_times_out(reference: tuple[Reference, str]) -> None:
    ref, base = reference
    ref.delay = 5
    with pytest.raises(Unavailable) as caught:
        await _fetch(base, limit=0.2)
    assert caught.value.params["detail"] == "timeout"


async def test_http_nobody_listening_is_unavailable() -> None:
    with pytest.raises(Unavailable) as caught:
        await _fetch(f"http://127.0.0.1:{free_port()}/v1")
    assert caught.value.params["detail"] == "connection"


async def test_http_source_and_its_key_stay_out_of_repr() -> None:
    source = HttpReferenceSource(Source.DUKCAPIL, "http://example.invalid/api/", "secret-key")
    assert "secret-key" not in repr(source) and "dukcapil" in repr(source)


# --------------------------------------------------------------------------------------------
# Both sources at once: in parallel, each bounded
# --------------------------------------------------------------------------------------------


async def test_a_slow_http_source_does_not_hold_up_the_other(reference: tuple[Reference, str]) -> None:
    _, base = reference
    slow = Reference()
    slow.delay = 10
    app = web.Application()
    app.router.add_get("/v1/nik/{nik}", slow.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    dukcapil = HttpReferenceSource(Source.DUKCAPIL, base, API_KEY, timeout=5)
    jkn = HttpReferenceSource(Source.JKN, f"http://{host}:{port}/v1", API_KEY, timeout=5)
    claim = Claim(NIK, "Ns. Siti Aminah, S.Kep.", date(1990, 8, 17), "P")
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        verdicts = await check_references([jkn, dukcapil], claim, 0.5)
        waited = loop.time() - started
    finally:
        await jkn.aclose()
        await dukcapil.aclose()
        await runner.cleanup()
    assert [(v.source, v.kind, v.detail) for v in verdicts] == [
        (Source.JKN, VerdictKind.UNAVAILABLE, "timeout"),
        (Source.DUKCAPIL, VerdictKind.CONFIRMED, None),
    ]
    assert waited < 5  # the service's bound (0.5 s), not the slow server's 10 s


class Rendezvous:
    """A source that answers only once the other one has been asked too: proof of parallel queries."""

    def __init__(self, source: Source, mine: asyncio.Event, other: asyncio.Event) -> None:
        self.source, self.mine, self.other = source, mine, other

    async def fetch(self, nik: str) -> ReferenceRecord | None:
        self.mine.set()
        await self.other.wait()
        return ReferenceRecord(nik, "SITI AMINAH", date(1990, 8, 17), "P")


async def test_sources_are_queried_concurrently() -> None:
    a, b = asyncio.Event(), asyncio.Event()
    sources = [Rendezvous(Source.JKN, a, b), Rendezvous(Source.DUKCAPIL, b, a)]
    verdicts = await check_references(sources, Claim(NIK, "Siti Aminah", None, None), 2.0)
    assert [v.kind for v in verdicts] == [VerdictKind.CONFIRMED, VerdictKind.CONFIRMED]


class Broken:
    source = Source.JKN

    async def fetch(self, nik: str) -> ReferenceRecord | None:
        raise RuntimeError("adapter bug")


async def test_a_broken_adapter_is_an_unavailable_source() -> None:
    (verdict,) = await check_references([Broken()], Claim(NIK, None, None, None), 1.0)
    assert (verdict.kind, verdict.detail) == (VerdictKind.UNAVAILABLE, "error")


# --------------------------------------------------------------------------------------------
# The embedded SQL tables (seed-demo), on SQLite and PostgreSQL
# --------------------------------------------------------------------------------------------


async def test_sql_sources_read_the_seeded_tables(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        jkn_row = (await conn.execute(select(ref_jkn).limit(1))).one()
        dukcapil_nik = await conn.scalar(
            select(ref_dukcapil.c.nik).where(ref_dukcapil.c.nik.not_in(select(ref_jkn.c.nik))).limit(1)
        )
    reader, owned = reader_engine(engine)
    jkn = SqlReferenceSource(reader, Source.JKN, owns_engine=owned)
    dukcapil = SqlReferenceSource(reader, Source.DUKCAPIL, owns_engine=owned)
    try:
        record = await jkn.fetch(jkn_row.nik)
        assert record == ReferenceRecord(
            jkn_row.nik, jkn_row.name, jkn_row.birth_date, jkn_row.sex, jkn_row.card_number
        )
        assert await jkn.fetch(dukcapil_nik) is None  # in Dukcapil only (the seed's missing_jkn)
        other = await dukcapil.fetch(dukcapil_nik)
        assert other is not None and other.card_number is None
        assert await dukcapil.fetch("3273015708909999") is None
    finally:
        await jkn.aclose()
    assert owned == (engine.dialect.name == "sqlite")


async def test_sql_source_without_the_tables_is_unavailable(db_url: str) -> None:
    engine = create_engine(db_url)  # migrated, never seeded: no ref_* tables
    try:
        reader, owned = reader_engine(engine)
        source = SqlReferenceSource(reader, Source.DUKCAPIL, owns_engine=owned)
        with pytest.raises(Unavailable) as caught:
            await source.fetch(NIK)
        assert caught.value.params == {"source": "dukcapil", "detail": "error"}
        await source.aclose()
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------------------------
# The factory
# --------------------------------------------------------------------------------------------


async def test_factory_picks_sql_or_http_per_source(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/pl.db"
    engine = create_engine(url)
    try:
        embedded = build_reference_sources(Settings(database_url=url, _env_file=None), engine)  # type: ignore[call-arg]
        assert [(type(s).__name__, s.source) for s in embedded] == [
            ("SqlReferenceSource", Source.JKN),
            ("SqlReferenceSource", Source.DUKCAPIL),
        ]
        await close_reference_sources(embedded)
        settings = Settings(
            database_url=url,
            jkn_base_url="https://jkn.example/api",
            jkn_api_key="k1",  # type: ignore[arg-type]
            reference_timeout_seconds=1.5,
            _env_file=None,  # type: ignore[call-arg]
        )
        mixed = build_reference_sources(settings, engine)
        jkn, dukcapil = mixed
        assert isinstance(jkn, HttpReferenceSource) and jkn.base_url == "https://jkn.example/api"
        assert jkn.timeout == 1.5
        assert isinstance(dukcapil, SqlReferenceSource)
        await close_reference_sources(mixed)
    finally:
        await engine.dispose()
