"""The throwaway test servers themselves (tests/servers.py, tests/conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

try:
    from tests.servers import PostgresServer, RedisServer, ServerUnavailable, find_missing
except ImportError:  # pragma: no cover - depends on how pytest was started
    from servers import (  # type: ignore[no-redef]
        PostgresServer,
        RedisServer,
        ServerUnavailable,
        find_missing,
    )


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
async def test_postgres_select_one_on_fresh_database(postgres_server):
    name = unique_name("t_select")
    postgres_server.create_database(name)
    try:
        conn = await asyncpg.connect(postgres_server.dsn(name), timeout=10)
        try:
            assert await conn.fetchval("select 1") == 1
            assert await conn.fetchval("select current_database()") == name
            assert await conn.fetchval("show server_encoding") == "UTF8"
            assert await conn.fetchval("show fsync") == "off"
            assert await conn.fetchval("show max_connections") == "200"
            assert await conn.fetchval("select $1::text", "Ñoño Śląsk") == "Ñoño Śląsk"
        finally:
            await conn.close()
    finally:
        postgres_server.drop_database(name)
    admin = await asyncpg.connect(postgres_server.admin_dsn, timeout=10)
    try:
        assert await admin.fetchval("select count(*) from pg_database where datname = $1", name) == 0
    finally:
        await admin.close()


@pytest.mark.postgres
def test_postgres_urls(postgres_server):
    port = postgres_server.port
    assert postgres_server.host == "127.0.0.1"
    assert postgres_server.admin_dsn == f"postgresql://postgres@127.0.0.1:{port}/postgres"
    assert postgres_server.url("db1") == f"postgresql+asyncpg://postgres@127.0.0.1:{port}/db1"
    assert postgres_server.url("db1", driver="psycopg") == (f"postgresql+psycopg://postgres@127.0.0.1:{port}/db1")


@pytest.mark.postgres
async def test_postgres_sqlalchemy_url_works(postgres_server):
    sqlalchemy_asyncio = pytest.importorskip("sqlalchemy.ext.asyncio")
    from sqlalchemy import text

    name = unique_name("t_sqla")
    postgres_server.create_database(name)
    engine = sqlalchemy_asyncio.create_async_engine(postgres_server.url(name))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select current_database()"))).scalar() == name
    finally:
        await engine.dispose()
        postgres_server.drop_database(name)


@pytest.mark.postgres
async def test_postgres_template_and_forced_drop(postgres_server):
    template, copy = unique_name("t_tpl"), unique_name("t_copy")
    postgres_server.create_database(template)
    try:
        conn = await asyncpg.connect(postgres_server.dsn(template), timeout=10)
        await conn.execute("create table visit (id int primary key, name text)")
        await conn.execute("insert into visit values (1, 'Budi')")
        await conn.close()

        postgres_server.create_database(copy, template=template)
        conn = await asyncpg.connect(postgres_server.dsn(copy), timeout=10)
        assert await conn.fetchval("select name from visit where id = 1") == "Budi"
        # Dropping a database with a session still open needs WITH (FORCE).
        postgres_server.drop_database(copy)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("select 1")
        await conn.close(timeout=1)
    finally:
        postgres_server.drop_database(copy)
        postgres_server.drop_database(template)
    # Dropping a database that does not exist is not an error.
    postgres_server.drop_database(copy)


@pytest.mark.postgres
async def test_postgres_pause_and_resume(private_postgres_server):
    server = private_postgres_server
    port, dsn = server.port, server.admin_dsn
    conn = await asyncpg.connect(dsn, timeout=10)
    await conn.execute("create table kept (v int); insert into kept values (42)")
    await conn.close()

    server.pause()
    try:
        with pytest.raises((OSError, asyncpg.PostgresError, asyncio.TimeoutError)):
            await asyncpg.connect(dsn, timeout=3)
    finally:
        server.resume()

    assert server.port == port
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        assert await conn.fetchval("select v from kept") == 42  # same data directory
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- Redis


@pytest.mark.redis
async def test_redis_ping_set_get(redis_url, redis_server):
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        await client.set("frontdesk:greeting", "Selamat pagi")
        assert await client.get("frontdesk:greeting") == b"Selamat pagi"
    finally:
        await client.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("run", [1, 2])
async def test_redis_url_starts_clean(redis_url, run):
    # Whichever run comes second proves the first run's key was flushed.
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set(f"leftover:{run}", "x")
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_pause_and_resume(private_redis_server):
    server = private_redis_server
    port, url = server.port, server.url

    server.pause()
    try:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            with pytest.raises((aioredis.ConnectionError, OSError, asyncio.TimeoutError)):
                await client.ping()
        finally:
            await client.aclose()
    finally:
        server.resume()

    assert server.port == port
    client = aioredis.Redis.from_url(url)
    try:
        assert await client.ping() is True
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


# ----------------------------------------------------------------------------- errors


def test_missing_binaries_raise_server_unavailable(monkeypatch, tmp_path):
    with pytest.raises(ServerUnavailable, match=r"redis-server|Redis binary not found"):
        RedisServer(executable=str(tmp_path / "no-redis-server")).start()
    with pytest.raises(ServerUnavailable, match="binaries not found"):
        PostgresServer(bindir=tmp_path).start()

    monkeypatch.setenv("FRONTDESK_TEST_REDIS_SERVER", str(tmp_path / "no-redis-server"))
    monkeypatch.setenv("FRONTDESK_TEST_PG_BINDIR", str(tmp_path))
    assert find_missing() == ["initdb", "pg_ctl", "postgres", "psql", "redis-server"]


@pytest.mark.redis
def test_redis_start_failure_includes_log_tail():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            RedisServer(port=port).start()
        except ServerUnavailable as exc:
            message = str(exc)
        else:  # pragma: no cover
            pytest.fail("redis-server started on a port that is in use")
    if "not found" in message:
        pytest.skip(message)  # binary missing: covered by the CI rule in conftest
    assert f"127.0.0.1:{port}" in message
    assert "in use" in message  # from the tail of the server's log
