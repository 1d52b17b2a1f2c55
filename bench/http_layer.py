"""What uvicorn's HTTP layer costs per webhook request, apart from the bot: ``python -m bench.http_layer``.

The desk runs of ``python -m bench`` feed updates into the dispatcher directly, so the HTTP layer a webhook
deployment pays per update is in none of their figures. This runs uvicorn (on the loop ``frontdesk serve`` uses)
in a process of its own with a bare FastAPI route that reads a Telegram-sized body (a button press on a screening
card with its keyboard, about 1.9 KB), posts to it from this process over a few keep-alive connections, as Telegram
does, and reads the server process's CPU from ``/proc``: once per HTTP implementation uvicorn offers, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from api.eventloop import loop_name
from bench.common import servers_cpu_seconds
from tests.servers import free_port

APP = '''
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.post("/telegram/webhook")
async def hook(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)
'''

_KEYS = [[{"text": f"Ya {i}", "callback_data": f"s:ans:{i}:1:12345"},
          {"text": f"Tidak {i}", "callback_data": f"s:ans:{i}:0:12345"}] for i in range(8)]
UPDATE = {
    "update_id": 123456789,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9", "chat_instance": "-1234567890", "data": "s:ans:3:0:12345",
        "from": {"id": 1234567, "is_bot": False, "first_name": "Siti", "language_code": "id"},
        "message": {
            "message_id": 55, "date": 1700000000, "from": {"id": 999, "is_bot": True, "first_name": "Frontdesk"},
            "chat": {"id": 1234567, "type": "private", "first_name": "Siti"},
            "text": "Skrining: Budi Santoso (dosis 1)\nSuhu 36,6 °C · TD 120/80\n" + "Pertanyaan " * 40,
            "reply_markup": {"inline_keyboard": _KEYS},
        },
    },
}


def measure(http: str, directory: Path, *, requests: int, connections: int) -> dict[str, float]:
    """Start uvicorn with ``http`` (h11, httptools), post to it, stop it: requests/s and the server's CPU."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--http", http,
            "--loop", loop_name(os.environ.get("EVENT_LOOP", "auto")), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(argv, cwd=directory)
    try:
        return asyncio.run(_post(server.pid, port, requests=requests, connections=connections))
    finally:
        server.terminate()
        server.wait(timeout=10)


def _cpu(pid: int) -> float:
    return servers_cpu_seconds({"uvicorn": pid})["uvicorn"]


async def _post(pid: int, port: int, *, requests: int, connections: int) -> dict[str, float]:
    body = json.dumps(UPDATE).encode()
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        deadline = time.monotonic() + 20
        while True:
            try:
                await client.post("/telegram/webhook", content=body, headers=headers)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        for _ in range(500):  # warm up
            await client.post("/telegram/webhook", content=body, headers=headers)

        async def post(n: int) -> None:
            for _ in range(n):
                (await client.post("/telegram/webhook", content=body, headers=headers)).raise_for_status()

        cpu0, t0 = _cpu(pid), time.perf_counter()
        await asyncio.gather(*(post(requests // connections) for _ in range(connections)))
        wall, cpu = time.perf_counter() - t0, _cpu(pid) - cpu0
    done = requests // connections * connections
    return {"per_s": done / wall, "server_cpu_ms": 1000 * cpu / done, "body_bytes": len(body)}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.http_layer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    kinds = ["h11"] + (["httptools"] if importlib.util.find_spec("httptools") else [])
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        (Path(tmp) / "app.py").write_text(APP)
        for _ in range(args.rounds):
            for http in kinds:
                r = measure(http, Path(tmp), requests=args.requests, connections=args.connections)
                print(f"{http:10} {r['body_bytes']:,} B body: {r['per_s']:,.0f} requests/s (the client is the "
                      f"limit), server CPU {r['server_cpu_ms']:.3f} ms per request", flush=True)


if __name__ == "__main__":
    main()
