from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain import screening
from core.domain.errors import InvalidInput
from core.domain.screening import (
    CATEGORIES,
    RULE_SET_SELECTION,
    RULE_SETS,
    Applies,
    Effect,
    Item,
    Outcome,
    Reason,
    RuleSet,
    ScreeningResult,
    Vitals,
    applicable_items,
    evaluate,
    needs_remeasure,
    select_rule_set,
)

NAKES = RULE_SETS["nakes-2021-01"]
UMUM = RULE_SETS["umum-2021-02"]
DAY = date(2021, 3, 1)
NEXT_DAY = DAY + timedelta(days=1)
NORMAL = Vitals(Decimal("36.5"), 120, 80)

FRAILTY = (
    "frailty_stairs",
    "frailty_fatigue",
    "frailty_illnesses",
    "frailty_walking",
    "frailty_weight_loss",
)


def all_no(rule_set: RuleSet, *, age: int, dose_number: int) -> dict[str, bool]:
    """Answer "no" to every item asked first (follow-ups are only asked after a yes)."""
    return {
        item.id: False
        for item in applicable_items(rule_set, age=age, dose_number=dose_number)
        if rule_set.parent_of(item.id) is None
    }


def judge(
    rule_set: RuleSet,
    *,
    age: int = 40,
    dose_number: int = 1,
    vitals: Vitals = NORMAL,
    yes: tuple[str, ...] = (),
    extra: Mapping[str, bool] | None = None,
) -> ScreeningResult:
    answers = all_no(rule_set, age=age, dose_number=dose_number)
    answers.update(dict.fromkeys(yes, True))
    answers.update(extra or {})
    return evaluate(
        rule_set,
        age=age,
        dose_number=dose_number,
        vitals=vitals,
        answers=answers,
        service_date=DAY,
    )


@dataclass(frozen=True)
class Case:
    """One decision: the inputs, and what must come out."""

    name: str
    rule_set: RuleSet
    outcome: Outcome
    codes: tuple[str, ...] = ()
    rujuk: bool = False
    rescreen: date | None = None
    age: int = 40
    dose_number: int = 1
    vitals: Vitals = NORMAL
    yes: tuple[str, ...] = ()
    extra: Mapping[str, bool] = field(default_factory=dict)


def v(
    temp: str = "36.5",
    bp: tuple[int, int] = (120, 80),
    bp2: tuple[int, int] | None = None,
) -> Vitals:
    return Vitals(Decimal(temp), bp[0], bp[1], *(bp2 or (None, None)))


L, T, X = Outcome.LANJUT, Outcome.TUNDA, Outcome.TIDAK_DIBERIKAN

NAKES_CASES = [
    Case("all clear", NAKES, L),
    # Age: outside 18-59 -> Tidak diberikan
    Case("age 17", NAKES, X, ("age_out_of_range",), age=17),
    Case("age 18", NAKES, L, age=18),
    Case("age 59", NAKES, L, age=59),
    Case("age 60", NAKES, X, ("age_out_of_range",), age=60),
    # Temperature: >= 37.5 -> Tunda (re-screen next day)
    Case(
        "temp 37.5",
        NAKES,
        T,
        ("temperature_high",),
        rescreen=NEXT_DAY,
        vitals=v("37.5"),
    ),
    Case(
        "temp 38.2",
        NAKES,
        T,
        ("temperature_high",),
        rescreen=NEXT_DAY,
        vitals=v("38.2"),
    ),
    Case("temp 37.4", NAKES, L, vitals=v("37.4")),
    # Blood pressure: > 140/90 (either number) -> Tidak diberikan
    Case("bp 141/80", NAKES, X, ("bp_high",), vitals=v(bp=(141, 80))),
    Case("bp 130/91", NAKES, X, ("bp_high",), vitals=v(bp=(130, 91))),
    Case("bp 140/90", NAKES, L, vitals=v(bp=(140, 90))),
    Case(
        "bp re-measure ignored",
        NAKES,
        X,
        ("bp_high",),
        vitals=v(bp=(150, 95), bp2=(120, 80)),
    ),
    # Yes/no items -> Tidak diberikan
    *(
        Case(item, NAKES, X, (item,), yes=(item,))
        for item in (
            "covid_confirmed",
            "pregnant_or_breastfeeding",
            "respiratory_7d",
            "household_contact",
            "blood_disorder_therapy",
            "heart_disease",
            "autoimmune_systemic",
            "kidney_disease",
            "rheumatic_autoimmune",
            "chronic_gut_disease",
            "autoimmune_thyroid",
            "cancer_immunocompromised_transfusion",
        )
    ),
    # Dose 2: severe allergy after the first dose
    Case(
        "allergy dose 2",
        NAKES,
        X,
        ("allergy_after_dose_1",),
        dose_number=2,
        yes=("allergy_after_dose_1",),
    ),
    Case("allergy no, dose 2", NAKES, L, dose_number=2),
    # Diabetes: yes, unless type 2 with HbA1c < 7.5 %
    Case(
        "diabetes, not controlled",
        NAKES,
        X,
        ("diabetes",),
        yes=("diabetes",),
        extra={"diabetes_t2_hba1c_ok": False},
    ),
    Case("diabetes t2 hba1c ok", NAKES, L, yes=("diabetes", "diabetes_t2_hba1c_ok")),
    # HIV: CD4 < 200 or unknown
    Case(
        "hiv cd4 low/unknown",
        NAKES,
        X,
        ("hiv",),
        yes=("hiv",),
        extra={"hiv_cd4_ok": False},
    ),
    Case("hiv cd4 >= 200", NAKES, L, yes=("hiv", "hiv_cd4_ok")),
    # Lung disease: Tunda until controlled (no fixed date)
    Case(
        "lung disease",
        NAKES,
        T,
        ("lung_disease_uncontrolled",),
        yes=("lung_disease_uncontrolled",),
    ),
]

UMUM_CASES = [
    Case("all clear", UMUM, L),
    Case("age has no limit", UMUM, L, age=17),
    # Temperature: > 37.5 -> Tunda (re-screen next day)
    Case("temp 37.5", UMUM, L, vitals=v("37.5")),
    Case(
        "temp 37.6", UMUM, T, ("temperature_high",), rescreen=NEXT_DAY, vitals=v("37.6")
    ),
    # Blood pressure: > 180/110 after a re-measure -> Tunda until controlled
    Case("bp 180/110", UMUM, L, vitals=v(bp=(180, 110))),
    Case(
        "bp 190/100 re 181/100",
        UMUM,
        T,
        ("bp_high",),
        vitals=v(bp=(190, 100), bp2=(181, 100)),
    ),
    Case(
        "bp 190/100 re 150/111",
        UMUM,
        T,
        ("bp_high",),
        vitals=v(bp=(190, 100), bp2=(150, 111)),
    ),
    Case("bp 190/100 re 180/110", UMUM, L, vitals=v(bp=(190, 100), bp2=(180, 110))),
    Case(
        "bp 120/80 re 200/120",
        UMUM,
        T,
        ("bp_high",),
        vitals=v(bp=(120, 80), bp2=(200, 120)),
    ),
    # Dose 1: severe allergy to any vaccine before -> Tunda + Rujuk
    Case(
        "allergy dose 1",
        UMUM,
        T,
        ("allergy_severe_vaccine",),
        rujuk=True,
        yes=("allergy_severe_vaccine",),
    ),
    Case("allergy no", UMUM, L),
    # Dose 2: severe allergy after the first dose -> Tidak diberikan
    Case(
        "allergy dose 2",
        UMUM,
        X,
        ("allergy_after_dose_1",),
        dose_number=2,
        yes=("allergy_after_dose_1",),
    ),
    # Pregnant -> Tunda until after delivery (no fixed date)
    Case("pregnant", UMUM, T, ("pregnant",), yes=("pregnant",)),
    # Acute or uncontrolled autoimmune -> Tunda
    Case(
        "autoimmune",
        UMUM,
        T,
        ("autoimmune_uncontrolled",),
        yes=("autoimmune_uncontrolled",),
    ),
    # Treatment for blood/immune, immunosuppressants, severe heart disease -> Tunda + Rujuk
    *(
        Case(item, UMUM, T, (item,), rujuk=True, yes=(item,))
        for item in (
            "blood_immune_treatment",
            "immunosuppressant",
            "heart_disease_breathless",
        )
    ),
    # COVID-19 survivor recovered < 3 months ago -> Tunda, 3 months
    Case(
        "covid < 3 months",
        UMUM,
        T,
        ("covid_recovered_lt_3m",),
        rescreen=DAY + timedelta(days=90),
        yes=("covid_recovered_lt_3m",),
    ),
    # Age >= 60 frailty: >= 3 yes -> Tidak diberikan
    Case("frailty 0 of 5", UMUM, L, age=60),
    Case("frailty 2 of 5", UMUM, L, age=60, yes=FRAILTY[:2]),
    Case("frailty 3 of 5", UMUM, X, ("frailty",), age=60, yes=FRAILTY[:3]),
    Case("frailty 5 of 5", UMUM, X, ("frailty",), age=75, yes=FRAILTY),
    Case("frailty other 3", UMUM, X, ("frailty",), age=60, yes=FRAILTY[2:]),
    Case(
        "frailty not asked under 60",
        UMUM,
        L,
        age=59,
        extra=dict.fromkeys(FRAILTY, True),
    ),
]

COMBINATION_CASES = [
    Case(
        "nakes tunda + tidak",
        NAKES,
        X,
        ("temperature_high", "covid_confirmed"),
        vitals=v("38"),
        yes=("covid_confirmed",),
    ),
    Case(
        "nakes age + bp + item",
        NAKES,
        X,
        ("age_out_of_range", "bp_high", "respiratory_7d"),
        age=61,
        vitals=v(bp=(150, 95)),
        yes=("respiratory_7d",),
    ),
    Case(
        "nakes lung + temp",
        NAKES,
        T,
        ("temperature_high", "lung_disease_uncontrolled"),
        rescreen=NEXT_DAY,
        vitals=v("37.8"),
        yes=("lung_disease_uncontrolled",),
    ),
    Case(
        "umum pregnant + temp",
        UMUM,
        T,
        ("temperature_high", "pregnant"),
        rescreen=NEXT_DAY,
        vitals=v("38"),
        yes=("pregnant",),
    ),
    Case(
        "umum covid + temp: latest date",
        UMUM,
        T,
        ("temperature_high", "covid_recovered_lt_3m"),
        rescreen=DAY + timedelta(days=90),
        vitals=v("38"),
        yes=("covid_recovered_lt_3m",),
    ),
    Case(
        "umum rujuk + plain tunda",
        UMUM,
        T,
        ("pregnant", "immunosuppressant"),
        rujuk=True,
        yes=("pregnant", "immunosuppressant"),
    ),
    Case(
        "umum rujuk dropped by tidak",
        UMUM,
        X,
        ("allergy_severe_vaccine", "frailty"),
        age=70,
        yes=("allergy_severe_vaccine", *FRAILTY[:3]),
    ),
    Case(
        "umum no date with tidak",
        UMUM,
        X,
        ("temperature_high", "allergy_after_dose_1", "covid_recovered_lt_3m"),
        dose_number=2,
        vitals=v("39"),
        yes=("covid_recovered_lt_3m", "allergy_after_dose_1"),
    ),
    Case(
        "umum bp + rujuk",
        UMUM,
        T,
        ("bp_high", "heart_disease_breathless"),
        rujuk=True,
        vitals=v(bp=(200, 120), bp2=(195, 115)),
        yes=("heart_disease_breathless",),
    ),
]


@pytest.mark.parametrize(
    "case",
    NAKES_CASES + UMUM_CASES + COMBINATION_CASES,
    ids=lambda c: f"{c.rule_set.id}:{c.name}",
)
def test_decision(case: Case) -> None:
    result = judge(
        case.rule_set,
        age=case.age,
        dose_number=case.dose_number,
        vitals=case.vitals,
        yes=case.yes,
        extra=case.extra,
    )
    assert result.rule_set_id == case.rule_set.id
    assert result.outcome is case.outcome
    assert tuple(r.code for r in result.reasons) == case.codes
    assert result.rujuk is case.rujuk
    assert result.rescreen_date == case.rescreen


def test_item_rows_are_all_covered() -> None:
    """Every item with an effect of its own is decided by at least one case above."""
    covered = {code for case in NAKES_CASES + UMUM_CASES for code in case.codes}
    for rule_set in (NAKES, UMUM):
        assert set(rule_set.reason_codes) <= covered


def test_reason_details() -> None:
    result = judge(
        UMUM, vitals=v("38"), yes=("immunosuppressant", "covid_recovered_lt_3m")
    )
    assert result.reasons == (
        Reason("temperature_high", T, False),
        Reason("immunosuppressant", T, True),
        Reason("covid_recovered_lt_3m", T, False),
    )


def test_rujuk_reason_kept_but_result_not_rujuk_when_tidak() -> None:
    result = judge(UMUM, age=65, yes=("allergy_severe_vaccine", *FRAILTY))
    assert result.outcome is X
    assert result.rujuk is False
    assert Reason("allergy_severe_vaccine", T, True) in result.reasons


# --- outcome order -------------------------------------------------------------------------


def test_outcome_values_and_severity() -> None:
    assert [o.value for o in Outcome] == ["lanjut", "tunda", "tidak_diberikan"]
    assert L.severity < T.severity < X.severity
    assert Outcome.worst() is L
    assert Outcome.worst(T, L) is T
    assert Outcome.worst(L, X, T) is X


ANSWERABLE = {rs.id: [i.id for i in rs.items] for rs in (NAKES, UMUM)}


@given(
    rule_set=st.sampled_from([NAKES, UMUM]),
    age=st.integers(0, 100),
    dose_number=st.sampled_from([1, 2]),
    temp=st.decimals(Decimal("34.0"), Decimal("42.5"), places=1),
    bp=st.tuples(st.integers(60, 260), st.integers(30, 160)),
    bp2=st.tuples(st.integers(60, 260), st.integers(30, 160)),
    data=st.data(),
)
def test_invariants(
    rule_set: RuleSet,
    age: int,
    dose_number: int,
    temp: Decimal,
    bp: tuple[int, int],
    bp2: tuple[int, int],
    data: st.DataObject,
) -> None:
    vitals = Vitals(temp, *bp, *bp2)
    answers = {i: data.draw(st.booleans(), label=i) for i in ANSWERABLE[rule_set.id]}
    result = evaluate(
        rule_set,
        age=age,
        dose_number=dose_number,
        vitals=vitals,
        answers=answers,
        service_date=DAY,
    )
    assert result.outcome is Outcome.worst(*(r.outcome for r in result.reasons))
    assert (result.outcome is L) == (not result.reasons)
    if result.rujuk:
        assert result.outcome is T
        assert any(r.rujuk for r in result.reasons)
    if result.rescreen_date is not None:
        assert result.outcome is T
        assert result.rescreen_date > DAY
    if result.outcome is T and any(r.rujuk for r in result.reasons):
        assert result.rujuk
    assert len({r.code for r in result.reasons}) == len(result.reasons)


# --- re-measure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_set", "vitals", "expected"),
    [
        (UMUM, v(bp=(181, 100)), True),
        (UMUM, v(bp=(170, 111)), True),
        (UMUM, v(bp=(180, 110)), False),
        (UMUM, v(bp=(181, 100), bp2=(181, 100)), False),
        (UMUM, v(bp=(120, 80), bp2=(200, 120)), False),
        (NAKES, v(bp=(200, 120)), False),
        (NAKES, v(bp=(141, 91)), False),
    ],
)
def test_needs_remeasure(rule_set: RuleSet, vitals: Vitals, expected: bool) -> None:
    assert needs_remeasure(rule_set, vitals) is expected


def test_umum_high_first_reading_without_remeasure_is_incomplete() -> None:
    with pytest.raises(InvalidInput) as info:
        judge(UMUM, vitals=v(bp=(190, 100)))
    assert info.value.reason == "screening_incomplete"
    assert info.value.params == {"missing": ["blood_pressure_2"]}


def test_half_a_remeasure_is_invalid() -> None:
    with pytest.raises(InvalidInput) as info:
        Vitals(Decimal("36.5"), 190, 100, systolic_2=185)
    assert info.value.reason == "blood_pressure_remeasure"


# --- applicability -------------------------------------------------------------------------

NAKES_COMMON = [
    "covid_confirmed",
    "pregnant_or_breastfeeding",
    "respiratory_7d",
    "household_contact",
]
NAKES_TAIL = [
    "blood_disorder_therapy",
    "heart_disease",
    "autoimmune_systemic",
    "kidney_disease",
    "rheumatic_autoimmune",
    "chronic_gut_disease",
    "autoimmune_thyroid",
    "cancer_immunocompromised_transfusion",
    "diabetes",
    "diabetes_t2_hba1c_ok",
    "hiv",
    "hiv_cd4_ok",
    "lung_disease_uncontrolled",
]
UMUM_TAIL = [
    "pregnant",
    "autoimmune_uncontrolled",
    "blood_immune_treatment",
    "immunosuppressant",
    "heart_disease_breathless",
    "covid_recovered_lt_3m",
]


@pytest.mark.parametrize(
    ("rule_set", "age", "dose_number", "expected"),
    [
        (NAKES, 30, 1, NAKES_COMMON + NAKES_TAIL),
        (NAKES, 30, 2, [*NAKES_COMMON, "allergy_after_dose_1", *NAKES_TAIL]),
        (NAKES, 65, 1, NAKES_COMMON + NAKES_TAIL),
        (UMUM, 59, 1, ["allergy_severe_vaccine", *UMUM_TAIL]),
        (UMUM, 59, 2, ["allergy_after_dose_1", *UMUM_TAIL]),
        (UMUM, 60, 1, ["allergy_severe_vaccine", *UMUM_TAIL, *FRAILTY]),
        (UMUM, 80, 2, ["allergy_after_dose_1", *UMUM_TAIL, *FRAILTY]),
    ],
)
def test_applicable_items(
    rule_set: RuleSet, age: int, dose_number: int, expected: list[str]
) -> None:
    assert [
        i.id for i in applicable_items(rule_set, age=age, dose_number=dose_number)
    ] == expected


def test_follow_ups_come_right_after_their_parent() -> None:
    for rule_set in RULE_SETS.values():
        ids = [i.id for i in rule_set.items]
        for item in rule_set.items:
            for offset, follow_up in enumerate(item.follow_ups, start=1):
                assert ids[ids.index(item.id) + offset] == follow_up
                assert rule_set.parent_of(follow_up) == item


def test_item_ids_are_snake_case() -> None:
    for rule_set in RULE_SETS.values():
        for code in [i.id for i in rule_set.items] + list(rule_set.reason_codes):
            assert (
                code.isascii()
                and code == code.lower()
                and " " not in code
                and "-" not in code
            )


@pytest.mark.parametrize("bad", [(-1, 1), (30, 0), (30, 3)])
def test_bad_subject_is_invalid(bad: tuple[int, int]) -> None:
    age, dose_number = bad
    with pytest.raises(InvalidInput):
        applicable_items(NAKES, age=age, dose_number=dose_number)


# --- incomplete / unknown answers ----------------------------------------------------------


def test_missing_answers_are_listed_in_display_order() -> None:
    answers = all_no(NAKES, age=30, dose_number=2)
    del answers["covid_confirmed"], answers["allergy_after_dose_1"], answers["hiv"]
    with pytest.raises(InvalidInput) as info:
        evaluate(
            NAKES,
            age=30,
            dose_number=2,
            vitals=NORMAL,
            answers=answers,
            service_date=DAY,
        )
    assert info.value.key == "invalid.screening_incomplete"
    assert info.value.params["missing"] == [
        "covid_confirmed",
        "allergy_after_dose_1",
        "hiv",
    ]


@pytest.mark.parametrize("parent", ["diabetes", "hiv"])
def test_follow_up_required_after_yes(parent: str) -> None:
    with pytest.raises(InvalidInput) as info:
        judge(NAKES, yes=(parent,))
    assert info.value.params["missing"] == [NAKES.item(parent).follow_ups[0]]


def test_follow_up_ignored_after_no() -> None:
    assert (
        judge(NAKES, extra={"diabetes_t2_hba1c_ok": False, "hiv_cd4_ok": False}).outcome
        is L
    )


def test_frailty_required_from_60() -> None:
    answers = all_no(UMUM, age=59, dose_number=1)
    with pytest.raises(InvalidInput) as info:
        evaluate(
            UMUM,
            age=60,
            dose_number=1,
            vitals=NORMAL,
            answers=answers,
            service_date=DAY,
        )
    assert info.value.params["missing"] == list(FRAILTY)


def test_not_applicable_answers_are_ignored() -> None:
    # dose-2 item answered yes on a dose 1, dose-1 item answered yes on a dose 2
    assert judge(UMUM, extra={"allergy_after_dose_1": True}).outcome is L
    assert (
        judge(UMUM, dose_number=2, extra={"allergy_severe_vaccine": True}).outcome is L
    )


def test_unknown_answer_is_invalid() -> None:
    with pytest.raises(InvalidInput) as info:
        judge(NAKES, extra={"pregnant": True})  # an umum item, not a nakes one
    assert info.value.reason == "screening_unknown_item"
    assert info.value.params == {"unknown": ["pregnant"]}


# --- selection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "day", "expected"),
    [
        ("nakes", date(2021, 1, 13), "nakes-2021-01"),
        ("nakes", date(2021, 6, 1), "nakes-2021-01"),
        ("lansia", date(2021, 2, 11), "umum-2021-02"),
        ("petugas_publik", date(2021, 3, 1), "umum-2021-02"),
        ("umum", date(2021, 7, 1), "umum-2021-02"),
        ("komorbid", date(2022, 1, 1), "umum-2021-02"),
    ],
)
def test_select_rule_set(category: str, day: date, expected: str) -> None:
    assert select_rule_set(day, category).id == expected


@pytest.mark.parametrize(
    ("category", "day"),
    [
        ("nakes", date(2021, 1, 12)),
        ("lansia", date(2021, 2, 10)),
        ("umum", date(2021, 1, 20)),
        ("komorbid", date(2020, 12, 31)),
    ],
)
def test_select_before_effective_date(category: str, day: date) -> None:
    with pytest.raises(InvalidInput) as info:
        select_rule_set(day, category)
    assert info.value.reason == "rule_set_date"


def test_select_unknown_category() -> None:
    with pytest.raises(InvalidInput) as info:
        select_rule_set(date(2021, 3, 1), "alien")
    assert info.value.reason == "category"


def test_selection_table_is_consistent() -> None:
    assert set(CATEGORIES) == {"nakes", "lansia", "petugas_publik", "umum", "komorbid"}
    covered = set().union(*(row.categories for row in RULE_SET_SELECTION))
    assert covered == set(CATEGORIES)
    for row in RULE_SET_SELECTION:
        assert row.rule_set_id in RULE_SETS
        assert row.effective_from >= RULE_SETS[row.rule_set_id].effective_from
    assert {rs.id: rs.effective_from for rs in RULE_SETS.values()} == {
        "nakes-2021-01": date(2021, 1, 13),
        "umum-2021-02": date(2021, 2, 11),
    }


# --- data validation -----------------------------------------------------------------------


def test_rule_set_rejects_misplaced_follow_up() -> None:
    with pytest.raises(ValueError, match="follow-up"):
        RuleSet(
            "x",
            "x",
            DAY,
            items=(
                Item("a", Effect(X), follow_ups=("b",)),
                Item("c", Effect(X)),
                Item("b", waives_parent=True),
            ),
        )


def test_rule_set_rejects_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        RuleSet("x", "x", DAY, items=(Item("a", Effect(X)), Item("a", Effect(T))))


def test_effect_rejects_rujuk_without_tunda() -> None:
    with pytest.raises(ValueError):
        Effect(X, rujuk=True)
    with pytest.raises(ValueError):
        Effect(L, rescreen_days=3)


def test_applies_matches() -> None:
    assert Applies.DOSE_1.matches(age=30, dose_number=1)
    assert not Applies.DOSE_1.matches(age=30, dose_number=2)
    assert Applies.AGE_60_PLUS.matches(age=60, dose_number=2)
    assert not Applies.AGE_60_PLUS.matches(age=59, dose_number=2)


# --- texts ---------------------------------------------------------------------------------

TEXTS = Path(screening.__file__).with_name("screening_texts.toml")


def test_texts_cover_every_item_and_reason_in_both_languages() -> None:
    texts = tomllib.loads(TEXTS.read_text(encoding="utf-8"))
    assert set(texts) == {"id", "en"}
    needed = {rs.title_key for rs in RULE_SETS.values()}
    for rule_set in RULE_SETS.values():
        needed |= {i.id for i in rule_set.items} | set(rule_set.reason_codes)
    for lang in ("id", "en"):
        assert set(texts[lang]) == needed, lang
        for key, text in texts[lang].items():
            assert isinstance(text, str) and text.strip() == text, key
            assert "\n" not in text and 0 < len(text) <= 70, key
