"""The reference check: compare a claim with a source's record, and decide (DOMAIN.md, rule 7)."""

from __future__ import annotations

import itertools
import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.names import NAME_MATCH_THRESHOLD
from core.domain.reference import (
    Claim,
    Decision,
    ReferenceRecord,
    Source,
    SourceVerdict,
    VerdictKind,
    compare,
    decide,
    sex_code,
    unavailable,
)

NIK = "3174054101900001"
BORN = date(1990, 1, 1)

RECORD = ReferenceRecord(nik=NIK, name="SITI NURHALIZA", birth_date=BORN, sex="P", card_number="0001234567890")


def claim(
    name: str | None = "dr. Siti Nurhaliza, Sp.A",
    birth_date: date | None = BORN,
    sex: str | None = "P",
    nik: str = NIK,
) -> Claim:
    return Claim(nik=nik, name=name, birth_date=birth_date, sex=sex)


# --------------------------------------------------------------------------------------------
# compare()
# --------------------------------------------------------------------------------------------


def test_no_record_is_not_found() -> None:
    verdict = compare(Source.JKN, claim(), None)
    assert verdict == SourceVerdict(Source.JKN, VerdictKind.NOT_FOUND)


def test_everything_agrees_is_confirmed_with_the_name_score() -> None:
    verdict = compare(Source.DUKCAPIL, claim(), RECORD)
    assert verdict.source is Source.DUKCAPIL
    assert verdict.kind is VerdictKind.CONFIRMED
    assert verdict.fields == ()
    assert verdict.name_score == 100.0
    assert verdict.detail is None


@pytest.mark.parametrize(
    ("the_claim", "fields"),
    [
        (claim(name="Siti Rahmawati"), ("name",)),
        (claim(name="Siti"), ("name",)),
        (claim(name="Dewi Lestiani"), ("name",)),
        (claim(birth_date=date(1990, 1, 2)), ("birth_date",)),
        (claim(birth_date=date(1991, 1, 1)), ("birth_date",)),
        (claim(sex="L"), ("sex",)),
        (claim(sex="laki-laki"), ("sex",)),
        (claim(nik="3174054101900002"), ("nik",)),
        (claim(name="Budi Santoso", birth_date=date(1980, 5, 5), sex="L"), ("name", "birth_date", "sex")),
        (claim(name="Budi Santoso", sex="L"), ("name", "sex")),
    ],
)
def test_a_differing_field_contradicts_and_is_named(the_claim: Claim, fields: tuple[str, ...]) -> None:
    verdict = compare(Source.JKN, the_claim, RECORD)
    assert verdict.kind is VerdictKind.CONTRADICTED
    assert verdict.fields == fields


@pytest.mark.parametrize(
    "the_claim",
    [
        claim(name="Siti Nurhaliza"),
        claim(name="SITI NURHALIZA, S.Kep., Ns."),
        claim(name="Nurhaliza Siti"),
        claim(name="Sity Nurhalizah"),  # y/i fold, and one added letter in a long word
        claim(sex="p"),
        claim(sex=" Perempuan "),
        claim(nik="3174 0541 0190 0001"),
        claim(nik="31.74.05.410190.0001"),
    ],
)
def test_tolerated_differences_confirm(the_claim: Claim) -> None:
    assert compare(Source.JKN, the_claim, RECORD).kind is VerdictKind.CONFIRMED


def test_unclaimed_fields_are_not_compared() -> None:
    record = ReferenceRecord(nik=NIK, name="Budi Santoso", birth_date=date(1970, 1, 1), sex="L")
    verdict = compare(Source.JKN, claim(name=None, birth_date=None, sex=None), record)
    assert verdict.kind is VerdictKind.CONFIRMED
    assert verdict.name_score is None


def test_name_score_is_recorded_when_the_name_contradicts() -> None:
    verdict = compare(Source.JKN, claim(name="Siti Rahmawati"), RECORD)
    assert verdict.name_score is not None
    assert verdict.name_score < NAME_MATCH_THRESHOLD


def test_birth_date_and_sex_compare_exactly_even_when_the_name_matches() -> None:
    verdict = compare(Source.DUKCAPIL, claim(birth_date=date(1990, 1, 10), sex="L"), RECORD)
    assert verdict.kind is VerdictKind.CONTRADICTED
    assert verdict.fields == ("birth_date", "sex")
    assert verdict.name_score == 100.0


def test_unavailable() -> None:
    verdict = unavailable(Source.DUKCAPIL, "timeout")
    assert verdict == SourceVerdict(Source.DUKCAPIL, VerdictKind.UNAVAILABLE, detail="timeout")


@pytest.mark.parametrize(
    ("raw", "code"),
    [("L", "L"), ("l", "L"), ("Laki-laki", "L"), ("LAKI LAKI", "L"), ("Pria", "L"), ("P", "P"),
     ("perempuan", "P"), ("Wanita", "P"), (" P ", "P"), ("X", "X"), ("", "")],
)  # fmt: skip
def test_sex_code(raw: str, code: str) -> None:
    assert sex_code(raw) == code


def test_card_number_is_13_digits_as_text() -> None:
    assert RECORD.card_number == "0001234567890"
    for bad in ("1234567890", "12345678901234", "000123456789X", " 0001234567890"):
        with pytest.raises(ValueError, match="card_number"):
            ReferenceRecord(nik=NIK, name="Siti", birth_date=BORN, sex="P", card_number=bad)


# --------------------------------------------------------------------------------------------
# decide(): every combination of the two sources' verdict kinds
# --------------------------------------------------------------------------------------------

C, X, N, U = (
    VerdictKind.CONFIRMED,
    VerdictKind.CONTRADICTED,
    VerdictKind.NOT_FOUND,
    VerdictKind.UNAVAILABLE,
)
A, Q = Decision.APPLY, Decision.QUEUE

#: (JKN, Dukcapil) -> decision. Apply only: confirmed somewhere, contradicted nowhere.
DECISIONS: dict[tuple[VerdictKind, VerdictKind], Decision] = {
    (C, C): A,
    (C, X): Q,
    (C, N): A,
    (C, U): A,
    (X, C): Q,
    (X, X): Q,
    (X, N): Q,
    (X, U): Q,
    (N, C): A,
    (N, X): Q,
    (N, N): Q,
    (N, U): Q,
    (U, C): A,
    (U, X): Q,
    (U, N): Q,
    (U, U): Q,
}


def verdict(source: Source, kind: VerdictKind) -> SourceVerdict:
    if kind is VerdictKind.CONTRADICTED:
        return SourceVerdict(source, kind, fields=("name",), name_score=40.0)
    if kind is VerdictKind.UNAVAILABLE:
        return unavailable(source, "timeout")
    return SourceVerdict(source, kind, name_score=100.0 if kind is VerdictKind.CONFIRMED else None)


def test_decision_table_covers_every_combination() -> None:
    assert set(DECISIONS) == set(itertools.product(VerdictKind, repeat=2))
    assert len(DECISIONS) == 16


@pytest.mark.parametrize(("kinds", "decision"), sorted(DECISIONS.items()))
def test_decide(kinds: tuple[VerdictKind, VerdictKind], decision: Decision) -> None:
    jkn, dukcapil = kinds
    verdicts = [verdict(Source.JKN, jkn), verdict(Source.DUKCAPIL, dukcapil)]
    assert decide(verdicts) is decision
    assert decide(list(reversed(verdicts))) is decision


def test_decide_with_no_verdict_queues() -> None:
    assert decide([]) is Decision.QUEUE


@pytest.mark.parametrize("kind", list(VerdictKind))
def test_decide_with_one_source(kind: VerdictKind) -> None:
    expected = Decision.APPLY if kind is VerdictKind.CONFIRMED else Decision.QUEUE
    assert decide([verdict(Source.JKN, kind)]) is expected


# --------------------------------------------------------------------------------------------
# Evidence: JSON round trip
# --------------------------------------------------------------------------------------------

VERDICTS = [
    SourceVerdict(Source.JKN, VerdictKind.CONFIRMED, name_score=96.5),
    SourceVerdict(Source.DUKCAPIL, VerdictKind.CONTRADICTED, fields=("name", "sex"), name_score=40.0),
    SourceVerdict(Source.JKN, VerdictKind.CONTRADICTED, fields=("birth_date",), name_score=100.0),
    SourceVerdict(Source.DUKCAPIL, VerdictKind.NOT_FOUND),
    unavailable(Source.JKN, "timeout"),
    unavailable(Source.DUKCAPIL, "http 503"),
]


@pytest.mark.parametrize("original", VERDICTS)
def test_json_round_trip(original: SourceVerdict) -> None:
    data = original.to_json()
    text = json.dumps(data)  # only JSON primitives
    assert SourceVerdict.from_json(json.loads(text)) == original


def test_json_shape() -> None:
    assert VERDICTS[1].to_json() == {
        "source": "dukcapil",
        "kind": "contradicted",
        "fields": ["name", "sex"],
        "name_score": 40.0,
        "detail": None,
    }


def test_json_integer_score_reads_as_float() -> None:
    data = {"source": "jkn", "kind": "confirmed", "fields": [], "name_score": 100, "detail": None}
    parsed = SourceVerdict.from_json(data)
    assert parsed.name_score == 100.0
    assert isinstance(parsed.name_score, float)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"source": "bpjs", "kind": "confirmed"},
        {"source": "jkn", "kind": "maybe"},
        {"source": "jkn", "kind": 1},
        {"source": "jkn", "kind": "confirmed", "fields": "name"},
        {"source": "jkn", "kind": "confirmed", "fields": ["name"]},
        {"source": "jkn", "kind": "contradicted", "fields": []},
        {"source": "jkn", "kind": "contradicted", "fields": ["phone"]},
        {"source": "jkn", "kind": "confirmed", "name_score": "high"},
        {"source": "jkn", "kind": "confirmed", "name_score": True},
        {"source": "jkn", "kind": "unavailable", "detail": 5},
    ],
)
def test_json_rejects_malformed(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SourceVerdict.from_json(data)


_kinds = st.sampled_from(list(VerdictKind))
_fields = st.lists(st.sampled_from(["nik", "name", "birth_date", "sex"]), min_size=1, unique=True)


@st.composite
def verdicts(draw: st.DrawFn) -> SourceVerdict:
    kind = draw(_kinds)
    return SourceVerdict(
        source=draw(st.sampled_from(list(Source))),
        kind=kind,
        fields=tuple(draw(_fields)) if kind is VerdictKind.CONTRADICTED else (),
        name_score=draw(st.none() | st.floats(0, 100)),
        detail=draw(st.none() | st.text(max_size=20)),
    )


@given(verdicts())
def test_json_round_trip_property(original: SourceVerdict) -> None:
    assert SourceVerdict.from_json(json.loads(json.dumps(original.to_json()))) == original
