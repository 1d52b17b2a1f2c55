"""Protocols that core depends on; adapters live in core/db, core/references and bot/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from core.domain.reference import ReferenceRecord, Source


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests and the sandbox's training scenarios; ``advance`` moves it on."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self._at += timedelta(**delta)


class Notifier(Protocol):
    """Tells people things outside the conversation they are in (approvals, serious KIPI).

    ``message`` is a locale key and ``params`` its values: core never writes chat text.
    """

    async def notify(self, telegram_id: int, message: str, **params: object) -> None: ...

    async def refresh_menu(self, telegram_id: int) -> None: ...


class ReferenceSource(Protocol):
    """A reference source looked up by NIK: the JKN master file or Dukcapil.

    ``fetch`` returns the record, None when the source does not know the NIK, and raises
    ``core.domain.errors.Unavailable`` when it cannot answer (down, timed out, refused).
    """

    source: Source

    async def fetch(self, nik: str) -> ReferenceRecord | None: ...
