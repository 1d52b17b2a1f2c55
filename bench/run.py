"""``python -m bench``: seed, measure, report. See docs/performance.md for what each figure means.

    python -m bench                      # 1 M targets on SQLite (embedded default) + the floor
    python -m bench --postgres           # and 10 M targets on PostgreSQL + Redis
    python -m bench --quick --postgres   # the same measurements at small sizes (under two minutes)
    python -m bench --skip import,lookup # leave phases out (floor, desk, lookup, import, redis, onetrip, profile)

Servers (PostgreSQL, Redis) are throwaway ones from ``tests.servers``, started and stopped here.
Measurements run in child processes (``bench.child``): one per bot-side measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from api.eventloop import loop_name
from bench import report
from bench.common import ROOT, machine, size_label
from bench.seed import Spec, seed_postgres, seed_sqlite
from bench.workers import PROBES, WARM_SECONDS, run_workers

PHASES = ("floor", "desk", "lookup", "import")

FULL = {
    "targets": 1_000_000, "targets_pg": 10_000_000, "teams": 40, "faskes": 500, "seconds": 30.0, "warmup": 5.0,
    "rate": 1000.0, "easy": 0.6, "import_rows": 1_470_000, "samples": 3000, "census_visits": 12,
    "floor_seconds": 10.0,
}
QUICK = {
    "targets": 20_000, "targets_pg": 50_000, "teams": 12, "faskes": 60, "seconds": 2.5, "warmup": 0.75,
    "rate": 1000.0, "easy": 0.6, "import_rows": 20_000, "samples": 300, "census_visits": 3,
    "floor_seconds": 1.5,
}

# PostgreSQL as a small production machine would run it: durable commits, a sensible cache.
PG_SETTINGS = {
    "shared_buffers": "'1GB'",
    "effective_cache_size": "'8GB'",
    "maintenance_work_mem": "'512MB'",
    "work_mem": "'16MB'",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
    "random_page_cost": "1.1",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}
PG_FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, short runs (a quick look after a change)")
    ap.add_argument("--postgres", action="store_true", help="also measure PostgreSQL + Redis")
    ap.add_argument("--targets", type=int, help="targets on SQLite (default 1,000,000; quick 20,000)")
    ap.add_argument("--targets-pg", type=int, help="targets on PostgreSQL (default 10,000,000; quick 50,000)")
    ap.add_argument("--skip", action="append", default=[],
                    help="leave out: floor, desk, lookup, import, sqlite, redis, onetrip, profile (comma-separated)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                    help="desk worker processes run at once on PostgreSQL + Redis (default: the cores; 1: none)")
    ap.add_argument("--teams", type=int, help="staff trios (meja 1, 2, 4), each at its own faskes")
    ap.add_argument("--faskes", type=int, help="faskes in the seed")
    ap.add_argument("--seconds", type=float, help="measured seconds per desk run")
    ap.add_argument("--warmup", type=float, help="seconds before measuring, per desk run")
    ap.add_argument("--floor-seconds", type=float, help="measured seconds per floor variant")
    ap.add_argument("--rate", type=float, help="offered desk updates per second for the latency goal (1000)")
    ap.add_argument("--easy", type=float, help="fraction of the measured maximum for the easy-load run (0.6; 0)")
    ap.add_argument("--import-rows", type=int, help="rows in the import files (1,470,000; quick 20,000)")
    ap.add_argument("--samples", type=int, help="lookups per key kind and depth")
    ap.add_argument("--census-visits", type=int, help="visits counted one update at a time (SQL, Redis, profile)")
    ap.add_argument("--whatif", action=argparse.BooleanOptionalAction, default=None,
                    help="also run the ladder: a stock build, then the hot-path changes added one by one "
                         "(inline sync filters, actor cache, gc.freeze, the Redis store): on in full runs, "
                         "off in --quick")
    ap.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"),
                    help="the measuring processes' event loop (default: EVENT_LOOP, else auto: uvloop where "
                         "installed, as `frontdesk serve`; api/eventloop.py)")
    ap.add_argument("--pg-fast", action="store_true", help="PostgreSQL without fsync (like the test servers)")
    ap.add_argument("--no-cache", action="store_true", help="seed and generate files afresh")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="where the figures go")
    ap.add_argument("--report-only", type=Path, nargs="+", metavar="RAW",
                    help="measure nothing: render the figures and the table again from raw results "
                         "(later files override earlier ones, phase by phase; several files are also "
                         "written merged beside --out)")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.skip = {s.strip() for chunk in args.skip for s in chunk.split(",") if s.strip()}
    if args.whatif is None:
        args.whatif = not args.quick
    return args


class Phases:
    """Runs each measurement; one that fails is logged and recorded, and the others still run.
    The raw results are saved after every measurement, so an interrupted run keeps what it has."""

    def __init__(self, raw: dict[str, Any], path: Path) -> None:
        self.raw = raw
        self.path = path

    def run(self, key: str, kind: str, cfg: dict[str, Any]) -> bool:
        """One measurement in a child process (bench.child)."""
        return self.run_with(key, lambda: run_child(kind, cfg))

    def run_with(self, key: str, measure: Any) -> bool:
        """``measure()`` returns the raw result; a failure is recorded and the run goes on. Saved either way."""
        try:
            self.raw[key] = measure()
        except Exception as exc:
            log(f"  FAILED: {key}: {str(exc).strip().splitlines()[-1][:300]}")
            self.raw.setdefault("failures", {})[key] = str(exc)[-2000:]
            return False
        finally:
            self.save()
        return True

    def save(self) -> None:
        self.path.write_text(json.dumps(self.raw, indent=1, default=str) + "\n")


def run_child(kind: str, cfg: dict[str, Any], *, timeout: float = 7200) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        cfg_path, out_path = Path(tmp) / "cfg.json", Path(tmp) / "out.json"
        cfg_path.write_text(json.dumps(cfg, default=str))
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", kind, str(cfg_path), str(out_path)],
            cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bench.child {kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(out_path.read_text())


def report_only(args: argparse.Namespace) -> int:
    raw: dict[str, Any] = {}
    for path in args.report_only:
        part = json.loads(path.read_text())
        theirs = part.get("meta", {})
        meta = dict(raw.get("meta") or theirs)  # the first run's machine, kind and start name the figures
        if raw:
            # A later run adds its phases, listed with when it ran.
            later = f"{theirs.get('run_started_at', '?')} ({theirs.get('run_phases', '')})"
            meta["run_merged_from"] = "; ".join(filter(None, [meta.get("run_merged_from"), later]))
            meta["run_phases"] = ",".join(sorted(set(filter(None, meta.get("run_phases", "").split(",")))
                                                 | set(filter(None, theirs.get("run_phases", "").split(",")))))
            if "run_pg_durable" in theirs:
                meta.setdefault("run_pg_durable", theirs["run_pg_durable"])
        raw.update(part)
        raw["meta"] = meta
    figures = report.figures(raw)
    report.write(args.out, figures, raw)
    if len(args.report_only) > 1:  # the merged raw results beside the figures, as a measuring run leaves them
        args.out.with_name(args.out.stem + ".raw.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    print(report.table(figures, raw))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return report_only(args)
    started = time.perf_counter()
    phases = [p for p in PHASES if p not in args.skip]
    info = machine()
    if args.event_loop:
        os.environ["EVENT_LOOP"] = args.event_loop  # the children read it, as the product does
    loop = loop_name(os.environ.get("EVENT_LOOP", "auto"))
    raw: dict[str, Any] = {"meta": {
        "run_kind": "quick" if args.quick else "full",
        "run_started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "event_loop": f"uvloop {version('uvloop')}" if loop == "uvloop" else "asyncio",
        **{f"machine_{k}": v for k, v in info.items()},
    }}
    from tests.servers import PostgresServer, RedisServer, ServerUnavailable, redis_server_executable

    redis_server = None
    want_redis = "redis" not in args.skip and redis_server_executable() is not None
    if "redis" not in args.skip and not want_redis:
        log("redis-server not found: the Redis measurements are left out")
    work = Path(tempfile.mkdtemp(prefix="pcare-bench-"))
    ran: set[str] = set()
    raw_path = args.out.with_name(args.out.stem + ".raw.json")
    runner = Phases(raw, raw_path)
    try:
        if want_redis:
            redis_server = RedisServer().start()
            ran.add("redis")
        redis_url = redis_server.url if redis_server else None

        if "floor" in phases:
            log("floor: bare aiogram echo and FSM step")
            variants = [v for v in report.FLOOR_VARIANTS if v[1] in ("memory", "inline") or (redis_url and
                        not (v[1] == "onetrip" and "onetrip" in args.skip))]
            runner.run("floor", "floor", {
                "variants": variants, "people": 3 * args.teams, "seconds": args.floor_seconds,
                "warmup": min(1.0, args.warmup), "redis_url": redis_url,
            })
            ran.add("floor")

        if "sqlite" not in args.skip:
            spec = Spec(targets=args.targets, faskes=args.faskes, teams=args.teams)
            log(f"SQLite: {size_label(spec.targets)} targets")
            db = work / "pl.db"
            seeded = seed_sqlite(db, spec, use_cache=not args.no_cache, log=log)
            raw["seed_sqlite"] = seeded.to_json()
            url = f"sqlite+aiosqlite:///{db}"
            ran.add("sqlite")
            if "desk" in phases:
                log("SQLite desk: memory storage (the embedded default)")
                runner.run("desk_sqlite", "desk", desk_cfg(args, url, None, "memory", seeded))
                ran.add("desk")
                if args.whatif:
                    log("SQLite desk, the hot-path changes added one after the other to a stock build: "
                        "inline sync filters, actor cache, gc.freeze, 8 updates at work")
                    runner.run("ladder_sqlite", "desk", ladder_cfg(args, url, None, "memory", seeded, [
                        ("stock", None, None), ("inline_sync", None, "inline_sync"),
                        ("actor_cache", None, "actor_cache"), ("gc_freeze", None, "gc_freeze"),
                        ("admission", None, "admission")]))
            if "lookup" in phases:
                log("SQLite lookups")
                runner.run("lookup_sqlite", "lookup", {
                    "database_url": url, "spec": asdict(spec), "samples": args.samples,
                    "meja1": seeded.teams[-1].meja1,
                })
                ran.add("lookup")

        pg_server = None
        if args.postgres:
            settings = {**PG_SETTINGS, **(PG_FAST if args.pg_fast else {})}
            try:
                pg_server = PostgresServer(settings=settings, startup_timeout=60).start()
            except ServerUnavailable as exc:
                log(f"PostgreSQL unavailable, left out: {exc}")
        try:
            if pg_server is not None:
                ran.add("postgres")
                durable = "no (fsync off)" if args.pg_fast else "yes (fsync, synchronous_commit on)"
                raw["meta"]["run_pg_durable"] = durable
                spec = Spec(targets=args.targets_pg, faskes=args.faskes, teams=args.teams)
                pg_server.create_database("pl")
                url, dsn = pg_server.url("pl"), pg_server.dsn("pl")
                log(f"PostgreSQL: {size_label(spec.targets)} targets")
                seeded = asyncio.run(seed_postgres(dsn, url, spec, log=log))
                raw["seed_postgres"] = seeded.to_json()
                if "desk" in phases and redis_url:
                    # The servers' CPU is measured beside the bot's: on one machine they share its cores.
                    servers = {"postgres": pg_server.pid, "redis": redis_server.pid if redis_server else None}
                    log("PostgreSQL desk: Redis conversation store of bot/redis_state.py (api/runtime.build_storage)")
                    runner.run("desk_postgres_redis", "desk",
                               desk_cfg(args, url, redis_url, "redis", seeded, servers=servers))
                    if args.workers > 1:
                        log(f"PostgreSQL desk on {args.workers} worker processes at once (the machine's capacity)")
                        runner.run_with("desk_postgres_redis_workers", lambda: run_workers(
                            {**desk_cfg(args, url, redis_url, "redis", seeded, census=False, servers=servers),
                             "probes": list(PROBES), "per_team": workers_per_team(args)},
                            args.workers))
                        ran.add("workers")
                    if "onetrip" not in args.skip:
                        log("PostgreSQL desk: aiogram's RedisStorage with event isolation instead (the stock store)")
                        runner.run("desk_postgres_stock", "desk",
                                   desk_cfg(args, url, redis_url, "stock", seeded, servers=servers))
                    if args.whatif:
                        log("PostgreSQL desk, the hot-path changes added one after the other to a stock build: "
                            "inline sync filters, actor cache, gc.freeze, the two-trip Redis store, 8 updates at work")
                        runner.run("ladder_postgres", "desk", ladder_cfg(args, url, redis_url, "stock", seeded, [
                            ("stock", None, None), ("inline_sync", None, "inline_sync"),
                            ("actor_cache", None, "actor_cache"), ("gc_freeze", None, "gc_freeze"),
                            ("onetrip", "redis", None), ("admission", None, "admission")]))
                    ran.add("desk")
                if "lookup" in phases:
                    log("PostgreSQL lookups")
                    runner.run("lookup_postgres", "lookup", {
                        "database_url": url, "dsn": dsn, "spec": asdict(spec), "samples": args.samples,
                        "meja1": seeded.teams[-1].meja1,
                    })
                    ran.add("lookup")
            if "import" in phases:
                run_imports(args, runner, work, pg_server)
                ran.add("import")
        finally:
            if pg_server is not None:
                pg_server.stop()
    finally:
        if redis_server is not None:
            redis_server.stop()
        for p in sorted(work.glob("*"), reverse=True):
            p.unlink(missing_ok=True)
        work.rmdir()

    raw["meta"]["run_phases"] = ",".join(sorted(ran))
    raw["meta"]["run_seconds"] = round(time.perf_counter() - started, 1)
    raw["meta"]["machine_load_1m_at_end"] = round(os.getloadavg()[0], 2)
    figures = report.figures(raw)
    report.write(args.out, figures, raw)
    profiles = {k: v.get("census", {}).pop("profile", None) for k, v in raw.items()
                if k.startswith("desk_") and isinstance(v, dict)}
    runner.save()
    if raw.get("failures"):
        log(f"measurements that failed (details in {raw_path.name}): {', '.join(raw['failures'])}")
    for config, text in profiles.items():
        if text:
            (args.out.parent / f"profile_{config.removeprefix('desk_')}.txt").write_text(text)
    print(report.table(figures, raw))
    log(f"figures: {args.out} (raw results: {raw_path.name}); {raw['meta']['run_seconds']} s")
    return 0


def desk_cfg(args: argparse.Namespace, url: str, redis_url: str | None, storage: str, seeded: Any,
             *, census: bool = True, paced: bool = True, tuning: list[str] | None = None,
             servers: dict[str, int | None] | None = None) -> dict[str, Any]:
    return {
        "server_pids": {k: v for k, v in (servers or {}).items() if v},
        "tuning": tuning or [],
        "database_url": url,
        "redis_url": redis_url,
        "storage": storage,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "teams": [asdict(t) for t in seeded.teams],
        "per_team": max(200, int((args.seconds + args.warmup) * 3 * 12)),
        "census_visits": args.census_visits if census else 0,
        "profile": census and "profile" not in args.skip,
        "rate": args.rate if paced else 0,
        "easy": args.easy if paced else 0,
    }


def workers_per_team(args: argparse.Namespace) -> int:
    """Targets each team loads on the workers: its warm-up, the runs at max and at the offered rate and the
    probes, at 12 visits a second (a full run's teams make 1-2); at least 600, for a team alone on a worker of
    a tiny run. Each is held in the worker's memory, beside the bot."""
    return max(600, int((WARM_SECONDS + (2 + len(PROBES)) * (args.seconds + args.warmup)) * 12))


def ladder_cfg(args: argparse.Namespace, url: str, redis_url: str | None, storage: str, seeded: Any,
               rungs: list[tuple[str, str | None, str | None]]) -> dict[str, Any]:
    cfg = desk_cfg(args, url, redis_url, storage, seeded)
    cfg["ladder"] = rungs
    cfg["seconds"] = max(2.0, args.seconds / 2)
    cfg["census_visits"] = max(3, args.census_visits // 2)
    cfg["per_team"] = max(200, int((cfg["seconds"] + args.warmup) * 2 * len(rungs) * 12))
    return cfg


def run_imports(args: argparse.Namespace, runner: Phases, work: Path, pg_server: Any) -> None:
    from bench.imports import csv_file, xlsx_file

    spec = Spec(targets=0, faskes=args.faskes, teams=0)
    rows = args.import_rows
    log(f"import: {size_label(rows)} rows (files are cached)")
    files = {"csv": csv_file(rows, spec, log=log), "xlsx": xlsx_file(rows, spec, log=log)}
    if "sqlite" not in args.skip:
        for fmt, path in files.items():
            db = work / f"import-{fmt}.db"
            seed_sqlite(db, spec, use_cache=not args.no_cache, log=lambda _m: None)
            log(f"import: {fmt} into SQLite")
            runner.run(f"import_{fmt}_sqlite", "import", {"database_url": f"sqlite+aiosqlite:///{db}",
                                                          "path": str(path), "floor": True})
            db.unlink(missing_ok=True)
    if pg_server is not None:
        for fmt, path in files.items():
            name = f"import_{fmt}"
            pg_server.create_database(name)
            asyncio.run(seed_postgres(pg_server.dsn(name), pg_server.url(name), spec, log=lambda _m: None))
            log(f"import: {fmt} into PostgreSQL")
            runner.run(f"import_{fmt}_postgres", "import", {"database_url": pg_server.url(name),
                                                            "path": str(path), "floor": True})
            pg_server.drop_database(name)


if __name__ == "__main__":
    raise SystemExit(main())
