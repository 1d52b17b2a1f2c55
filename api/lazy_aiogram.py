"""Import aiogram with the validators of its Telegram types built on first use, not all at import.

``aiogram.types`` declares about 400 pydantic models with ``defer_build=True`` and then, at the end of its
``__init__``, calls ``model_rebuild()`` on every one of them to resolve their forward references: that
builds a pydantic-core validator and serializer for every type, each with its own copy of every type it
nests (``Message`` alone nests most of the API). It is ~110 MB of resident memory in every process that
imports aiogram (aiogram issue 1513), for types a front desk bot never sees (payments, stickers,
business accounts, rich text...).

:func:`defer_type_builds` imports aiogram with that loop skipped and puts the names the loop resolved
forward references in (every type) into each ``aiogram.types`` module, so that pydantic builds a type
the first time it is used (``Update``,
``Message``, ``CallbackQuery`` and the few methods the bot calls, ~10 MB), exactly as ``defer_build``
means. The validators are the same, only built later. The Telegram methods (``aiogram.methods``) were
always built on first use.

It must run before anything imports aiogram, so :mod:`api.main` imports this module first; when aiogram is
already imported it does nothing. ``docs/performance.md`` has the figures.
"""

from __future__ import annotations

import sys
from typing import Any

import pydantic

__all__ = ["defer_type_builds", "deferred"]

_deferred: dict[type[pydantic.BaseModel], Any] = {}


def defer_type_builds() -> bool:
    """Import aiogram with its types' validators deferred; False when aiogram was imported already."""
    if "aiogram" in sys.modules:
        return False
    eager = pydantic.BaseModel.__dict__["model_rebuild"]
    rebuild = eager.__func__

    def remember(cls: type[pydantic.BaseModel], *args: Any, _types_namespace: Any = None, **kwargs: Any) -> Any:
        # Only aiogram.types' own loop passes the whole types namespace; everything else rebuilds as usual.
        if _types_namespace is not None and not args and not kwargs and cls.__module__.startswith("aiogram.types."):
            _deferred[cls] = _types_namespace
            return None
        return rebuild(cls, *args, _types_namespace=_types_namespace, **kwargs)

    pydantic.BaseModel.model_rebuild = classmethod(remember)  # type: ignore[method-assign,assignment]
    try:
        import aiogram  # noqa: F401
    finally:
        pydantic.BaseModel.model_rebuild = eager  # type: ignore[method-assign]
    # A type's forward references ("Chat", "ChatIdUnion": imported under TYPE_CHECKING only) are resolved in
    # its module's namespace, whichever model nests it (an Update, a method, a Response[Message]): give each
    # types module the names that aiogram's loop would have resolved them in. Nothing is replaced.
    namespace = next(iter(_deferred.values()), {})
    for name, module in list(sys.modules.items()):
        if name.startswith("aiogram.types.") and module is not None:
            for key, value in namespace.items():
                module.__dict__.setdefault(key, value)
    return True


def deferred() -> int:
    """How many Telegram types were left to be built on first use."""
    return len(_deferred)


defer_type_builds()
