"""The audit trail's hash chain (pure): each event's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """What a use case records; the unit of work adds who, when and the chain position."""

    action: str
    entity: str
    entity_id: str
    target_id: int | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    faskes_code: str | None = None
    kabkota_code: str | None = None


def jsonable(value: Any) -> Any:
    """Dates, decimals and sets as JSON primitives, so that what is hashed is what is stored."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def event_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over the canonical JSON of the event's fields and the previous hash."""
    payload = json.dumps(
        {"prev": prev_hash, **jsonable(fields)}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


HASHED_FIELDS = (
    "seq",
    "at",
    "actor_account_id",
    "actor_role",
    "faskes_code",
    "kabkota_code",
    "action",
    "entity",
    "entity_id",
    "target_id",
    "before",
    "after",
)
