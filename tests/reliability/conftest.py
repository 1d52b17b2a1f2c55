"""Fixtures of the reliability tests: fresh copies of the demo database, several per test when needed."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def demo_db_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh copies of the seeded demo database on one backend (SQLite, then PostgreSQL).

    A test that compares two runs of the same script (single delivery against redelivery) needs two
    databases that start identical; ``demo_db_url`` gives only one.
    """
    backend = request.param
    made: list[str] = []
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_templates")[True]

        def make() -> str:
            path = tmp_path / f"pl-{len(made)}.db"
            shutil.copyfile(template, path)
            made.append(str(path))
            return f"sqlite+aiosqlite:///{path}"

        yield make
        return

    server = request.getfixturevalue("postgres_server")
    template_name = request.getfixturevalue("postgres_templates")[True]

    def make_pg() -> str:
        name = f"r_{uuid.uuid4().hex[:12]}"
        server.create_database(name, template=template_name)
        made.append(name)
        return server.url(name)

    try:
        yield make_pg
    finally:
        for name in made:
            server.drop_database(name)


@pytest.fixture
def demo_sqlite(sqlite_templates: object, tmp_path: Path) -> str:
    """One copy of the seeded SQLite template (the tests about Redis or processes need no PostgreSQL)."""
    path = tmp_path / "pl.db"
    shutil.copyfile(sqlite_templates[True], path)  # type: ignore[index]
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def demo_pg_url(postgres_server: object, postgres_templates: object) -> Iterator[str]:
    """A copy of the seeded PostgreSQL template (for faults that only PostgreSQL can show)."""
    name = f"f_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name, template=postgres_templates[True])  # type: ignore[attr-defined,index]
    try:
        yield postgres_server.url(name)  # type: ignore[attr-defined]
    finally:
        postgres_server.drop_database(name)  # type: ignore[attr-defined]
