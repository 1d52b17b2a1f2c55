"""Access: people ask for an account in chat, Dinkes admins decide, revoke and change desks.

Every method takes the acting account first and re-checks it inside its transaction
(``fresh_actor`` + ``core.domain.accounts``): callback data and command arguments are untrusted, so a
request id or an account id from a button is only ever a *question*, answered within the actor's scope.

Decisions are conditional updates (``WHERE status = 'pending'``, ``WHERE state = 'active' AND version =
:seen``): two admins pressing Approve together, or one admin pressing twice, approve once; the loser gets
``Conflict("request_approved" | "request_rejected", by=...)``. Notifications and menu refreshes go out after the
commit, and a failure to deliver one never undoes (or hides) what PL already holds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from core.db import models
from core.db.uow import SqlUnitOfWork
from core.domain.accounts import (
    AccountKind,
    AccountState,
    Actor,
    Role,
    format_roles,
    parse_roles,
    require_central,
    require_dinkes,
)
from core.domain.audit import AuditDraft
from core.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Refused
from core.domain.identifiers import mask_phone, normalize_phone
from core.services.accounts import actor_from_account, fresh_actor
from core.services.context import CoreContext

log = logging.getLogger(__name__)

LOCALES = ("id", "en")
NAME_MAX = 120
REASON_MAX = 300
PAGE_SIZE = 5

# Notification keys (core says what to tell; the bot's NOTIFICATIONS say how it looks in chat).
N_NEW_REQUEST = "access.new_request"  # to each active Dinkes admin of the district: Approve / Reject
N_APPROVED = "access.approved"  # to the requester
N_REJECTED = "access.rejected"  # to the requester
N_REVOKED = "account.revoked"  # to the person whose access was revoked
N_ROLES = "account.roles_changed"  # to the person whose desks changed
N_DINKES = "account.dinkes_granted"  # to a new Dinkes admin

_FASKES_CODE = re.compile(r"^[A-Z0-9]{4,12}$")
_SPACES = re.compile(r"\s+")

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaskesInfo:
    code: str
    name: str
    kind: str
    kabkota_code: str
    kabkota_name: str
    province_name: str
    is_vaccinator: bool


@dataclass(frozen=True, slots=True)
class RequestView:
    """An access request as an admin sees it: the phone is masked."""

    request_id: int
    account_id: int
    telegram_id: int
    name: str
    phone_masked: str
    faskes_code: str
    faskes_name: str
    kabkota_code: str
    kabkota_name: str
    roles: tuple[Role, ...]
    status: str  # pending | approved | rejected
    created_at: datetime
    decided_by_name: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SubmittedRequest:
    request: RequestView
    admins_notified: int  # active Dinkes admins of the district who were told


@dataclass(frozen=True, slots=True)
class PendingPage:
    items: tuple[RequestView, ...]
    total: int
    offset: int
    limit: int
    kabkota_code: str | None  # None: every district (central admin)
    kabkota_name: str | None

    @property
    def has_prev(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account as an admin sees it: the phone is masked."""

    account_id: int
    telegram_id: int
    name: str
    phone_masked: str | None
    kind: AccountKind
    state: AccountState
    roles: tuple[Role, ...]
    faskes_code: str | None
    faskes_name: str | None
    kabkota_code: str | None
    kabkota_name: str | None
    state_reason: str | None
    version: int
    locale: str


@dataclass(frozen=True, slots=True)
class AccountsPage:
    faskes: FaskesInfo
    items: tuple[AccountView, ...]
    total: int
    offset: int
    limit: int

    @property
    def has_prev(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of approve / reject, for the deciding admin's chat."""

    request: RequestView
    decided_by_name: str


@dataclass(frozen=True, slots=True)
class RolesChange:
    account: AccountView
    before: tuple[Role, ...]
    changed: bool


@dataclass(frozen=True, slots=True)
class Standing:
    """Why an account is not active, for /start: the reason and the office that decided."""

    state: AccountState
    reason: str | None
    office_kind: AccountKind | None  # dinkes | central | None (system or unknown)
    office_name: str | None  # the Dinkes admin's kabupaten/kota name
    since: datetime | None


@dataclass(frozen=True, slots=True)
class AdminScope:
    kind: AccountKind
    kabkota_code: str | None
    kabkota_name: str | None


@dataclass(frozen=True, slots=True)
class LocaleChoice:
    locale: str
    stored: bool  # False for a stranger: the bot then follows Telegram's language


# --------------------------------------------------------------------------------------------
# Input checks (pure)
# --------------------------------------------------------------------------------------------


def clean_name(raw: str) -> str:
    name = _SPACES.sub(" ", raw).strip()
    # Control characters (a NUL) are never part of a name, and PostgreSQL refuses them in text.
    if len(name) < 2 or not any(ch.isalpha() for ch in name) or not name.isprintable():
        raise InvalidInput("requester_name")
    if len(name) > NAME_MAX:
        raise InvalidInput("requester_name_long", max=NAME_MAX)
    return name


def clean_faskes_code(raw: str) -> str:
    code = "".join(raw.split()).upper()
    if not _FASKES_CODE.fullmatch(code):
        raise InvalidInput("faskes_code")
    return code


def clean_roles(raw: Iterable[str | Role]) -> frozenset[Role]:
    known = {r.value: r for r in Role}
    roles: set[Role] = set()
    for item in raw:
        value = item.value if isinstance(item, Role) else str(item).strip().lower()
        if value not in known:
            raise InvalidInput("access_roles")
        roles.add(known[value])
    if not roles:
        raise InvalidInput("access_roles")
    return frozenset(roles)


def clean_reason(raw: str) -> str:
    reason = _SPACES.sub(" ", raw).strip()
    # Letters, not only digits: a NIK typed into the reason step by mistake must not reach the requester.
    if sum(ch.isalpha() for ch in reason) < 3 or not reason.isprintable():
        raise InvalidInput("decision_reason")
    if len(reason) > REASON_MAX:
        raise InvalidInput("decision_reason_long", max=REASON_MAX)
    return reason


def _ordered(roles: frozenset[Role] | set[Role]) -> tuple[Role, ...]:
    return tuple(r for r in Role if r in roles)


def _role_values(roles: Iterable[Role]) -> list[str]:
    return [r.value for r in roles]


# --------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------


class AccessService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    # --- asking for access --------------------------------------------------------------------

    async def describe_faskes(self, faskes_code: str) -> FaskesInfo:
        """The faskes behind a code, for the requester to confirm. Raises InvalidInput / NotFound."""
        code = clean_faskes_code(faskes_code)
        async with self.ctx.uow(read_only=True) as uow:
            return await _faskes_info(uow, code)

    async def check_can_request(self, actor: Actor) -> None:
        """Before /daftar asks anything: refuse a second request while one waits, or an active account."""
        async with self.ctx.uow(read_only=True) as uow:
            account = await uow.accounts.by_telegram_id(actor.telegram_id)
            if account is not None:
                await _refuse_if_not_requestable(uow, account)

    async def request_access(
        self,
        actor: Actor,
        *,
        name: str,
        phone: str,
        faskes_code: str,
        roles: Iterable[str | Role],
        locale: str | None = None,
    ) -> SubmittedRequest:
        """A stranger, or a rejected or revoked account, asks for access at a faskes.

        The account becomes (or is created) ``pending`` and a pending AccessRequest is added; the
        partial unique index keeps it to one pending request per account even under races.
        """
        clean = clean_name(name)
        e164 = normalize_phone(phone)
        code = clean_faskes_code(faskes_code)
        wanted = clean_roles(roles)
        lang = locale if locale in LOCALES else None
        async with self.ctx.uow(actor) as uow:
            info = await _faskes_info(uow, code)
            if not info.is_vaccinator:
                raise Refused("not_vaccinator", faskes=info.name)
            now = uow.clock.now()
            account = await uow.accounts.by_telegram_id(actor.telegram_id)
            before: dict[str, Any] | None = None
            if account is None:
                account = models.Account(
                    telegram_id=actor.telegram_id,
                    name=clean,
                    phone=e164,
                    kind=AccountKind.FASKES.value,
                    roles="",
                    faskes_code=code,
                    kabkota_code=info.kabkota_code,
                    state=AccountState.PENDING.value,
                    locale=lang or actor.locale,
                    version=1,
                    created_at=now,
                )
                uow.accounts.add(account)
                await _flush_or(uow, Refused("request_pending", office=info.kabkota_name))
            else:
                await _refuse_if_not_requestable(uow, account)
                before = {"state": account.state, "kind": account.kind, "faskes_code": account.faskes_code}
                values: dict[str, Any] = {
                    "state": AccountState.PENDING.value,
                    "kind": AccountKind.FASKES.value,
                    "roles": "",
                    "name": clean,
                    "phone": e164,
                    "faskes_code": code,
                    "kabkota_code": info.kabkota_code,
                    "version": models.Account.version + 1,
                }
                if lang:
                    values["locale"] = lang
                done = await uow.session.execute(
                    update(models.Account)
                    .where(
                        models.Account.id == account.id,
                        models.Account.state.in_([AccountState.REJECTED.value, AccountState.REVOKED.value]),
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if _rowcount(done) != 1:
                    raise Refused("request_pending", office=info.kabkota_name)
                await uow.session.refresh(account)
            request = models.AccessRequest(
                account_id=account.id,
                name=clean,
                phone=e164,
                faskes_code=code,
                kabkota_code=info.kabkota_code,
                roles=format_roles(wanted),
                status=PENDING,
                created_at=now,
            )
            uow.access_requests.add(request)
            await _flush_or(uow, Refused("request_pending", office=info.kabkota_name))
            # The requester is the actor of their own request's audit event.
            uow.actor = actor_from_account(account)
            uow.audit(
                AuditDraft(
                    action="access.request",
                    entity="access_request",
                    entity_id=str(request.id),
                    before=before,
                    after={
                        "account_id": account.id,
                        "name": clean,
                        "phone": mask_phone(e164),
                        "faskes_code": code,
                        "roles": _role_values(_ordered(wanted)),
                        "status": PENDING,
                    },
                    faskes_code=code,
                    kabkota_code=info.kabkota_code,
                )
            )
            admins = [a.telegram_id for a in await uow.accounts.active_dinkes_of(info.kabkota_code)]
            view = _request_view(request, account.telegram_id, info.name, info.kabkota_name, None)
            try:
                await uow.commit()
            except Conflict:
                # The unique indexes settled a race (a double submit): one request stands.
                raise Refused("request_pending", office=info.kabkota_name) from None
        log.info("access request %s for account %s at %s", view.request_id, view.account_id, code)
        for admin in admins:
            await self._tell(
                admin,
                N_NEW_REQUEST,
                request_id=view.request_id,
                name=view.name,
                phone_masked=view.phone_masked,
                faskes_code=view.faskes_code,
                faskes_name=view.faskes_name,
                roles=_role_values(view.roles),
            )
        return SubmittedRequest(request=view, admins_notified=len(admins))

    # --- deciding -----------------------------------------------------------------------------

    async def admin_scope(self, actor: Actor, *, central: bool = False) -> AdminScope:
        """Who may administer what: an active Dinkes admin (own district) or a central admin."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await fresh_actor(uow, actor)
            if central:
                require_central(actor)
            else:
                require_dinkes(actor)
            assert actor.kind is not None
            kk = await uow.regions.kabkota(actor.kabkota_code) if actor.kabkota_code else None
            return AdminScope(kind=actor.kind, kabkota_code=actor.kabkota_code, kabkota_name=kk.name if kk else None)

    async def pending_requests(self, actor: Actor, *, offset: int = 0, limit: int = PAGE_SIZE) -> PendingPage:
        """Pending requests, oldest first: a Dinkes admin sees their district, a central admin all."""
        offset, limit = max(offset, 0), min(max(limit, 1), 50)
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await fresh_actor(uow, actor)
            require_dinkes(actor)
            scope = None if actor.kind is AccountKind.CENTRAL else actor.kabkota_code
            cond = [models.AccessRequest.status == PENDING]
            if scope is not None:
                cond.append(models.AccessRequest.kabkota_code == scope)
            count = select(func.count()).select_from(models.AccessRequest).where(*cond)
            total = (await uow.session.execute(count)).scalar_one()
            if offset >= total > 0:
                offset = max(0, ((total - 1) // limit) * limit)
            rows = (
                await uow.session.execute(
                    _request_select()
                    .where(*cond)
                    .order_by(models.AccessRequest.created_at, models.AccessRequest.id)
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
            kk = await uow.regions.kabkota(scope) if scope else None
            return PendingPage(
                items=tuple(_row_view(r) for r in rows),
                total=int(total),
                offset=offset,
                limit=limit,
                kabkota_code=scope,
                kabkota_name=kk.name if kk else None,
            )

    async def request(self, actor: Actor, request_id: int) -> RequestView:
        """One request, within the actor's district (to ask for a rejection reason before deciding)."""
        async with self.ctx.uow(actor, read_only=True) as uow:
            actor = await fresh_actor(uow, actor)
            req = await _scoped_request(uow, actor, request_id)
            view = await _load_request_view(uow, req.id)
            if view.status != PENDING:
                raise Conflict(f"request_{view.status}", by=view.decided_by_name or "–")
            return view

    async def approve(self, actor: Actor, request_id: int) -> Decision:
        view, name = await self._decide(actor, request_id, APPROVED, None)
        await self._tell(
            view.telegram_id,
            N_APPROVED,
            faskes_name=view.faskes_name,
            roles=_role_values(view.roles),
        )
        await self._refresh(view.telegram_id)
        return Decision(request=view, decided_by_name=name)

    async def reject(self, actor: Actor, request_id: int, reason: str) -> Decision:
        view, name = await self._decide(actor, request_id, REJECTED, clean_reason(reason))
        await self._tell(
            view.telegram_id,
            N_REJECTED,
            faskes_name=view.faskes_name,
            office=view.kabkota_name,
            office_kind=AccountKind.DINKES.value if actor.kind is AccountKind.DINKES else AccountKind.CENTRAL.value,
            reason=view.reason or "",
        )
        return Decision(request=view, decided_by_name=name)

    async def _decide(self, actor: Actor, request_id: int, outcome: str, reason: str | None) -> tuple[RequestView, str]:
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            req = await _scoped_request(uow, actor, request_id)
            if req.status != PENDING:
                raise await _decided_conflict(uow, req.id)
            now = uow.clock.now()
            done = await uow.session.execute(
                update(models.AccessRequest)
                .where(models.AccessRequest.id == req.id, models.AccessRequest.status == PENDING)
                .values(status=outcome, decided_by=actor.account_id, decided_at=now, reason=reason)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(done) != 1:
                # Another admin (or this one, twice) decided in between.
                raise await _decided_conflict(uow, req.id)
            account_values: dict[str, Any] = {
                "state": AccountState.ACTIVE.value if outcome == APPROVED else AccountState.REJECTED.value,
                "state_reason": reason,
                "state_changed_by": actor.account_id,
                "state_changed_at": now,
                "version": models.Account.version + 1,
            }
            if outcome == APPROVED:
                account_values.update(
                    kind=AccountKind.FASKES.value,
                    roles=req.roles,
                    name=req.name,
                    phone=req.phone,
                    faskes_code=req.faskes_code,
                    kabkota_code=req.kabkota_code,
                )
            moved = await uow.session.execute(
                update(models.Account)
                .where(models.Account.id == req.account_id, models.Account.state == AccountState.PENDING.value)
                .values(**account_values)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(moved) != 1:
                raise Conflict("concurrent_change")
            after: dict[str, Any] = {
                "status": outcome,
                "account_id": req.account_id,
                "account_state": account_values["state"],
            }
            if outcome == APPROVED:
                after["roles"] = _role_values(_ordered(parse_roles(req.roles)))
            else:
                after["reason"] = reason
            uow.audit(
                AuditDraft(
                    action="access.approve" if outcome == APPROVED else "access.reject",
                    entity="access_request",
                    entity_id=str(req.id),
                    before={"status": PENDING, "account_state": AccountState.PENDING.value},
                    after=after,
                    faskes_code=req.faskes_code,
                    kabkota_code=req.kabkota_code,
                )
            )
            view = await _load_request_view(uow, req.id)
            await uow.commit()
        log.info("access request %s %s by account %s", request_id, outcome, actor.account_id)
        return view, actor.name or ""

    # --- accounts -----------------------------------------------------------------------------

    async def accounts_of_faskes(
        self, actor: Actor, faskes_code: str, *, offset: int = 0, limit: int = 8
    ) -> AccountsPage:
        """The accounts of one faskes (every state), for a Dinkes admin of its district."""
        code = clean_faskes_code(faskes_code)
        offset, limit = max(offset, 0), min(max(limit, 1), 50)
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            require_dinkes(actor)
            info = await _faskes_info(uow, code)
            require_dinkes(actor, info.kabkota_code)
            cond = models.Account.faskes_code == code
            count = select(func.count()).select_from(models.Account).where(cond)
            total = (await uow.session.execute(count)).scalar_one()
            if offset >= total > 0:
                offset = max(0, ((total - 1) // limit) * limit)
            rows = (
                await uow.session.execute(
                    select(models.Account)
                    .where(cond)
                    .order_by(models.Account.name, models.Account.id)
                    .offset(offset)
                    .limit(limit)
                )
            ).scalars()
            items = tuple(_account_view(a, info.name, info.kabkota_name) for a in rows)
            return AccountsPage(faskes=info, items=items, total=int(total), offset=offset, limit=limit)

    async def account(self, actor: Actor, account_id: int) -> AccountView:
        """One account that the actor may administer (revoke, change desks)."""
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            account = await _scoped_account(uow, actor, account_id)
            return await _load_account_view(uow, account)

    async def revoke(self, actor: Actor, account_id: int, reason: str) -> AccountView:
        why = clean_reason(reason)
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            account = await _scoped_account(uow, actor, account_id)
            if account.state != AccountState.ACTIVE.value:
                raise Conflict(f"account_{account.state}", name=account.name)
            now = uow.clock.now()
            done = await uow.session.execute(
                update(models.Account)
                .where(models.Account.id == account.id, models.Account.state == AccountState.ACTIVE.value)
                .values(
                    state=AccountState.REVOKED.value,
                    state_reason=why,
                    state_changed_by=actor.account_id,
                    state_changed_at=now,
                    version=models.Account.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if _rowcount(done) != 1:
                raise Conflict("account_revoked", name=account.name)
            uow.audit(
                AuditDraft(
                    action="account.revoke",
                    entity="account",
                    entity_id=str(account.id),
                    before={
                        "state": AccountState.ACTIVE.value,
                        "roles": _role_values(_ordered(parse_roles(account.roles))),
                    },
                    after={"state": AccountState.REVOKED.value, "reason": why},
                    faskes_code=account.faskes_code,
                    kabkota_code=account.kabkota_code,
                )
            )
            office = await _office_name(uow, actor)
            await uow.session.refresh(account)
            view = await _load_account_view(uow, account)
            await uow.commit()
        log.info("account %s revoked by account %s", account_id, actor.account_id)
        kind = actor.kind.value if actor.kind else ""
        await self._tell(view.telegram_id, N_REVOKED, office=office or "", office_kind=kind, reason=why)
        await self._refresh(view.telegram_id)
        return view

    async def change_roles(
        self, actor: Actor, account_id: int, roles: Iterable[str | Role], *, seen_version: int | None = None
    ) -> RolesChange:
        """Change the desks (roles) of an active faskes account; ``seen_version`` guards a stale view."""
        wanted = clean_roles(roles)
        async with self.ctx.uow(actor) as uow:
            actor = await fresh_actor(uow, actor)
            account = await _scoped_account(uow, actor, account_id)
            if account.kind != AccountKind.FASKES.value:
                raise Refused("not_faskes_account", name=account.name)
            if account.state != AccountState.ACTIVE.value:
                raise Conflict(f"account_{account.state}", name=account.name)
            version = account.version if seen_version is None else seen_version
            before = _ordered(parse_roles(account.roles))
            if frozenset(before) == wanted:
                if account.version != version:
                    raise Conflict("concurrent_change")
                return RolesChange(account=await _load_account_view(uow, account), before=before, changed=False)
            done = await uow.session.execute(
                update(models.Account)
                .where(
                    models.Account.id == account.id,
                    models.Account.state == AccountState.ACTIVE.value,
                    models.Account.version == version,
                )
                .values(roles=format_roles(wanted), version=models.Account.version + 1)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(done) != 1:
                raise Conflict("concurrent_change")
            uow.audit(
                AuditDraft(
                    action="account.roles",
                    entity="account",
                    entity_id=str(account.id),
                    before={"roles": _role_values(before)},
                    after={"roles": _role_values(_ordered(wanted))},
                    faskes_code=account.faskes_code,
                    kabkota_code=account.kabkota_code,
                )
            )
            await uow.session.refresh(account)
            view = await _load_account_view(uow, account)
            await uow.commit()
        await self._tell(view.telegram_id, N_ROLES, roles=_role_values(view.roles), faskes_name=view.faskes_name or "")
        await self._refresh(view.telegram_id)
        return RolesChange(account=view, before=before, changed=True)

    # --- admins -------------------------------------------------------------------------------

    async def grant_dinkes(self, actor: Actor, telegram_id: int, kabkota: str, name: str) -> AccountView:
        """A central admin makes someone the Dinkes admin of a kabupaten/kota (in chat)."""
        async with self.ctx.uow(actor) as uow:
            fresh = await fresh_actor(uow, actor)
            require_central(fresh)
            view = await _create_admin(uow, AccountKind.DINKES, telegram_id, name, kabkota)
        await self._tell(telegram_id, N_DINKES, office=view.kabkota_name or "")
        await self._refresh(telegram_id)
        return view

    async def add_dinkes(self, telegram_id: int, kabkota: str, name: str) -> AccountView:
        """The CLI's grant (``frontdesk admin add-dinkes``): the system acts, no chat account needed."""
        async with self.ctx.uow(None) as uow:
            view = await _create_admin(uow, AccountKind.DINKES, telegram_id, name, kabkota)
        await self._refresh(telegram_id)
        return view

    async def add_central(self, telegram_id: int, name: str) -> AccountView:
        """The CLI's first central admin (``frontdesk admin add-central``)."""
        async with self.ctx.uow(None) as uow:
            view = await _create_admin(uow, AccountKind.CENTRAL, telegram_id, name, None)
        await self._refresh(telegram_id)
        return view

    # --- the person's own account ---------------------------------------------------------------

    async def standing(self, actor: Actor) -> Standing:
        """The account's state with its reason and the office that set it (for /start)."""
        async with self.ctx.uow(read_only=True) as uow:
            account = await uow.accounts.by_telegram_id(actor.telegram_id)
            if account is None:
                raise PermissionDenied("no_account")
            kind: AccountKind | None = None
            office: str | None = None
            if account.state_changed_by is not None:
                by = await uow.accounts.get(account.state_changed_by)
                if by is not None:
                    kind = AccountKind(by.kind)
                    office = await _office_name(uow, actor_from_account(by))
            return Standing(
                state=AccountState(account.state),
                reason=account.state_reason,
                office_kind=kind,
                office_name=office,
                since=account.state_changed_at,
            )

    async def set_locale(self, actor: Actor | int, locale: str) -> LocaleChoice:
        """``/bahasa``: any account (in any state) keeps its language; a stranger's is not stored."""
        lang = locale.strip().lower()[:2]
        if lang not in LOCALES:
            raise InvalidInput("locale")
        telegram_id = actor if isinstance(actor, int) else actor.telegram_id
        async with self.ctx.uow() as uow:
            account = await uow.accounts.by_telegram_id(telegram_id)
            if account is None:
                return LocaleChoice(locale=lang, stored=False)
            if account.locale == lang:
                return LocaleChoice(locale=lang, stored=True)
            uow.actor = actor_from_account(account)
            before = account.locale
            await uow.session.execute(
                update(models.Account)
                .where(models.Account.id == account.id)
                .values(locale=lang)
                .execution_options(synchronize_session=False)
            )
            uow.audit(
                AuditDraft(
                    action="account.locale",
                    entity="account",
                    entity_id=str(account.id),
                    before={"locale": before},
                    after={"locale": lang},
                    faskes_code=account.faskes_code,
                    kabkota_code=account.kabkota_code,
                )
            )
            await uow.commit()
        await self._refresh(telegram_id)
        return LocaleChoice(locale=lang, stored=True)

    # --- after the commit -----------------------------------------------------------------------

    async def _tell(self, telegram_id: int, key: str, **params: object) -> None:
        try:
            await self.ctx.notifier.notify(telegram_id, key, **params)
        except Exception:  # PL already holds the decision; a lost message is logged only
            log.exception("notification %s not delivered", key)

    async def _refresh(self, telegram_id: int) -> None:
        try:
            await self.ctx.notifier.refresh_menu(telegram_id)
        except Exception:
            log.exception("menu refresh failed")


# --------------------------------------------------------------------------------------------
# Helpers inside a unit of work
# --------------------------------------------------------------------------------------------


async def _flush_or(uow: SqlUnitOfWork, refusal: Refused) -> None:
    """Flush; a unique index that settles a race (a double submit) becomes the refusal the loser sees."""
    try:
        await uow.session.flush()
    except IntegrityError:
        raise refusal from None


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _faskes_info(uow: SqlUnitOfWork, code: str) -> FaskesInfo:
    found = await uow.regions.faskes_with_district(code)
    if found is None:
        raise NotFound("faskes_code", code=code)
    faskes, kk = found
    province = await uow.regions.province(kk.province_code)
    return FaskesInfo(
        code=faskes.code,
        name=faskes.name,
        kind=faskes.kind,
        kabkota_code=kk.code,
        kabkota_name=kk.name,
        province_name=province.name if province else "",
        is_vaccinator=faskes.is_vaccinator,
    )


async def _refuse_if_not_requestable(uow: SqlUnitOfWork, account: models.Account) -> None:
    state = AccountState(account.state)
    if state is AccountState.PENDING:
        kk = await uow.regions.kabkota(account.kabkota_code) if account.kabkota_code else None
        raise Refused("request_pending", office=kk.name if kk else "Dinkes")
    if state is AccountState.ACTIVE:
        raise Refused("account_active")


_Decider = aliased(models.Account)


def _request_select() -> Any:
    return (
        select(
            models.AccessRequest,
            models.Account.telegram_id,
            models.Faskes.name,
            models.KabKota.name,
            _Decider.name,
        )
        .join(models.Account, models.Account.id == models.AccessRequest.account_id)
        .join(models.Faskes, models.Faskes.code == models.AccessRequest.faskes_code)
        .join(models.KabKota, models.KabKota.code == models.AccessRequest.kabkota_code)
        .outerjoin(_Decider, _Decider.id == models.AccessRequest.decided_by)
    )


def _row_view(row: Any) -> RequestView:
    req, telegram_id, faskes_name, kabkota_name, decider = row
    return _request_view(req, telegram_id, faskes_name, kabkota_name, decider)


def _request_view(
    req: models.AccessRequest, telegram_id: int, faskes_name: str, kabkota_name: str, decider: str | None
) -> RequestView:
    return RequestView(
        request_id=req.id,
        account_id=req.account_id,
        telegram_id=telegram_id,
        name=req.name,
        phone_masked=mask_phone(req.phone),
        faskes_code=req.faskes_code,
        faskes_name=faskes_name,
        kabkota_code=req.kabkota_code,
        kabkota_name=kabkota_name,
        roles=_ordered(parse_roles(req.roles)),
        status=req.status,
        created_at=req.created_at,
        decided_by_name=decider,
        decided_at=req.decided_at,
        reason=req.reason,
    )


async def _load_request_view(uow: SqlUnitOfWork, request_id: int) -> RequestView:
    stmt = _request_select().where(models.AccessRequest.id == request_id).execution_options(populate_existing=True)
    row = (await uow.session.execute(stmt)).first()
    if row is None:
        raise NotFound("access_request")
    return _row_view(row)


async def _decided_conflict(uow: SqlUnitOfWork, request_id: int) -> Conflict:
    view = await _load_request_view(uow, request_id)
    return Conflict(f"request_{view.status}", by=view.decided_by_name or "–")


async def _scoped_request(uow: SqlUnitOfWork, actor: Actor, request_id: int) -> models.AccessRequest:
    """The request, if the actor is an admin whose district holds it. Checks the role before the id."""
    require_dinkes(actor)
    req = await uow.access_requests.get(request_id)
    if req is None:
        raise NotFound("access_request")
    require_dinkes(actor, req.kabkota_code)
    return req


async def _scoped_account(uow: SqlUnitOfWork, actor: Actor, account_id: int) -> models.Account:
    """An account the actor may administer: faskes accounts in their district; Dinkes admins for central."""
    require_dinkes(actor)
    account = await uow.accounts.get(account_id)
    if account is None:
        raise NotFound("account_id")
    if account.id == actor.account_id:
        raise Refused("own_account")
    kind = AccountKind(account.kind)
    if kind is AccountKind.CENTRAL:
        raise Refused("central_account")
    if kind is AccountKind.DINKES:
        if actor.kind is not AccountKind.CENTRAL:
            raise PermissionDenied("admin_account")
        return account
    kabkota = account.kabkota_code
    if kabkota is None and account.faskes_code:
        f = await uow.regions.faskes(account.faskes_code)
        kabkota = f.kabkota_code if f else None
    if kabkota is None:
        raise NotFound("account_id")
    require_dinkes(actor, kabkota)
    return account


def _account_view(a: models.Account, faskes_name: str | None, kabkota_name: str | None) -> AccountView:
    return AccountView(
        account_id=a.id,
        telegram_id=a.telegram_id,
        name=a.name,
        phone_masked=mask_phone(a.phone) if a.phone else None,
        kind=AccountKind(a.kind),
        state=AccountState(a.state),
        roles=_ordered(parse_roles(a.roles)),
        faskes_code=a.faskes_code,
        faskes_name=faskes_name,
        kabkota_code=a.kabkota_code,
        kabkota_name=kabkota_name,
        state_reason=a.state_reason,
        version=a.version,
        locale=a.locale,
    )


async def _load_account_view(uow: SqlUnitOfWork, a: models.Account) -> AccountView:
    faskes = await uow.regions.faskes(a.faskes_code) if a.faskes_code else None
    kk = await uow.regions.kabkota(a.kabkota_code) if a.kabkota_code else None
    return _account_view(a, faskes.name if faskes else None, kk.name if kk else None)


async def _office_name(uow: SqlUnitOfWork, actor: Actor) -> str | None:
    """The office an admin acts for: their kabupaten/kota's name (None for a central admin)."""
    if actor.kind is AccountKind.DINKES and actor.kabkota_code:
        kk = await uow.regions.kabkota(actor.kabkota_code)
        return kk.name if kk else actor.kabkota_code
    return None


async def _create_admin(
    uow: SqlUnitOfWork, kind: AccountKind, telegram_id: int, name: str, kabkota: str | None
) -> AccountView:
    if telegram_id <= 0:
        raise InvalidInput("telegram_id")
    clean = clean_name(name)
    kk: models.KabKota | None = None
    if kabkota is not None:
        code = kabkota.strip()
        kk = await uow.regions.kabkota(code)
        if kk is None:
            raise NotFound("kabkota_code", code=code)
    existing = await uow.accounts.by_telegram_id(telegram_id)
    if existing is not None:
        raise Refused("account_exists", telegram_id=telegram_id, name=existing.name)
    now = uow.clock.now()
    account = models.Account(
        telegram_id=telegram_id,
        name=clean,
        phone=None,
        kind=kind.value,
        roles="",
        faskes_code=None,
        kabkota_code=kk.code if kk else None,
        state=AccountState.ACTIVE.value,
        state_changed_by=uow.actor.account_id if uow.actor else None,
        state_changed_at=now,
        locale="id",
        version=1,
        created_at=now,
    )
    uow.accounts.add(account)
    await _flush_or(uow, Refused("account_exists", telegram_id=telegram_id, name=clean))
    uow.audit(
        AuditDraft(
            action="account.grant_dinkes" if kind is AccountKind.DINKES else "account.grant_central",
            entity="account",
            entity_id=str(account.id),
            before=None,
            after={"telegram_id": telegram_id, "name": clean, "kind": kind.value, "kabkota_code": account.kabkota_code},
            kabkota_code=account.kabkota_code,
        )
    )
    try:
        await uow.commit()
    except Conflict:
        raise Refused("account_exists", telegram_id=telegram_id, name=clean) from None
    return _account_view(account, None, kk.name if kk else None)
