"""Build the two reference sources from the settings (called once, by the composition root).

Each source independently: HTTP when its base URL is set (``JKN_BASE_URL``, ``DUKCAPIL_BASE_URL``,
with ``*_API_KEY``), otherwise the embedded SQL table filled by ``seed-demo``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.domain.reference import Source
from core.ports import ReferenceSource
from core.references.http import HttpReferenceSource
from core.references.sql import SqlReferenceSource, reader_engine

__all__ = ["build_reference_sources", "close_reference_sources"]


def build_reference_sources(settings: Settings, engine: AsyncEngine) -> tuple[ReferenceSource, ...]:
    """The JKN master file and Dukcapil, in that order. Builds no connection until first use."""
    out: list[ReferenceSource] = []
    for source, base_url, api_key in (
        (Source.JKN, settings.jkn_base_url, settings.jkn_api_key),
        (Source.DUKCAPIL, settings.dukcapil_base_url, settings.dukcapil_api_key),
    ):
        if base_url:
            key = api_key.get_secret_value() if api_key is not None else None
            out.append(HttpReferenceSource(source, base_url, key, settings.reference_timeout_seconds))
        else:
            reader, owned = reader_engine(engine)
            out.append(SqlReferenceSource(reader, source, owns_engine=owned))
    return tuple(out)


async def close_reference_sources(sources: tuple[ReferenceSource, ...]) -> None:
    """Close HTTP clients and reader engines (at shutdown, before PL's engine is disposed)."""
    for source in sources:
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
