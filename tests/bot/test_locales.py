"""All chat text is in the locale files: Indonesian first, English complete, placeholders alike."""

from __future__ import annotations

import re
import string

import pytest

from bot.i18n import Translator, catalog
from core.domain.errors import InvalidNik, NotFound, PermissionDenied


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_english_has_every_indonesian_key_and_no_other() -> None:
    assert set(catalog("en")) == set(catalog("id"))


@pytest.mark.parametrize("key", sorted(catalog("id")))
def test_placeholders_match_between_languages(key: str) -> None:
    assert _fields(catalog("id")[key]) == _fields(catalog("en")[key])


def test_html_in_parameters_is_escaped() -> None:
    t = Translator("id")
    assert t("card.title", name="<script>x</script>") == "<b>&lt;script&gt;x&lt;/script&gt;</b>"


def test_errors_use_the_most_specific_key() -> None:
    t = Translator("id")
    assert "16 angka" in t.error(InvalidNik("length", got=15)) and "15" in t.error(InvalidNik("length", got=15))
    assert t.error(NotFound("nik")) == catalog("id")["error.not_found.nik"]
    # An unknown reason falls back to the error's code.
    assert t.error(PermissionDenied("something_new")) == catalog("id")["error.denied._"]


def test_no_message_is_a_wall_of_text() -> None:
    for key, text in catalog("id").items():
        assert len(text) <= 600, key
        assert not re.search(r"\{[^}]*\s[^}]*\}", text), f"bad placeholder in {key}"
