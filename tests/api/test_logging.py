"""No full NIK or phone number reaches a log line."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.logging import MaskIdentifiers, mask_identifiers


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /api/v1/targets/3273014508900001 200", "3273014508900001"),
        ("nik=3273014508900001;", "4508900001"),
        ("phone +6281234567890 saved", "34567890"),
        ("call 0812-3456-7890 now", "3456-7890"),
        ("hp 62 812 3456 7890", "3456 7890"),
    ],
)
def test_identifiers_are_masked(line: str, secret: str) -> None:
    assert secret not in mask_identifiers(line)


def test_other_numbers_are_left_alone() -> None:
    line = "update 123456789 handled in 12 ms; visit 42; batch AB1234"
    assert mask_identifiers(line) == line


@given(st.from_regex(r"\A[1-9]\d{15}\Z"))
def test_every_sixteen_digit_number_is_masked(nik: str) -> None:
    assert nik[6:] not in mask_identifiers(f"x {nik} y")


def test_the_filter_masks_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.masking")
    logger.addFilter(MaskIdentifiers())
    try:
        with caplog.at_level(logging.INFO, logger="test.masking"):
            logger.info("lookup %s", "3273014508900001")
            try:
                raise ValueError("bad nik 3273014508900001")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "4508900001" not in text
    assert "327301••••••••••" in text
