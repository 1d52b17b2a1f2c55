"""The memory of the real serving process: ``python -m bench.memory [--targets N] [--visits N] [--env K=V]``.

Seeds a fresh SQLite file (``frontdesk seed-demo``), starts ``frontdesk serve`` exactly as an operator
would (embedded database, no token: the sandbox is on), and reads ``VmRSS``, ``VmHWM`` (peak) and the
thread count from ``/proc/<pid>/status``:

* right after start-up (``/health`` answers);
* after traffic: complete desk visits driven through the sandbox's HTTP API (the real dispatcher, the
  real handlers and core): meja 1 looks a target up by ticket (every fifth by NIK) and registers the
  arrival, meja 2 opens the screening, types temperature and blood pressure and saves, meja 4 opens
  the vaccination, picks the product, types the batch and the NIK code. The 30-minute observation is
  not waited for (the server runs on the real clock).

One JSON object goes to stdout. ``--env MALLOC_ARENA_MAX=8`` and the like compare settings;
``--targets`` shows that the figures are flat in the size of the database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRONTDESK = Path(sys.executable).with_name("frontdesk")
MEJA1, MEJA2, MEJA4 = 910001, 910002, 910004
FASKES = "3273P001"


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB and the thread count of a running process."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key.lower() + "_mb"] = round(int(value.split()[0]) / 1024, 1)
            elif key == "Threads":
                out["threads"] = int(value)
    return out


class Client:
    """The sandbox's JSON API, as the page uses it."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.requests = 0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("x-sandbox", "1")
        if data is not None:
            req.add_header("content-type", "application/json")
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


class Chat:
    def __init__(self, client: Client, telegram_id: int) -> None:
        self.client, self.id = client, telegram_id
        self.messages: dict[int, dict[str, Any]] = {}
        self.version = 0
        self.client.call("POST", f"/sandbox/api/chats/{telegram_id}/open", {"lang": "id"})
        self._sync()

    def _sync(self) -> None:
        _, snap = self.client.call("GET", f"/sandbox/api/chats/{self.id}/updates?after={self.version}&wait=0")
        for m in snap["messages"]:
            self.messages[m["id"]] = m
        self.version = snap["version"]

    def send(self, text: str) -> None:
        self.client.call("POST", f"/sandbox/api/chats/{self.id}/messages", {"text": text})
        self._sync()

    def find(self, prefix: str, label: str = "", *, last: bool = False) -> tuple[int, str] | None:
        """The newest live button whose callback data starts with ``prefix`` (and whose label has ``label``);
        ``last``: on the chat's newest message only."""
        for m in sorted(self.messages.values(), key=lambda m: -m["pos"])[: 1 if last else None]:
            if m["deleted"] or not m["keyboard"]:
                continue
            for row in m["keyboard"]:
                for b in row:
                    if b.get("data", "").startswith(prefix) and label in b["text"]:
                        return m["id"], b["data"]
        return None

    def press(self, button: tuple[int, str] | None) -> bool:
        if button is None:
            return False
        status, _ = self.client.call(
            "POST", f"/sandbox/api/chats/{self.id}/callback", {"message_id": button[0], "data": button[1]}
        )
        self._sync()
        return status == 200


def visit(m1: Chat, m2: Chat, m4: Chat, ticket: str, nik: str, name: str, *, by_nik: bool) -> list[str]:
    """One visit through the three desks; the steps that found no button."""
    missing: list[str] = []
    m1.send(nik if by_nik else ticket)
    if not m1.press(m1.find("t:register:")):
        return ["m1_register"]
    m2.send("/skrining")
    if not m2.press(m2.find("v:screen:", name.split()[-1])):
        return ["m2_open"]
    m2.send("36.5")
    m2.send("120/80")
    for prefix in ("m2:done:", "m2:save:"):
        if not m2.press(m2.find(prefix)):
            missing.append(prefix)
            m2.send("/batal")
            return missing
    m4.send("/vaksinasi")
    if not m4.press(m4.find("v:vaccinate:", name.split()[-1])):
        return ["m4_open"]
    for _ in range(4):
        if m4.find("m4:chg:", last=True):
            break
        button = m4.find("m4:last:", last=True) or m4.find("m4:lastb:", last=True) or m4.find("m4:prod:", last=True)
        if button is not None:
            m4.press(button)
        else:
            m4.send("AB1234 12/2027")
    if m4.find("m4:chg:", last=True) is None:
        m4.send("/batal")
        return ["m4_code"]
    m4.send(nik[-4:])
    return missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(client: Client, proc: subprocess.Popen[bytes], seconds: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if proc.poll() is not None:
            raise SystemExit(f"frontdesk serve exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if client.call("GET", "/health")[0] == 200:
                return time.perf_counter() - started
        time.sleep(0.1)
    raise SystemExit("frontdesk serve did not answer /health")


def measure(targets: int, visits: int, extra_env: dict[str, str], workdir: Path) -> dict[str, Any]:
    db = workdir / "memory-sandbox.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{db}", "LOG_LEVEL": "WARNING", **extra_env}
    for key in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKENS", "WEBHOOK_URL", "REDIS_URL"):
        env.pop(key, None)
    subprocess.run(
        [str(FRONTDESK), "seed-demo", "--targets", str(targets)], env=env, check=True, capture_output=True, cwd=workdir
    )
    with sqlite3.connect(db) as conn:
        walkers = conn.execute(
            "SELECT ticket, nik, name FROM targets WHERE assigned_faskes_code = ? ORDER BY id", (FASKES,)
        ).fetchall()
    port = _free_port()
    proc = subprocess.Popen(
        [str(FRONTDESK), "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = Client(port)
    out: dict[str, Any] = {"targets": targets, "env": extra_env}
    try:
        out["startup_s"] = round(_wait_healthy(client, proc), 2)
        out["after_startup"] = proc_status(proc.pid)
        m1, m2, m4 = Chat(client, MEJA1), Chat(client, MEJA2), Chat(client, MEJA4)
        done, missing, started = 0, [], time.perf_counter()
        for i, (ticket, nik, name) in enumerate(walkers[:visits]):
            lost = visit(m1, m2, m4, ticket, nik, name, by_nik=i % 5 == 4)
            missing += lost
            done += not lost
            if i == 0:
                out["after_first_visit"] = proc_status(proc.pid)
        out["visits"], out["missing"] = done, missing[:10]
        out["requests"], out["traffic_s"] = client.requests, round(time.perf_counter() - started, 1)
        out["after_traffic"] = proc_status(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        out["stderr_tail"] = err.decode(errors="replace")[-500:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=3000)
    parser.add_argument("--visits", type=int, default=40)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the serve process")
    args = parser.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryDirectory(prefix="frontdesk-memory-") as tmp:
        result = measure(args.targets, args.visits, extra, Path(tmp))
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
