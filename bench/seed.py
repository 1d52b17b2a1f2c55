"""A bulk generator of synthetic PL data for the benchmark: millions of targets in seconds, not hours.

``core.db.seed.seed_demo`` builds the rich demo set (reference sources, deliberate discrepancies)
through SQLAlchemy: right for the sandbox, far too slow for 10 million rows. This module writes
the same tables directly:

* SQLite: plain ``sqlite3`` ``executemany`` in one transaction (the secondary index is dropped
  first and built again at the end);
* PostgreSQL: asyncpg ``copy_records_to_table`` (binary COPY) with the table's unique and foreign
  key constraints and secondary indexes dropped during the load and recreated (exactly as the
  migration defined them, read back from the catalog) afterwards, then ``ANALYZE``.

The schema always comes from the real migration (``core.db.migrate.upgrade``). Every row is a
function of its index: NIKs are valid and unique by construction (per district a counter runs
through kecamatan and serial), tickets are a bijection of the index onto 31**9 with the right
check symbol, names carry a five-letter suffix so that each is unique (the desk driver finds a
person's button in a list by name). All targets are ``nakes`` aged 22-59, scheduled on
:data:`bench.common.BENCH_DAY` at their faskes: the ordinary visit, every time.

Staff: ``teams`` trios of accounts (meja 1, meja 2, meja 4), each trio at its own faskes.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import BENCH_DAY, cache_dir
from core.domain.identifiers import TICKET_ALPHABET, ticket_check_symbol

# --------------------------------------------------------------------------------------------
# What is generated
# --------------------------------------------------------------------------------------------

SEED_VERSION = 3  # bump when the generated rows change (invalidates cached templates)
SOURCE = "bench"
CREATED_AT = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
TEAM_TELEGRAM_BASE = 7_000_000
DESKS = ("meja1", "meja2", "meja4")

# Province code -> time zone (WIB west, WITA central, WIT east).
PROVINCES: tuple[tuple[str, str], ...] = (
    *((c, "Asia/Jakarta") for c in ("11", "12", "13", "14", "15", "16", "17", "18", "19", "21",
                                    "31", "32", "33", "34", "35", "36", "61", "62")),
    *((c, "Asia/Makassar") for c in ("51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76")),
    *((c, "Asia/Jayapura") for c in ("81", "82", "91", "92", "94", "95", "96")),
)

def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_GIVEN_L = _words("Muhammad Ahmad Budi Agus Eko Hendra Rizky Fajar Dimas Bayu Adi Joko Bambang Wahyu Irfan Teguh "
            "Hasan Ilham Reza Taufik Yoga Gilang Aditya Andika Rahmat Firman Arif Yusuf Asep Ujang")
_GIVEN_P = _words("Siti Sri Dewi Rina Ani Nur Fitri Putri Indah Ratna Wulan Ayu Yuni Ika Nurul Dian Novi Maria "
            "Kartika Mega Eka Lina Aisyah Fatimah Nadia Anisa Rahmi Desi Yulia Intan")
_FAMILY = _words("Santoso Wijaya Saputra Pratama Hidayat Kurniawan Setiawan Gunawan Nugroho Susanto Wibowo Hakim "
           "Siregar Nasution Harahap Lubis Lestari Rahmawati Wulandari Handayani Susanti Rahayu Utami Permana "
           "Tahir Hamzah Rumbiak Wenda Kambu Yoku")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_TICKET_SPACE = 31**9
_TICKET_MUL = 7_919_374_111  # coprime with 31: i -> (i * MUL + ADD) mod 31**9 is a bijection
_TICKET_ADD = 1_234_567_891
_PER_DISTRICT = 99 * 9999  # distinct (kecamatan, serial) pairs: NIKs unique per district


@dataclass(frozen=True)
class Spec:
    targets: int
    faskes: int = 500
    teams: int = 40
    seed: int = 2021

    @property
    def districts(self) -> int:
        return max(12, min(514, self.faskes // 3), -(-self.targets // _PER_DISTRICT))

    def key(self) -> str:
        return f"v{SEED_VERSION}-t{self.targets}-f{self.faskes}-s{self.teams}-r{self.seed}"


@dataclass(frozen=True)
class Team:
    faskes_code: str
    meja1: int  # telegram ids
    meja2: int
    meja4: int


@dataclass
class SeedResult:
    targets: int
    faskes: int
    districts: int
    teams: list[Team]
    seconds: float
    rows_per_s: float
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["teams"] = [asdict(t) for t in self.teams]
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SeedResult:
        return cls(**{**raw, "teams": [Team(**t) for t in raw["teams"]]})


def districts(spec: Spec) -> list[tuple[str, str, str]]:
    """(kabkota code, province code, time zone), spread over the provinces."""
    out = []
    for i in range(spec.districts):
        prov, tz = PROVINCES[i % len(PROVINCES)]
        out.append((f"{prov}{i // len(PROVINCES) + 1:02d}", prov, tz))
    return out


def faskes_codes(spec: Spec) -> list[tuple[str, str]]:
    """(faskes code, kabkota code): round robin over the districts, puskesmas, klinik and hospitals."""
    ds = districts(spec)
    out = []
    for j in range(spec.faskes):
        kk = ds[j % len(ds)][0]
        kind = "PKR"[(j // len(ds)) % 3]
        out.append((f"{kk}{kind}{j // len(ds) // 3 + 1:03d}", kk))
    return out


def teams(spec: Spec) -> list[Team]:
    codes = faskes_codes(spec)
    n = min(spec.teams, len(codes))
    out = []
    for k in range(n):
        base = TEAM_TELEGRAM_BASE + 10 * k
        out.append(Team(codes[(k * len(codes)) // n][0], base + 1, base + 2, base + 4))
    return out


def ticket_of(i: int) -> str:
    v = (i * _TICKET_MUL + _TICKET_ADD) % _TICKET_SPACE
    chars = []
    for _ in range(9):
        v, r = divmod(v, 31)
        chars.append(TICKET_ALPHABET[r])
    body = "".join(chars)
    return body + ticket_check_symbol(body)


def suffix_of(i: int) -> str:
    chars = []
    for _ in range(5):
        i, r = divmod(i, 26)
        chars.append(_LETTERS[r])
    return chars[0] + "".join(chars[1:]).lower()


def _mix(x: int) -> int:
    """splitmix64: a cheap, well-spread hash of the row index (one Random per row is 10x slower)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


_MASK = (1 << 64) - 1


def target_rows(spec: Spec, start: int = 0, stop: int | None = None) -> Iterator[tuple[Any, ...]]:
    """(nik, ticket, name, birth_date, sex, phone, category, faskes, scheduled_date) for targets
    ``start`` .. ``stop``; the same index always gives the same row."""
    stop = spec.targets if stop is None else stop
    fk = faskes_codes(spec)
    nf = len(fk)
    district_of = [kk for _, kk in fk]
    in_district: dict[str, int] = {}
    earlier = []  # faskes before j (in one round over all faskes) in j's district
    for kk in district_of:
        earlier.append(in_district.get(kk, 0))
        in_district[kk] = in_district.get(kk, 0) + 1
    per_round = [in_district[kk] for kk in district_of]
    young = BENCH_DAY.toordinal() - round(22 * 365.25) - 1
    old = BENCH_DAY.toordinal() - round(60 * 365.25) + 2
    span = young - old
    fromordinal = date.fromordinal
    salt = spec.seed * 0x1000193
    for i in range(start, stop):
        h = _mix(i ^ salt)
        rounds, j = divmod(i, nf)
        code, kk = fk[j]
        c = rounds * per_round[j] + earlier[j]  # rows of this district before row i
        kec, serial = c % 99 + 1, (c // 99) % 9999 + 1
        birth = fromordinal(old + (h & 0xFFFFF) % span)
        female = ((h >> 20) & 0xFF) < 159  # 62 %
        day = birth.day + 40 if female else birth.day
        nik = f"{kk}{kec:02d}{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"
        given = (_GIVEN_P if female else _GIVEN_L)[(h >> 28) % 30]
        name = f"{given} {_FAMILY[(h >> 36) % 30]} {suffix_of(i)}"
        phone = f"+62812{(h >> 40) % 100_000_000:08d}"
        yield (nik, ticket_of(i), name, birth, "P" if female else "L", phone, "nakes", code, BENCH_DAY)


def _check_capacity(spec: Spec) -> None:
    ds = districts(spec)
    per = {}
    for _, kk in faskes_codes(spec):
        per[kk] = per.get(kk, 0) + 1
    most = max(per.values())
    rows = -(-spec.targets // spec.faskes) * most
    if rows > _PER_DISTRICT:
        raise ValueError(f"{spec.targets} targets over {len(ds)} districts: NIKs would repeat; raise --faskes")


# --------------------------------------------------------------------------------------------
# Small tables (same rows on both backends)
# --------------------------------------------------------------------------------------------


def _small_tables(spec: Spec) -> dict[str, list[tuple[Any, ...]]]:
    ds = districts(spec)
    provinces = sorted({(p, tz) for _, p, tz in ds})
    accounts = []
    for k, team in enumerate(teams(spec)):
        kk = team.faskes_code[:4]
        for desk, tid in zip(DESKS, (team.meja1, team.meja2, team.meja4), strict=True):
            accounts.append((tid, f"Bench {desk} {k:03d}", f"+62813{tid:08d}", "faskes", desk, team.faskes_code, kk,
                             "active", CREATED_AT, "id", 1, CREATED_AT))
    return {
        "provinces": [(p, f"Provinsi {p}", tz) for p, tz in provinces],
        "kabkota": [(kk, p, f"Kab/Kota {kk}", tz) for kk, p, tz in ds],
        "faskes": [(code, f"Faskes {code}", kk, {"P": "puskesmas", "K": "klinik", "R": "rumah_sakit"}[code[4]], True)
                   for code, kk in faskes_codes(spec)],
        "accounts": accounts,
    }


_COLUMNS = {
    "provinces": ("code", "name", "timezone"),
    "kabkota": ("code", "province_code", "name", "timezone"),
    "faskes": ("code", "name", "kabkota_code", "kind", "is_vaccinator"),
    "accounts": ("telegram_id", "name", "phone", "kind", "roles", "faskes_code", "kabkota_code", "state",
                 "state_changed_at", "locale", "version", "created_at"),
}
TARGET_COLUMNS = ("nik", "ticket", "name", "birth_date", "sex", "phone", "category", "assigned_faskes_code",
                  "scheduled_date", "source", "version", "first_desk_at", "created_at", "updated_at")


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------


def _sqlite_value(v: Any) -> Any:
    # The formats SQLAlchemy's SQLite dialect writes and reads (UtcDateTime stores naive UTC).
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


async def _migrate(url: str) -> None:
    from core.db.migrate import upgrade

    await upgrade(url)


def seed_sqlite(path: Path, spec: Spec, *, use_cache: bool = True, log: Any = print) -> SeedResult:
    """A migrated SQLite PL at ``path`` holding ``spec``; a cached template is copied when there is one."""
    _check_capacity(spec)
    template = cache_dir() / f"sqlite-{spec.key()}-{_migration_head()}.db"
    started = time.perf_counter()
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)  # a WAL left by another database would corrupt this one
    if use_cache and template.exists():
        shutil.copyfile(template, path)
        elapsed = time.perf_counter() - started
        log(f"  seed: copied cached SQLite template {template.name} ({elapsed:.1f} s)")
        return SeedResult(spec.targets, spec.faskes, spec.districts, teams(spec), elapsed, 0.0, cached=True)
    build = path.with_suffix(".building")
    build.unlink(missing_ok=True)
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{build}"))
    con = sqlite3.connect(build, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1000000")
        con.execute("BEGIN")
        for table, rows in _small_tables(spec).items():
            cols = _COLUMNS[table]
            con.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [tuple(_sqlite_value(v) for v in r) for r in rows],
            )
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='targets' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        created = _sqlite_value(CREATED_AT)
        sql = f"INSERT INTO targets ({', '.join(TARGET_COLUMNS)}) VALUES ({', '.join('?' * len(TARGET_COLUMNS))})"
        done = 0
        chunk = 100_000
        for start in range(0, spec.targets, chunk):
            stop = min(spec.targets, start + chunk)
            con.executemany(
                sql,
                [
                    (nik, ticket, name, birth.isoformat(), sex, phone, cat, fk, day.isoformat(), SOURCE, 1, None,
                     created, created)
                    for nik, ticket, name, birth, sex, phone, cat, fk, day in target_rows(spec, start, stop)
                ],
            )
            done = stop
            if spec.targets >= 500_000 and (stop // chunk) % 10 == 0:
                log(f"  seed: {done:,} targets ({done / (time.perf_counter() - started):,.0f}/s)")
        for _, index_sql in indexes:
            con.execute(index_sql)
        con.execute("COMMIT")
        con.execute("ANALYZE")
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()
    elapsed = time.perf_counter() - started
    if use_cache:
        shutil.copyfile(build, template)
    build.replace(path)
    log(f"  seed: {spec.targets:,} targets into SQLite in {elapsed:.1f} s ({spec.targets / elapsed:,.0f} rows/s)")
    return SeedResult(spec.targets, spec.faskes, spec.districts, teams(spec), elapsed, spec.targets / elapsed)


def _migration_head() -> str:
    from alembic.script import ScriptDirectory

    from core.db.migrate import alembic_config

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


async def seed_postgres(dsn: str, url: str, spec: Spec, *, log: Any = print) -> SeedResult:
    """Migrate the (empty) database at ``dsn``/``url`` and COPY ``spec`` into it."""
    import asyncpg

    _check_capacity(spec)
    started = time.perf_counter()
    await _migrate(url)
    con = await asyncpg.connect(dsn)
    try:
        await con.execute("SET maintenance_work_mem = '512MB'")
        await con.execute("SET max_parallel_maintenance_workers = 2")
        await con.execute("SET synchronous_commit = off")
        for table, rows in _small_tables(spec).items():
            await con.copy_records_to_table(table, records=rows, columns=list(_COLUMNS[table]))
        constraints = await con.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conrelid = 'targets'::regclass AND contype IN ('u', 'f') ORDER BY contype DESC"
        )
        names = {r["conname"] for r in constraints}
        indexes = await con.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'targets' AND indexname <> 'pk_targets'"
        )
        indexes = [r for r in indexes if r["indexname"] not in names]
        for r in constraints:
            await con.execute(f'ALTER TABLE targets DROP CONSTRAINT "{r["conname"]}"')
        for r in indexes:
            await con.execute(f'DROP INDEX "{r["indexname"]}"')
        chunk = 200_000
        for start in range(0, spec.targets, chunk):
            stop = min(spec.targets, start + chunk)
            records = [
                (*row, SOURCE, 1, None, CREATED_AT, CREATED_AT) for row in target_rows(spec, start, stop)
            ]
            await con.copy_records_to_table("targets", records=records, columns=list(TARGET_COLUMNS))
            if spec.targets >= 1_000_000 and (stop // chunk) % 10 == 0:
                log(f"  seed: {stop:,} targets ({stop / (time.perf_counter() - started):,.0f}/s)")
        loaded = time.perf_counter()
        for r in reversed(constraints):  # unique first (the foreign key needs no index here)
            await con.execute(f'ALTER TABLE targets ADD CONSTRAINT "{r["conname"]}" {r["def"]}')
        for r in indexes:
            await con.execute(r["indexdef"])
        await con.execute("ANALYZE")
        log(f"  seed: indexes and constraints rebuilt in {time.perf_counter() - loaded:.1f} s")
    finally:
        await con.close()
    elapsed = time.perf_counter() - started
    log(f"  seed: {spec.targets:,} targets into PostgreSQL in {elapsed:.1f} s ({spec.targets / elapsed:,.0f} rows/s)")
    return SeedResult(spec.targets, spec.faskes, spec.districts, teams(spec), elapsed, spec.targets / elapsed)


def sample_keys(rows: int, spec: Spec, *, seed: int = 7) -> list[tuple[str, str]]:
    """(nik, ticket) of ``rows`` targets spread over the whole table, computed without reading it."""
    rng = random.Random(seed)
    idx = [rng.randrange(spec.targets) for _ in range(rows)]
    out = []
    for i in idx:
        row = next(target_rows(spec, i, i + 1))
        out.append((row[0], row[1]))
    return out


def bench_day_offset(days: int) -> date:
    return BENCH_DAY + timedelta(days=days)
