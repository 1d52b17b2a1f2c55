"""Person names: normalisation and fuzzy comparison (DOMAIN.md, rule 7).

A name typed at the desk ("dr. Siti Nurhaliza, Sp.A") and the name a reference source holds
("SITI NURHALIZA") must compare equal, and "Siti Aminah" must not pass for "Siti Rahmawati".

Two steps:

* :func:`normalize_name` is the canonical form: folded case and accents, no punctuation, single
  spaces, and no titles (academic, professional, religious, honorific). The title lists are data
  (:data:`TITLES`, :data:`TITLES_MARKED`, :data:`SPECIALIST_TITLES`).
* :func:`name_similarity` scores two names 0-100 word by word (see its docstring for the scorer
  and :data:`NAME_MATCH_THRESHOLD`), and :func:`names_match` applies the threshold.

Pure code: no I/O.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rapidfuzz.distance import Indel

__all__ = [
    "INITIALS_ONLY_CAP",
    "INITIAL_SCORE",
    "MISSING_WORD_PENALTY",
    "MISSING_WORD_PENALTY_SINGLE",
    "NAME_ALIASES",
    "NAME_MATCH_THRESHOLD",
    "SPECIALIST_TITLES",
    "SPELLING_FOLDS",
    "TITLES",
    "TITLES_MARKED",
    "TITLE_GROUPS",
    "name_similarity",
    "names_match",
    "normalize_name",
]

# --------------------------------------------------------------------------------------------
# Title data. A title is written as its letters only, in lower case: "A.Md.Keb." -> "amdkeb".
# The normaliser recognises a title however it is dotted or spaced ("S.Kep", "S. Kep.", "SKep").
# --------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Titles removed wherever they stand, by kind. None of these is a name word in Indonesia.
TITLE_GROUPS: Final[dict[str, str]] = {
    "professional (physician, dentist, vet, nurse, midwife, pharmacist)": "dr drg drh ns ners bd bdn apt",
    "academic (professor, doctorate, engineer, old bachelor Drs./Dra.)": "prof ir drs dra phd dphil",
    "diploma III (ahli madya)": (
        "amd amdkeb amdkep amdkes amdgz amdfarm amdak amdrad amdrmik amdkl amdkg amdft amdokt amdtw amdkom"
        " amdpk amdanaf amk amkeb amg amf amkl amak amkg amft amrad"
    ),
    "diploma IV (sarjana terapan)": "sst ssit strkeb strkep strkes strgz strft strak strrad",
    "bachelor (sarjana)": (
        "skep sked skeb skm sfarm sgz sgizi ssi spd se sh ssos sag spsi skom skg sft skes sip shum sak stp"
        " spdi sthi sei sap sikom sds ssn spt ssy sstat"
    ),
    "master (magister)": (
        "mkes mkep mkeb mkm mm msc msi mpd mh mph mbiomed mgizi mfarm mepid mkom mtrkeb mtrkep mpsi"
        " mked mhum mag mmr mhkes mba mtr mkn msiepid msimed mmed"
    ),
    "religious (Haji, Hajjah, Kyai Haji, Ustadz, Pendeta, Suster)": (
        "h hj haji hajjah kh kyai ust ustadz ustaz ustadzah ustazah pdt sr"
    ),
    "honorifics of clinical records (Nyonya, Tuan, Nona, Saudara/i, Bapak, Ibu)": "ny tn nn sdr sdri bpk bp ibu bapak",
}
TITLES: Final[frozenset[str]] = _words(" ".join(TITLE_GROUPS.values()))

#: Titles that are also name words or common abbreviations of names ("St." is often "Siti";
#: "Ma" is a Chinese-Indonesian surname): removed only when written with an inner dot
#: ("S.T.", "M.A.") or standing after a comma ("Budi, ST").
TITLES_MARKED: Final[frozenset[str]] = _words("st ma mt md mp mak mars")

#: Medical specialist titles (Sp.A, Sp.PD, Sp.OG, ...). Any dotted "Sp." word is a specialist
#: title whatever follows ("Sp.PD-KGEH", "Sp.A(K)"); this list covers the undotted spellings.
SPECIALIST_TITLES: Final[frozenset[str]] = _words(
    "spa spak sppd spog spb spbs spbp spbprek spbtkv spbm spbd spjp spm spkk spdv spdve sptht spthtkl spn"
    " spkj sprad sppk span spp spu spot spok sps spf spfk spgk spkfr spmk spem spkn sppa spkg spkga spbmm"
    " spperio spprost spkon spand spmikro spkp spkl spparu"
)

_MAX_TITLE_PIECES: Final = 5  # "S.Tr.Keb." is 3 pieces, "A.Md.Keb." 3, "M.Si.Med." 3
_APOSTROPHES: Final = re.compile("['`\u00b4\u02b9\u02bb\u02bc\u02bd\u2018\u2019\u2032\uff07]")
_PARENTHESIS: Final = re.compile(r"\([^()]*\)")  # "(K)", "(Alm.)", a nickname "(Ucok)"
_WORD_SEPARATORS: Final = re.compile(r"[\s;]+")
_NORMALISE_MAX_PASSES: Final = 8
_DOTTED_SPECIALIST: Final = re.compile(r"sp\.\W*[^\W\d_]")


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str  # letters only
    word: int  # index of the whitespace-separated word it came from
    after_comma: bool  # stands after the first comma (the suffix-title part)
    starts_word: bool
    ends_word: bool


def _fold(raw: str) -> str:
    """NFKC, case fold, accents stripped; apostrophes dropped (they never split a word)."""
    text = _APOSTROPHES.sub("", raw)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _APOSTROPHES.sub("", text)
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", text)


def _split_letters(word: str) -> list[str]:
    """The runs of letters in ``word``; anything else (dots, dashes, digits) separates."""
    pieces: list[str] = []
    current: list[str] = []
    for ch in word:
        if ch.isalpha():
            current.append(ch)
        elif current:
            pieces.append("".join(current))
            current = []
    if current:
        pieces.append("".join(current))
    return pieces


def _pieces(text: str) -> list[_Piece]:
    out: list[_Piece] = []
    after_comma = False
    word_index = 0
    for chunk in text.split(","):
        for word in _WORD_SEPARATORS.split(chunk):
            letters = _split_letters(word)
            if not letters:
                continue
            if _DOTTED_SPECIALIST.match(word):
                # "Sp.PD-KGEH", "Sp.A(K)": a dotted specialist title, whatever follows.
                word_index += 1
                continue
            last = len(letters) - 1
            out.extend(_Piece(p, word_index, after_comma, k == 0, k == last) for k, p in enumerate(letters))
            word_index += 1
        after_comma = True
    return out


def _is_title(span: Sequence[_Piece]) -> bool:
    key = "".join(p.text for p in span)
    one_word = len({p.word for p in span}) == 1
    after_comma = all(p.after_comma for p in span)
    if not one_word:
        if not (span[0].starts_word and span[-1].ends_word):
            return False  # across words only whole words: "S. Kep.", never "dr. S|.Kep"
        if len(key) < 3 and not after_comma:
            return False  # initials in separate words ("S. H. Siregar") are not "S.H."
    if len(key) == 1:
        return key == "h"  # "H." is Haji; any other single letter is an initial ("M. Rizky")
    if key in TITLES or key in SPECIALIST_TITLES:
        return True
    if key in TITLES_MARKED:
        return (len(span) > 1 and one_word) or after_comma
    return False


def _normalise_once(text: str) -> str:
    text = _PARENTHESIS.sub(" ", _fold(text))
    pieces = _pieces(text)
    kept: list[str] = []
    i = 0
    while i < len(pieces):
        for j in range(min(len(pieces), i + _MAX_TITLE_PIECES), i, -1):
            if _is_title(pieces[i:j]):
                i = j
                break
        else:
            kept.append(pieces[i].text)
            i += 1
    return " ".join(kept)


def normalize_name(raw: str) -> str:
    """The canonical form of a person's name, for comparison (never for display).

    NFKC, case fold, accents stripped; apostrophes dropped inside a word ("Nur'aini" ->
    "nuraini"); every other non-letter separates words; parenthesised remarks ("(K)", "(Alm.)",
    a nickname) dropped; titles removed wherever they stand, dotted or not, before or after the
    name, comma-separated or not ("dr. Siti Nurhaliza, Sp.A" -> "siti nurhaliza").

    A single letter is an initial and is kept ("M. Rizky Pratama" -> "m rizky pratama"), except
    a standalone "H"/"H.", which is the Haji title. Name particles stay: "bin", "binti", the
    Balinese "I"/"Ni", and nobility ("Raden", "Ajeng", "Andi", "Tengku"), since they are part
    of the registered name.

    Idempotent: the result normalises to itself.
    """
    text = raw
    for _ in range(_NORMALISE_MAX_PASSES):
        again = _normalise_once(text)
        if again == text:
            break
        text = again
    return text


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------

#: Score at or above which two names are taken to be the same person's name (see
#: :func:`name_similarity` for the evidence).
NAME_MATCH_THRESHOLD: Final[float] = 94.0

#: Penalty per word of the longer name that has no counterpart in the shorter one, when the
#: shorter name has at least two full words ("Siti Aminah" vs "Siti Nur Aminah").
MISSING_WORD_PENALTY: Final[float] = 5.0
#: Penalty per unmatched word when the shorter name has a single full word ("Siti" vs
#: "Siti Aminah"): one common word is no evidence of the same person.
MISSING_WORD_PENALTY_SINGLE: Final[float] = 30.0
#: Score of an initial against a word with that first letter ("M." vs "Muhammad").
INITIAL_SCORE: Final[float] = 95.0
#: Cap when the shorter name is initials only ("M. R." vs "Muhammad Rizky").
INITIALS_ONLY_CAP: Final[float] = 50.0

#: Whole-word spellings of one name, mapped to one form before comparison. "Muhammad" is the
#: most common Indonesian name word and is spelt and abbreviated in a dozen ways on KTPs.
NAME_ALIASES: Final[dict[str, str]] = {
    **dict.fromkeys(
        (
            "muhamad",
            "muhammad",
            "muhammed",
            "muhamed",
            "mohamad",
            "mohammad",
            "mohammed",
            "mohamed",
            "mochamad",
            "mochammad",
            "muchamad",
            "muchammad",
            "mokhamad",
            "mokhammad",
            "mukhamad",
            "mukhammad",
            "muhamat",
            "muhammat",
            "moh",
            "muh",
            "mhd",
            "moch",
            "much",
            "mochd",
            "muhd",
            "mohd",
        ),
        "muhammad",
    ),
    "abd": "abdul",
    "st": "siti",
}

#: Spelling folds applied to each word before comparison, in order: the old Dutch-based
#: spelling (before 1972: oe, dj, tj, sj, ch) and common variants (kh/h, dh/d, th/t, y/i,
#: doubled letters). Different names rarely differ only by these.
SPELLING_FOLDS: Final[tuple[tuple[str, str], ...]] = (
    ("oe", "u"),
    ("ae", "ai"),
    ("dj", "j"),
    ("tj", "c"),
    ("hj", "hy"),
    ("sj", "sy"),
    ("sy", "s"),
    ("ch", "h"),
    ("kh", "h"),
    ("dh", "d"),
    ("th", "t"),
    ("ph", "f"),
    ("q", "k"),
    ("v", "f"),
    ("y", "i"),
)
_DOUBLED: Final = re.compile(r"(.)\1+")
_EXACT_ALIGNMENT_MAX_WORDS: Final = 6


def _spelling_key(word: str) -> str:
    word = NAME_ALIASES.get(word, word)
    for old, new in SPELLING_FOLDS:
        word = word.replace(old, new)
    return _DOUBLED.sub(r"\1", word)


@dataclass(frozen=True, slots=True)
class _Word:
    text: str  # normalised
    key: str  # spelling key

    @property
    def initial(self) -> bool:
        return len(self.text) == 1


def _word(text: str) -> _Word:
    return _Word(text, _spelling_key(text))


def _word_score(a: _Word, b: _Word) -> float:
    if a.key == b.key:
        return 100.0
    if a.initial or b.initial:
        letter, full = (a, b) if a.initial else (b, a)
        if full.text.startswith(letter.text) or full.key.startswith(letter.key):
            return 100.0 if full.initial else INITIAL_SCORE
        return 0.0
    return float(Indel.normalized_similarity(a.key, b.key) * 100.0)


def _align(short: Sequence[_Word], long: Sequence[_Word]) -> float:
    """Best one-to-one assignment of ``short`` words into ``long``: (worst pair, penalties)."""
    matrix = [[_word_score(s, w) for w in long] for s in short]
    best = (-1.0, -1.0)
    if len(long) <= _EXACT_ALIGNMENT_MAX_WORDS:
        for chosen in itertools.permutations(range(len(long)), len(short)):
            scores = [matrix[i][j] for i, j in enumerate(chosen)]
            best = max(best, (min(scores), sum(scores)))
    else:  # unusually long names: greedy, best pairs first
        pairs = sorted(
            ((matrix[i][j], i, j) for i in range(len(short)) for j in range(len(long))),
            key=lambda t: (-t[0], *sorted((short[t[1]].text, long[t[2]].text))),
        )
        used_s: set[int] = set()
        used_l: set[int] = set()
        scores = []
        for score, i, j in pairs:
            if i not in used_s and j not in used_l:
                used_s.add(i)
                used_l.add(j)
                scores.append(score)
        best = (min(scores), sum(scores))
    worst = best[0]
    full_words = sum(1 for w in short if not w.initial)
    if full_words == 0 or all(w.initial for w in long):
        return min(worst, INITIALS_ONLY_CAP)
    missing = len(long) - len(short)
    penalty = MISSING_WORD_PENALTY if full_words >= 2 else MISSING_WORD_PENALTY_SINGLE
    return max(0.0, worst - penalty * missing)


def _joined_variants(words: Sequence[_Word]) -> list[list[_Word]]:
    """``words`` and each reading with two neighbours joined ("nur aini" -> "nuraini")."""
    variants = [list(words)]
    if len(words) <= _EXACT_ALIGNMENT_MAX_WORDS:
        for i in range(len(words) - 1):
            joined = _word(words[i].text + words[i + 1].text)
            variants.append([*words[:i], joined, *words[i + 2 :]])
    return variants


def name_similarity(a: str, b: str) -> float:
    """Similarity 0-100 of two names, after :func:`normalize_name`; symmetric.

    Scorer: word alignment over rapidfuzz's Indel similarity (``fuzz.ratio`` of two words).

    1. Both names are normalised and split into words; each word gets a spelling key: known
       aliases (Muhammad, Mohammad, Moh., Mhd. -> one form; "Abd." -> "Abdul"; "St." ->
       "Siti"), old-spelling and variant folds (Soekarno/Sukarno, Djoko/Joko,
       Rachmawati/Rahmawati, Nurhayaty/Nurhayati), doubled letters collapsed
       (Muhamad/Muhammad).
    2. The words of the shorter name are assigned one-to-one to words of the longer one
       (order free: "Siti Aminah" = "Aminah Siti"), maximising the *worst* pair. A pair scores
       rapidfuzz ``Indel.normalized_similarity`` x 100 of the keys; an initial scores 95
       against a word starting with its letter ("M." vs "Muhammad").
    3. The score is that worst pair, minus 5 per word of the longer name left without a
       counterpart (a missing middle name, the Balinese "I"), or minus 30 each when the shorter
       name has a single full word ("Siti" vs "Siti Aminah" is no evidence). Initials alone
       are capped at 50. Joining two neighbouring words ("Nur Aini" / "Nuraini",
       "Abdul Rahman" / "Abdurrahman") is tried too; the best reading counts.

    Why the worst word rather than a whole-string ratio: in Indonesia different people
    sharing a name differ in one word, often one syllable, and a whole-string ratio dilutes
    that word by the shared ones. Evidence, the match table of
    ``tests/core/domain/test_names.py`` (39 pairs that must match, 32 non-empty pairs that must
    not): the lowest score of a must-match pair against the highest of a must-not-match pair.

    =========================  ======================  ==========================================
    scorer                     lowest "must match"     highest "must not match"
    =========================  ======================  ==========================================
    ``fuzz.ratio``             54.5 Siti A./Aminah S.  96.0 Yati Suryani/Yanti Suryani
    ``fuzz.token_sort_ratio``  48.0 Tjahjo/Cahyo K.    96.0 Yati Suryani/Yanti Suryani
    ``fuzz.token_set_ratio``   53.3 Nur Aini/Nuraini   100  Siti/Siti Aminah
    ``fuzz.WRatio``            75.0 Yoesoef/Yusuf H.   96.0 Yati Suryani/Yanti Suryani
    same four, on the          >= 53.3 (WRatio 85.5,   >= 96.3 Rizky Ramadhan/Rizki Ramadhani
    spelling keys of step 1    Ratna Sari Dewi/R. D.)
    this scorer                94.1 Kurniawan/Kurniawn 93.3 Rizky Ramadhan/Rizki Ramadhani
    =========================  ======================  ==========================================

    No whole-string rapidfuzz scorer separates the table at any threshold, even after the
    spelling folds; this one does, and the threshold sits in its gap.

    Threshold 94 (:data:`NAME_MATCH_THRESHOLD`). After the spelling folds, what is left is
    typing. One Indel edit in a word of n letters scores 2n/(2n+1) for a dropped or doubled
    letter and (n-1)/n for a changed one, so at 94 only a dropped/added letter in a word of
    nine letters or more passes (Kurniawan/Kurniawn 94.1, Handayani/Handayan 94.1). Everything
    by which different people's names differ stays below: a changed letter in a short name
    (Rina/Rini 75, Putri/Putra 80, Dewi Lestari/Dewi Lestiani 80, Hidayat/Hidayah 85.7,
    Ani/Aini 85.7) and an added syllable ending (Dian/Diana 88.9, Yati/Yanti 88.9,
    Ramadhan/Ramadhani 93.3, Suryani/Suryanti 93.3). One missing word passes when the rest is
    exact (95); two do not (90). An initial scores 95, so "M. Rizky Pratama" passes for
    "Muhammad Rizky Pratama", an initial plus a missing word does not. Erring strict is cheap:
    a name that does not match is not rejected, the correction goes to the Dinkes admin's
    queue (rule 7); and birth date and sex are compared exactly beside it.
    """
    words_a = [_word(w) for w in normalize_name(a).split()]
    words_b = [_word(w) for w in normalize_name(b).split()]
    if not words_a or not words_b:
        return 0.0
    if [w.key for w in words_a] == [w.key for w in words_b]:
        return 100.0
    if len(words_a) == len(words_b):
        return _align(words_a, words_b)
    short, long = (words_a, words_b) if len(words_a) < len(words_b) else (words_b, words_a)
    # Only the longer name may join two words, to meet a word written as one in the shorter.
    return max(_align(short, variant) for variant in _joined_variants(long))


def names_match(a: str, b: str, threshold: float = NAME_MATCH_THRESHOLD) -> bool:
    """Whether ``a`` and ``b`` are the same person's name (:func:`name_similarity` >= threshold)."""
    return name_similarity(a, b) >= threshold
