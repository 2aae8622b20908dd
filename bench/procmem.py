"""Peak memory of a dms run's processes, sampled from ``/proc`` (shared by the benchmarks).

A run is carried out by several server processes, so one number per run is
not enough: the session that issued the ``CALL`` (it coordinates), the
worker backends (``application_name = 'dms worker run N'``), their extra
sessions (``... data``, ``dms coordinator run N ...``) and the ``psql``
processes the workers start to read COPY streams.  ``RunSampler`` finds
them every tick (20 ms) and keeps, per process:

* private memory: ``RssAnon``, what the process itself allocated -- the
  number that grows if a worker buffers rows;
* ``VmHWM``: the resident high-water mark, which also counts every
  shared-buffer page a backend touched, so it grows with the data read (up
  to shared_buffers) whatever the process does.

Reading other processes' ``/proc`` needs root or the postgres OS user.
The kernel here has no ``/proc/<pid>/task/<tid>/children``, so children
are found from each process's parent pid in ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

TICK = 0.02  # seconds between samples
_WORKER = re.compile(r"^dms worker run \d+$")
_WORKER_DATA = re.compile(r"^dms worker run \d+ ")
_COORDINATOR = re.compile(r"^dms coordinator run \d+")


def status_kb(pid: int) -> dict[str, int]:
    """``VmHWM``, ``RssAnon`` and ``VmRSS`` of ``pid`` in kB; empty if it is gone."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "RssAnon", "VmRSS"):
                values[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int | None:
    """User plus system CPU time of ``pid`` so far, in clock ticks; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def role_of(application_name: str) -> str | None:
    """What a backend does in a run, from the connection name the engine gives it."""
    if _WORKER.match(application_name):
        return "worker"
    if _WORKER_DATA.match(application_name):
        return "worker data session"
    if _COORDINATOR.match(application_name):
        return "coordinator session"
    return None


class ProcessTable:
    """Parent pid and command name of every process, read once per pid.

    A pid's parent and name do not change while it lives, and a pid is not
    reused within one 20 ms tick, so only new pids cost a file read.
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[int, str]] = {}

    def _stat(self, pid: int) -> tuple[int, str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        head, _, tail = text.rpartition(")")
        comm = head.partition("(")[2]
        return int(tail.split()[1]), comm

    def children(self, parents: Iterable[int], comm: str) -> list[int]:
        wanted = set(parents)
        alive = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for gone in self._known.keys() - alive:
            del self._known[gone]
        found = []
        for pid in alive:
            if pid not in self._known:
                stat = self._stat(pid)
                if stat is None:
                    continue
                self._known[pid] = stat
            ppid, name = self._known[pid]
            if ppid in wanted and name == comm:
                found.append(pid)
        return found


@dataclass
class RolePeak:
    """The largest single process of one role, and how many processes had it."""

    private_kb: int = 0
    hwm_kb: int = 0
    pids: set[int] = field(default_factory=set)
    # CPU ticks of each process at its last sample: a process that ends
    # between two samples loses at most one tick's worth (20 ms) of its CPU.
    ticks: dict[int, int] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return round(sum(self.ticks.values()) / CLOCK_TICKS, 2)

    def as_dict(self) -> dict[str, float | int]:
        return {"private_mb": mb(self.private_kb), "rss_mb": mb(self.hwm_kb),
                "processes": len(self.pids), "cpu_s": self.cpu_s}


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


class RunSampler(threading.Thread):
    """Sample every process of the dms runs in ``databases`` until ``finish()``.

    ``caller_pid`` is the backend that issued the CALL: it runs the
    coordinator.  Backends are found by ``application_name`` in
    ``pg_stat_activity`` (restricted to the benchmark's databases, so runs
    of other sessions on the same cluster are not counted), plus their
    child processes named ``child_comm``.
    """

    def __init__(self, dsn: str, *, caller_pid: int | None, databases: Sequence[str],
                 child_comm: str = "psql", by_database: bool = False) -> None:
        super().__init__(daemon=True)
        # by_database: data sessions are told apart by database (a cross-database
        # run's source and target sessions), for the CPU split of bench/run.py.
        self.by_database = by_database
        self.dsn, self.caller_pid, self.databases = dsn, caller_pid, list(databases)
        self.child_comm = child_comm
        self._stop_event = threading.Event()
        self.peaks: dict[str, RolePeak] = {}
        self.total_private_kb = 0  # largest sum over all processes at one instant
        self.error: str | None = None

    def finish(self) -> None:
        self._stop_event.set()
        self.join()

    def _backends(self, conn: psycopg.Connection[tuple[Any, ...]]) -> dict[int, str]:
        roles: dict[int, str] = {}
        rows = conn.execute(
            "SELECT pid, application_name, datname FROM pg_stat_activity"
            " WHERE datname = ANY(%s) AND application_name LIKE 'dms %%'",
            [self.databases]).fetchall()
        for pid, name, database in rows:
            role = role_of(name)
            if role == "worker data session" and self.by_database:
                role = f"{role} in {database}"  # a cross-database run: source or target
            if role:
                roles[pid] = role
        if self.caller_pid is not None:
            roles[self.caller_pid] = "caller (coordinator)"
        return roles

    def _sample(self, roles: dict[int, str]) -> None:
        total = 0
        for pid, role in roles.items():
            kb = status_kb(pid)
            if not kb:
                continue
            peak = self.peaks.setdefault(role, RolePeak())
            peak.private_kb = max(peak.private_kb, kb.get("RssAnon", 0))
            peak.hwm_kb = max(peak.hwm_kb, kb.get("VmHWM", 0))
            peak.pids.add(pid)
            ticks = cpu_ticks(pid)
            if ticks is not None:
                peak.ticks[pid] = ticks
            total += kb.get("RssAnon", 0)
        self.total_private_kb = max(self.total_private_kb, total)

    def run(self) -> None:
        table = ProcessTable()
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self._stop_event.is_set():
                    roles = self._backends(conn)
                    for child in table.children(roles, self.child_comm):
                        roles[child] = self.child_comm
                    self._sample(roles)
                    time.sleep(TICK)
        except (OSError, psycopg.Error) as exc:  # report it; never break the timed run
            self.error = f"{type(exc).__name__}: {exc}"

    def largest(self, roles: Iterable[str] | None = None) -> RolePeak:
        """The largest private and VmHWM over ``roles`` (all roles by default)."""
        wanted = None if roles is None else set(roles)
        chosen = [p for r, p in self.peaks.items() if wanted is None or r in wanted]
        out = RolePeak()
        for peak in chosen:
            out.private_kb = max(out.private_kb, peak.private_kb)
            out.hwm_kb = max(out.hwm_kb, peak.hwm_kb)
            out.pids |= peak.pids
        return out

    def summary(self) -> dict[str, object]:
        return {
            "by_role": {role: peak.as_dict() for role, peak in sorted(self.peaks.items())},
            "total_private_mb": mb(self.total_private_kb),
            "sampler_error": self.error,
        }
