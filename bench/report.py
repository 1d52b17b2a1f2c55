"""The figures: one flat object of named numbers (``bench/results.json``) and a table to read.

Names are stable whatever the sizes (``desk_updates_per_s_sqlite``, ``lookup_p99_ms_postgres``);
the sizes they were taken at are figures too (``targets_sqlite``, ``targets_postgres``,
``import_rows``). A few strings describe the run (``machine_*``, ``run_*``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.desk import STEPS
from bench.workers import PROBES, probe_name

PROBES_ORDER = tuple(probe_name(share) for share in PROBES)

# (goal, figure, comparison, bound, unit)
GOALS: tuple[tuple[str, str, str, float, str], ...] = (
    ("desk updates/s sustained at p99 <= 100 ms, all workers", "desk_sustained_per_s_postgres_redis_workers", ">=",
     1000, "/s"),
    ("desk updates/s, PostgreSQL + Redis, all workers", "desk_updates_per_s_postgres_redis_workers", ">=", 1000, "/s"),
    ("desk p99 at the offered 1,000/s, all workers", "desk_p99_ms_postgres_redis_workers", "<=", 100, "ms"),
    ("desk updates/s, PostgreSQL + Redis, one process", "desk_updates_per_s_postgres_redis", ">=", 1000, "/s"),
    ("desk p99 at the offered 1,000/s, one process", "desk_p99_ms_postgres_redis", "<=", 100, "ms"),
    ("desk vs bare FSM step, aiogram's RedisStorage", "ratio_desk_vs_aiogram_fsm_redis", "<=", 3, "x"),
    ("desk vs bare FSM step, bot/redis_state", "ratio_desk_vs_aiogram_fsm_redis_onetrip", "<=", 3, "x"),
    ("desk update vs bare aiogram FSM step (memory)", "ratio_desk_vs_aiogram_fsm_memory", "<=", 3, "x"),
    ("lookup p99 by NIK or ticket on PostgreSQL", "lookup_p99_ms_postgres", "<=", 1, "ms"),
    ("import from CSV", "import_rows_per_s_csv", ">=", 100_000, "rows/s"),
    ("import from xlsx", "import_rows_per_s_xlsx", ">=", 30_000, "rows/s"),
    ("bot process peak RSS", "peak_rss_mb", "<=", 200, "MB"),
)

FLOOR_VARIANTS = (("echo", "memory"), ("fsm", "memory"), ("fsmf", "memory"), ("echo", "redis"), ("fsm", "redis"),
                  ("fsm", "onetrip"), ("fsmf", "inline"))  # the inline variant patches aiogram: always last
# postgres_redis: the production store (bot/redis_state.py); postgres_stock: aiogram's RedisStorage instead.
DESK_CONFIGS = {"sqlite": "sqlite", "postgres_redis": "postgres", "postgres_stock": "postgres"}


def expected_figures(phases: Iterable[str]) -> list[str]:
    """The figures a run of these phases must produce (the smoke test checks them)."""
    phases = set(phases)
    names: list[str] = []
    if "floor" in phases:
        for kind, storage in FLOOR_VARIANTS:
            if storage in ("memory", "inline") or "redis" in phases:
                suffix = _floor_suffix(storage)
                names += [f"floor_{kind}_per_s_{suffix}", f"floor_{kind}_p99_ms_{suffix}"]
        if "redis" in phases:
            names += ["floor_redis_trips_fsm_redis", "floor_redis_trips_fsm_redis_onetrip",
                      "ratio_fsm_redis_onetrip_vs_stock"]
    for backend in ("sqlite", "postgres"):
        if backend not in phases:
            continue
        names.append(f"targets_{backend}")
        if "desk" in phases:
            configs = ["sqlite"] if backend == "sqlite" else ["postgres_redis", "postgres_stock"]
            if backend == "postgres" and "redis" in phases:
                for c in configs:
                    names += [f"desk_postgres_cpu_ms_per_update_{c}", f"desk_redis_cpu_ms_per_update_{c}",
                              f"desk_machine_cpu_ms_per_update_{c}", f"desk_machine_ceiling_per_s_{c}"]
            for c in configs:
                names += [f"desk_updates_per_s_{c}", f"desk_cpu_ms_per_update_{c}", f"desk_visits_per_s_{c}",
                          f"desk_p50_ms_{c}", f"desk_p95_ms_{c}", f"desk_p99_ms_{c}", f"desk_paced_updates_per_s_{c}",
                          f"desk_sql_per_update_{c}", f"peak_rss_mb_{c}"]
                for step in ("m1_lookup", "m1_register", "m2_save", "m4_code", "m4_kipi"):
                    names += [f"desk_step_{step}_p50_ms_{c}", f"desk_step_{step}_p99_ms_{c}"]
            if "floor" in phases:
                if backend == "sqlite":
                    names += ["ratio_desk_vs_aiogram_fsm_memory", "ratio_desk_vs_aiogram_echo_memory"]
                elif "redis" in phases:
                    names += ["ratio_desk_vs_aiogram_fsm_redis", "ratio_desk_vs_aiogram_fsm_redis_onetrip",
                              "ratio_desk_vs_aiogram_echo_redis", "ratio_desk_onetrip_vs_stock",
                              "desk_redis_trips_per_update_postgres_redis",
                              "desk_redis_trips_per_update_postgres_stock"]
            names.append("peak_rss_mb")
        if "lookup" in phases:
            names += [f"lookup_p99_ms_{backend}", f"lookup_per_s_{backend}", f"lookup_service_p99_ms_{backend}"]
            for kind in ("nik", "ticket"):
                for depth in ("raw", "core", "repo", "service"):
                    names += [f"lookup_{kind}_{depth}_p50_ms_{backend}", f"lookup_{kind}_{depth}_p99_ms_{backend}",
                              f"lookup_{kind}_{depth}_per_s_{backend}"]
        if "import" in phases:
            sfx = "" if backend == "sqlite" else "_postgres"
            names += [f"import_rows_per_s_csv{sfx}", f"import_rows_per_s_xlsx{sfx}"]
    if "workers" in phases:
        sfx = "postgres_redis_workers"
        names += [f"desk_updates_per_s_{sfx}", f"desk_cpu_ms_per_update_{sfx}", f"desk_p99_ms_{sfx}"]
        for name in PROBES_ORDER:
            names += [f"desk_{name}_{x}_{sfx}" for x in ("offered_per_s", "updates_per_s", "p99_ms")]
    if "import" in phases:
        names.append("import_rows")
    return list(dict.fromkeys(names))


# The latency goal: a paced run sustains its load when its p99 is within this and it achieved (nearly) what was
# offered (the pacer drops the slots a slow bot misses rather than bursting after it).
SUSTAINED_P99_MS = 100.0
SUSTAINED_SHARE = 0.95


def sustained(runs: Iterable[dict[str, Any]]) -> tuple[float, float]:
    """The highest rate among paced ``runs`` (merged worker runs: ``per_s``, ``offered_rate``, ``p99_ms``) carried
    within the latency goal, and that run's p99; (0, 0) when none was."""
    within = [(r["per_s"], r["p99_ms"]) for r in runs
              if r["p99_ms"] <= SUSTAINED_P99_MS and r["per_s"] >= SUSTAINED_SHARE * r["offered_rate"]]
    return max(within, default=(0.0, 0.0))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


def _floor_suffix(storage: str) -> str:
    return {"memory": "memory", "redis": "redis", "onetrip": "redis_onetrip", "inline": "memory_inline"}[storage]


def _machine_cpu(f: dict[str, Any], config: str, run: dict[str, Any], raw: dict[str, Any]) -> None:
    """The whole machine's CPU per desk update at saturation: the bot's and each server's (PostgreSQL with
    its backends, Redis), which share the same cores; and the rate those cores could carry at 100 % busy."""
    servers = run.get("server_cpu_ms_per_update") or {}
    if not servers or not run.get("cpu_ms_per_update"):
        return
    total = run["cpu_ms_per_update"]
    for name, ms in servers.items():
        f[f"desk_{name}_cpu_ms_per_update_{config}"] = ms
        total += ms
    f[f"desk_machine_cpu_ms_per_update_{config}"] = total
    cores = (raw.get("meta") or {}).get("machine_cores")
    if cores and total > 0:
        f[f"desk_machine_ceiling_per_s_{config}"] = 1000.0 * cores / total


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """The flat figures from the phases' raw results."""
    f: dict[str, Any] = {}
    floor = raw.get("floor") or {}
    for key, r in floor.items():
        if not isinstance(r, dict) or "per_s" not in r:
            continue
        kind, storage = key.split("_", 1)
        sfx = _floor_suffix(storage)
        f[f"floor_{kind}_per_s_{sfx}"] = r["per_s"]
        f[f"floor_{kind}_p50_ms_{sfx}"] = r["p50_ms"]
        f[f"floor_{kind}_p99_ms_{sfx}"] = r["p99_ms"]
        f[f"floor_{kind}_cpu_ms_per_update_{sfx}"] = r["cpu_ms_per_update"]
        if "redis_cmds_per_update" in r:
            f[f"floor_redis_trips_{kind}_{sfx}"] = r["redis_cmds_per_update"]
    if "floor_fsm_per_s_redis_onetrip" in f and f.get("floor_fsm_per_s_redis"):
        f["ratio_fsm_redis_onetrip_vs_stock"] = f["floor_fsm_per_s_redis_onetrip"] / f["floor_fsm_per_s_redis"]

    for backend in ("sqlite", "postgres"):
        seed = raw.get(f"seed_{backend}")
        if seed:
            f[f"targets_{backend}"] = seed["targets"]
            if not seed.get("cached"):
                f[f"seed_rows_per_s_{backend}"] = seed["rows_per_s"]
    rss = []
    for config in DESK_CONFIGS:
        d = raw.get(f"desk_{config}")
        if not d:
            continue
        mx, paced, easy = d.get("max") or {}, d.get("paced") or {}, d.get("paced_easy") or {}
        f[f"desk_updates_per_s_{config}"] = mx.get("per_s", 0.0)
        f[f"desk_visits_per_s_{config}"] = mx.get("visits_per_s", 0.0)
        f[f"desk_cpu_ms_per_update_{config}"] = mx.get("cpu_ms_per_update", 0.0)
        f[f"desk_max_p99_ms_{config}"] = (mx.get("latency") or {}).get("p99_ms", 0.0)
        _machine_cpu(f, config, mx, raw)
        src = paced or mx
        lat = src.get("latency") or {}
        f[f"desk_offered_per_s_{config}"] = src.get("offered_rate", 0)
        f[f"desk_paced_updates_per_s_{config}"] = src.get("per_s", 0.0)
        for p in ("p50", "p95", "p99"):
            f[f"desk_{p}_ms_{config}"] = lat.get(f"{p}_ms", 0.0)
        if easy:
            f[f"desk_easy_offered_per_s_{config}"] = easy.get("offered_rate", 0)
            for p in ("p50", "p95", "p99"):
                f[f"desk_easy_{p}_ms_{config}"] = (easy.get("latency") or {}).get(f"{p}_ms", 0.0)
        c = d.get("census") or {}
        for step in STEPS:
            # At the easy load; a step that did not happen there: at the offered load, at the maximum,
            # or (one at a time) in the census.
            s = next((r["steps"][step] for r in (easy, paced, mx) if step in (r.get("steps") or {})), None)
            if s is None and step in (c.get("wall_ms_per_step") or {}):
                ms = c["wall_ms_per_step"][step]
                s = {"p50_ms": ms, "p95_ms": ms, "p99_ms": ms}
            if s:
                for p in ("p50", "p95", "p99"):
                    f[f"desk_step_{step}_{p}_ms_{config}"] = s[f"{p}_ms"]
        for key in ("sql_per_update", "sql_per_visit", "sql_compiled_per_visit", "sql_driver_per_visit",
                    "updates_per_visit",
                    "redis_trips_per_update",
                    "sequential_ms_per_update", "sequential_cpu_ms_per_update", "transactions_per_update",
                    "thread_hops_per_update",
                    "transaction_mean_ms", "audit_lock_hold_mean_ms", "audit_lock_hold_p99_ms"):
            if key in c:
                f[f"desk_{key}_{config}"] = c[key]
        if c.get("audit_lock_hold_mean_ms"):
            f[f"desk_audit_write_ceiling_per_s_{config}"] = 1000.0 / c["audit_lock_hold_mean_ms"]
        gc_max = mx.get("gc") or {}
        if gc_max:
            f[f"desk_gc_share_pct_{config}"] = gc_max.get("share_of_wall_pct", 0.0)
            f[f"desk_gc_gen2_mean_ms_{config}"] = gc_max.get("gen2_mean_ms", 0.0)
        for step, n in (c.get("sql_per_step") or {}).items():
            f[f"desk_step_{step}_sql_{config}"] = n
        for step, n in (c.get("cpu_ms_per_step") or {}).items():
            f[f"desk_step_{step}_cpu_ms_{config}"] = n
        for step, per_server in (c.get("server_cpu_ms_per_step") or {}).items():
            for name, ms in per_server.items():
                f[f"desk_step_{step}_{name}_cpu_ms_{config}"] = ms
        for name, ms in (c.get("sequential_server_cpu_ms_per_update") or {}).items():
            f[f"desk_sequential_{name}_cpu_ms_per_update_{config}"] = ms
        for pkg, share in (c.get("cpu_share_by_package") or {}).items():
            f[f"desk_cpu_share_{_slug(pkg)}_{config}"] = share
        for part, r in (d.get("parts") or {}).items():
            f[f"desk_part_{part}_ms_{config}"] = r["wall_ms"]
            f[f"desk_part_{part}_cpu_ms_{config}"] = r["cpu_ms"]
        if c.get("redis_trips_per_step") and config != "sqlite":
            for step, n in c["redis_trips_per_step"].items():
                f[f"desk_step_{step}_redis_trips_{config}"] = n
        missing = sum((mx.get("missing") or {}).values()) + sum((c.get("missing") or {}).values())
        errors = sum((mx.get("errors") or {}).values()) + sum((c.get("errors") or {}).values())
        f[f"desk_missing_steps_{config}"] = missing
        f[f"desk_errors_{config}"] = errors
        peak = (d.get("process") or {}).get("peak_rss_mb", 0.0)
        f[f"peak_rss_mb_{config}"] = peak
        if d.get("rss_after_build_mb"):
            f[f"desk_rss_after_build_mb_{config}"] = d["rss_after_build_mb"]
        runs = [r for r in (mx, paced, easy) if r.get("rss_end_mb")]
        if runs:
            f[f"desk_rss_growth_mb_{config}"] = max(r["rss_end_mb"] for r in runs) - runs[0]["rss_start_mb"]
        if config != "postgres_stock":  # the goal is the product's process; the stock store is a comparison
            rss.append(peak)
    workers = raw.get("desk_postgres_redis_workers") or {}
    if workers.get("peak_rss_mb"):
        rss.append(workers["peak_rss_mb"])
    if rss:
        f["peak_rss_mb"] = max(rss)

    if f.get("desk_updates_per_s_sqlite"):
        for kind in ("fsm", "echo"):
            if f.get(f"floor_{kind}_per_s_memory"):
                f[f"ratio_desk_vs_aiogram_{kind}_memory"] = (
                    f[f"floor_{kind}_per_s_memory"] / f["desk_updates_per_s_sqlite"]
                )
    w = raw.get("desk_postgres_redis_workers") or {}
    if w.get("max"):
        sfx = "postgres_redis_workers"
        f[f"desk_workers_{sfx}"] = w["workers"]
        f[f"desk_updates_per_s_{sfx}"] = w["max"]["per_s"]
        f[f"desk_visits_per_s_{sfx}"] = w["max"]["visits_per_s"]
        f[f"desk_cpu_ms_per_update_{sfx}"] = w["max"]["cpu_ms_per_update"]
        f[f"desk_max_p99_ms_{sfx}"] = w["max"]["p99_ms"]
        _machine_cpu(f, sfx, w["max"], raw)
        probes = {k: w[k] for k in PROBES_ORDER if w.get(k)}
        paced = [*([w["paced"]] if w.get("paced") else []), *probes.values()]
        f[f"desk_missing_steps_{sfx}"] = sum(r["missing"] for r in (w["max"], *paced))
        f[f"desk_errors_{sfx}"] = sum(r["errors"] for r in (w["max"], *paced))
        f[f"peak_rss_mb_{sfx}"] = w["peak_rss_mb"]
        if w.get("paced"):
            f[f"desk_offered_per_s_{sfx}"] = w["paced"]["offered_rate"]
            f[f"desk_paced_updates_per_s_{sfx}"] = w["paced"]["per_s"]
            for p in ("p50", "p95", "p99"):
                f[f"desk_{p}_ms_{sfx}"] = w["paced"][f"{p}_ms"]
        for name, r in probes.items():
            f[f"desk_{name}_offered_per_s_{sfx}"] = r["offered_rate"]
            f[f"desk_{name}_updates_per_s_{sfx}"] = r["per_s"]
            f[f"desk_{name}_p99_ms_{sfx}"] = r["p99_ms"]
        if paced:
            rate, p99 = sustained(paced)
            f[f"desk_sustained_per_s_{sfx}"] = rate
            f[f"desk_sustained_p99_ms_{sfx}"] = p99
    # The desk against the bare FSM step on the same storage (the goal: at most 3x), and the two Redis stores.
    for config, storage in (("sqlite", "memory"), ("postgres_redis", "redis_onetrip"), ("postgres_stock", "redis")):
        if f.get(f"desk_cpu_ms_per_update_{config}") and f.get(f"floor_fsm_cpu_ms_per_update_{storage}"):
            f[f"ratio_desk_cpu_vs_aiogram_fsm_{storage}"] = (
                f[f"desk_cpu_ms_per_update_{config}"] / f[f"floor_fsm_cpu_ms_per_update_{storage}"]
            )
        if f.get(f"desk_updates_per_s_{config}") and config != "sqlite":
            for kind in ("fsm", "echo"):
                if f.get(f"floor_{kind}_per_s_{storage}"):
                    f[f"ratio_desk_vs_aiogram_{kind}_{storage}"] = (
                        f[f"floor_{kind}_per_s_{storage}"] / f[f"desk_updates_per_s_{config}"]
                    )
    if f.get("desk_updates_per_s_postgres_redis") and f.get("desk_updates_per_s_postgres_stock"):
        f["ratio_desk_onetrip_vs_stock"] = (
            f["desk_updates_per_s_postgres_redis"] / f["desk_updates_per_s_postgres_stock"]
        )
    if f.get("desk_cpu_ms_per_update_postgres_redis") and f.get("desk_cpu_ms_per_update_postgres_stock"):
        f["ratio_cpu_per_update_onetrip_vs_stock"] = (
            f["desk_cpu_ms_per_update_postgres_redis"] / f["desk_cpu_ms_per_update_postgres_stock"]
        )
    for backend in ("sqlite", "postgres"):
        rungs = (raw.get(f"ladder_{backend}") or {}).get("ladder") or {}
        stock = rungs.get("stock")
        for name, r in rungs.items():
            for key in ("updates_per_s", "cpu_ms_per_update", "max_p99_ms", "easy_p50_ms", "easy_p99_ms",
                        "sequential_cpu_ms_per_update", "sql_per_update", "redis_trips_per_update"):
                if key in r:
                    f[f"whatif_{backend}_{name}_{key}"] = r[key]
            if stock and stock["updates_per_s"]:
                f[f"whatif_{backend}_{name}_speedup"] = r["updates_per_s"] / stock["updates_per_s"]
    for backend in ("sqlite", "postgres"):
        lk = raw.get(f"lookup_{backend}")
        if not lk:
            continue
        for key, value in lk.items():
            if isinstance(value, int | float) and key != "samples":
                f[f"lookup_{key}_{backend}"] = value
        f[f"lookup_p99_ms_{backend}"] = max(lk["nik_repo_p99_ms"], lk["ticket_repo_p99_ms"])
        f[f"lookup_per_s_{backend}"] = min(lk["nik_repo_per_s"], lk["ticket_repo_per_s"])
        f[f"lookup_service_p99_ms_{backend}"] = max(lk["nik_service_p99_ms"], lk["ticket_service_p99_ms"])
        f[f"lookup_raw_p99_ms_{backend}"] = max(lk["nik_raw_p99_ms"], lk["ticket_raw_p99_ms"])
        if "nik_core_p99_ms" in lk:
            f[f"lookup_core_p99_ms_{backend}"] = max(lk["nik_core_p99_ms"], lk["ticket_core_p99_ms"])

    for backend in ("sqlite", "postgres"):
        sfx = "" if backend == "sqlite" else "_postgres"
        for fmt in ("csv", "xlsx"):
            r = raw.get(f"import_{fmt}_{backend}")
            if r:
                f[f"import_rows_per_s_{fmt}{sfx}"] = r["rows_per_s"]
                f[f"import_seconds_{fmt}{sfx}"] = r["seconds"]
                f["import_rows"] = r["rows"]
                for key, value in (r.get("floor") or {}).items():
                    if key != "floor_rows":
                        f[f"import_floor_{key}_{fmt}{sfx}"] = value

    return f


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def _n(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.{digits}f}" if abs(v) >= 1 else f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(f: dict[str, Any], raw: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    meta = raw.get("meta") or {}
    add(f"pcare-frontdesk benchmark ({meta.get('run_kind', '')}) on {meta.get('machine_cpu', '')}, "
        f"{meta.get('machine_cores', '')} cores, load {meta.get('machine_load_1m_at_start', '')} at start"
        + (f", event loop {meta['event_loop']}" if meta.get("event_loop") else ""))
    add("")
    if any(k.startswith("floor_") for k in f):
        add("Floor: bare aiogram 3.31, same session and concurrency as the desk run")
        add(f"  {'':34} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/upd':>10} {'Redis trips':>11}")
        for kind, storage in FLOOR_VARIANTS:
            sfx = _floor_suffix(storage)
            if f"floor_{kind}_per_s_{sfx}" not in f:
                continue
            label = {"echo": "echo", "fsm": "FSM step", "fsmf": "FSM + 2 F filters"}[kind] + " on " + {
                "redis": "RedisStorage", "onetrip": "bot/redis_state", "memory": "memory",
                "inline": "memory, inline"}[storage]
            add(f"  {label:34} {_n(f[f'floor_{kind}_per_s_{sfx}']):>10} {_n(f[f'floor_{kind}_p50_ms_{sfx}'], 2):>8} "
                f"{_n(f[f'floor_{kind}_p99_ms_{sfx}'], 2):>8} {_n(f[f'floor_{kind}_cpu_ms_per_update_{sfx}'], 2):>10} "
                f"{_n(f.get(f'floor_redis_trips_{kind}_{sfx}')):>11}")
        add("")
    configs = [c for c in DESK_CONFIGS if f"desk_updates_per_s_{c}" in f]
    if configs:
        add("Desk: complete visits through the real dispatcher")
        header = f"  {'':34}" + "".join(f"{c:>18}" for c in configs)
        add(header)
        rows = [
            ("targets", lambda c: f.get(f"targets_{DESK_CONFIGS[c]}")),
            ("staff (concurrent people)", lambda c: (raw.get(f"desk_{c}") or {}).get("staff")),
            ("max updates/s", lambda c: f.get(f"desk_updates_per_s_{c}")),
            ("max visits/s", lambda c: f.get(f"desk_visits_per_s_{c}")),
            ("CPU ms per update (bot process)", lambda c: f.get(f"desk_cpu_ms_per_update_{c}")),
            ("  + PostgreSQL server CPU ms", lambda c: f.get(f"desk_postgres_cpu_ms_per_update_{c}")),
            ("  + Redis server CPU ms", lambda c: f.get(f"desk_redis_cpu_ms_per_update_{c}")),
            ("  = machine CPU ms per update", lambda c: f.get(f"desk_machine_cpu_ms_per_update_{c}")),
            ("  → updates/s all cores could carry", lambda c: f.get(f"desk_machine_ceiling_per_s_{c}")),
            ("p99 ms at max", lambda c: f.get(f"desk_max_p99_ms_{c}")),
            ("offered updates/s", lambda c: f.get(f"desk_offered_per_s_{c}")),
            ("achieved updates/s", lambda c: f.get(f"desk_paced_updates_per_s_{c}")),
            ("p50 / p95 / p99 ms at offered", lambda c: "/".join(_n(f.get(f"desk_{p}_ms_{c}"), 1)
                                                                for p in ("p50", "p95", "p99"))),
            ("easy load updates/s", lambda c: f.get(f"desk_easy_offered_per_s_{c}")),
            ("p50 / p95 / p99 ms at easy load", lambda c: "/".join(_n(f.get(f"desk_easy_{p}_ms_{c}"), 1)
                                                                  for p in ("p50", "p95", "p99"))
             if f.get(f"desk_easy_offered_per_s_{c}") else None),
            ("one at a time, ms per update", lambda c: f.get(f"desk_sequential_ms_per_update_{c}")),
            ("one at a time, CPU ms per update", lambda c: f.get(f"desk_sequential_cpu_ms_per_update_{c}")),
            ("  + PostgreSQL server CPU ms", lambda c: f.get(f"desk_sequential_postgres_cpu_ms_per_update_{c}")),
            ("  + Redis server CPU ms", lambda c: f.get(f"desk_sequential_redis_cpu_ms_per_update_{c}")),
            ("SQL statements per update", lambda c: f.get(f"desk_sql_per_update_{c}")),
            ("SQL statements per visit", lambda c: f.get(f"desk_sql_per_visit_{c}")),
            ("  of them compiled by SQLAlchemy", lambda c: f.get(f"desk_sql_compiled_per_visit_{c}")),
            ("  of them on asyncpg itself", lambda c: f.get(f"desk_sql_driver_per_visit_{c}")),
            ("updates per visit", lambda c: f.get(f"desk_updates_per_visit_{c}")),
            ("Redis round trips per update", lambda c: f.get(f"desk_redis_trips_per_update_{c}")),
            ("aiogram thread hops per update", lambda c: f.get(f"desk_thread_hops_per_update_{c}")),
            ("transactions per update", lambda c: f.get(f"desk_transactions_per_update_{c}")),
            ("mean transaction ms", lambda c: f.get(f"desk_transaction_mean_ms_{c}")),
            ("audit head lock held, mean ms", lambda c: f.get(f"desk_audit_lock_hold_mean_ms_{c}")),
            ("  → writes/s ceiling (one chain)", lambda c: f.get(f"desk_audit_write_ceiling_per_s_{c}")),
            ("GC, % of wall at max", lambda c: f.get(f"desk_gc_share_pct_{c}")),
            ("missing steps / errors", lambda c: f"{_n(f.get(f'desk_missing_steps_{c}'))}/"
                                                 f"{_n(f.get(f'desk_errors_{c}'))}"),
            ("RSS MB after start-up", lambda c: f.get(f"desk_rss_after_build_mb_{c}")),
            ("RSS MB growth over the runs", lambda c: f.get(f"desk_rss_growth_mb_{c}")),
            ("peak RSS MB", lambda c: f.get(f"peak_rss_mb_{c}")),
        ]
        for label, get in rows:
            add(f"  {label:34}" + "".join(f"{_n(get(c)):>18}" for c in configs))
        def step_table(title: str, columns: list[str], shown: str, cell: Any) -> None:
            """One row per step that has figure ``desk_step_<step>_<shown>_<c>`` in some column."""
            add("")
            add(f"  {title}")
            add(f"  {'':16}" + "".join(f"{c:>28}" for c in columns))
            for step in STEPS:
                if any(f.get(f"desk_step_{step}_{shown}_{c}") for c in columns):
                    add(f"  {step:16}" + "".join(f"{cell(step, c):>28}" for c in columns))

        step_table("per step: p50 / p99 ms (at the easy load) and SQL statements", configs, "p50_ms",
                   lambda s, c: f"{_n(f.get(f'desk_step_{s}_p50_ms_{c}'))} / {_n(f.get(f'desk_step_{s}_p99_ms_{c}'))} "
                                f"ms, {_n(f.get(f'desk_step_{s}_sql_{c}'))} SQL")
        with_servers = [c for c in configs if f.get(f"desk_sequential_postgres_cpu_ms_per_update_{c}")]
        if with_servers:
            step_table("per step, one update at a time: CPU ms of the bot / PostgreSQL / Redis", with_servers, "cpu_ms",
                       lambda s, c: "/".join(_n(f.get(f"desk_step_{s}_{part}_ms_{c}"), 2)
                                             for part in ("cpu", "postgres_cpu", "redis_cpu")))
        shares = {c: (raw.get(f"desk_{c}") or {}).get("census", {}).get("cpu_share_by_package") or {} for c in configs}
        if any(shares.values()):
            add("")
            add("  where the bot's CPU goes (cProfile own time, one update at a time), % per package")
            for c in configs:
                top = list(shares[c].items())[:9]
                add(f"  {c:18} " + ", ".join(f"{k} {v:.0f}" for k, v in top))
        part_names = list(dict.fromkeys(p for c in configs for p in ((raw.get(f"desk_{c}") or {}).get("parts") or {})))
        if part_names:
            add("")
            add("  pieces of the hot path, one call at a time: wall / CPU ms")
            for part in part_names:
                cells = []
                for c in configs:
                    r = ((raw.get(f"desk_{c}") or {}).get("parts") or {}).get(part)
                    cells.append(f"{_n(r['wall_ms'], 2)} / {_n(r['cpu_ms'], 2)}" if r else "–")
                add(f"  {part:30}" + "".join(f"{x:>22}" for x in cells))
        for c in configs:
            for name in ("max", "census"):
                d = (raw.get(f"desk_{c}") or {}).get(name) or {}
                for step, text in (d.get("missing_text") or {}).items():
                    add(f"  ! {c}: missing {step}; the bot said: {text[:160]!r}")
        add("")
    wk = "postgres_redis_workers"
    if f.get(f"desk_updates_per_s_{wk}"):
        per = (raw.get(f"desk_{wk}") or {}).get("max", {}).get("per_worker_per_s") or []
        add(f"Desk on {_n(f[f'desk_workers_{wk}'])} worker processes at once, PostgreSQL + Redis on the same machine")
        add(f"  max updates/s {_n(f[f'desk_updates_per_s_{wk}'])} ({' + '.join(_n(x) for x in per)}), "
            f"CPU ms per update {_n(f.get(f'desk_cpu_ms_per_update_{wk}'), 2)}, p99 at max "
            f"{_n(f.get(f'desk_max_p99_ms_{wk}'))} ms")
        if f.get(f"desk_machine_cpu_ms_per_update_{wk}"):
            add(f"  machine CPU ms per update {_n(f[f'desk_machine_cpu_ms_per_update_{wk}'], 2)} (bot "
                f"{_n(f.get(f'desk_cpu_ms_per_update_{wk}'), 2)} + PostgreSQL "
                f"{_n(f.get(f'desk_postgres_cpu_ms_per_update_{wk}'), 2)} + Redis "
                f"{_n(f.get(f'desk_redis_cpu_ms_per_update_{wk}'), 2)}): "
                f"{_n(f.get(f'desk_machine_ceiling_per_s_{wk}'))} updates/s with every core busy")
        if f.get(f"desk_offered_per_s_{wk}"):
            add(f"  offered {_n(f[f'desk_offered_per_s_{wk}'])}/s: "
                f"achieved {_n(f[f'desk_paced_updates_per_s_{wk}'])}/s, "
                f"p50 / p95 / p99 {_n(f[f'desk_p50_ms_{wk}'])} / {_n(f[f'desk_p95_ms_{wk}'])} / "
                f"{_n(f[f'desk_p99_ms_{wk}'])} ms")
        for name in PROBES_ORDER:
            if f.get(f"desk_{name}_offered_per_s_{wk}"):
                add(f"  probe at {name.removeprefix('probe_')} % of max, offered "
                    f"{_n(f[f'desk_{name}_offered_per_s_{wk}'])}/s: achieved "
                    f"{_n(f[f'desk_{name}_updates_per_s_{wk}'])}/s, p99 {_n(f[f'desk_{name}_p99_ms_{wk}'])} ms")
        if f"desk_sustained_per_s_{wk}" in f:
            add(f"  sustained within p99 <= {_n(SUSTAINED_P99_MS)} ms: {_n(f[f'desk_sustained_per_s_{wk}'])} updates/s "
                f"(p99 {_n(f[f'desk_sustained_p99_ms_{wk}'])} ms)")
        add(f"  missing steps / errors {_n(f.get(f'desk_missing_steps_{wk}'))}/{_n(f.get(f'desk_errors_{wk}'))}, "
            f"peak RSS {_n(f.get(f'peak_rss_mb_{wk}'))} MB per worker")
        add("")
    for backend in ("sqlite", "postgres"):
        rungs = (raw.get(f"ladder_{backend}") or {}).get("ladder") or {}
        if not rungs:
            continue
        offered = next(iter(rungs.values()))["easy_offered"]
        add(f"What-ifs on {backend}, applied one after the other (each rung keeps the ones above); "
            f"easy load = {_n(offered)} updates/s offered")
        add(f"  {'':16}{'updates/s':>10}{'× stock':>8}{'max p99':>9}{'CPU ms/upd':>11}{'seq CPU ms':>11}{'SQL/upd':>8}"
            f"{'Redis/upd':>10}{'easy p50':>9}{'easy p99':>9}")
        for name, r in rungs.items():
            add(f"  {name:16}{_n(r['updates_per_s']):>10}{_n(f.get(f'whatif_{backend}_{name}_speedup'), 2):>8}"
                f"{_n(r.get('max_p99_ms')):>9}"
                f"{_n(r['cpu_ms_per_update'], 2):>11}{_n(r['sequential_cpu_ms_per_update'], 2):>11}"
                f"{_n(r['sql_per_update']):>8}{_n(r['redis_trips_per_update']):>10}"
                f"{_n(r['easy_p50_ms']):>9}{_n(r['easy_p99_ms']):>9}")
        add("")
    for backend in ("sqlite", "postgres"):
        if f"lookup_p99_ms_{backend}" not in f:
            continue
        add(f"Lookups on {backend} ({_n(f.get(f'targets_{backend}'))} targets): p50 / p99 ms one at a time, "
            f"lookups/s (raw: one connection, one at a time; core, repo, service: 16 in flight)")
        for kind in ("nik", "ticket"):
            cells = []
            for depth in ("raw", "core", "repo", "service"):
                if f.get(f"lookup_{kind}_{depth}_p50_ms_{backend}") is None:
                    continue
                cells.append(f"{depth} {_n(f.get(f'lookup_{kind}_{depth}_p50_ms_{backend}'), 3)} / "
                             f"{_n(f.get(f'lookup_{kind}_{depth}_p99_ms_{backend}'), 3)} ms, "
                             f"{_n(f.get(f'lookup_{kind}_{depth}_per_s_{backend}'))}/s")
            add(f"  {kind:7}" + "   ".join(cells))
        add("")
    if "import_rows" in f:
        add(f"Import of {_n(f['import_rows'])} rows (one transaction, tickets generated)")
        for backend, sfx in (("sqlite", ""), ("postgres", "_postgres")):
            cells = [f"{fmt} {_n(f.get(f'import_rows_per_s_{fmt}{sfx}'))} rows/s"
                     for fmt in ("csv", "xlsx") if f.get(f"import_rows_per_s_{fmt}{sfx}")]
            if cells:
                add(f"  {backend:9}" + "   ".join(cells))
            for fmt in ("csv", "xlsx"):
                if f.get(f"import_floor_read_rows_per_s_{fmt}{sfx}"):
                    add(f"    {fmt} parts alone, rows/s: read {_n(f[f'import_floor_read_rows_per_s_{fmt}{sfx}'])}, "
                        f"read+validate {_n(f[f'import_floor_read_validate_rows_per_s_{fmt}{sfx}'])}, "
                        f"tickets {_n(f[f'import_floor_tickets_per_s_{fmt}{sfx}'])}, "
                        f"driver write {_n(f[f'import_floor_driver_write_rows_per_s_{fmt}{sfx}'])}")
        add("")
    add("Goals")
    for goal, name, op, bound, unit in GOALS:
        v = f.get(name)
        if v is None:
            add(f"  –  {goal}: not measured in this run")
            continue
        ok = v >= bound if op == ">=" else v <= bound
        note = ""
        if name.startswith("desk_p99_ms_"):
            # A latency "at 1,000/s" counts only if the bot carried that load: a few people waiting on a
            # saturated bot see a short queue (a closed loop), not the latency of the offered rate.
            sfx = name.removeprefix("desk_p99_ms_")
            offered, achieved = f.get(f"desk_offered_per_s_{sfx}"), f.get(f"desk_paced_updates_per_s_{sfx}")
            if offered and achieved is not None and achieved < 0.95 * offered:
                ok = False
                note = f"; carried only {_n(achieved)} of the {_n(offered)}/s offered"
        add(f"  {'✓' if ok else '✗'}  {goal}: {_n(v, 2)} {unit} (goal {op} {_n(bound)}{note})")
    return "\n".join(lines)


def write(path: Path, f: dict[str, Any], raw: dict[str, Any]) -> None:
    meta = {k: v for k, v in (raw.get("meta") or {}).items()}
    out = {**meta, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in sorted(f.items())}}
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
