"""One measurement in a process of its own: ``python -m bench.child KIND CONFIG.json OUT.json``.

Every bot-side measurement runs in a fresh process, as the bot would: its peak RSS is the bot
process's, not the seeder's, and nothing warmed up by one measurement helps the next.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from api.eventloop import run
from bench.common import cpu_seconds, peak_rss_mb


async def _main(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    if kind == "floor":
        from bench.floor import run_floor

        variants = [tuple(v) for v in cfg["variants"]]
        return await run_floor(
            variants,  # type: ignore[arg-type]
            people=int(cfg["people"]), seconds=float(cfg["seconds"]), warmup=float(cfg["warmup"]),
            redis_url=cfg.get("redis_url"),
        )
    if kind == "desk":
        import api.lazy_aiogram  # first, as api/main.py does in a serving process
        from bench.desk import run_desk

        return await run_desk(cfg)
    if kind == "desk_worker":
        import api.lazy_aiogram  # noqa: F401 - first, as api/main.py does in a serving process
        from bench.workers import run_desk_worker

        return await run_desk_worker(cfg)
    if kind == "lookup":
        from bench.lookup import run_lookup

        return await run_lookup(cfg)
    if kind == "import":
        from bench.imports import run_import

        return await run_import(cfg)
    raise SystemExit(f"unknown measurement {kind!r}")


def main() -> None:
    kind, config, out = sys.argv[1:4]
    with open(config, encoding="utf-8") as fh:
        cfg = json.load(fh)
    started = time.perf_counter()
    # On the loop the product serves on (api/eventloop.py; EVENT_LOOP, or `python -m bench --event-loop`).
    result = run(_main(kind, cfg), os.environ.get("EVENT_LOOP", "auto"))
    result = {**result, "process": {"peak_rss_mb": peak_rss_mb(), "cpu_s": cpu_seconds(),
                                    "wall_s": time.perf_counter() - started}}
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, default=str)


if __name__ == "__main__":
    main()
