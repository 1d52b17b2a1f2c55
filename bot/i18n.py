"""All user-facing text lives in ``bot/locales/*.toml``: Bahasa Indonesia first, English complete.

Keys are dotted paths (``start.stranger``). Parameters are HTML-escaped before they are filled in,
since messages are sent with HTML formatting and names come from people.
"""

from __future__ import annotations

import html
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from core.domain.errors import FrontdeskError

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LOCALE = "id"
SUPPORTED = ("id", "en")


def _flatten(prefix: str, table: Mapping[str, Any], out: dict[str, str]) -> None:
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(path, value, out)
        else:
            out[path] = str(value)


@cache
def catalog(locale: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(LOCALES_DIR.glob(f"{locale}*.toml")):
        with path.open("rb") as fh:
            _flatten("", tomllib.load(fh), out)
    return out


class Safe(str):
    """A parameter that is already HTML (a rendered fragment); it is not escaped again."""


def pick_locale(preferred: str | None) -> str:
    if preferred and preferred[:2].lower() in SUPPORTED:
        return preferred[:2].lower()
    return DEFAULT_LOCALE


class Translator:
    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in SUPPORTED else DEFAULT_LOCALE
        self._own = catalog(self.locale)
        self._fallback = catalog(DEFAULT_LOCALE)

    def _lookup(self, key: str) -> str | None:
        # A key that is also a table (``error.invalid`` with ``error.invalid.nik`` below it) keeps its
        # own text under ``_``.
        for k in (key, f"{key}._"):
            text = self._own.get(k) or self._fallback.get(k)
            if text is not None:
                return text
        return None

    def has(self, key: str) -> bool:
        return self._lookup(key) is not None

    def __call__(self, key: str, **params: Any) -> str:
        text = self._lookup(key)
        if text is None:
            raise KeyError(f"missing locale key {key!r}")
        if not params:
            return text
        safe = {k: v if isinstance(v, Safe) else html.escape(str(v), quote=False) for k, v in params.items()}
        return text.format(**safe)

    def error(self, err: FrontdeskError) -> str:
        """The message for a typed error: the most specific key that exists wins."""
        key = err.key
        while key:
            if self.has(f"error.{key}"):
                return self(f"error.{key}", **err.params)
            key = key.rpartition(".")[0]
        return self("error.generic")


@cache
def translator(locale: str) -> Translator:
    return Translator(locale)
