"""Schemathesis over the OpenAPI schema: whatever it sends, the API never answers with a server error.

Needs the ``schemathesis`` package (a dev dependency); skipped without it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from api.main import create_app  # noqa: E402
from core.config import Settings  # noqa: E402
from core.db.engine import create_engine, create_sessionmaker  # noqa: E402
from core.ports import SystemClock  # noqa: E402
from core.services.context import CoreContext, NullNotifier  # noqa: E402
from core.services.tokens import SCOPES, TokenService  # noqa: E402

EXAMPLES = 40


def _token(url: str) -> str:
    async def main() -> str:
        engine = create_engine(url)
        try:
            ctx = CoreContext(sessions=create_sessionmaker(engine), clock=SystemClock(), notifier=NullNotifier())
            _, clear = await TokenService(ctx).create("schemathesis", SCOPES, ["*"])
            return clear
        finally:
            await engine.dispose()

    return asyncio.run(main())


@pytest.fixture
def server(demo_db_url: str, clock) -> Iterator[str]:
    """The app under uvicorn on a free port, in a thread (its lifespan runs once)."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(
        Settings(database_url=demo_db_url, redis_url=None, telegram_bot_token=None), clock=clock, run_bot=False
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_no_server_errors_anywhere(server: str, demo_db_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    auth = {"Authorization": f"Bearer {_token(demo_db_url)}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        if operation.path.startswith("/sandbox"):
            continue  # another feature's pages
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                for headers in (auth, None):  # with the right token, and as schemathesis generates it
                    response = case.call(base_url=server, headers=headers, timeout=30)
                    case.validate_response(response, checks=[not_a_server_error])

            try:
                check()
            except Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE  # no parameters: nothing invalid to send
            except Exception as exc:  # collect every operation's failure, not only the first
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
