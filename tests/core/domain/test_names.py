"""Names: normalisation, similarity and the match threshold (DOMAIN.md, rule 7)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from core.domain.names import (
    NAME_MATCH_THRESHOLD,
    name_similarity,
    names_match,
    normalize_name,
)

# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

NORMALISED: list[tuple[str, str]] = [
    # titles before and after, comma-separated or not, dotted or not
    ("dr. Siti Nurhaliza, Sp.A", "siti nurhaliza"),
    ("Hj. Nur'aini S.Kep., Ns.", "nuraini"),
    ("Ns. Agus Salim, S.Kep", "agus salim"),
    ("Bd. Ratna Dewi, A.Md.Keb.", "ratna dewi"),
    ("H. Muhammad Yusuf", "muhammad yusuf"),
    ("H Muhammad Yusuf", "muhammad yusuf"),
    ("Haji Rhoma Irama", "rhoma irama"),
    ("Hajjah Siti Fatimah", "siti fatimah"),
    ("Drs. H. Ahmad Dahlan, M.Kes.", "ahmad dahlan"),
    ("Dra. Hj. Siti Fatimah, M.M.", "siti fatimah"),
    ("Prof. Dr. K.H. Ma'ruf Amin", "maruf amin"),
    ("Prof. dr. Budi Santoso, Sp.PD-KGEH, M.Sc., Ph.D.", "budi santoso"),
    ("dr. Andi Wijaya, Sp.A(K)", "andi wijaya"),
    ("dr. Andi Wijaya, Sp.A (K)", "andi wijaya"),
    ("dr. Rina Marlina, Sp.OG", "rina marlina"),
    ("drg. Ayu Lestari", "ayu lestari"),
    ("Ir. Joko Widodo", "joko widodo"),
    ("Sri Wahyuni, S.ST., M.Kes", "sri wahyuni"),
    ("Dewi Anggraini, S.Tr.Keb.", "dewi anggraini"),
    ("Yuli Astuti S. Kep", "yuli astuti"),
    ("Rina Amd.Kep", "rina"),
    ("Amd.Kep Rina", "rina"),
    ("Nining A.Md. Keb.", "nining"),
    ("Apt. Rudi Hartono, S.Farm.", "rudi hartono"),
    ("Nurul Hidayah, S.KM., M.Kes.", "nurul hidayah"),
    ("Fajar Nugroho, S.Gz.", "fajar nugroho"),
    ("Ahmad Dhani, S.Si., M.Sc.", "ahmad dhani"),
    ("Eka Putri, S.Pd.", "eka putri"),
    ("Budi Santoso, S.E., S.H., M.M.", "budi santoso"),
    ("Budi Santoso SE", "budi santoso"),
    ("Budi Santoso, S.T.", "budi santoso"),
    ("Budi Santoso, ST", "budi santoso"),
    ("Ny. Aisyah binti Umar", "aisyah binti umar"),
    ("Tn. Hasan bin Abdullah", "hasan bin abdullah"),
    ("Ns. Dedi Kurniawan, S.Kep., M.Kep.", "dedi kurniawan"),
    ("Bdn. Sri Rahayu, S.Keb.", "sri rahayu"),
    # initials stay; only a standalone H is Haji
    ("M. Rizky Pratama", "m rizky pratama"),
    ("M.Rizky Pratama", "m rizky pratama"),
    ("A. Yani", "a yani"),
    ("S. H. Siregar", "s siregar"),
    ("Hendra Handayani", "hendra handayani"),
    ("Muhammad Hafidz", "muhammad hafidz"),
    # name words that look like titles are kept
    ("St. Aminah", "st aminah"),
    ("Ma Ying Jie", "ma ying jie"),
    ("Sparta Siregar", "sparta siregar"),
    ("Drajat Suhardjo", "drajat suhardjo"),
    ("Irma Suryani", "irma suryani"),
    ("Sri Mulyani", "sri mulyani"),
    # Balinese, Javanese nobility, Bugis, single names
    ("I Gusti Ayu Made", "i gusti ayu made"),
    ("I Made Sudarma", "i made sudarma"),
    ("Ni Luh Putu Sari", "ni luh putu sari"),
    ("Raden Ajeng Kartini", "raden ajeng kartini"),
    ("Andi Mappanyukki", "andi mappanyukki"),
    ("Sukarno", "sukarno"),
    ("SUKARNO", "sukarno"),
    # case, spacing, punctuation, accents
    ("SITI  AMINAH", "siti aminah"),
    ("  siti   aminah  ", "siti aminah"),
    ("Siti Aminah,", "siti aminah"),
    ("Siti Aminah,,", "siti aminah"),
    ("siti\taminah\n", "siti aminah"),
    ("Nur\u2019aini", "nuraini"),
    ("Nur`aini", "nuraini"),
    ("NUR'AINI", "nuraini"),
    ("Siti-Aminah", "siti aminah"),
    ("Désirée Ayu", "desiree ayu"),
    ("ＳＩＴＩ ＡＭＩＮＡＨ", "siti aminah"),  # full-width (NFKC)
    ("Siti Aminah (Ani)", "siti aminah"),
    ("Budi Santoso (Alm.)", "budi santoso"),
    ("Siti Aminah 2", "siti aminah"),
    # nothing left
    ("", ""),
    ("   ", ""),
    ("...", ""),
    ("dr. S.Kep.", ""),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALISED)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


def test_normalisation_table_is_large_enough() -> None:
    assert len(NORMALISED) >= 30


@given(st.text())
@settings(max_examples=500)
def test_normalize_name_is_idempotent_and_total(raw: str) -> None:
    once = normalize_name(raw)
    assert normalize_name(once) == once
    assert once == once.strip()
    assert "  " not in once
    assert all(ch.isalpha() or ch == " " for ch in once)


_NAME_ALPHABET = st.sampled_from(
    [
        "siti",
        "aminah",
        "dr.",
        "S.Kep.,",
        "H.",
        "M.",
        "Hj",
        "Sp.A",
        "nur'aini",
        ",",
        "A.Md.",
        "Keb.",
        "S.",
        "Kep",
        "bin",
        "I",
        "(K)",
        "ST",
        "St.",
        "s",
        "h",
        "-",
        "Ma",
    ]
)


@given(st.lists(_NAME_ALPHABET, max_size=8).map(" ".join))
def test_normalize_name_is_idempotent_on_title_soup(raw: str) -> None:
    once = normalize_name(raw)
    assert normalize_name(once) == once


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------

#: Same person's name: titles, case, spelling variants, word order, a missing word.
MUST_MATCH: list[tuple[str, str]] = [
    ("Siti Aminah", "SITI AMINAH"),
    ("dr. Siti Nurhaliza, Sp.A", "Siti Nurhaliza"),
    ("Hj. Nur'aini S.Kep., Ns.", "NURAINI"),
    ("Bd. Ratna Dewi, A.Md.Keb.", "Ratna Dewi"),
    ("H. Muhammad Yusuf", "Muhammad Yusuf"),
    ("Muhamad Yusuf", "Muhammad Yusuf"),
    ("Mohammad Yusuf", "Muhammad Yusuf"),
    ("Moh. Yusuf", "Muhammad Yusuf"),
    ("Mochamad Arif", "Muhamad Arif"),
    ("M. Rizky Pratama", "Muhammad Rizky Pratama"),
    ("Nurhayati", "Nurhayaty"),
    ("Siti Aminah", "Aminah Siti"),
    ("Siti Nur Aminah", "Siti Aminah"),
    ("Ratna Sari Dewi", "Ratna Dewi"),
    ("I Made Sudarma", "Made Sudarma"),
    ("Soekarno", "Sukarno"),
    ("Djoko Susilo", "Joko Susilo"),
    ("Tjahjo Kumolo", "Cahyo Kumolo"),
    ("Rachmawati", "Rahmawati"),
    ("Dewi Rachmawati", "Dewi Rahmawaty"),
    ("Achmad Fauzi", "Ahmad Fauzi"),
    ("Syafitri Handayani", "Safitri Handayani"),
    ("Fitriyani", "Fitriani"),
    ("Setiyawan Budi", "Setiawan Budi"),
    ("Ramadhan Putra", "Ramadan Putra"),
    ("Dewi Anggraeni", "Dewi Anggraini"),
    ("Novita Sari", "Nofita Sari"),
    ("Nur Aini", "Nuraini"),
    ("Abdul Rahman", "Abdurrahman"),
    ("Kurniawan Saputra", "Kurniawn Saputra"),
    ("Sri Handayani", "Sri Handayan"),
    ("St. Aminah", "Siti Aminah"),
    ("Abd. Rahman Wahid", "Abdul Rahman Wahid"),
    ("Fathimah Azzahra", "Fatimah Azahra"),
    ("Khairul Anwar", "Hairul Anwar"),
    ("Yoesoef Hasan", "Yusuf Hasan"),
    ("Hasan bin Abdullah", "Hasan Bin Abdulah"),
    ("Qomariah", "Komariah"),
    ("Ni Luh Putu Sari", "NI LUH PUTU SARI"),
]

#: Different people's names: one word, often one syllable, differs.
MUST_NOT_MATCH: list[tuple[str, str]] = [
    ("Siti Aminah", "Siti Rahmawati"),
    ("Siti Aisyah", "Siti Aminah"),
    ("Dewi Lestari", "Dewi Lestiani"),
    ("Siti", "Siti Aminah"),
    ("Aminah", "Siti Aminah"),
    ("Muhammad Rizky Pratama", "Muhammad Rizky Saputra"),
    ("Sri Wahyuni", "Sri Wahyuningsih"),
    ("Rina Marlina", "Rini Marlina"),
    ("Putri Ayu", "Putra Ayu"),
    ("Agus Salim", "Agung Salim"),
    ("Hidayat Nur", "Hidayah Nur"),
    ("Nurul Hidayah", "Nurul Hidayati"),
    ("Dewi Anggraini", "Dewa Anggraini"),
    ("Nur Aini", "Nur Ani"),
    ("Budi Santoso", "Budi Susanto"),
    ("Eka Putri", "Eko Putri"),
    ("Yuni Astuti", "Yuli Astuti"),
    ("Yati Suryani", "Yanti Suryani"),
    ("Irma Suryani", "Irma Suryanti"),
    ("Ahmad Fauzi", "Ahmad Fauzan"),
    ("Muhammad Yusuf", "Muhammad Yunus"),
    ("Dian Sastro", "Diana Sastro"),
    ("Susanti", "Susanto"),
    ("Hendra Gunawan", "Hendro Gunawan"),
    ("Rizky Ramadhan", "Rizki Ramadhani"),
    ("Ani Suryani", "Ana Suryani"),
    ("Wahyu Hidayat", "Wahyudi Hidayat"),
    ("Andi Wijaya", "Andika Wijaya"),
    ("I Wayan Sudarma", "I Made Sudarma"),
    ("Fajar Nugroho", "Fajar Nugraha"),
    ("M. Rizky", "R. Rizky"),
    ("M. R.", "Muhammad Rizky"),
    ("Siti Aminah", ""),
    ("dr.", "dr."),
]


def test_match_tables_are_large_enough() -> None:
    assert len(MUST_MATCH) >= 20
    assert len(MUST_NOT_MATCH) >= 15


@pytest.mark.parametrize(("a", "b"), MUST_MATCH)
def test_same_person_matches(a: str, b: str) -> None:
    assert names_match(a, b), name_similarity(a, b)
    assert names_match(b, a)


@pytest.mark.parametrize(("a", "b"), MUST_NOT_MATCH)
def test_different_person_does_not_match(a: str, b: str) -> None:
    assert not names_match(a, b), name_similarity(a, b)
    assert not names_match(b, a)


def test_threshold_lies_in_the_gap_of_the_tables() -> None:
    lowest_match = min(name_similarity(a, b) for a, b in MUST_MATCH)
    highest_no_match = max(name_similarity(a, b) for a, b in MUST_NOT_MATCH)
    assert highest_no_match < NAME_MATCH_THRESHOLD <= lowest_match


@pytest.mark.parametrize("scorer", [fuzz.ratio, fuzz.token_sort_ratio, fuzz.token_set_ratio, fuzz.WRatio])
def test_no_whole_string_scorer_separates_the_tables(scorer: object) -> None:
    """The evidence behind the choice of scorer (see name_similarity's docstring)."""
    assert callable(scorer)
    lowest_match = min(scorer(normalize_name(a), normalize_name(b)) for a, b in MUST_MATCH)
    highest_no_match = max(
        scorer(normalize_name(a), normalize_name(b))
        for a, b in MUST_NOT_MATCH
        if normalize_name(a) and normalize_name(b)
    )
    assert highest_no_match >= lowest_match


@pytest.mark.parametrize(
    ("a", "b", "score"),
    [
        ("Kurniawan", "Kurniawn", 94.1),
        ("Rizky Ramadhan", "Rizki Ramadhani", 93.3),
        ("Irma Suryani", "Irma Suryanti", 93.3),
        ("Dian", "Diana", 88.9),
        ("Hidayat", "Hidayah", 85.7),
        ("Dewi Lestari", "Dewi Lestiani", 80.0),
        ("Rina", "Rini", 75.0),
        ("Siti Nur Aminah", "Siti Aminah", 95.0),
        ("Siti Nur Aminah Putri", "Siti Aminah", 90.0),
        ("M. Rizky Pratama", "Muhammad Rizky Pratama", 95.0),
        ("M. Rizky", "Muhammad Rizky Pratama", 65.0),
        ("M. Rizky Pratama", "Muhammad Rizky Pratama Putra", 90.0),
        ("Siti", "Siti Aminah", 70.0),
        ("M. R.", "Muhammad Rizky", 50.0),
    ],
)
def test_documented_scores(a: str, b: str, score: float) -> None:
    """The figures quoted in name_similarity's docstring."""
    assert name_similarity(a, b) == pytest.approx(score, abs=0.05)


def test_identical_names_score_100() -> None:
    assert name_similarity("Siti Aminah", "siti aminah") == 100.0


def test_empty_names_score_0() -> None:
    assert name_similarity("", "") == 0.0
    assert name_similarity("dr.", "Siti") == 0.0


def test_threshold_is_a_parameter() -> None:
    assert names_match("Dewi Lestari", "Dewi Lestiani", threshold=75.0)
    assert not names_match("Siti Aminah", "Siti Aminah Rahmawati", threshold=100.0)


def test_long_names_are_scored() -> None:
    long_name = "I Gusti Ngurah Made Agung Putra Wijaya Kusumawati"
    assert names_match(long_name, long_name.upper())
    assert names_match(long_name, "I Gusti Ngurah Made Agung Putra Wijaya Kusumawti")
    assert names_match(long_name, "Kusumawati Wijaya Putra Agung Made Ngurah Gusti I")
    assert not names_match(long_name, "I Gusti Ngurah Made Agung Putra Wijaya Santika")


_WORDS = st.sampled_from(["siti", "aminah", "nur", "aini", "muhammad", "m", "rizky", "dewi", "lestari", "i", "made"])


@given(st.lists(_WORDS, max_size=5).map(" ".join), st.lists(_WORDS, max_size=5).map(" ".join))
def test_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    score = name_similarity(a, b)
    assert 0.0 <= score <= 100.0
    assert score == name_similarity(b, a)


@given(st.text(max_size=60), st.text(max_size=60))
def test_similarity_never_raises(a: str, b: str) -> None:
    assert 0.0 <= name_similarity(a, b) <= 100.0
