"""The API app: liveness and readiness, on the embedded default (SQLite, no Redis, no token)."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.main import create_app
from core.config import Settings


async def test_health_and_ready_on_the_embedded_default(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/pl.db", _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            ready = await client.get("/ready")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": "ok"}
        assert app.state.runtime.mode == "offline"


async def test_ready_reports_an_unreachable_redis(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/pl.db",
        redis_url="redis://127.0.0.1:1/0",  # nothing listens on port 1
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["redis"].startswith("unreachable")
