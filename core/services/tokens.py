"""Support API tokens: created on the command line, stored hashed, limited by scopes and regions.

A token is shown in clear exactly once, when it is created; PL keeps only its SHA-256. A token's
*scopes* say what it may read (or import), its *regions* which provinces or districts it sees
(``*``: all of them). :meth:`TokenService.verify` turns a presented token into a :class:`Principal`;
the API layer answers 401 when there is none and 403 when the principal lacks a scope or a region.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select, update

from core.db import models
from core.domain.audit import AuditDraft
from core.domain.errors import InvalidInput, NotFound, PermissionDenied
from core.services.context import CoreContext

__all__ = [
    "ALL_REGIONS",
    "SCOPES",
    "Principal",
    "RegionScope",
    "TokenInfo",
    "TokenService",
    "hash_token",
]

#: What a token may do. ``read_targets_unmasked`` adds whole NIKs and phone numbers to ``read_targets``.
SCOPES: Final = (
    "read_progress",  # progress counts, stuck records
    "read_targets",  # a target, a faskes' Daftar Penerima Vaksin, corrections waiting for review
    "read_targets_unmasked",  # ... with NIKs and phone numbers whole (?unmask=true)
    "read_audit",  # the audit trail
    "read_accounts",  # accounts and pending access requests
    "import",  # target lists ("generate tiket")
)
TOKEN_PREFIX: Final = "pfd_"  # noqa: S105 - a prefix that makes leaked tokens easy to spot
_LAST_USED_EVERY: Final = timedelta(minutes=1)  # last_used_at is a hint, not worth a write per request


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class RegionScope:
    """The provinces (2-digit codes) and districts (4-digit kabupaten/kota codes) a principal sees.

    District codes start with their province's code (Kemendagri), so province 32 covers 3273.
    """

    everything: bool = False
    provinces: frozenset[str] = frozenset()
    kabkota: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: str | Iterable[str]) -> RegionScope:
        """From ``*`` or codes (a comma-separated string or several); raises ``InvalidInput("region")``."""
        parts = [p.strip() for p in (raw.split(",") if isinstance(raw, str) else raw)]
        parts = [p for p in parts if p]
        if not parts:
            raise InvalidInput("region", got="")
        if "*" in parts:
            if len(parts) > 1:
                raise InvalidInput("region", got=",".join(parts))
            return ALL_REGIONS
        provinces, kabkota = set(), set()
        for part in parts:
            if part.isascii() and part.isdigit() and len(part) == 2:
                provinces.add(part)
            elif part.isascii() and part.isdigit() and len(part) == 4:
                kabkota.add(part)
            else:
                raise InvalidInput("region", got=part[:10])
        # A district inside a listed province adds nothing.
        kabkota = {k for k in kabkota if k[:2] not in provinces}
        return cls(False, frozenset(provinces), frozenset(kabkota))

    def __str__(self) -> str:
        return "*" if self.everything else ",".join(sorted(self.provinces | self.kabkota))

    def allows_kabkota(self, code: str | None) -> bool:
        if self.everything:
            return True
        if not code:
            return False
        return code in self.kabkota or code[:2] in self.provinces

    def allows_province(self, code: str) -> bool:
        """The whole province: a principal limited to some of its districts does not see all of it."""
        return self.everything or code in self.provinces

    def require_kabkota(self, code: str | None) -> None:
        if not self.allows_kabkota(code):
            raise PermissionDenied("other_region", region=code or "")

    def require_province(self, code: str) -> None:
        if not self.allows_province(code):
            raise PermissionDenied("other_region", region=code)


ALL_REGIONS: Final = RegionScope(everything=True)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presents a token: its id and name, its scopes and its regions."""

    token_id: int
    name: str
    scopes: frozenset[str]
    regions: RegionScope

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied("scope", needed=scope)

    @property
    def label(self) -> str:
        """How the audit trail names this principal."""
        return f"token:{self.token_id}:{self.name}"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    scopes: tuple[str, ...]
    regions: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _info(row: models.ApiToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        scopes=tuple(s for s in row.scopes.split(",") if s),
        regions=row.regions,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _parse_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    wanted = {s.strip() for s in scopes if s.strip()}
    if not wanted:
        raise InvalidInput("scope", got="")
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidInput("scope", got=",".join(unknown)[:60], known=list(SCOPES))
    return tuple(s for s in SCOPES if s in wanted)


class TokenService:
    """Create, verify, list and revoke support API tokens (the central admin, on the command line)."""

    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def create(self, name: str, scopes: Iterable[str], regions: Iterable[str]) -> tuple[TokenInfo, str]:
        """A new token: its record, and the token in clear, which is never shown again.

        Raises ``InvalidInput`` for an empty name, an unknown scope, or a region code PL does not know.
        """
        name = " ".join(name.split())
        if not name or len(name) > 80:
            raise InvalidInput("token_name", got=len(name))
        scope_list = _parse_scopes(scopes)
        region = RegionScope.parse(list(regions))
        clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.ctx.uow() as uow:
            for code in sorted(region.provinces):
                if await uow.regions.province(code) is None:
                    raise InvalidInput("region", got=code)
            for code in sorted(region.kabkota):
                if await uow.regions.kabkota(code) is None:
                    raise InvalidInput("region", got=code)
            row = models.ApiToken(
                name=name,
                token_hash=hash_token(clear),
                scopes=",".join(scope_list),
                regions=str(region),
                created_at=uow.clock.now(),
            )
            uow.session.add(row)
            await uow.session.flush()
            uow.audit(
                AuditDraft(
                    action="token.create",
                    entity="api_token",
                    entity_id=str(row.id),
                    after={"name": name, "scopes": list(scope_list), "regions": str(region)},
                )
            )
            await uow.commit()
            return _info(row), clear

    async def verify(self, token: str) -> Principal | None:
        """The principal behind a presented token; None when unknown or revoked."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = hash_token(token)
        # Every support request comes through here: read-only (on SQLite it neither takes nor waits for the write
        # lock), and a write only when last_used_at is due.
        async with self.ctx.uow(read_only=True) as uow:
            row = (
                await uow.session.execute(select(models.ApiToken).where(models.ApiToken.token_hash == digest))
            ).scalar_one_or_none()
            if row is None or row.revoked_at is not None:
                return None
            # The hash was found by an index lookup; comparing again in constant time costs nothing.
            if not secrets.compare_digest(row.token_hash, digest):
                return None
            principal = Principal(
                token_id=row.id,
                name=row.name,
                scopes=frozenset(s for s in row.scopes.split(",") if s),
                regions=RegionScope.parse(row.regions),
            )
            now = uow.clock.now()
            due = row.last_used_at is None or now - row.last_used_at >= _LAST_USED_EVERY
        if due:
            async with self.ctx.uow() as uow:
                await uow.session.execute(
                    update(models.ApiToken).where(models.ApiToken.id == principal.token_id).values(last_used_at=now)
                )
                await uow.commit()
        return principal

    async def list_tokens(self) -> list[TokenInfo]:
        async with self.ctx.uow() as uow:
            rows = (await uow.session.execute(select(models.ApiToken).order_by(models.ApiToken.id))).scalars()
            return [_info(r) for r in rows]

    async def revoke(self, token_id: int) -> TokenInfo:
        """Revoke a token (at once: the next request with it gets 401). Revoking twice is a no-op."""
        async with self.ctx.uow() as uow:
            row = await uow.session.get(models.ApiToken, token_id)
            if row is None:
                raise NotFound("token")
            info = _info(row)
            if row.revoked_at is not None:
                return info
            now = uow.clock.now()
            result = await uow.session.execute(
                update(models.ApiToken)
                .where(models.ApiToken.id == token_id, models.ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if getattr(result, "rowcount", 1) != 1:  # revoked meanwhile by someone else
                return info
            uow.audit(
                AuditDraft(action="token.revoke", entity="api_token", entity_id=str(token_id), after={"name": row.name})
            )
            await uow.commit()
            return replace(info, revoked_at=now)
