"""The support API (``/api/v1``): monitoring for BPJS branches and Dinkes, and target-list imports.

Every route needs ``Authorization: Bearer <token>`` (``frontdesk token create``): no or an unknown
token gives 401, a token without the route's scope or outside its regions 403. Results are limited to
the token's regions; NIKs and phone numbers are masked unless ``unmask=true`` is asked for by a token
with the ``read_targets_unmasked`` scope. Core does the work (:mod:`core.services.stats`,
:mod:`core.services.imports`); this module adapts HTTP to it. See docs/support-api.md.
"""

from __future__ import annotations

import asyncio
import mmap
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.metrics import record_import
from core.domain.audit import jsonable
from core.domain.errors import (
    Conflict,
    FrontdeskError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Refused,
    Unavailable,
)
from core.services.imports import ImportReport, report_csv, report_xlsx
from core.services.registry import Services
from core.services.stats import GROUPINGS
from core.services.tokens import Principal

PREFIX: Final = "/api/v1"
MAX_UPLOAD_BYTES: Final = 256 * 1024 * 1024
KEPT_REPORTS: Final = 32
REPORT_ISSUES_IN_JSON: Final = 1000
XLSX_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# --------------------------------------------------------------------------------------------
# Errors: core's typed errors become HTTP answers
# --------------------------------------------------------------------------------------------

_STATUS: Final[tuple[tuple[type[FrontdeskError], int], ...]] = (
    (PermissionDenied, 403),
    (NotFound, 404),
    (InvalidInput, 422),
    (Refused, 422),
    (Conflict, 409),
    (Unavailable, 503),
)


class ErrorBody(BaseModel):
    code: str = Field(description="Stable error key, e.g. denied.scope, not_found.target, invalid.nik.length")
    params: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    detail: ErrorBody | str


def error_response(exc: FrontdeskError) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    body = {"detail": {"code": exc.key, "params": jsonable(exc.params)}}
    return JSONResponse(body, status_code=status)


class CoreErrorRoute(APIRoute):
    """Routes whose dependencies and handlers may raise core's typed errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except FrontdeskError as exc:
                return error_response(exc)

        return route_handler


def _denied(code: str, **params: Any) -> HTTPException:
    return HTTPException(403, detail={"code": code, "params": params})


# --------------------------------------------------------------------------------------------
# Authentication: bearer tokens, scopes
# --------------------------------------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A support API token (`frontdesk token create`), sent as `Authorization: Bearer pfd_...`.",
)


def _services(request: Request) -> Services:
    services: Services = request.app.state.runtime.services
    return services


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise HTTPException(401, detail={"code": "auth.missing", "params": {}}, headers={"WWW-Authenticate": "Bearer"})
    principal = await _services(request).tokens.verify(credentials.credentials)
    if principal is None:
        raise HTTPException(401, detail={"code": "auth.invalid", "params": {}}, headers={"WWW-Authenticate": "Bearer"})
    return principal


def scoped(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has(scope):
            raise _denied("denied.scope", needed=scope)
        return principal

    dependency.__name__ = f"scope_{scope}"
    return dependency


AnyToken = Annotated[Principal, Depends(current_principal)]
ProgressReader = Annotated[Principal, Depends(scoped("read_progress"))]
TargetReader = Annotated[Principal, Depends(scoped("read_targets"))]
AuditReader = Annotated[Principal, Depends(scoped("read_audit"))]
AccountReader = Annotated[Principal, Depends(scoped("read_accounts"))]
Importer = Annotated[Principal, Depends(scoped("import"))]


def _unmask(principal: Principal, unmask: bool) -> bool:
    if unmask and not principal.has("read_targets_unmasked"):
        raise _denied("denied.scope", needed="read_targets_unmasked")
    return unmask


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

_MIN_DATE, _MAX_DATE = date(2000, 1, 1), date(2100, 12, 31)
_MAX_ID: Final = 2**63 - 1


def _sane_date(value: date | None) -> date | None:
    if value is not None and not _MIN_DATE <= value <= _MAX_DATE:
        raise ValueError("a date between 2000-01-01 and 2100-12-31")
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not _MIN_DATE <= value.date() <= _MAX_DATE:
        raise ValueError("a time between 2000 and 2100")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Day = Annotated[date | None, AfterValidator(_sane_date)]
Moment = Annotated[datetime | None, AfterValidator(_utc)]
ProvinceCode = Annotated[str | None, Query(pattern=r"^[0-9]{2}$", description="Province code (2 digits)")]
KabKotaCode = Annotated[str | None, Query(pattern=r"^[0-9]{4}$", description="Kabupaten/kota code (4 digits)")]
FaskesCode = Annotated[str | None, Query(pattern=r"^[0-9A-Za-z]{1,12}$", description="Faskes code")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Unmask = Annotated[bool, Query(description="Whole NIKs and phones: needs the read_targets_unmasked scope")]


def _faskes_path(code: str) -> str:
    return code.upper()


# --------------------------------------------------------------------------------------------
# Response models
# --------------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Whoami(_Out):
    token_id: int
    name: str
    scopes: list[str]
    regions: str


class ProgressRowOut(_Out):
    day: date | None = None
    province_code: str | None = None
    province_name: str | None = None
    kabkota_code: str | None = None
    kabkota_name: str | None = None
    faskes_code: str | None = None
    faskes_name: str | None = None
    registered: int = Field(description="Visits opened at meja 1")
    screened: dict[str, int] = Field(description="Screenings by outcome: lanjut, tunda, tidak_diberikan")
    rujuk: int = Field(description="Screenings that referred the person to a hospital")
    vaccinated: dict[int, int] = Field(description="Doses given, by dose number")
    kipi: dict[str, int] = Field(description="Observations by KIPI severity: none, mild, serious")


class ProgressOut(_Out):
    date_from: date
    date_to: date
    group_by: list[str]
    rows: list[ProgressRowOut]
    totals: ProgressRowOut
    next_offset: int | None


class RecipientOut(_Out):
    visit_id: int
    target_id: int
    ticket: str
    name: str
    nik: str
    phone: str | None
    dose_number: int
    status: str
    opened_at: datetime
    screened_at: datetime | None
    outcome: str | None
    rujuk: bool
    vaccinated_at: datetime | None
    product_code: str | None
    kipi: str | None
    observed_at: datetime | None


class RecipientListOut(_Out):
    faskes_code: str
    faskes_name: str
    day: date
    scheduled_not_arrived: int
    items: list[RecipientOut]
    next_offset: int | None


class VisitOut(_Out):
    visit_id: int
    dose_number: int
    status: str
    faskes_code: str
    faskes_name: str
    service_date: date
    opened_at: datetime
    outcome: str | None
    rujuk: bool
    rescreen_date: date | None
    product_code: str | None
    batch: str | None
    vaccinated_at: datetime | None
    next_due_date: date | None
    kipi: str | None
    observed_at: datetime | None


class TargetOut(_Out):
    target_id: int
    ticket: str
    nik: str
    name: str
    birth_date: date
    sex: str
    phone: str | None
    category: str
    assigned_faskes_code: str | None
    assigned_faskes_name: str | None
    scheduled_date: date | None
    source: str
    version: int
    has_desk_entry: bool
    created_at: datetime
    updated_at: datetime
    visits: list[VisitOut]
    unmasked: bool


class LookupIn(BaseModel):
    key: str = Field(min_length=1, max_length=64, description="A ticket or a NIK (separators allowed)")
    unmask: bool = Field(default=False, description="Whole NIK and phone: needs read_targets_unmasked")


class AuditEventOut(_Out):
    seq: int
    at: datetime
    actor_account_id: int | None
    actor_role: str
    faskes_code: str | None
    kabkota_code: str | None
    action: str
    entity: str
    entity_id: str
    target_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str


class AuditPageOut(_Out):
    items: list[AuditEventOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next (older) page")


class AccountOut(_Out):
    account_id: int
    name: str
    phone: str | None
    kind: str
    roles: list[str]
    faskes_code: str | None
    kabkota_code: str | None
    state: str
    created_at: datetime
    state_changed_at: datetime | None


class AccountPageOut(_Out):
    items: list[AccountOut]
    next_offset: int | None


class AccessRequestOut(_Out):
    request_id: int
    account_id: int
    name: str
    phone: str
    faskes_code: str
    kabkota_code: str
    roles: list[str]
    status: str
    created_at: datetime


class AccessRequestPageOut(_Out):
    items: list[AccessRequestOut]
    next_offset: int | None


class DistrictOut(_Out):
    kabkota_code: str
    kabkota_name: str
    accounts_by_state: dict[str, int]
    pending_requests: int
    queued_corrections: int


class CorrectionOut(_Out):
    correction_id: int
    kind: str
    target_id: int | None
    nik: str
    faskes_code: str
    kabkota_code: str
    submitted_by: int
    submitted_at: datetime
    status: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    evidence: list[Any]


class CorrectionPageOut(_Out):
    items: list[CorrectionOut]
    next_offset: int | None


class StuckOut(_Out):
    visit_id: int
    target_id: int
    ticket: str
    name: str
    nik: str
    dose_number: int
    status: str
    faskes_code: str
    faskes_name: str
    kabkota_code: str
    service_date: date
    opened_at: datetime
    days_open: int


class StuckPageOut(_Out):
    items: list[StuckOut]
    next_offset: int | None


class ImportIssueOut(_Out):
    line: int
    outcome: str = Field(description="rejected | warning | skipped")
    reason: str
    field: str
    detail: str
    nik: str = Field(description="Masked")


class ImportReportOut(_Out):
    id: str
    filename: str
    format: str
    source: str
    update_existing: bool
    dry_run: bool
    started_at: datetime
    seconds: float
    header_line: int
    ignored_columns: list[str]
    rows: int
    created: int
    updated: int
    unchanged: int
    locked: int
    rejected: int
    warnings: int
    by_reason: dict[str, int]
    issues: list[ImportIssueOut] = Field(description=f"The first {REPORT_ISSUES_IN_JSON}; all in report.csv")
    issues_total: int
    report_csv: str
    report_xlsx: str


def _report_out(report: ImportReport) -> ImportReportOut:
    base = f"{PREFIX}/imports/{report.id}"
    return ImportReportOut(
        id=report.id,
        filename=report.filename,
        format=report.format,
        source=report.source,
        update_existing=report.update_existing,
        dry_run=report.dry_run,
        started_at=report.started_at,
        seconds=round(report.seconds, 3),
        header_line=report.header_line,
        ignored_columns=list(report.ignored_columns),
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        locked=report.locked,
        rejected=report.rejected,
        warnings=report.warnings,
        by_reason=report.by_reason,
        issues=[ImportIssueOut.model_validate(i) for i in report.issues[:REPORT_ISSUES_IN_JSON]],
        issues_total=len(report.issues),
        report_csv=f"{base}/report.csv",
        report_xlsx=f"{base}/report.xlsx",
    )


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------

_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_DISPOSITION_NAME = re.compile(rb'(?:^|;)\s*name="([^"]*)"', re.IGNORECASE)
_DISPOSITION_FILENAME = re.compile(rb'(?:^|;)\s*filename="([^"]*)"', re.IGNORECASE)


class _ReportStore:
    """The last reports, kept in memory for download by the token that ran the import."""

    def __init__(self) -> None:
        self._reports: OrderedDict[str, tuple[int, ImportReport]] = OrderedDict()

    def put(self, token_id: int, report: ImportReport) -> None:
        self._reports[report.id] = (token_id, report)
        while len(self._reports) > KEPT_REPORTS:
            self._reports.popitem(last=False)

    def get(self, token_id: int, report_id: str) -> ImportReport:
        found = self._reports.get(report_id)
        if found is None or found[0] != token_id:
            raise NotFound("import_report")
        return found[1]


def _reports(request: Request) -> _ReportStore:
    store: _ReportStore | None = getattr(request.app.state, "import_reports", None)
    if store is None:
        store = _ReportStore()
        request.app.state.import_reports = store
    return store


async def _spool_body(request: Request, into: Path) -> int:
    size = 0
    with into.open("wb") as fh:
        async for block in request.stream():
            size += len(block)
            if size > MAX_UPLOAD_BYTES:
                raise HTTPException(413, detail={"code": "import.too_large", "params": {"max": MAX_UPLOAD_BYTES}})
            fh.write(block)
    return size


def _extract_multipart_file(body: Path, content_type: str, into: Path) -> str | None:
    """Copy the ``file`` part of a multipart/form-data body into ``into``; its filename, if given."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise InvalidInput("import_upload", problem="boundary")
    delimiter = b"--" + match[1].encode("latin-1")
    if body.stat().st_size == 0:
        raise InvalidInput("import_upload", problem="empty")
    with body.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = data.find(delimiter)
        while pos != -1:
            start = pos + len(delimiter)
            if data[start : start + 2] == b"--":
                break
            if data[start : start + 2] == b"\r\n":
                start += 2
            header_end = data.find(b"\r\n\r\n", start)
            if header_end == -1:
                break
            end = data.find(b"\r\n" + delimiter, header_end + 4)
            if end == -1:
                break
            headers = data[start:header_end]
            disposition = next(
                (h.split(b":", 1)[1] for h in headers.split(b"\r\n") if h.lower().startswith(b"content-disposition:")),
                b"",
            )
            name = _DISPOSITION_NAME.search(disposition)
            if name is not None and name[1] == b"file":
                with into.open("wb") as out:
                    out.write(memoryview(data)[header_end + 4 : end])
                filename = _DISPOSITION_FILENAME.search(disposition)
                return filename[1].decode("utf-8", "replace")[:200] if filename else None
            pos = end + 2
    raise InvalidInput("import_upload", problem="no file part")


# --------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------

_AUTH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorResponse, "description": "No token, or an unknown or revoked one"},
    403: {"model": ErrorResponse, "description": "The token lacks the scope, or the region is outside its regions"},
    422: {"model": ErrorResponse, "description": "Invalid parameters"},
    503: {"model": ErrorResponse, "description": "PL cannot be reached"},
}


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=CoreErrorRoute, responses=_AUTH_RESPONSES)

    # --- who am I ---------------------------------------------------------------------------

    @router.get("/whoami", response_model=Whoami, tags=["support"], summary="The presented token")
    async def whoami(principal: AnyToken) -> Whoami:
        """The token's name, scopes and regions."""
        return Whoami(
            token_id=principal.token_id,
            name=principal.name,
            scopes=sorted(principal.scopes),
            regions=str(principal.regions),
        )

    # --- progress and stuck records ---------------------------------------------------------

    @router.get("/progress", response_model=ProgressOut, tags=["monitoring"], summary="Progress counts")
    async def progress(
        request: Request,
        principal: ProgressReader,
        date_from: Annotated[Day, Query(description="First day (default: 6 days before date_to)")] = None,
        date_to: Annotated[Day, Query(description="Last day (default: today, WIB)")] = None,
        group_by: Annotated[
            list[Literal["day", "province", "kabkota", "faskes"]] | None,
            Query(description=f"Any of {', '.join(GROUPINGS)}; repeat for several (default: day)"),
        ] = None,
        province: ProvinceCode = None,
        kabkota: KabKotaCode = None,
        faskes: FaskesCode = None,
        limit: Limit = 1000,
        offset: Offset = 0,
    ) -> ProgressOut:
        """Visits registered, screened by outcome (and referred), vaccinated per dose, and KIPI by
        severity, per day and/or per faskes, kabupaten/kota or province, over at most 92 days."""
        report = await _services(request).stats.progress(
            principal.regions,
            date_from=date_from,
            date_to=date_to,
            group_by=group_by if group_by is not None else ("day",),
            province=province,
            kabkota=kabkota,
            faskes=faskes.upper() if faskes else None,
            limit=limit,
            offset=offset,
        )
        return ProgressOut.model_validate(report)

    @router.get("/stuck", response_model=StuckPageOut, tags=["monitoring"], summary="Stuck visits")
    async def stuck(
        request: Request,
        principal: ProgressReader,
        kabkota: KabKotaCode = None,
        faskes: FaskesCode = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> StuckPageOut:
        """Visits opened but not finished by the end of their day (faskes' local time), oldest first."""
        page = await _services(request).stats.stuck(
            principal.regions,
            kabkota=kabkota,
            faskes=faskes.upper() if faskes else None,
            limit=limit,
            offset=offset,
        )
        return StuckPageOut.model_validate(page)

    # --- targets --------------------------------------------------------------------------

    @router.get(
        "/faskes/{faskes_code}/recipients",
        response_model=RecipientListOut,
        tags=["targets"],
        summary="Daftar Penerima Vaksin",
        responses={404: {"model": ErrorResponse, "description": "Unknown faskes"}},
    )
    async def recipients(
        request: Request,
        principal: TargetReader,
        faskes_code: Annotated[str, PathParam(pattern=r"^[0-9A-Za-z]{1,12}$")],
        day: Annotated[Day, Query(alias="date", description="The day (default: today, WIB)")] = None,
        unmask: Unmask = False,
        limit: Limit = 500,
        offset: Offset = 0,
    ) -> RecipientListOut:
        """A faskes' list of recipients for a day: the visits opened there, each with its desk status,
        and how many people assigned there for the day have not come."""
        stats = _services(request).stats
        result = await stats.recipients(
            principal.regions,
            _faskes_path(faskes_code),
            day or stats.today(),
            unmask=_unmask(principal, unmask),
            limit=limit,
            offset=offset,
        )
        return RecipientListOut.model_validate(result)

    @router.post(
        "/targets/lookup",
        response_model=TargetOut,
        tags=["targets"],
        summary="A target by ticket or NIK",
        responses={404: {"model": ErrorResponse, "description": "No such target"}},
    )
    async def lookup_target(request: Request, principal: TargetReader, body: LookupIn) -> TargetOut:
        """Find a target by ticket or NIK (in the body, so that a NIK never lands in a URL or an access
        log). Masked unless `unmask` is true; an unmasked read is recorded in the audit trail."""
        view = await _services(request).stats.target(principal, key=body.key, unmask=_unmask(principal, body.unmask))
        return TargetOut.model_validate(view)

    @router.get(
        "/targets/{target_id}",
        response_model=TargetOut,
        tags=["targets"],
        summary="A target by id",
        responses={404: {"model": ErrorResponse, "description": "No such target"}},
    )
    async def get_target(
        request: Request,
        principal: TargetReader,
        target_id: Annotated[int, PathParam(ge=1, le=_MAX_ID)],
        unmask: Unmask = False,
    ) -> TargetOut:
        """A target by its id (as found in the audit trail, corrections and stuck visits)."""
        stats = _services(request).stats
        view = await stats.target(principal, target_id=target_id, unmask=_unmask(principal, unmask))
        return TargetOut.model_validate(view)

    @router.get("/corrections", response_model=CorrectionPageOut, tags=["targets"], summary="Corrections to review")
    async def corrections(
        request: Request,
        principal: TargetReader,
        kabkota: KabKotaCode = None,
        status: Annotated[
            Literal["queued", "applied", "approved", "rejected", "stale"], Query(description="Default: queued")
        ] = "queued",
        unmask: Unmask = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> CorrectionPageOut:
        """Corrections and additions by verifiers that the reference sources could not confirm, waiting
        for the Dinkes admin (other statuses on request), oldest first."""
        page = await _services(request).stats.corrections(
            principal.regions,
            kabkota=kabkota,
            status=status,
            unmask=_unmask(principal, unmask),
            limit=limit,
            offset=offset,
        )
        return CorrectionPageOut.model_validate(page)

    # --- audit ------------------------------------------------------------------------------

    @router.get("/audit", response_model=AuditPageOut, tags=["audit"], summary="The audit trail")
    async def audit(
        request: Request,
        principal: AuditReader,
        actor: Annotated[int | None, Query(ge=1, le=_MAX_ID, description="Acting account id")] = None,
        target: Annotated[int | None, Query(ge=1, le=_MAX_ID, description="Target id")] = None,
        faskes: FaskesCode = None,
        kabkota: KabKotaCode = None,
        action: Annotated[str | None, Query(pattern=r"^[a-z0-9_.]{1,40}$", description="e.g. visit.register")] = None,
        since: Annotated[Moment, Query(description="From this time (inclusive); UTC unless a zone is given")] = None,
        until: Annotated[Moment, Query(description="Before this time")] = None,
        cursor: Annotated[int | None, Query(ge=1, le=_MAX_ID, description="next_cursor of the previous page")] = None,
        limit: Limit = 100,
        unmask: Unmask = False,
    ) -> AuditPageOut:
        """Audit events, newest first, filtered by actor, target, faskes, district, action and time."""
        page = await _services(request).stats.audit(
            principal.regions,
            actor=actor,
            target_id=target,
            faskes=faskes.upper() if faskes else None,
            kabkota=kabkota,
            action=action,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
            unmask=_unmask(principal, unmask),
        )
        return AuditPageOut.model_validate(page)

    # --- accounts ---------------------------------------------------------------------------

    @router.get("/accounts", response_model=AccountPageOut, tags=["accounts"], summary="Accounts")
    async def accounts(
        request: Request,
        principal: AccountReader,
        kabkota: KabKotaCode = None,
        faskes: FaskesCode = None,
        state: Literal["pending", "active", "rejected", "revoked"] | None = None,
        kind: Literal["faskes", "dinkes", "central"] | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> AccountPageOut:
        """Accounts of faskes staff and Dinkes admins in the token's regions (phones masked)."""
        page = await _services(request).stats.accounts(
            principal.regions,
            kabkota=kabkota,
            faskes=faskes.upper() if faskes else None,
            state=state,
            kind=kind,
            limit=limit,
            offset=offset,
        )
        return AccountPageOut.model_validate(page)

    @router.get("/access-requests", response_model=AccessRequestPageOut, tags=["accounts"], summary="Access requests")
    async def access_requests(
        request: Request,
        principal: AccountReader,
        kabkota: KabKotaCode = None,
        status: Literal["pending", "approved", "rejected"] = "pending",
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> AccessRequestPageOut:
        """Access requests (pending by default), oldest first."""
        page = await _services(request).stats.access_requests(
            principal.regions, kabkota=kabkota, status=status, limit=limit, offset=offset
        )
        return AccessRequestPageOut.model_validate(page)

    @router.get("/districts", response_model=list[DistrictOut], tags=["accounts"], summary="Per district")
    async def districts(request: Request, principal: AccountReader) -> list[DistrictOut]:
        """Per kabupaten/kota in the token's regions: accounts by state, pending access requests and
        corrections waiting for review."""
        rows = await _services(request).stats.districts(principal.regions)
        return [DistrictOut.model_validate(r) for r in rows]

    # --- imports ----------------------------------------------------------------------------

    @router.post(
        "/imports",
        response_model=ImportReportOut,
        tags=["imports"],
        summary="Import a target list (generate tiket)",
        responses={413: {"model": ErrorResponse, "description": "File too large"}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                    "text/csv": {"schema": {"type": "string", "format": "binary"}},
                    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def import_list(
        request: Request,
        principal: Importer,
        update_existing: Annotated[
            bool, Query(description="Update targets already in PL (only those without a desk entry)")
        ] = False,
        dry_run: Annotated[bool, Query(description="Validate and report; write nothing")] = False,
        source: Annotated[Literal["sisdmk", "excel"] | None, Query(description="Default: told by the header")] = None,
        filename: Annotated[str | None, Query(max_length=200, description="For a raw (non-multipart) body")] = None,
    ) -> ImportReportOut:
        """Upload a SISDMK export or an Excel/CSV list (multipart field `file`, or the file as the body).
        Valid new targets get tickets, in one transaction; the report lists each rejected row with its
        line and reason. A token limited to some regions may only assign faskes inside them."""
        content_type = request.headers.get("content-type", "")
        with tempfile.TemporaryDirectory(prefix="frontdesk-import-") as tmp:
            body = Path(tmp) / "body"
            await _spool_body(request, body)
            path = body
            if content_type.lower().startswith("multipart/form-data"):
                path = Path(tmp) / "file"
                filename = await asyncio.to_thread(_extract_multipart_file, body, content_type, path) or filename
            report = await _services(request).imports.run(
                path,
                filename=filename or "upload",
                update_existing=update_existing,
                dry_run=dry_run,
                source=source,
                regions=principal.regions,
                requested_by=principal.label,
            )
        record_import(report)
        _reports(request).put(principal.token_id, report)
        return _report_out(report)

    @router.get(
        "/imports/{report_id}",
        response_model=ImportReportOut,
        tags=["imports"],
        summary="An import's report",
        responses={404: {"model": ErrorResponse, "description": "Unknown report (or another token's)"}},
    )
    async def import_report(
        request: Request, principal: Importer, report_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")]
    ) -> ImportReportOut:
        """A report of a recent import by this token (kept in memory: the last 32 imports)."""
        return _report_out(_reports(request).get(principal.token_id, report_id))

    @router.get(
        "/imports/{report_id}/report.csv",
        tags=["imports"],
        summary="An import's report as CSV",
        response_class=Response,
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, 404: {"model": ErrorResponse}},
    )
    async def import_report_csv(
        request: Request, principal: Importer, report_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")]
    ) -> Response:
        """Every rejected row, warning and skipped row: line, outcome, reason, field, detail, masked NIK."""
        report = _reports(request).get(principal.token_id, report_id)
        return Response(
            report_csv(report).encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="import-{report.id}.csv"'},
        )

    @router.get(
        "/imports/{report_id}/report.xlsx",
        tags=["imports"],
        summary="An import's report as Excel",
        response_class=Response,
        responses={
            200: {"content": {XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
            404: {"model": ErrorResponse},
        },
    )
    async def import_report_xlsx(
        request: Request, principal: Importer, report_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")]
    ) -> Response:
        """The report as an Excel workbook: a summary sheet and the rows."""
        report = _reports(request).get(principal.token_id, report_id)
        data = await asyncio.to_thread(report_xlsx, report)
        return Response(
            data,
            media_type=XLSX_TYPE,
            headers={"Content-Disposition": f'attachment; filename="import-{report.id}.xlsx"'},
        )

    return router
