"""The PL database: typed SQLAlchemy 2 models.

PL is the national system of record. Every desk entry is written here, in one transaction per use case;
the front desk keeps no copy of target data anywhere else. Enumerated values are stored as short strings
(the domain enums in ``core.domain`` validate them) so that SQLite and PostgreSQL share one migration.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db.types import BigId, Json, UtcDateTime
from core.domain.visits import UNFINISHED

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: Json, list[Any]: Json}  # noqa: RUF012


def _partial(sqlite: str, postgresql: str) -> dict[str, Any]:
    """A partial index predicate spelled for each dialect (both support partial indexes)."""
    return {"sqlite_where": text(sqlite), "postgresql_where": text(postgresql)}


_UNFINISHED_SQL = "status IN ({})".format(", ".join(f"'{s.value}'" for s in UNFINISHED))
_UNFINISHED_ONLY = _partial(_UNFINISHED_SQL, _UNFINISHED_SQL)


# --- regions and facilities -------------------------------------------------------------------


class Province(Base):
    __tablename__ = "provinces"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    timezone: Mapped[str] = mapped_column(String(32))  # Asia/Jakarta (WIB), Asia/Makassar (WITA), Asia/Jayapura (WIT)


class KabKota(Base):
    __tablename__ = "kabkota"

    code: Mapped[str] = mapped_column(String(4), primary_key=True)
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    timezone: Mapped[str] = mapped_column(String(32))


class Faskes(Base):
    __tablename__ = "faskes"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kabkota_code: Mapped[str] = mapped_column(ForeignKey("kabkota.code"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="puskesmas")
    is_vaccinator: Mapped[bool] = mapped_column(Boolean, default=True)


# --- targets and visits ---------------------------------------------------------------------


class Target(Base):
    """A sasaran: one person to vaccinate."""

    __tablename__ = "targets"
    __table_args__ = (Index("ix_targets_assigned_day", "assigned_faskes_code", "scheduled_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nik: Mapped[str] = mapped_column(String(16), unique=True)
    ticket: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    phone: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(24))
    assigned_faskes_code: Mapped[str | None] = mapped_column(ForeignKey("faskes.code"))
    scheduled_date: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))  # sisdmk | excel | verifier | demo
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Set in the same transaction as the first registration at meja 1. Corrections update only
    # WHERE first_desk_at IS NULL, so "only before any desk entry" is kept by the database itself.
    first_desk_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class Visit(Base):
    """One attempt at one dose, opened at meja 1 by one faskes, which owns it."""

    __tablename__ = "visits"
    __table_args__ = (
        Index("ix_visits_faskes_day", "faskes_code", "service_date"),
        # The desk lists' second halves: today's Tunda at meja 2, today's observation at meja 4. Without these,
        # reading them walks every visit the faskes ever had (Tunda and unfinished observations pile up).
        Index("ix_visits_faskes_screened", "faskes_code", "screened_at"),
        Index("ix_visits_faskes_vaccinated", "faskes_code", "vaccinated_at"),
        # Visits left unfinished (the support API's stuck list), nationally by day and per faskes: only the few rows
        # in those statuses are indexed. A query must spell the statuses as literals to use them (see stats.stuck).
        Index("ix_visits_unfinished_day", "service_date", "faskes_code", **_UNFINISHED_ONLY),
        Index("ix_visits_unfinished_faskes", "faskes_code", "service_date", **_UNFINISHED_ONLY),
        # At most one open visit per target: two desks registering at once cannot both win.
        Index("uq_visits_open_target", "target_id", unique=True, **_partial("is_open = 1", "is_open")),
        # At most one vaccination per dose.
        Index(
            "uq_visits_dose_vaccinated",
            "target_id",
            "dose_number",
            unique=True,
            **_partial("vaccinated_at IS NOT NULL", "vaccinated_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id"), index=True)
    dose_number: Mapped[int] = mapped_column(SmallInteger)
    faskes_code: Mapped[str] = mapped_column(ForeignKey("faskes.code"))
    service_date: Mapped[date] = mapped_column(Date)  # local date at the faskes
    status: Mapped[str] = mapped_column(String(24))
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    opened_at: Mapped[datetime] = mapped_column()
    opened_by: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # meja 2
    rule_set_id: Mapped[str | None] = mapped_column(String(24))
    temperature_c: Mapped[Decimal | None] = mapped_column(Numeric(4, 1))
    systolic: Mapped[int | None] = mapped_column(SmallInteger)
    diastolic: Mapped[int | None] = mapped_column(SmallInteger)
    systolic_2: Mapped[int | None] = mapped_column(SmallInteger)
    diastolic_2: Mapped[int | None] = mapped_column(SmallInteger)
    answers: Mapped[dict[str, Any] | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(20))
    rujuk: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[Any] | None] = mapped_column()
    rescreen_date: Mapped[date | None] = mapped_column(Date)
    screened_at: Mapped[datetime | None] = mapped_column()
    screened_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    # meja 4
    product_code: Mapped[str | None] = mapped_column(ForeignKey("vaccine_products.code"))
    batch: Mapped[str | None] = mapped_column(String(20))
    expiry: Mapped[date | None] = mapped_column(Date)
    vaccinated_at: Mapped[datetime | None] = mapped_column()
    vaccinated_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    next_due_date: Mapped[date | None] = mapped_column(Date)
    # observation (KIPI)
    kipi: Mapped[str | None] = mapped_column(String(10))  # none | mild | serious
    kipi_description: Mapped[str | None] = mapped_column(Text)
    observed_at: Mapped[datetime | None] = mapped_column()
    observed_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))


class VaccineProduct(Base):
    __tablename__ = "vaccine_products"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    doses: Mapped[int] = mapped_column(SmallInteger)


class VaccineInterval(Base):
    """Minimum interval before the next dose, effective from a date: a change is data, not code."""

    __tablename__ = "vaccine_intervals"
    __table_args__ = (UniqueConstraint("product_code", "effective_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_code: Mapped[str] = mapped_column(ForeignKey("vaccine_products.code"))
    effective_from: Mapped[date] = mapped_column(Date)
    min_days: Mapped[int] = mapped_column(SmallInteger)
    min_days_age_60: Mapped[int | None] = mapped_column(SmallInteger)


# --- accounts and access ------------------------------------------------------------------


class Account(Base):
    """One person with one place: a faskes (staff, verifier) or a district (Dinkes admin)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(12))  # faskes | dinkes | central
    roles: Mapped[str] = mapped_column(String(64), default="")  # meja1,meja2,meja4,verifikasi
    faskes_code: Mapped[str | None] = mapped_column(ForeignKey("faskes.code"), index=True)
    kabkota_code: Mapped[str | None] = mapped_column(ForeignKey("kabkota.code"), index=True)
    state: Mapped[str] = mapped_column(String(10))  # pending | active | rejected | revoked
    state_reason: Mapped[str | None] = mapped_column(Text)
    state_changed_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    state_changed_at: Mapped[datetime | None] = mapped_column()
    locale: Mapped[str] = mapped_column(String(5), default="id")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column()
    # The bot (a key of TELEGRAM_BOT_TOKENS) the person last wrote to: notifications go out through it.
    # Routing metadata, like api_tokens.last_used_at: written only when it changes, not audited.
    bot_key: Mapped[str | None] = mapped_column(String(32))


class AccessRequest(Base):
    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_access_requests_kabkota_status", "kabkota_code", "status"),
        # One pending request per person: a second /daftar while one waits is refused by the database too.
        Index(
            "uq_access_requests_pending",
            "account_id",
            unique=True,
            **_partial("status = 'pending'", "status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(16))
    faskes_code: Mapped[str] = mapped_column(ForeignKey("faskes.code"))
    kabkota_code: Mapped[str] = mapped_column(ForeignKey("kabkota.code"))
    roles: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))  # pending | approved | rejected
    created_at: Mapped[datetime] = mapped_column()
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)


class Correction(Base):
    """A verifier's correction of a target, or addition of a missing one, with its reference evidence."""

    __tablename__ = "corrections"
    __table_args__ = (Index("ix_corrections_kabkota_status", "kabkota_code", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(12))  # correction | addition
    target_id: Mapped[int | None] = mapped_column(ForeignKey("targets.id"), index=True)
    nik: Mapped[str] = mapped_column(String(16))
    faskes_code: Mapped[str] = mapped_column(ForeignKey("faskes.code"))
    kabkota_code: Mapped[str] = mapped_column(ForeignKey("kabkota.code"))
    submitted_by: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    submitted_at: Mapped[datetime] = mapped_column()
    base_version: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any]] = mapped_column()
    evidence: Mapped[list[Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(10))  # applied | queued | approved | rejected | stale
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)


# --- audit and API tokens -----------------------------------------------------------------


class AuditEvent(Base):
    """Append-only, hash-chained: each event carries the hash of the one before it."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_faskes_at", "faskes_code", "at"),
        Index("ix_audit_events_actor_at", "actor_account_id", "at"),
        Index("ix_audit_events_target", "target_id"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_account_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_role: Mapped[str] = mapped_column(String(64))
    faskes_code: Mapped[str | None] = mapped_column(String(12))
    kabkota_code: Mapped[str | None] = mapped_column(String(4))
    action: Mapped[str] = mapped_column(String(40), index=True)
    entity: Mapped[str] = mapped_column(String(24))
    entity_id: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[int | None] = mapped_column(BigInteger)
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any] | None] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's tip: one row, locked by each appending transaction so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))
    regions: Mapped[str] = mapped_column(String(200))  # province (2) or kabkota (4) codes; "*" for all
    created_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


# The tables, for Core DML on hot paths: the ORM copies its own UPDATE and INSERT statements on every execution (a new
# cache key each time), where a Core statement on the table is built, and its cache key computed, once.
targets_table: Final = cast(Table, Target.__table__)
visits_table: Final = cast(Table, Visit.__table__)
audit_events_table: Final = cast(Table, AuditEvent.__table__)
audit_head_table: Final = cast(Table, AuditHead.__table__)
