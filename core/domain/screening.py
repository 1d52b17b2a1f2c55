"""Screening at meja 2: versioned rule sets as data, plus a small evaluator.

A rule set is pure data: checklist items (each with a stable snake_case id, an applicability
and the effect of a "yes"), vitals rules with their thresholds, and counting rules (frailty).
The evaluator applies one rule set to one visit and returns the outcome with its reasons.
Worst outcome wins: Tidak diberikan > Tunda > Lanjut. Rujuk only ever accompanies a Tunda.

Core holds no chat text: the questions for each item id and the labels for each reason code
live in ``screening_texts.toml`` next to this module.

Reason codes are stable: ``age_out_of_range``, ``temperature_high``, ``bp_high``, ``frailty``,
and the id of every item that has an effect of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from core.domain.errors import InvalidInput

__all__ = [
    "CATEGORIES",
    "RULE_SETS",
    "RULE_SET_SELECTION",
    "AgeRule",
    "Applies",
    "BloodPressureRule",
    "CountRule",
    "Effect",
    "Item",
    "Outcome",
    "Reason",
    "RuleSet",
    "RuleSetSelection",
    "ScreeningResult",
    "TemperatureRule",
    "Vitals",
    "applicable_items",
    "evaluate",
    "needs_remeasure",
    "select_rule_set",
]


# --------------------------------------------------------------------------------------------
# Vocabulary


class Outcome(StrEnum):
    """The screening outcome. Compare severities with :attr:`severity` / :meth:`worst`."""

    LANJUT = "lanjut"
    TUNDA = "tunda"
    TIDAK_DIBERIKAN = "tidak_diberikan"

    @property
    def severity(self) -> int:
        """0 for Lanjut, 1 for Tunda, 2 for Tidak diberikan (higher is worse)."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, *outcomes: Outcome) -> Outcome:
        """The worst of ``outcomes``; Lanjut when there are none."""
        return max(outcomes, key=lambda o: o.severity, default=cls.LANJUT)


_SEVERITY: Mapping[Outcome, int] = MappingProxyType({Outcome.LANJUT: 0, Outcome.TUNDA: 1, Outcome.TIDAK_DIBERIKAN: 2})


class Applies(StrEnum):
    """When an item is asked."""

    ALWAYS = "always"
    DOSE_1 = "dose_1"
    DOSE_2 = "dose_2"
    AGE_60_PLUS = "age_60_plus"

    def matches(self, *, age: int, dose_number: int) -> bool:
        if self is Applies.DOSE_1:
            return dose_number == 1
        if self is Applies.DOSE_2:
            return dose_number == 2
        if self is Applies.AGE_60_PLUS:
            return age >= 60
        return True


@dataclass(frozen=True)
class Effect:
    """What a finding leads to: the outcome, whether to refer (Rujuk), and the re-screen delay.

    ``rescreen_days`` is None when there is no fixed date ("until controlled", "until after
    delivery"); otherwise the person may be screened again ``service_date + rescreen_days``.
    """

    outcome: Outcome
    rujuk: bool = False
    rescreen_days: int | None = None

    def __post_init__(self) -> None:
        if self.rujuk and self.outcome is not Outcome.TUNDA:
            raise ValueError("rujuk accompanies a Tunda only")
        if self.rescreen_days is not None and (self.outcome is not Outcome.TUNDA or self.rescreen_days < 1):
            raise ValueError("a re-screen delay belongs to a Tunda and is at least one day")


_TUNDA = Effect(Outcome.TUNDA)
_TUNDA_RUJUK = Effect(Outcome.TUNDA, rujuk=True)
_TUNDA_NEXT_DAY = Effect(Outcome.TUNDA, rescreen_days=1)
_TIDAK = Effect(Outcome.TIDAK_DIBERIKAN)


@dataclass(frozen=True)
class Item:
    """One yes/no question of the checklist.

    ``effect`` is what a "yes" leads to (None: the answer has no effect of its own, e.g. a frailty
    question counted by a :class:`CountRule`, or a follow-up). ``follow_ups`` are ids of items
    asked only when this one is answered yes; they come right after it in the rule set and share
    its applicability. A follow-up with ``waives_parent`` answered yes cancels the parent's effect
    (diabetes -> "type 2 with HbA1c < 7.5 %").
    """

    id: str
    effect: Effect | None = None
    applies: Applies = Applies.ALWAYS
    follow_ups: tuple[str, ...] = ()
    waives_parent: bool = False


@dataclass(frozen=True)
class AgeRule:
    """Finding ``age_out_of_range`` when the age is outside ``min_age..max_age`` (inclusive)."""

    min_age: int
    max_age: int
    effect: Effect
    code: str = "age_out_of_range"

    def finds(self, age: int) -> bool:
        return not self.min_age <= age <= self.max_age


@dataclass(frozen=True)
class TemperatureRule:
    """Finding ``temperature_high`` when the temperature is above (or at, if ``inclusive``) it."""

    threshold_c: Decimal
    inclusive: bool
    effect: Effect
    code: str = "temperature_high"

    def finds(self, temperature_c: Decimal) -> bool:
        if self.inclusive:
            return temperature_c >= self.threshold_c
        return temperature_c > self.threshold_c


@dataclass(frozen=True)
class BloodPressureRule:
    """Finding ``bp_high`` when systolic > ``systolic_max`` or diastolic > ``diastolic_max``.

    With ``remeasure`` the first reading alone never decides: when it is above, the blood
    pressure is measured again and the re-measure decides. Without it, the first reading decides
    and a re-measure (if any) is ignored.
    """

    systolic_max: int
    diastolic_max: int
    remeasure: bool
    effect: Effect
    code: str = "bp_high"

    def above(self, systolic: int, diastolic: int) -> bool:
        return systolic > self.systolic_max or diastolic > self.diastolic_max


@dataclass(frozen=True)
class CountRule:
    """Finding ``code`` when at least ``threshold`` of ``item_ids`` are answered yes."""

    code: str
    item_ids: tuple[str, ...]
    threshold: int
    effect: Effect


@dataclass(frozen=True)
class RuleSet:
    """A versioned screening rule set. Its ``id`` is stored with every screening it judged."""

    id: str
    title_key: str
    effective_from: date
    items: tuple[Item, ...]
    age: AgeRule | None = None
    temperature: TemperatureRule | None = None
    blood_pressure: BloodPressureRule | None = None
    counts: tuple[CountRule, ...] = ()

    def __post_init__(self) -> None:
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.id}: duplicate item ids")
        position = {item_id: index for index, item_id in enumerate(ids)}
        parents: dict[str, Item] = {}
        for item in self.items:
            for offset, follow_up in enumerate(item.follow_ups, start=1):
                if position.get(follow_up) != position[item.id] + offset:
                    raise ValueError(f"{self.id}: follow-up {follow_up} must follow {item.id}")
                parents[follow_up] = item
        for item in self.items:
            parent = parents.get(item.id)
            if item.waives_parent and parent is None:
                raise ValueError(f"{self.id}: {item.id} waives a parent it does not have")
            if parent is not None and (item.follow_ups or item.applies is not parent.applies):
                raise ValueError(f"{self.id}: follow-up {item.id} must be a leaf like its parent")
        for count in self.counts:
            if not set(count.item_ids) <= set(ids):
                raise ValueError(f"{self.id}: {count.code} counts unknown items")
        codes = [r.code for r in (self.age, self.temperature, self.blood_pressure) if r]
        codes += [count.code for count in self.counts]
        if set(codes) & set(ids) or len(set(codes)) != len(codes):
            raise ValueError(f"{self.id}: reason codes collide")

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def parent_of(self, item_id: str) -> Item | None:
        for item in self.items:
            if item_id in item.follow_ups:
                return item
        return None

    @property
    def reason_codes(self) -> tuple[str, ...]:
        """Every reason code this rule set can produce, in display order."""
        codes = [r.code for r in (self.age, self.temperature, self.blood_pressure) if r]
        codes += [item.id for item in self.items if item.effect is not None]
        codes += [count.code for count in self.counts]
        return tuple(codes)


@dataclass(frozen=True)
class Vitals:
    """Vitals as measured at meja 2; ``systolic_2``/``diastolic_2`` are the re-measure."""

    temperature_c: Decimal
    systolic: int
    diastolic: int
    systolic_2: int | None = None
    diastolic_2: int | None = None

    def __post_init__(self) -> None:
        if (self.systolic_2 is None) != (self.diastolic_2 is None):
            raise InvalidInput("blood_pressure_remeasure")

    @property
    def remeasured(self) -> bool:
        return self.systolic_2 is not None and self.diastolic_2 is not None


@dataclass(frozen=True)
class Reason:
    code: str
    outcome: Outcome
    rujuk: bool


@dataclass(frozen=True)
class ScreeningResult:
    rule_set_id: str
    outcome: Outcome
    rujuk: bool
    reasons: tuple[Reason, ...]
    rescreen_date: date | None


# --------------------------------------------------------------------------------------------
# The rule sets

NAKES_2021_01 = RuleSet(
    id="nakes-2021-01",
    title_key="ruleset_nakes_2021_01",
    effective_from=date(2021, 1, 13),
    age=AgeRule(min_age=18, max_age=59, effect=_TIDAK),
    # "Tunda until recovered": screened again from the next day.
    temperature=TemperatureRule(Decimal("37.5"), inclusive=True, effect=_TUNDA_NEXT_DAY),
    blood_pressure=BloodPressureRule(140, 90, remeasure=False, effect=_TIDAK),
    items=(
        Item("covid_confirmed", _TIDAK),
        Item("pregnant_or_breastfeeding", _TIDAK),
        Item("respiratory_7d", _TIDAK),
        Item("household_contact", _TIDAK),
        Item("allergy_after_dose_1", _TIDAK, Applies.DOSE_2),
        Item("blood_disorder_therapy", _TIDAK),
        Item("heart_disease", _TIDAK),
        Item("autoimmune_systemic", _TIDAK),
        Item("kidney_disease", _TIDAK),
        Item("rheumatic_autoimmune", _TIDAK),
        Item("chronic_gut_disease", _TIDAK),
        Item("autoimmune_thyroid", _TIDAK),
        Item("cancer_immunocompromised_transfusion", _TIDAK),
        Item("diabetes", _TIDAK, follow_ups=("diabetes_t2_hba1c_ok",)),
        Item("diabetes_t2_hba1c_ok", waives_parent=True),
        Item("hiv", _TIDAK, follow_ups=("hiv_cd4_ok",)),
        Item("hiv_cd4_ok", waives_parent=True),
        # Asked as "not yet controlled (TB: < 2 weeks of treatment)": no fixed re-screen date.
        Item("lung_disease_uncontrolled", _TUNDA),
    ),
)

_FRAILTY = (
    "frailty_stairs",
    "frailty_fatigue",
    "frailty_illnesses",
    "frailty_walking",
    "frailty_weight_loss",
)

UMUM_2021_02 = RuleSet(
    id="umum-2021-02",
    title_key="ruleset_umum_2021_02",
    effective_from=date(2021, 2, 11),
    temperature=TemperatureRule(Decimal("37.5"), inclusive=False, effect=_TUNDA_NEXT_DAY),
    # "Tunda until controlled": no fixed re-screen date.
    blood_pressure=BloodPressureRule(180, 110, remeasure=True, effect=_TUNDA),
    items=(
        Item("allergy_severe_vaccine", _TUNDA_RUJUK, Applies.DOSE_1),
        Item("allergy_after_dose_1", _TIDAK, Applies.DOSE_2),
        # Until after delivery: no fixed date. Breastfeeding is allowed (not asked).
        Item("pregnant", _TUNDA),
        Item("autoimmune_uncontrolled", _TUNDA),
        Item("blood_immune_treatment", _TUNDA_RUJUK),
        Item("immunosuppressant", _TUNDA_RUJUK),
        Item("heart_disease_breathless", _TUNDA_RUJUK),
        # Recovered less than 3 months ago: screened again after 3 months (90 days).
        Item("covid_recovered_lt_3m", Effect(Outcome.TUNDA, rescreen_days=90)),
        *(Item(item_id, applies=Applies.AGE_60_PLUS) for item_id in _FRAILTY),
    ),
    counts=(CountRule("frailty", _FRAILTY, threshold=3, effect=_TIDAK),),
)

RULE_SETS: Mapping[str, RuleSet] = MappingProxyType(
    {rule_set.id: rule_set for rule_set in (NAKES_2021_01, UMUM_2021_02)}
)

CATEGORIES: tuple[str, ...] = ("nakes", "lansia", "petugas_publik", "umum", "komorbid")


@dataclass(frozen=True)
class RuleSetSelection:
    """From ``effective_from`` on, targets of ``categories`` are screened by ``rule_set_id``."""

    effective_from: date
    categories: frozenset[str]
    rule_set_id: str


RULE_SET_SELECTION: tuple[RuleSetSelection, ...] = (
    RuleSetSelection(date(2021, 1, 13), frozenset({"nakes"}), "nakes-2021-01"),
    RuleSetSelection(
        date(2021, 2, 11),
        frozenset({"lansia", "petugas_publik", "umum", "komorbid"}),
        "umum-2021-02",
    ),
)


def select_rule_set(service_date: date, category: str) -> RuleSet:
    """The rule set for a target of ``category`` screened on ``service_date``.

    The latest selection row in force on that date wins. Raises ``InvalidInput("category")``
    for an unknown category and ``InvalidInput("rule_set_date")`` when no row is in force yet.
    """
    if category not in CATEGORIES:
        raise InvalidInput("category", got=category)
    rows = [row for row in RULE_SET_SELECTION if category in row.categories and row.effective_from <= service_date]
    if not rows:
        raise InvalidInput("rule_set_date", category=category, service_date=service_date)
    return RULE_SETS[max(rows, key=lambda row: row.effective_from).rule_set_id]


# --------------------------------------------------------------------------------------------
# The evaluator


def _check_subject(age: int, dose_number: int) -> None:
    if age < 0:
        raise InvalidInput("age", got=age)
    if dose_number not in (1, 2):
        raise InvalidInput("dose_number", got=dose_number)


def needs_remeasure(rule_set: RuleSet, vitals: Vitals) -> bool:
    """True when the rule set asks for a second blood-pressure reading that is not there yet."""
    rule = rule_set.blood_pressure
    if rule is None or not rule.remeasure or vitals.remeasured:
        return False
    return rule.above(vitals.systolic, vitals.diastolic)


def applicable_items(rule_set: RuleSet, *, age: int, dose_number: int) -> list[Item]:
    """The items to ask, in display order; a follow-up right after its parent.

    Ask a follow-up only when its parent was answered yes.
    """
    _check_subject(age, dose_number)
    return [item for item in rule_set.items if item.applies.matches(age=age, dose_number=dose_number)]


def evaluate(
    rule_set: RuleSet,
    *,
    age: int,
    dose_number: int,
    vitals: Vitals,
    answers: Mapping[str, bool],
    service_date: date,
) -> ScreeningResult:
    """Judge one screening.

    Every applicable item must be answered, and every follow-up of an item answered yes
    (otherwise ``InvalidInput("screening_incomplete", missing=[ids])``; a missing blood-pressure
    re-measure is reported as the id ``blood_pressure_2``). Answers for items that do not apply
    are ignored; ids unknown to the rule set raise ``InvalidInput("screening_unknown_item")``.

    Reasons come in display order (age, temperature, blood pressure, items, counts). The outcome
    is the worst reason's (Lanjut when none). Rujuk is set only when the outcome is Tunda and a
    Tunda reason refers. The re-screen date is the latest ``service_date + rescreen_days`` among
    Tunda reasons with a delay, only when the outcome is Tunda; otherwise None.
    """
    _check_subject(age, dose_number)
    unknown = sorted(set(answers) - {item.id for item in rule_set.items})
    if unknown:
        raise InvalidInput("screening_unknown_item", unknown=unknown)

    asked = applicable_items(rule_set, age=age, dose_number=dose_number)
    missing: list[str] = []
    yes: set[str] = set()
    for item in asked:
        parent = rule_set.parent_of(item.id)
        if parent is not None and not answers.get(parent.id, False):
            continue
        if item.id not in answers:
            missing.append(item.id)
        elif answers[item.id]:
            yes.add(item.id)
    if needs_remeasure(rule_set, vitals):
        missing.append("blood_pressure_2")
    if missing:
        raise InvalidInput("screening_incomplete", missing=missing)

    found: list[tuple[str, Effect]] = []
    if rule_set.age is not None and rule_set.age.finds(age):
        found.append((rule_set.age.code, rule_set.age.effect))
    if rule_set.temperature is not None and rule_set.temperature.finds(vitals.temperature_c):
        found.append((rule_set.temperature.code, rule_set.temperature.effect))
    bp = rule_set.blood_pressure
    if bp is not None:
        if bp.remeasure and vitals.systolic_2 is not None and vitals.diastolic_2 is not None:
            reading = (vitals.systolic_2, vitals.diastolic_2)
        else:
            reading = (vitals.systolic, vitals.diastolic)
        if bp.above(*reading):
            found.append((bp.code, bp.effect))
    for item in asked:
        if item.effect is None or item.id not in yes:
            continue
        if any(rule_set.item(f).waives_parent and f in yes for f in item.follow_ups):
            continue
        found.append((item.id, item.effect))
    for count in rule_set.counts:
        if sum(1 for item_id in count.item_ids if item_id in yes) >= count.threshold:
            found.append((count.code, count.effect))

    outcome = Outcome.worst(*(effect.outcome for _, effect in found))
    tunda = [effect for _, effect in found if effect.outcome is Outcome.TUNDA]
    is_tunda = outcome is Outcome.TUNDA
    delays = [effect.rescreen_days for effect in tunda if effect.rescreen_days is not None]
    return ScreeningResult(
        rule_set_id=rule_set.id,
        outcome=outcome,
        rujuk=is_tunda and any(effect.rujuk for effect in tunda),
        reasons=tuple(Reason(code, e.outcome, e.rujuk) for code, e in found),
        rescreen_date=service_date + timedelta(days=max(delays)) if is_tunda and delays else None,
    )
