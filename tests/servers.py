"""Throwaway PostgreSQL and Redis servers for tests.

Plain Python (no pytest imports) so it can also be used from scripts and benchmarks::

    with PostgresServer() as pg, RedisServer() as rd:
        pg.create_database("frontdesk_test")
        engine = create_async_engine(pg.url("frontdesk_test"))
        redis = Redis.from_url(rd.url)

Each server listens on a free loopback port and keeps everything (data, socket,
pid file, log) in its own temporary directory, removed by ``stop()``.

PostgreSQL refuses to run as root: when running as root the server binaries are
run as the ``postgres`` system user through ``runuser`` (the user is created if
missing); as any other user they run directly.

Binary locations can be overridden with environment variables:

- ``FRONTDESK_TEST_PG_BINDIR``: directory holding initdb, pg_ctl, postgres, psql
  (default: the newest ``/usr/lib/postgresql/*/bin``, else ``PATH``);
- ``FRONTDESK_TEST_REDIS_SERVER``: the redis-server executable (default: ``PATH``);
- ``FRONTDESK_TEST_REDIS_CLI``: the redis-cli executable (default: ``PATH``;
  optional, only used to shut the server down).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "find_missing",
    "free_port",
    "postgres_bindir",
    "redis_cli_executable",
    "redis_server_executable",
]

PG_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "postgres"
LOOPBACK = "127.0.0.1"
# Unix socket paths are limited to 107 bytes; keep temp dirs short.
_MAX_SOCKET_DIR = 80


class ServerUnavailable(RuntimeError):
    """A test server could not be started (binary missing, start failure, timeout)."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _port_accepts(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _describe(title: str, *, proc: subprocess.CompletedProcess | None = None, log: Path | None = None) -> str:
    parts = [title]
    if proc is not None:
        out = "\n".join(x for x in ((proc.stdout or "").strip(), (proc.stderr or "").strip()) if x)
        if out:
            parts.append("--- command output ---\n" + "\n".join(out.splitlines()[-30:]))
    tail = _tail(log)
    if tail:
        parts.append(f"--- tail of {log} ---\n{tail}")
    return "\n".join(parts)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A zombie has exited already. Daemonized servers are re-parented to PID 1,
    # which on some machines reaps zombies only every second or two.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        if done == pid:
            return False
    except ChildProcessError:
        pass
    return True


def _kill_pid(pid: int | None, sig: int = signal.SIGKILL, wait: float = 5.0) -> None:
    if not _pid_alive(pid):
        return
    try:
        os.kill(pid, sig)  # type: ignore[arg-type]
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _make_tempdir(prefix: str, base_dir: str | os.PathLike | None) -> Path:
    base = base_dir
    if base is None:
        base = tempfile.gettempdir()
        if len(base) > _MAX_SOCKET_DIR - 30:
            base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def _run(
    cmd: list[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        timeout=timeout,
        text=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


# Servers still running at interpreter exit are stopped (belt and braces for
# callers that forget, or a session torn down by an exception).
_LIVE: weakref.WeakSet[_Server] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


class _Server:
    name = "server"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------- binaries


def postgres_bindir() -> Path | None:
    """Directory with the PostgreSQL server binaries, or None."""
    override = os.environ.get("FRONTDESK_TEST_PG_BINDIR")
    if override:
        return Path(override)

    def version_key(path: str) -> tuple:
        ver = Path(path).parent.name
        return tuple(int(p) if p.isdigit() else 0 for p in ver.split("."))

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key)
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    return None


def redis_server_executable() -> str | None:
    override = os.environ.get("FRONTDESK_TEST_REDIS_SERVER")
    if override:
        return shutil.which(override)
    return shutil.which("redis-server")


def redis_cli_executable() -> str | None:
    override = os.environ.get("FRONTDESK_TEST_REDIS_CLI")
    if override:
        return shutil.which(override)
    return shutil.which("redis-cli")


def find_missing() -> list[str]:
    """Names of the server binaries that are absent (empty list: all present)."""
    missing: list[str] = []
    bindir = postgres_bindir()
    for name in PG_BINARIES:
        if bindir is None or not os.access(bindir / name, os.X_OK):
            missing.append(name)
    if redis_server_executable() is None:
        missing.append("redis-server")
    return missing


# --------------------------------------------------------------------------- PostgreSQL


def _which_admin(name: str) -> str | None:
    """Find an admin tool even when /usr/sbin is not on PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ensure_postgres_user() -> None:
    try:
        import pwd

        pwd.getpwnam(PG_SYSTEM_USER)
        return
    except KeyError:
        pass
    useradd = _which_admin("useradd")
    if useradd is None:
        raise ServerUnavailable(
            f"PostgreSQL cannot run as root, the {PG_SYSTEM_USER!r} user is missing and 'useradd' was not found"
        )
    proc = _run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER], timeout=30)
    if proc.returncode != 0:
        raise ServerUnavailable(
            _describe(f"PostgreSQL cannot run as root and creating the {PG_SYSTEM_USER!r} user failed", proc=proc)
        )


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster on 127.0.0.1 with trust authentication.

    Attributes after ``start()``: ``host``, ``port``, ``admin_dsn``, ``pid``
    (postmaster), ``directory`` (temp dir), ``data_dir``, ``log_path``, ``bindir``.
    """

    name = "PostgreSQL"

    def __init__(
        self,
        *,
        port: int | None = None,
        bindir: str | os.PathLike | None = None,
        base_dir: str | os.PathLike | None = None,
        startup_timeout: float = 30.0,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.host = LOOPBACK
        self._requested_port = port
        self.port: int = port or 0
        self._bindir_override = Path(bindir) if bindir else None
        self.bindir: Path | None = None
        self._base_dir = base_dir
        self.startup_timeout = startup_timeout
        self.extra_settings = dict(settings or {})
        self.directory: Path | None = None
        self.data_dir: Path | None = None
        self.log_path: Path | None = None
        self.pid: int | None = None
        self._as_postgres = os.geteuid() == 0
        self._runuser: str | None = None
        self.running = False
        self.paused = False
        self.startup_seconds: float | None = None

    # -- public API -----------------------------------------------------------

    @property
    def admin_dsn(self) -> str:
        return self.dsn("postgres")

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq / asyncpg DSN: ``postgresql://postgres@127.0.0.1:PORT/dbname``."""
        return f"postgresql://{PG_SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def url(self, dbname: str, driver: str | None = "asyncpg") -> str:
        """SQLAlchemy URL: ``postgresql+asyncpg://postgres@127.0.0.1:PORT/dbname``."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{PG_SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def start(self) -> PostgresServer:
        if self.running:
            return self
        started = time.monotonic()
        self.bindir = self._bindir_override or postgres_bindir()
        missing = [n for n in PG_BINARIES if self.bindir is None or not os.access(self.bindir / n, os.X_OK)]
        if missing:
            where = self.bindir or "/usr/lib/postgresql/*/bin"
            raise ServerUnavailable(
                f"PostgreSQL binaries not found ({', '.join(missing)} missing in {where}); "
                "install the 'postgresql' package or set FRONTDESK_TEST_PG_BINDIR"
            )
        if self._as_postgres:
            _ensure_postgres_user()
            self._runuser = _which_admin("runuser")
            if self._runuser is None:
                raise ServerUnavailable("running as root but 'runuser' is missing")
        try:
            self._create_cluster()
            attempts = 1 if self._requested_port else 3
            for attempt in range(attempts):
                self.port = self._requested_port or free_port()
                self._write_settings()
                ok, proc = self._pg_ctl_start()
                if ok:
                    break
                log = _tail(self.log_path)
                if attempt + 1 < attempts and "already in use" in log:
                    continue
                raise ServerUnavailable(
                    _describe(f"PostgreSQL failed to start on {self.host}:{self.port}", proc=proc, log=self.log_path)
                )
            self._after_start()
            # A real query, not just pg_ctl's opinion.
            self.psql("select 1", timeout=self.startup_timeout)
        except ServerUnavailable:
            self._cleanup()
            raise
        except Exception as exc:  # timeouts, permission errors...
            msg = _describe(f"PostgreSQL failed to start: {exc!r}", log=self.log_path)
            self._cleanup()
            raise ServerUnavailable(msg) from exc
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop immediately (pg_ctl -m immediate, then SIGKILL by PID) and delete the directory."""
        if self.directory is None:
            return
        self._cleanup()

    def pause(self) -> None:
        """Stop the server (keeping its data) so that connections are refused."""
        if not self.running:
            raise RuntimeError("PostgreSQL server is not running")
        proc = self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        if proc.returncode != 0:
            self._kill()
        self.pid = None  # never signal a stale, possibly reused PID
        self.running = False
        self.paused = True

    def resume(self) -> None:
        """Start the server again on the same port and data directory."""
        if self.running:
            return
        if self.data_dir is None:
            raise RuntimeError("PostgreSQL server was never started")
        ok, proc = self._pg_ctl_start()
        if not ok:
            raise ServerUnavailable(
                _describe(f"PostgreSQL failed to resume on {self.host}:{self.port}", proc=proc, log=self.log_path)
            )
        self._after_start()
        self.paused = False

    def psql(self, sql: str, dbname: str = "postgres", timeout: float = 60.0) -> str:
        """Run SQL with psql (autocommit, stops at the first error); returns stdout."""
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server was never started")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGCONNECT_TIMEOUT="10", PGAPPNAME="frontdesk-tests")
        proc = _run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(dbname),
                "-c",
                sql,
            ],
            timeout=timeout,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}) running {sql!r}: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str, template: str | None = None) -> None:
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template:
            sql += f" TEMPLATE {_quote_ident(template)}"
        self.psql(sql)

    def drop_database(self, name: str) -> None:
        """Drop the database if it exists, terminating any sessions connected to it."""
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def __repr__(self) -> str:
        state = "running" if self.running else ("paused" if self.paused else "stopped")
        return f"<PostgresServer {self.host}:{self.port} {state} pid={self.pid}>"

    # -- internals --------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        if self._as_postgres:
            return [self._runuser or "runuser", "-u", PG_SYSTEM_USER, "--", *args]
        return list(args)

    def _create_cluster(self) -> None:
        self.directory = _make_tempdir("fd-pg-", self._base_dir)
        _LIVE.add(self)
        # The postgres user must be able to enter and write the directory (socket, log).
        os.chmod(self.directory, 0o755)
        if self._as_postgres:
            shutil.chown(self.directory, user=PG_SYSTEM_USER, group=PG_SYSTEM_USER)
        self.data_dir = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        proc = _run(
            self._cmd(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                PG_SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ),
            timeout=120,
            cwd=self.directory,
        )
        if proc.returncode != 0:
            raise ServerUnavailable(_describe("initdb failed", proc=proc))

    def _write_settings(self) -> None:
        assert self.data_dir is not None and self.directory is not None
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        settings.update(self.extra_settings)
        body = "".join(f"{k} = {v}\n" for k, v in settings.items())
        # postgresql.auto.conf is read last and overrides postgresql.conf.
        auto = self.data_dir / "postgresql.auto.conf"
        auto.write_text("# written by tests/servers.py\n" + body)
        if self._as_postgres:
            shutil.chown(auto, user=PG_SYSTEM_USER, group=PG_SYSTEM_USER)

    def _pg_ctl(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        assert self.bindir is not None and self.data_dir is not None
        return _run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args),
            timeout=timeout or self.startup_timeout + 30,
            cwd=self.directory,
        )

    def _pg_ctl_start(self) -> tuple[bool, subprocess.CompletedProcess]:
        proc = self._pg_ctl("start", "-w", "-t", str(int(self.startup_timeout)), "-l", str(self.log_path))
        return proc.returncode == 0, proc

    def _after_start(self) -> None:
        assert self.data_dir is not None
        self.pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        self.running = True

    def _kill(self) -> None:
        pid = self.pid
        if pid is None and self.data_dir is not None:
            try:
                pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
        # SIGQUIT = immediate shutdown of the postmaster and its children; then SIGKILL.
        _kill_pid(pid, signal.SIGQUIT, wait=5.0)
        _kill_pid(pid, signal.SIGKILL, wait=5.0)

    def _cleanup(self) -> None:
        try:
            if self.data_dir is not None and (self.data_dir / "postmaster.pid").exists():
                try:
                    proc = self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "10", timeout=30)
                    if proc.returncode != 0:
                        self._kill()
                except Exception:
                    self._kill()
            if self.pid is not None and _pid_alive(self.pid):
                self._kill()
        finally:
            self.running = False
            self.paused = False
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            _LIVE.discard(self)


# --------------------------------------------------------------------------- Redis


def _redis_command(port: int, *args: str, timeout: float = 2.0) -> str:
    """Send one command over RESP and return the first reply line (e.g. '+PONG')."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(payload)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode(errors="replace")


class RedisServer(_Server):
    """A throwaway redis-server on 127.0.0.1 without persistence.

    Attributes after ``start()``: ``host``, ``port``, ``url``, ``pid``,
    ``directory``, ``log_path``, ``pid_path``.
    """

    name = "Redis"

    def __init__(
        self,
        *,
        port: int | None = None,
        executable: str | None = None,
        cli: str | None = None,
        base_dir: str | os.PathLike | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.host = LOOPBACK
        self._requested_port = port
        self.port: int = port or 0
        self._executable_override = executable
        self._cli_override = cli
        self.executable: str | None = None
        self.cli: str | None = None
        self._base_dir = base_dir
        self.startup_timeout = startup_timeout
        self.directory: Path | None = None
        self.log_path: Path | None = None
        self.pid_path: Path | None = None
        self.pid: int | None = None
        self.running = False
        self.paused = False
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self) -> RedisServer:
        if self.running:
            return self
        started = time.monotonic()
        if self._executable_override:
            self.executable = shutil.which(self._executable_override)
        else:
            self.executable = redis_server_executable()
        if self.executable is None:
            wanted = self._executable_override or os.environ.get("FRONTDESK_TEST_REDIS_SERVER") or "redis-server"
            raise ServerUnavailable(
                f"Redis binary not found: {wanted!r}; install the 'redis-server' package "
                "or set FRONTDESK_TEST_REDIS_SERVER"
            )
        self.cli = shutil.which(self._cli_override) if self._cli_override else redis_cli_executable()
        self.directory = _make_tempdir("fd-redis-", self._base_dir)
        _LIVE.add(self)
        self.log_path = self.directory / "redis.log"
        self.pid_path = self.directory / "redis.pid"
        try:
            attempts = 1 if self._requested_port else 3
            for attempt in range(attempts):
                self.port = self._requested_port or free_port()
                try:
                    self._launch()
                    break
                except ServerUnavailable:
                    if attempt + 1 < attempts and "in use" in _tail(self.log_path):
                        continue
                    raise
        except ServerUnavailable:
            self._cleanup()
            raise
        except Exception as exc:
            msg = _describe(f"Redis failed to start: {exc!r}", log=self.log_path)
            self._cleanup()
            raise ServerUnavailable(msg) from exc
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """``redis-cli shutdown nosave``, then SIGKILL by PID if still alive; delete the directory."""
        if self.directory is None:
            return
        self._cleanup()

    def pause(self) -> None:
        """Shut the server down so that connections are refused.

        Redis runs without persistence, so keys do not survive pause()/resume().
        """
        if not self.running:
            raise RuntimeError("Redis server is not running")
        self._shutdown()
        self.pid = None  # never signal a stale, possibly reused PID
        self.running = False
        self.paused = True

    def resume(self) -> None:
        """Start the server again on the same port."""
        if self.running:
            return
        if self.directory is None:
            raise RuntimeError("Redis server was never started")
        self._launch()
        self.paused = False

    def ping(self) -> bool:
        try:
            return _redis_command(self.port, "PING") == "+PONG"
        except OSError:
            return False

    def command(self, *args: str) -> str:
        """Send one command; returns the first reply line (e.g. '+OK', ':3')."""
        return _redis_command(self.port, *args)

    def flushall(self) -> None:
        reply = _redis_command(self.port, "FLUSHALL")
        if reply != "+OK":
            raise RuntimeError(f"FLUSHALL failed: {reply}")

    def flushdb(self, db: int = 0) -> None:
        # One connection: SELECT then FLUSHDB (pipelined, read both replies).
        payload = b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%d\r\n" % (len(str(db)), db) + b"*1\r\n$7\r\nFLUSHDB\r\n"
        with socket.create_connection((LOOPBACK, self.port), timeout=5) as s:
            s.sendall(payload)
            buf = b""
            while buf.count(b"\r\n") < 2:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        replies = buf.split(b"\r\n")[:2]
        if replies != [b"+OK", b"+OK"]:
            raise RuntimeError(f"FLUSHDB {db} failed: {buf!r}")

    def __repr__(self) -> str:
        state = "running" if self.running else ("paused" if self.paused else "stopped")
        return f"<RedisServer {self.host}:{self.port} {state} pid={self.pid}>"

    # -- internals --------------------------------------------------------------

    def _launch(self) -> None:
        assert self.directory is not None and self.pid_path is not None
        self.pid_path.unlink(missing_ok=True)
        cmd = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--pidfile",
            str(self.pid_path),
            "--logfile",
            str(self.log_path),
            "--dir",
            str(self.directory),
        ]
        proc = _run(cmd, timeout=self.startup_timeout, cwd=self.directory)
        if proc.returncode != 0:
            raise ServerUnavailable(
                _describe(f"redis-server exited with {proc.returncode}", proc=proc, log=self.log_path)
            )
        deadline = time.monotonic() + self.startup_timeout
        pid: int | None = None
        while time.monotonic() < deadline:
            if pid is None:
                try:
                    pid = int(self.pid_path.read_text().strip())
                except (OSError, ValueError):
                    pid = None
            if pid is not None and not _pid_alive(pid):
                break
            if pid is not None and self.ping():
                self.pid = pid
                self.running = True
                return
            tail = _tail(self.log_path, 5)
            if "in use" in tail or "Failed listening" in tail:
                break
            time.sleep(0.01)
        if pid is not None:
            _kill_pid(pid)
        raise ServerUnavailable(
            _describe(f"Redis failed to start on {self.host}:{self.port}", proc=proc, log=self.log_path)
        )

    def _shutdown(self) -> None:
        if self.cli:
            with contextlib.suppress(Exception):
                _run([self.cli, "-h", self.host, "-p", str(self.port), "shutdown", "nosave"], timeout=10)
        elif self.ping():
            with contextlib.suppress(OSError):
                _redis_command(self.port, "SHUTDOWN", "NOSAVE")
        deadline = time.monotonic() + 5
        while _pid_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _kill_pid(self.pid, signal.SIGKILL)

    def _cleanup(self) -> None:
        try:
            if self.pid is not None:
                self._shutdown()
        finally:
            self.running = False
            self.paused = False
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            _LIVE.discard(self)
