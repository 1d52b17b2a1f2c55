"""The desk on several worker processes at once, as ``frontdesk serve --workers N`` runs on one machine.

Each worker is a process of its own (``bench.child desk_worker``) with the runtime built as in production
(PostgreSQL, the Redis conversation store, the actor cache, the settled heap) and its share of the teams;
all share one PostgreSQL and one Redis on the same machine. They start their runs at the same moment
(a wall-clock time handed to each) and run the same two measurements as a single desk process: as fast
as the bot answers, then a global offered load (each worker paces its share). Then the **probes**: paced
runs at fixed fractions of the measured maximum (each worker paces that fraction of its own maximum), which
show the rate the machine sustains within the latency goal. The parent adds the throughputs and merges the
latencies (every update's time, from every worker) into one distribution per run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import current_rss_mb, percentile

ROOT = Path(__file__).resolve().parents[1]
WARM_SECONDS = 3.0
# The probes' offered loads, as fractions of the measured maximum: where the latency goal is met or lost.
PROBES = (0.7, 0.85, 0.95)


def probe_name(share: float) -> str:
    return f"probe_{round(100 * share)}"


async def run_desk_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """One worker process: build, load its teams, wait for the common start, run max then paced."""
    from api.runtime import settle_heap
    from bench.desk import build, load_teams, timed_run

    runtime, _ = await build(cfg["database_url"], cfg.get("redis_url"), "redis")
    try:
        teams = await load_teams(runtime, runtime.dispatcher, cfg["teams"], int(cfg.get("per_team") or 1000))
        teams = [t for t in teams if t.walkers]
        seconds, warmup = float(cfg["seconds"]), float(cfg["warmup"])
        # Warm up as the single-process run does with its census (first use builds aiogram's types and
        # SQLAlchemy's statement cache), then settle the heap as a serving process does.
        await timed_run(teams, seconds=WARM_SECONDS, warmup=0.0, rate=None, clock_from=timedelta(hours=0))
        settle_heap()
        out: dict[str, Any] = {"teams": len(teams), "rss_after_build_mb": current_rss_mb()}
        # (name, offered updates/s or a fraction of this worker's maximum, virtual hour the run starts at):
        # each run's people start after the last run's (PL's per-account limits count on that clock).
        runs: list[tuple[str, float | None, float]] = [("max", None, 2.0)]
        if cfg.get("rate"):
            runs.append(("paced", float(cfg["rate"]) / int(cfg["workers"]), 6.0))
        runs += [(probe_name(share), share, 9.0 + 2 * i) for i, share in enumerate(cfg.get("probes") or ())]
        start_at = float(cfg["start_at"])
        for i, (name, given, hour) in enumerate(runs):
            rate = given * out["max"]["per_s"] if given is not None and name.startswith("probe_") else given
            begin = start_at + i * (seconds + warmup + float(cfg["gap"]))
            await asyncio.sleep(max(0.0, begin - time.time()))
            out[name] = await timed_run(
                teams, seconds=seconds, warmup=warmup, rate=rate, clock_from=timedelta(hours=hour), keep_values=True,
                servers=cfg.get("server_pids"),
            )
        return out
    finally:
        await runtime.close()


def run_workers(cfg: dict[str, Any], workers: int, *, timeout: float = 3600) -> dict[str, Any]:
    """Start ``workers`` processes on the teams, split between them, and merge what they measured."""
    gap = min(3.0, max(1.0, float(cfg["seconds"]) / 3))  # for the slowest worker to finish a run's last updates
    start_at = time.time() + 10.0 + 2.0 * workers + WARM_SECONDS  # time to import, build, load teams, warm up
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        procs = []
        for i in range(workers):
            own = {**cfg, "teams": cfg["teams"][i::workers], "workers": workers, "start_at": start_at, "gap": gap}
            cfg_path, out_path = Path(tmp) / f"cfg{i}.json", Path(tmp) / f"out{i}.json"
            cfg_path.write_text(json.dumps(own, default=str))
            env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
            procs.append(
                (
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.child", "desk_worker", str(cfg_path), str(out_path)],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                    out_path,
                )
            )
        results = []
        for proc, out_path in procs:
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"desk worker failed ({proc.returncode}):\n{err[-4000:]}")
            results.append(json.loads(out_path.read_text()))
    return merge(results)


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "workers": len(results),
        "teams": sum(r["teams"] for r in results),
        "peak_rss_mb": max(r["process"]["peak_rss_mb"] for r in results),
        "cpu_s": sum(r["process"]["cpu_s"] for r in results),
    }
    runs = [name for name, run in results[0].items() if isinstance(run, dict) and "latency_values_ms" in run]
    for name in runs:
        parts = [r[name] for r in results if name in r]
        values = sorted(v for p in parts for v in p.pop("latency_values_ms"))
        updates = sum(p["updates"] for p in parts)
        out[name] = {
            "per_s": sum(p["per_s"] for p in parts),
            "visits_per_s": sum(p["visits_per_s"] for p in parts),
            "updates": updates,
            "offered_rate": sum(p["offered_rate"] for p in parts),
            "cpu_ms_per_update": sum(p["cpu_ms_per_update"] * p["updates"] for p in parts) / updates if updates else 0,
            "p50_ms": percentile(values, 50) if values else 0.0,
            "p95_ms": percentile(values, 95) if values else 0.0,
            "p99_ms": percentile(values, 99) if values else 0.0,
            "missing": sum(sum(p["missing"].values()) for p in parts),
            "errors": sum(sum(p["errors"].values()) for p in parts),
            "per_worker_per_s": [p["per_s"] for p in parts],
            # Every worker watched the same servers over the same window: their mean, over all updates.
            "server_cpu_ms_per_update": {
                k: 1000 * sum(p["server_cpu_s"][k] for p in parts) / len(parts) / updates if updates else 0.0
                for k in (parts[0].get("server_cpu_s") or {})
            },
            "missing_text": {k: v for p in parts for k, v in (p.get("missing_text") or {}).items()},
        }
    return out
