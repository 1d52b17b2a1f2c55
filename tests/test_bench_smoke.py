"""The benchmark harness runs end to end at a tiny size and writes every named figure.

Timings are never asserted: only that each figure the run's phases promise is a positive number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import find_missing

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_quick_harness_writes_every_figure(tmp_path: Path) -> None:
    missing = find_missing()
    if missing:
        pytest.skip(f"server binaries missing: {', '.join(missing)}")
    from bench.report import expected_figures

    out = tmp_path / "results.json"
    env = {**os.environ, "FRONTDESK_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--postgres",
            "--no-whatif",
            # Enough targets that no team runs dry: three runs per desk configuration, five on the
            # workers, and the PostgreSQL configurations share one database (a team that runs dry fails
            # its measurement).
            "--targets",
            "6000",
            "--targets-pg",
            "18000",
            "--faskes",
            "12",
            "--teams",
            "3",
            "--seconds",
            "1",
            "--warmup",
            "0.5",
            "--floor-seconds",
            "0.5",
            "--import-rows",
            "2000",
            "--samples",
            "30",
            "--census-visits",
            "2",
            "--easy",
            "0.5",
            "--skip",
            "profile",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = json.loads((tmp_path / "results.raw.json").read_text())
    assert not raw.get("failures"), f"measurements failed: {raw.get('failures')}"
    figures = json.loads(out.read_text())
    phases = figures["run_phases"].split(",")
    assert {"floor", "desk", "lookup", "import", "sqlite", "postgres", "redis"} <= set(phases)
    names = expected_figures(phases)
    absent = [n for n in names if n not in figures]
    assert not absent, f"figures missing: {absent}"
    not_positive = {n: figures[n] for n in names if not (isinstance(figures[n], int | float) and figures[n] > 0)}
    assert not not_positive, f"figures not positive: {not_positive}"
    if "workers" in phases:  # the rate sustained within the latency goal: 0 when no paced run was
        assert "desk_sustained_per_s_postgres_redis_workers" in figures
    assert "Goals" in proc.stdout


def test_the_sustained_rate_is_the_fastest_paced_run_within_the_latency_goal() -> None:
    """A paced run counts when its p99 is within 100 ms and it carried what was offered (within 5 %)."""
    from bench.report import sustained

    runs = [
        {"offered_rate": 1000.0, "per_s": 700.0, "p99_ms": 90.0},  # fell behind what was offered
        {"offered_rate": 500.0, "per_s": 499.0, "p99_ms": 10.0},
        {"offered_rate": 650.0, "per_s": 648.0, "p99_ms": 60.0},
        {"offered_rate": 800.0, "per_s": 796.0, "p99_ms": 140.0},  # over the latency goal
    ]
    assert sustained(runs) == (648.0, 60.0)
    assert sustained([runs[0], runs[3]]) == (0.0, 0.0)


def test_a_team_that_runs_out_of_targets_fails_the_run() -> None:
    """A run whose teams served every target measures an idle bot: it must fail, not report zeros."""
    import asyncio
    import collections
    from datetime import timedelta

    from bench.desk import TargetsRanOut, Team, timed_run

    idle = Team("1501P001", None, None, None, collections.deque())  # type: ignore[arg-type]
    with pytest.raises(TargetsRanOut, match="1 of 1 teams ran out of targets"):
        asyncio.run(timed_run([idle], seconds=0.2, warmup=0.0, rate=None, clock_from=timedelta(0)))


BURN = """
import sys, time
t = time.process_time()
while time.process_time() - t < 0.3:
    pass
open(sys.argv[1], "w").close()
time.sleep(float(sys.argv[2]))
"""

SERVER = """
import subprocess, sys, time
ended = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2] + ".ended", "0"])
ended.wait()  # reaped: its CPU moves to this process's children's time, as a finished backend's does
running = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2] + ".running", "60"])
time.sleep(60)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_server_cpu_counts_the_process_its_finished_and_its_running_children(tmp_path: Path) -> None:
    """The bench charges a server (PostgreSQL with its backends) with its own CPU, the backends that ended
    and the backends still running: here two children that each burn 0.3 s of CPU."""
    import time

    from bench.common import servers_cpu_seconds

    marker = tmp_path / "burn"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, BURN, str(marker)])
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{marker}.running").exists():
            assert time.monotonic() < deadline, "the burning children did not finish"
            time.sleep(0.05)
        used = servers_cpu_seconds({"server": proc.pid})["server"]
        assert used >= 0.55, used  # both children's 0.6 s (ticks of 10 ms may round each down a little)
    finally:
        proc.kill()
        proc.wait()
    assert servers_cpu_seconds({"server": proc.pid}) == {"server": 0.0}  # a process that is gone counts nothing


def test_report_only_merges_runs_under_the_first_runs_machine(tmp_path: Path) -> None:
    """`--report-only A B`: B's phases override A's, the figures keep A's machine and start, B is listed
    with when it ran, and the merged raw results are written beside the figures."""
    from bench.run import main

    first = {
        "meta": {"run_started_at": "T1", "run_phases": "desk,sqlite", "machine_cores": 2, "run_kind": "full"},
        "import_csv_sqlite": {"rows": 10, "seconds": 1.0, "rows_per_s": 10.0},
    }
    later = {
        "meta": {"run_started_at": "T2", "run_phases": "import,sqlite", "machine_cores": 8, "run_kind": "quick"},
        "import_csv_sqlite": {"rows": 10, "seconds": 0.5, "rows_per_s": 20.0},
    }
    a, b = tmp_path / "a.raw.json", tmp_path / "b.raw.json"
    a.write_text(json.dumps(first))
    b.write_text(json.dumps(later))
    out = tmp_path / "results.json"
    assert main(["--report-only", str(a), str(b), "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["import_rows_per_s_csv"] == 20.0
    assert (figures["run_started_at"], figures["machine_cores"], figures["run_kind"]) == ("T1", 2, "full")
    assert figures["run_merged_from"] == "T2 (import,sqlite)"
    assert figures["run_phases"] == "desk,import,sqlite"
    merged = json.loads((tmp_path / "results.raw.json").read_text())
    assert merged["import_csv_sqlite"]["rows_per_s"] == 20.0 and merged["meta"]["run_started_at"] == "T1"
