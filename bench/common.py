"""What every part of the benchmark shares: the bench day, a clock per synthetic person, timing helpers.

Nothing here imports aiogram or the bot, so the seed and the report stay light.
"""

from __future__ import annotations

import contextvars
import os
import platform
import resource
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

#: The day every synthetic visit happens on. 00:30 UTC is 07:30 WIB, 08:30 WITA and 09:30 WIT: a
#: person's clock may run fourteen hours ahead and stay on the same local day in every time zone.
BENCH_DAY = date(2026, 11, 26)
BENCH_START = datetime(BENCH_DAY.year, BENCH_DAY.month, BENCH_DAY.day, 0, 30, tzinfo=UTC)
MAX_OFFSET = timedelta(hours=14)  # 21:30 WIB, 23:30 WIT: still the bench day everywhere

ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Seeded SQLite templates and generated import files are kept here between runs."""
    base = os.environ.get("FRONTDESK_BENCH_CACHE") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "pcare-bench-cache"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# The clock: one virtual time per synthetic person
# --------------------------------------------------------------------------------------------

_OFFSET: contextvars.ContextVar[timedelta] = contextvars.ContextVar("bench_offset", default=timedelta(0))


class PersonClock:
    """``now()`` is the bench day's morning plus the offset of the asyncio task asking.

    Each synthetic staff member is one asyncio task; its offset advances by a think time per update,
    so that the per-account lookup limit (60 a minute, 600 an hour, on PL's clock) holds as it would
    for a real person, and an observation is tapped 31 minutes after the vaccination (in virtual
    time) without anybody waiting. Everything a handler does during ``feed_update`` runs in the
    task of the person who sent the update, so the offset follows the update.
    """

    def now(self) -> datetime:
        return BENCH_START + _OFFSET.get()

    @staticmethod
    def advance(delta: timedelta) -> None:
        # Stay on the bench day: past MAX_OFFSET the clock stops (runs are sized never to get there).
        _OFFSET.set(min(_OFFSET.get() + delta, MAX_OFFSET))

    @staticmethod
    def start_at(offset: timedelta) -> None:
        """This task's clock starts here (each run of the same people starts later than the last)."""
        _OFFSET.set(offset)

    @staticmethod
    def shifted(delta: timedelta) -> contextvars.Token[timedelta]:
        return _OFFSET.set(_OFFSET.get() + delta)

    @staticmethod
    def reset(token: contextvars.Token[timedelta]) -> None:
        _OFFSET.reset(token)


class SteppingClock:
    """A clock that moves on only when told (``tick``): many lookups by one account, each a few
    virtual seconds after the one before, so that PL's per-account limits are not what is measured."""

    def __init__(self, step: timedelta = timedelta(seconds=7)) -> None:
        self._at = BENCH_START
        self.step = step

    def now(self) -> datetime:
        return self._at

    def tick(self) -> None:
        self._at += self.step


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, round(p / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


@dataclass
class Latencies:
    """Seconds per call, summarised in milliseconds."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def extend(self, seconds: Iterable[float]) -> None:
        self.values.extend(seconds)

    def __len__(self) -> int:
        return len(self.values)

    def summary(self) -> dict[str, float]:
        v = sorted(self.values)
        if not v:
            return {"n": 0, "mean_ms": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        return {
            "n": len(v),
            "mean_ms": 1000 * sum(v) / len(v),
            "p50_ms": 1000 * percentile(v, 50),
            "p95_ms": 1000 * percentile(v, 95),
            "p99_ms": 1000 * percentile(v, 99),
            "max_ms": 1000 * v[-1],
        }


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it started (``VmHWM``).

    Not ``getrusage().ru_maxrss``: on Linux a child started by fork and exec inherits the parent's
    figure (the forked copy's RSS is counted at exec), so a bot process started by a big seeder
    would report the seeder's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc), 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def _children(pids: Iterable[int]) -> dict[int, list[int]]:
    """The running children of each of ``pids``, from one walk of /proc."""
    children: dict[int, list[int]] = {pid: [] for pid in pids}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            f = _stat_fields(int(entry.name))
            if f is not None and int(f[1]) in children:
                children[int(f[1])].append(int(entry.name))
    return children


def _ticks(pid: int, fields: slice) -> int:
    f = _stat_fields(pid)
    return sum(int(x) for x in f[fields]) if f is not None else 0


def servers_cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU each server has used so far: the process, the children it has reaped (a PostgreSQL backend that
    ended), and the children still running (the pooled backends). Linux only; 0.0 where /proc is absent."""
    children = _children(pids.values())
    # Fields from "state" on: utime, stime, cutime, cstime are the 12th to 15th.
    return {
        name: (_ticks(pid, slice(11, 15)) + sum(_ticks(c, slice(11, 13)) for c in children[pid])) / _TICKS
        for name, pid in pids.items()
    }


def _ran_ns(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def servers_cpu_ns(pids: dict[str, int]) -> dict[str, int]:
    """Nanosecond CPU time of each server and its running children (``/proc/PID/schedstat``): fine enough
    for one update at a time, where ``servers_cpu_seconds``'s 10 ms ticks are not. A child that ends in
    between is lost, so use it only where the children stay (a pool's backends during the census)."""
    children = _children(pids.values())
    return {name: _ran_ns(pid) + sum(_ran_ns(c) for c in children[pid]) for name, pid in pids.items()}


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_1m_at_start": round(load, 2),
    }


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)
