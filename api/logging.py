"""Logging for the whole process, with NIKs and phone numbers masked in every line.

Code should not log identifiers in the first place; this filter is the second line of defence for what
slips through (a URL with a NIK in an access log, an exception that quotes a value).
"""

from __future__ import annotations

import logging
import re
import sys

# 16 digits not inside a longer number: a NIK, also as people type it (3273 0164 1095 8792, 3273.01.64...:
# one space, dot or dash between any two digits). Keep the region (first 6), hide the rest.
_NIK = re.compile(r"(?<!\d)(\d(?:[ .-]?\d){5})(?:[ .-]?\d){10}(?!\d)")
# Indonesian mobile numbers as people and E.164 write them: +62 8…, 62 8…, 08… (9 to 13 digits, separators allowed).
_PHONE = re.compile(r"(?<![\d+])(\+?62|0)[\s.-]?(8\d{2})[\s.-]?\d{2,4}[\s.-]?\d{2,4}[\s.-]?\d{0,4}(?!\d)")


def mask_identifiers(text: str) -> str:
    text = _NIK.sub(lambda m: re.sub(r"\D", "", m.group(1)) + "•" * 10, text)
    return _PHONE.sub(lambda m: f"{m.group(1)}{m.group(2)}••••", text)


class MaskIdentifiers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_identifiers(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, masked, so that handlers do not format the raw exception again.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = mask_identifiers(formatted)
            record.exc_info = None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskIdentifiers())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own loggers propagate to the root instead of printing unmasked lines themselves.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
