"""Typed errors of the domain.

Core never produces chat text. Every error carries a stable ``code`` (a dotted key that the
bot and the API map to a localised message) and ``params`` (values to fill into that message).
"""

from __future__ import annotations

from typing import Any, ClassVar


class FrontdeskError(Exception):
    """Base of every error core raises on purpose."""

    code: ClassVar[str] = "error"

    def __init__(self, reason: str | None = None, **params: Any) -> None:
        self.reason = reason
        self.params: dict[str, Any] = params
        super().__init__(self.key)

    @property
    def key(self) -> str:
        """The locale key: ``code`` plus the reason when there is one (``nik.length``)."""
        return f"{self.code}.{self.reason}" if self.reason else self.code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, {self.params!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled whole, reason and params (an import's reading process sends its errors to its parent)."""
        return _restore, (type(self), self.reason, self.params)


def _restore(cls: type[FrontdeskError], reason: str | None, params: dict[str, Any]) -> FrontdeskError:
    return cls(reason, **params)


class InvalidInput(FrontdeskError):
    """A value typed by a person does not have the expected form."""

    code = "invalid"


class InvalidNik(InvalidInput):
    code = "invalid.nik"


class InvalidTicket(InvalidInput):
    code = "invalid.ticket"


class InvalidPhone(InvalidInput):
    code = "invalid.phone"


class NotFound(FrontdeskError):
    code = "not_found"


class PermissionDenied(FrontdeskError):
    """The acting account may not do this (role, state or scope)."""

    code = "denied"


class Refused(FrontdeskError):
    """A domain rule refuses the action (series complete, interval not passed, ...)."""

    code = "refused"


class Conflict(FrontdeskError):
    """Someone else changed the record first (a race lost, a stale view, a second tap)."""

    code = "conflict"


class Unavailable(FrontdeskError):
    """A component (the PL database, a reference source) cannot be reached right now."""

    code = "unavailable"
