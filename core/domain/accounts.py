"""Who may do what: account kinds, roles, states, and the pure permission rules.

Every service checks the acting account with these functions inside its transaction; menus and
buttons in the bot are only a convenience on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.domain.errors import PermissionDenied


class AccountKind(StrEnum):
    FASKES = "faskes"  # staff at desks and verifiers: belongs to one faskes
    DINKES = "dinkes"  # Dinkes Kab/Kota admin: belongs to one district
    CENTRAL = "central"  # central admin


class Role(StrEnum):
    """What a faskes account may do. A small puskesmas often gives one person several desks."""

    MEJA1 = "meja1"
    MEJA2 = "meja2"
    MEJA4 = "meja4"
    VERIFIKASI = "verifikasi"


class AccountState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    REVOKED = "revoked"


def parse_roles(raw: str) -> frozenset[Role]:
    """Roles as stored (``meja1,meja4``); unknown names are dropped, not trusted."""
    known = {r.value for r in Role}
    return frozenset(Role(p) for p in raw.split(",") if p in known)


def format_roles(roles: frozenset[Role] | set[Role]) -> str:
    return ",".join(r.value for r in Role if r in roles)


@dataclass(frozen=True, slots=True)
class Actor:
    """The person behind an update, as PL knows them. ``account_id`` is None for a stranger."""

    telegram_id: int
    account_id: int | None = None
    name: str | None = None
    kind: AccountKind | None = None
    state: AccountState | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    faskes_code: str | None = None
    kabkota_code: str | None = None
    locale: str = "id"

    @property
    def is_active(self) -> bool:
        return self.account_id is not None and self.state is AccountState.ACTIVE

    @property
    def role_label(self) -> str:
        """What the audit trail records as the acting role."""
        if self.kind is AccountKind.FASKES:
            return format_roles(self.roles) or "faskes"
        return self.kind.value if self.kind else "anonymous"


def require_active(actor: Actor) -> None:
    if actor.account_id is None:
        raise PermissionDenied("no_account")
    if actor.state is not AccountState.ACTIVE:
        raise PermissionDenied(f"state_{actor.state.value if actor.state else 'unknown'}")


def require_role(actor: Actor, *any_of: Role) -> None:
    """Active faskes account holding at least one of the roles."""
    require_active(actor)
    if actor.kind is not AccountKind.FASKES or not (actor.roles & set(any_of)):
        raise PermissionDenied("role", needed=[r.value for r in any_of])


def require_faskes(actor: Actor, faskes_code: str) -> None:
    """The record belongs to the actor's own faskes."""
    if actor.faskes_code != faskes_code:
        raise PermissionDenied("other_faskes", faskes=faskes_code)


def require_dinkes(actor: Actor, kabkota_code: str | None = None) -> None:
    """Active Dinkes admin, acting inside their own district (central admins act everywhere)."""
    require_active(actor)
    if actor.kind is AccountKind.CENTRAL:
        return
    if actor.kind is not AccountKind.DINKES:
        raise PermissionDenied("role", needed=["dinkes"])
    if kabkota_code is not None and actor.kabkota_code != kabkota_code:
        raise PermissionDenied("other_district", kabkota=kabkota_code)


def require_central(actor: Actor) -> None:
    require_active(actor)
    if actor.kind is not AccountKind.CENTRAL:
        raise PermissionDenied("role", needed=["central"])


def can_read_targets(actor: Actor) -> bool:
    """Lookup is open to active faskes accounts (any desk or verifier) and admins."""
    return actor.is_active
