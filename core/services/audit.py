"""The audit trail: verify the hash chain (``frontdesk audit verify``)."""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.audit import GENESIS_HASH, HASHED_FIELDS, event_hash
from core.services.context import CoreContext


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None  # altered | missing | head_mismatch


class AuditService:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def verify_chain(self, batch: int = 5000) -> ChainReport:
        """Walk the chain from the genesis; name the first event that was altered or removed."""
        prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
        async with self.ctx.uow() as uow:
            head = await uow.audit_log.head()
            after = 0
            while True:
                events = await uow.audit_log.chain(after_seq=after, limit=batch)
                if not events:
                    break
                for ev in events:
                    if ev.seq != expected_seq or ev.prev_hash != prev_hash:
                        return ChainReport(False, checked, expected_seq, "missing")
                    fields = {name: getattr(ev, name) for name in HASHED_FIELDS}
                    if event_hash(fields, prev_hash) != ev.hash:
                        return ChainReport(False, checked, ev.seq, "altered")
                    prev_hash, expected_seq, checked = ev.hash, ev.seq + 1, checked + 1
                after = events[-1].seq
            if head.seq != expected_seq - 1 or head.hash != prev_hash:
                # Events removed from the end of the chain: the head still remembers them.
                return ChainReport(False, checked, expected_seq, "missing")
        return ChainReport(True, checked)
