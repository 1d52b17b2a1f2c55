"""The reference check of a claimed identity (DOMAIN.md, rule 7).

Every correction and addition of a target is checked against the JKN master file and Dukcapil.
Each source's answer is reduced to a :class:`SourceVerdict` by :func:`compare` (or
:func:`unavailable` when the source could not answer), and :func:`decide` turns the verdicts
into the decision: apply at once, or queue for the Dinkes admin.

Verdicts are stored as evidence with the correction (:meth:`SourceVerdict.to_json`).

Pure code: the queries themselves (in parallel, each with its own timeout) live in
``core.references``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from core.domain.names import NAME_MATCH_THRESHOLD, name_similarity

__all__ = [
    "CLAIM_FIELDS",
    "Claim",
    "Decision",
    "JsonValue",
    "ReferenceRecord",
    "Source",
    "SourceVerdict",
    "VerdictKind",
    "compare",
    "decide",
    "sex_code",
    "unavailable",
]

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]

#: The compared fields, in the order a verdict names them.
CLAIM_FIELDS: Final[tuple[str, ...]] = ("nik", "name", "birth_date", "sex")

_CARD_NUMBER: Final = re.compile(r"[0-9]{13}")
_NOT_DIGITS: Final = re.compile(r"[^0-9]")

_SEX_CODES: Final[dict[str, str]] = {
    **dict.fromkeys(("l", "lk", "laki", "laki-laki", "laki laki", "lakilaki", "pria", "m", "male"), "L"),
    **dict.fromkeys(("p", "pr", "perempuan", "wanita", "w", "f", "female"), "P"),
}


class Source(StrEnum):
    JKN = "jkn"
    DUKCAPIL = "dukcapil"


class VerdictKind(StrEnum):
    CONFIRMED = "confirmed"  # found, and nothing claimed differs
    CONTRADICTED = "contradicted"  # found, and at least one claimed field differs
    NOT_FOUND = "not_found"  # the source answered: no such NIK
    UNAVAILABLE = "unavailable"  # the source did not answer (timeout, error)


class Decision(StrEnum):
    APPLY = "apply"
    QUEUE = "queue"


def sex_code(value: str) -> str:
    """The code "L" or "P" for the usual spellings ("L", "laki-laki", "Perempuan", "P", ...).

    Anything else is returned stripped and upper-cased, so that it compares unequal to both.
    """
    cleaned = " ".join(value.split()).casefold()
    return _SEX_CODES.get(cleaned, cleaned.upper())


def _digits(value: str) -> str:
    return _NOT_DIGITS.sub("", value)


@dataclass(frozen=True)
class ReferenceRecord:
    """What a reference source holds for one NIK."""

    nik: str
    name: str
    birth_date: date
    sex: str  # "L" / "P"
    card_number: str | None = None  # JKN only: 13 digits as text, leading zeros significant

    def __post_init__(self) -> None:
        if self.card_number is not None and not _CARD_NUMBER.fullmatch(self.card_number):
            raise ValueError("card_number must be 13 digits as text")


@dataclass(frozen=True)
class Claim:
    """A claimed identity: a field left None is not claimed, and not compared."""

    nik: str
    name: str | None
    birth_date: date | None
    sex: str | None  # "L" / "P"


@dataclass(frozen=True)
class SourceVerdict:
    """One source's verdict on a claim."""

    source: Source
    kind: VerdictKind
    fields: tuple[str, ...] = ()  # the contradicted fields, in CLAIM_FIELDS order
    name_score: float | None = None  # name_similarity, when the name was compared
    detail: str | None = None  # e.g. "timeout" for UNAVAILABLE

    def __post_init__(self) -> None:
        if (self.kind is VerdictKind.CONTRADICTED) != bool(self.fields):
            raise ValueError("a contradicted verdict names its fields, and only it does")
        unknown = set(self.fields) - set(CLAIM_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")

    def to_json(self) -> dict[str, JsonValue]:
        """JSON primitives only (stored as evidence)."""
        return {
            "source": self.source.value,
            "kind": self.kind.value,
            "fields": list(self.fields),
            "name_score": self.name_score,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SourceVerdict:
        """The inverse of :meth:`to_json`; ``ValueError`` on anything else."""
        source_value, kind_value = data.get("source"), data.get("kind")
        if not isinstance(source_value, str) or not isinstance(kind_value, str):
            raise ValueError("source and kind must be strings")
        source = Source(source_value)  # ValueError when unknown
        kind = VerdictKind(kind_value)
        fields = data.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ValueError("fields must be a list of strings")
        score = data.get("name_score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise ValueError("name_score must be a number or null")
        detail = data.get("detail")
        if detail is not None and not isinstance(detail, str):
            raise ValueError("detail must be a string or null")
        return cls(
            source=source,
            kind=kind,
            fields=tuple(fields),
            name_score=None if score is None else float(score),
            detail=detail,
        )


def compare(source: Source, claim: Claim, record: ReferenceRecord | None) -> SourceVerdict:
    """One source's verdict on ``claim``, given what it holds for the NIK (None: no record).

    The NIK compares by digits (a source answering for another NIK is a contradiction), the
    name by :func:`~core.domain.names.name_similarity` against ``NAME_MATCH_THRESHOLD`` (as
    :func:`~core.domain.names.names_match`), birth date and sex exactly (sex by
    :func:`sex_code`). A record found with nothing claimed beside the NIK confirms the NIK.
    """
    if record is None:
        return SourceVerdict(source, VerdictKind.NOT_FOUND)
    contradicted: list[str] = []
    if _digits(claim.nik) != _digits(record.nik):
        contradicted.append("nik")
    score: float | None = None
    if claim.name is not None:
        score = name_similarity(claim.name, record.name)
        if score < NAME_MATCH_THRESHOLD:
            contradicted.append("name")
    if claim.birth_date is not None and claim.birth_date != record.birth_date:
        contradicted.append("birth_date")
    if claim.sex is not None and sex_code(claim.sex) != sex_code(record.sex):
        contradicted.append("sex")
    kind = VerdictKind.CONTRADICTED if contradicted else VerdictKind.CONFIRMED
    return SourceVerdict(source, kind, fields=tuple(contradicted), name_score=score)


def unavailable(source: Source, detail: str) -> SourceVerdict:
    """The verdict of a source that could not answer (timeout, error, circuit open)."""
    return SourceVerdict(source, VerdictKind.UNAVAILABLE, detail=detail)


def decide(verdicts: Sequence[SourceVerdict]) -> Decision:
    """APPLY when at least one source confirms and none contradicts; otherwise QUEUE.

    Queued: any contradiction (even beside a confirmation), and no confirmation at all (not
    found or unavailable everywhere, or no verdict).
    """
    kinds = {v.kind for v in verdicts}
    if VerdictKind.CONFIRMED in kinds and VerdictKind.CONTRADICTED not in kinds:
        return Decision.APPLY
    return Decision.QUEUE
