"""Profiling benchmark: ``dms profile`` against baselinr 0.9 on the same 50 tables.

    .venv/bin/python bench/profile_bench.py [--runs 3] [--scale 1.0] [--parallel 4]
                                            [--tables 50] [--no-store-only] [--no-memory]

The issue's acceptance test: baselinr (0.9.x) against ``dms profile`` on 50
tables of 20K-200K rows with the same metrics, goal ``dms profile`` <= 0.33x
baselinr's time; times, ratios and peak memory reported.

Not a test and not run by CI: at full size it takes several minutes and
wants the machine to itself.  It works on the project's own sandbox (``dms
sandbox``, started if needed, never stopped) and touches only:

* database ``dms_bench_prof`` (created if missing, dms installed into it for
  the storing method): tables ``public.t01`` .. ``public.tNN`` (``--tables``,
  default 50), table i with ``round((20000 + (i-1) * 3673) * --scale)`` rows
  (20,000 .. 199,977 at scale 1: 5.5M rows in all).  Columns: ``id bigint``
  primary key, ``qty int`` (skewed: the cube of a uniform value, most rows
  small), ``score int`` (~5 % NULL), ``amount numeric(12,2)``, ``note text``
  (~10 % NULL, 20-120 characters), ``category varchar(20)`` (12 values,
  skewed), ``day date`` (~20 % NULL), ``ts timestamp``, ``flag boolean``;
  every value a pure function of id through ``hashint8``, generated with
  ``generate_series``.  A table is reused while its COMMENT says it was made
  by this version of the generator with that many rows; otherwise it is
  dropped and made again (``VACUUM ANALYZE`` after).  The profiles the
  storing method keeps (``dms.profile_*``) accumulate there; nothing else is
  written.
* a login role ``dms_bench_baselinr`` (SELECT on those tables only, no
  superuser): baselinr connects with SQLAlchemy over TCP, and the sandbox
  asks TCP logins for a password (scram-sha-256; only local socket logins
  are trusted, dms_pkg/sandbox.py).  Its password is drawn afresh at every
  start of the benchmark (``secrets``), set with ``ALTER ROLE``, and handed
  to baselinr only through the environment variable its config file names
  (``${DMS_BENCH_BASELINR_PASSWORD}``, which baselinr's loader expands): it
  is never printed, logged or written to a file.
* baselinr's storage tables ``baselinr_*`` in ``public``, which baselinr
  creates itself -- except ``baselinr_schema_version``: baselinr 0.9.0 creates
  it on a connection it closes without a commit (SQLAlchemy 2.0 rolls the DDL
  back) and then fails to insert into it, so the benchmark makes it once with
  baselinr's own DDL and gives it to the baselinr role.
* a temporary directory for baselinr's config file and dms's JSON output,
  removed at the end.

baselinr is the real one from PyPI in its own virtual environment
``bench/.venv-baselinr`` (gitignored, never a project dependency), made if
missing with ``pip install baselinr==0.9.0 'sqlalchemy>=2.0,<2.1'``: baselinr
0.9.0 requires psycopg2-binary and writes ``postgresql://`` URLs, which
SQLAlchemy 2.1 (what pip picks otherwise) maps to the psycopg 3 driver, not
installed there ("No module named 'psycopg'").

Methods, run ``--runs`` times round-robin (one run of each, then the next
repetition), each a fresh process (a user types the command: both pay their
interpreter's start and imports), median reported:

=================  ==============================================================
baselinr           ``baselinr profile --config CFG``: the reference, its normal
                   run: profiles, then keeps the results in its storage tables
                   ``baselinr_runs``/``baselinr_results`` (in ``dms_bench_prof``,
                   created by baselinr itself, growing by one run each time);
                   ``execution.max_workers`` = ``--parallel``.  Not
                   ``--dry-run --output FILE``: baselinr 0.9.0 then fails after
                   profiling ("Object of type Decimal is not JSON serializable",
                   the numeric column's min/max), and without ``--output`` a dry
                   run leaves nothing to check.
dms-no-store       ``dms profile --dsn DSN public.t01 ... --parallel N --format
                   json --no-store``
dms-store          the same without ``--no-store``: the profile is also kept
                   in ``dms.profile_*`` -- the like-for-like counterpart of
                   baselinr's run (left out by ``--no-store-only``)
=================  ==============================================================

Both tools are asked for the same metrics: baselinr's ``profiling.metrics``
is ``count, null_count, null_ratio, distinct_count, unique_ratio, min, max,
mean, stddev, histogram, min_length, max_length, avg_length`` (its defaults
minus ``approx_distinct_count`` and ``data_type_inferred``, which dms has
not; enrichment, type inference and approximate distinct off),
``histogram_bins`` 10, no sampling, no partitions.  What each then computes
for which columns differs a little (the report lists it): baselinr makes
histograms of number columns only, dms of number and date columns; its
``count`` is the table's rows, dms's the non-NULL values.

After every run, untimed, it must hold, or the run counts as failed with
the reason: the tool exited 0 and reported every table, none with an
error; for the checked tables (the first, the middle and the last) the row
count and, per column, the null count and the exact distinct count equal
plain SQL (``count(*)``, ``count(*) - count(c)``, ``count(DISTINCT c)``,
computed once at the start); baselinr's run must be one new run in
``baselinr_runs`` with every table, no column with an error, and its
``count``, ``null_count`` and ``distinct_count`` (read back from
``baselinr_results``) must equal the same SQL.

Peak memory: every 20 ms, from /proc (``bench/procmem.py``'s
``status_kb``): the client's process tree (the CLI and every descendant)
and the server backends serving it (client backends of ``dms_bench_prof``
other than the sampler's own).  Reported per run: the largest sum of
private memory (RssAnon) over the tree at one instant, the largest VmHWM
of one client process, and the same two for the backends.  Needs root or
the postgres OS user; ``--no-memory`` leaves the sampler out (~a few %% of
a core).

Output: a markdown report on stdout and in
``bench/results/profile-latest.md``, raw data in
``bench/results/profile-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procmem
import psycopg
from psycopg import sql

from dms_pkg.errors import DmsError
from dms_pkg.install.installer import install
from dms_pkg.sandbox import Sandbox, default_home

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DB = "dms_bench_prof"
ROLE = "dms_bench_baselinr"
PASSWORD_ENV = "DMS_BENCH_BASELINR_PASSWORD"  # noqa: S105 (the variable's name)
BASELINR_VERSION = "0.9.0"
BASELINR_VENV = HERE / ".venv-baselinr"
# SQLAlchemy 2.1 makes "postgresql://" mean the psycopg (3) driver; baselinr 0.9.0
# depends on psycopg2-binary and builds such URLs, so it needs SQLAlchemy 2.0.
BASELINR_PINS = ["sqlalchemy>=2.0,<2.1"]
DMS = ROOT / ".venv" / "bin" / "dms"
GENERATOR = "dms profile bench v1"  # in each table's COMMENT, with its rows
TIME_GOAL = 0.33  # dms profile / baselinr
TICK = 0.02

BASELINR_METRICS = ["count", "null_count", "null_ratio", "distinct_count", "unique_ratio",
                    "min", "max", "mean", "stddev", "histogram", "min_length", "max_length",
                    "avg_length"]

COLUMNS = """
    id       bigint        PRIMARY KEY,
    qty      int           NOT NULL,
    score    int,
    amount   numeric(12,2) NOT NULL,
    note     text,
    category varchar(20)   NOT NULL,
    day      date,
    ts       timestamp     NOT NULL,
    flag     boolean       NOT NULL
"""
FILL = """
INSERT INTO {table}
SELECT g,
       floor(1000 * power((h1 %% 1000000) / 1000000.0, 3))::int,
       CASE WHEN h2 %% 20 = 0 THEN NULL ELSE (h2 %% 5000)::int END,
       ((h3 %% 10000000) / 100.0)::numeric(12,2),
       CASE WHEN h4 %% 10 = 0 THEN NULL
            ELSE left('note ' || md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text)
                      || md5((g + 3)::text), 20 + (h4 %% 101)::int) END,
       'cat_' || least(11, floor(-ln(1 - (h5 %% 1000000) / 1000000.0) * 3))::int,
       CASE WHEN h6 %% 5 = 0 THEN NULL ELSE date '2020-01-01' + (h6 %% 1461)::int END,
       timestamp '2020-01-01' + make_interval(secs => (h7 %% (4 * 365 * 86400))),
       h1 %% 3 = 0
  FROM (SELECT g,
               abs(hashint8(g * 7 + 1)::bigint) AS h1, abs(hashint8(g * 7 + 2)::bigint) AS h2,
               abs(hashint8(g * 7 + 3)::bigint) AS h3, abs(hashint8(g * 7 + 4)::bigint) AS h4,
               abs(hashint8(g * 7 + 5)::bigint) AS h5, abs(hashint8(g * 7 + 6)::bigint) AS h6,
               abs(hashint8(g * 7 + 7)::bigint) AS h7
          FROM generate_series(1::bigint, %(rows)s::bigint) AS g) AS s
"""
VERSION_DDL = """
CREATE TABLE IF NOT EXISTS public.baselinr_schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    description VARCHAR(500),
    migration_script VARCHAR(255),
    checksum VARCHAR(64)
)
"""
COLUMN_NAMES = ["id", "qty", "score", "amount", "note", "category", "day", "ts", "flag"]

Conn = psycopg.Connection[tuple[Any, ...]]


# ------------------------------------------------------------------ helpers
def connect(box: Sandbox, db: str = DB) -> Conn:
    return psycopg.connect(box.dsn(db), autocommit=True)


def scalar(conn: Conn, query: str, params: list[Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


def table_rows(i: int, scale: float) -> int:
    return max(1, round((20000 + (i - 1) * 3673) * scale))


@dataclass
class Env:
    box: Sandbox
    tables: list[tuple[str, int]]  # (name, rows)
    parallel: int
    memory: bool
    password: str
    truth: dict[str, dict[str, Any]] = field(default_factory=dict)  # checked tables
    workdir: Path = Path()

    @property
    def total_rows(self) -> int:
        return sum(rows for _, rows in self.tables)


# ------------------------------------------------------------------ setup
def ensure_baselinr() -> Path:
    exe = BASELINR_VENV / "bin" / "baselinr"
    if not exe.exists():
        print(f"making {BASELINR_VENV} (pip install baselinr=={BASELINR_VERSION})",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(BASELINR_VENV)], check=True)
        subprocess.run([str(BASELINR_VENV / "bin" / "pip"), "install", "--quiet",
                        f"baselinr=={BASELINR_VERSION}", *BASELINR_PINS], check=True)
    return exe


def baselinr_version() -> str:
    out = subprocess.run([str(BASELINR_VENV / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('baselinr'),"
                          " m.version('sqlalchemy'), m.version('psycopg2-binary'))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return f"baselinr {out[0]} (SQLAlchemy {out[1]}, psycopg2-binary {out[2]})"


def prepare_tables(box: Sandbox, count: int, scale: float) -> list[tuple[str, int]]:
    with connect(box, "postgres") as admin:
        if not scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", [DB]):
            admin.execute(f'CREATE DATABASE "{DB}"')
    try:
        install(box.dsn(DB))
    except DmsError as exc:
        raise SystemExit(f"dms install into {DB} failed: {exc}") from None
    tables = []
    with connect(box) as conn:
        for i in range(1, count + 1):
            name, rows = f"t{i:02d}", table_rows(i, scale)
            want = f"{GENERATOR} rows={rows}"
            have = scalar(conn, "SELECT obj_description(to_regclass(%s), 'pg_class')",
                          [f"public.{name}"])
            if have != want:
                print(f"making public.{name} ({rows:,} rows)", file=sys.stderr)
                conn.execute(f"DROP TABLE IF EXISTS public.{name}")
                conn.execute(f"CREATE TABLE public.{name} ({COLUMNS})")
                conn.execute(FILL.format(table=f"public.{name}"), {"rows": rows})
                conn.execute(f"VACUUM ANALYZE public.{name}")
                conn.execute(f"COMMENT ON TABLE public.{name} IS '{want}'")
            tables.append((name, rows))
    return tables


def prepare_role(box: Sandbox, tables: list[tuple[str, int]]) -> str:
    """The baselinr login with a fresh password (returned, never shown)."""
    password = secrets.token_urlsafe(24)
    with connect(box) as conn:
        if not scalar(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", [ROLE]):
            conn.execute(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER")
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
            sql.Identifier(ROLE), sql.Literal(password)))
        conn.execute(f'GRANT CONNECT ON DATABASE "{DB}" TO {ROLE}')
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
        # baselinr's storage tables (not written with --dry-run, but it may create them)
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {ROLE}")
        for name, _ in tables:
            conn.execute(f"GRANT SELECT ON public.{name} TO {ROLE}")
        # baselinr 0.9.0 creates this table on a connection it then closes without a
        # commit (SQLAlchemy 2.0 rolls it back) and fails on its next statement: made
        # here, once, with baselinr's own DDL (storage/schema_version.py), owned by it.
        if not scalar(conn, "SELECT to_regclass('public.baselinr_schema_version') IS NOT NULL"):
            conn.execute(VERSION_DDL)
            conn.execute(f"ALTER TABLE public.baselinr_schema_version OWNER TO {ROLE}")
    return password


def checked_tables(tables: list[tuple[str, int]]) -> list[str]:
    names = [name for name, _ in tables]
    return sorted({names[0], names[len(names) // 2], names[-1]})


def sql_truth(box: Sandbox, names: list[str]) -> dict[str, dict[str, Any]]:
    truth: dict[str, dict[str, Any]] = {}
    with connect(box) as conn:
        for name in names:
            parts = ["count(*)"]
            for c in COLUMN_NAMES:
                parts += [f"count(*) - count({c})", f"count(DISTINCT {c})"]
            row = conn.execute(f"SELECT {', '.join(parts)} FROM public.{name}").fetchone()
            assert row is not None
            cols = {c: {"null_count": int(row[1 + 2 * k]), "distinct_count": int(row[2 + 2 * k])}
                    for k, c in enumerate(COLUMN_NAMES)}
            truth[name] = {"row_count": int(row[0]), "columns": cols}
    return truth


def setup(args: argparse.Namespace) -> Env:
    ensure_baselinr()
    box = Sandbox(default_home())
    box.start()  # idempotent: starts what is not running, stops nothing
    tables = prepare_tables(box, args.tables, args.scale)
    password = prepare_role(box, tables)
    env = Env(box=box, tables=tables, parallel=args.parallel, memory=not args.no_memory,
              password=password)
    env.truth = sql_truth(box, checked_tables(tables))
    return env


# ------------------------------------------------------------------ methods
def baselinr_config(env: Env) -> dict[str, Any]:
    connection = {"type": "postgres", "host": "127.0.0.1", "port": env.box.port,
                  "database": DB, "username": ROLE,
                  "password": "${" + PASSWORD_ENV + "}", "schema": "public"}
    return {
        "environment": "development",
        "source": connection,
        "storage": {"connection": connection, "results_table": "baselinr_results",
                    "runs_table": "baselinr_runs", "create_tables": True},
        "profiling": {
            "tables": [{"schema": "public", "table": name} for name, _ in env.tables],
            "metrics": BASELINR_METRICS,
            "compute_histograms": True,
            "histogram_bins": 10,
            "default_sample_ratio": 1.0,
            "enable_enrichment": False,
            "enable_approx_distinct": False,
            "enable_type_inference": False,
            "enable_schema_tracking": False,
            "enable_column_stability": False,
        },
        "execution": {"max_workers": env.parallel},
        "monitoring": {"enable_metrics": False},
    }


@dataclass
class Method:
    key: str
    label: str

    def argv(self, env: Env, out: Path) -> list[str]:
        if self.key == "baselinr":
            return [str(BASELINR_VENV / "bin" / "baselinr"), "profile", "--config",
                    str(env.workdir / "baselinr.json")]
        argv = [str(DMS), "profile", "--dsn", env.box.dsn(DB),
                *[f"public.{name}" for name, _ in env.tables],
                "--parallel", str(env.parallel), "--format", "json"]
        return argv + (["--no-store"] if self.key == "dms-no-store" else [])

    def command(self, env: Env) -> str:
        argv = self.argv(env, Path("OUT.json"))
        if self.key == "baselinr":
            argv[-1] = "baselinr.json"
        if self.key != "baselinr" and len(env.tables) > 3:
            argv = [*argv[:4], "public.t01", "...", f"public.{env.tables[-1][0]}",
                    *argv[4 + len(env.tables):]]
        text = shlex.join(argv).replace(str(ROOT) + "/", "")
        return text + (" > OUT.json" if self.key != "baselinr" else "")


def methods(store: bool) -> list[Method]:
    chosen = [Method("baselinr", f"baselinr {BASELINR_VERSION} (kept in its tables)"),
              Method("dms-no-store", "dms profile --no-store")]
    if store:
        chosen.append(Method("dms-store", "dms profile (kept in dms.profile_*)"))
    return chosen


# ------------------------------------------------------------------ memory
class TreeSampler(threading.Thread):
    """Private memory and VmHWM of a process tree and of its server backends."""

    def __init__(self, env: Env, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.env, self.root_pid = env, root_pid
        self._stop_event = threading.Event()
        self.client_private_kb = 0  # largest sum of RssAnon over the tree at one instant
        self.client_hwm_kb = 0  # largest VmHWM of one client process
        self.client_pids: set[int] = set()
        self.backend_private_kb = 0
        self.backend_hwm_kb = 0
        self.backend_pids: set[int] = set()
        self.error: str | None = None

    def finish(self) -> None:
        self._stop_event.set()
        self.join()

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                text = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parents[int(name)] = int(text.rpartition(")")[2].split()[1])
        tree, frontier = [self.root_pid], [self.root_pid]
        while frontier:
            frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
            tree += frontier
        return tree

    def run(self) -> None:
        try:
            with psycopg.connect(self.env.box.dsn(DB), autocommit=True) as conn:
                own = conn.info.backend_pid
                while not self._stop_event.is_set():
                    total = 0
                    for pid in self._tree():
                        kb = procmem.status_kb(pid)
                        if kb:
                            self.client_pids.add(pid)
                            total += kb.get("RssAnon", 0)
                            self.client_hwm_kb = max(self.client_hwm_kb, kb.get("VmHWM", 0))
                    self.client_private_kb = max(self.client_private_kb, total)
                    rows = conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                        " AND backend_type = 'client backend' AND pid <> %s",
                        [DB, own]).fetchall()
                    total = 0
                    for (pid,) in rows:
                        kb = procmem.status_kb(pid)
                        if kb:
                            self.backend_pids.add(pid)
                            total += kb.get("RssAnon", 0)
                            self.backend_hwm_kb = max(self.backend_hwm_kb, kb.get("VmHWM", 0))
                    self.backend_private_kb = max(self.backend_private_kb, total)
                    time.sleep(TICK)
        except (OSError, psycopg.Error) as exc:  # report it; never break the timed run
            self.error = f"{type(exc).__name__}: {exc}"

    def summary(self) -> dict[str, Any]:
        return {"client_private_mb": procmem.mb(self.client_private_kb),
                "client_hwm_mb": procmem.mb(self.client_hwm_kb),
                "client_processes": len(self.client_pids),
                "backend_private_mb": procmem.mb(self.backend_private_kb),
                "backend_hwm_mb": procmem.mb(self.backend_hwm_kb),
                "backend_processes": len(self.backend_pids),
                "sampler_error": self.error}


# ------------------------------------------------------------------ one run
@dataclass
class Outcome:
    seconds: float | None = None
    error: str | None = None
    memory: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None


def check_dms(env: Env, out: Path) -> tuple[str | None, dict[str, Any]]:
    body = json.loads(out.read_text())
    tables = {t["table"]: t for t in body["tables"]}
    detail = {"table_seconds_sum": round(sum(t["seconds"] for t in body["tables"]), 3),
              "table_seconds_max": round(max(t["seconds"] for t in body["tables"]), 3),
              "profile_id": body.get("profile_id")}
    problems = []
    missing = [name for name, _ in env.tables if f"public.{name}" not in tables]
    if missing:
        problems.append(f"tables missing from the output: {', '.join(missing[:5])}")
    failed = [t["table"] for t in body["tables"] if t["error"]]
    if failed:
        problems.append(f"tables with an error: {', '.join(failed[:5])}"
                        f" ({tables[failed[0]]['error'].get('message')})")
    for name, truth in env.truth.items():
        t = tables.get(f"public.{name}")
        if t is None or t["error"]:
            continue
        if t["row_count"] != truth["row_count"]:
            problems.append(f"{name}: row_count {t['row_count']} != SQL {truth['row_count']}")
        cols = {c["column"]: c for c in t["columns"]}
        for c, want in truth["columns"].items():
            got = cols.get(c)
            if got is None:
                problems.append(f"{name}.{c}: not profiled")
                continue
            for metric in ("null_count", "distinct_count"):
                if got[metric] != want[metric]:
                    problems.append(f"{name}.{c}: {metric} {got[metric]} != SQL {want[metric]}")
            if got["count"] != truth["row_count"] - want["null_count"]:
                problems.append(f"{name}.{c}: count {got['count']} != SQL"
                                f" {truth['row_count'] - want['null_count']}")
    return ("; ".join(problems[:6]) or None), detail


def baselinr_runs(env: Env) -> set[str]:
    with connect(env.box) as conn:
        if not scalar(conn, "SELECT to_regclass('public.baselinr_runs') IS NOT NULL"):
            return set()
        return {r for (r,) in conn.execute("SELECT DISTINCT run_id FROM baselinr_runs")}


def baselinr_tables(env: Env, before: set[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The run(s) baselinr kept since ``before``: {table: {"row_count", "columns":
    {column: {metric: value}}}} read from its tables baselinr_runs/baselinr_results."""
    new = sorted(baselinr_runs(env) - before)
    out: dict[str, dict[str, Any]] = {}
    with connect(env.box) as conn:
        for name, rows in conn.execute("SELECT dataset_name, row_count FROM baselinr_runs"
                                       " WHERE run_id = ANY(%s)", [new]):
            out[name] = {"row_count": rows, "columns": {}}
        for name, column, metric, value in conn.execute(
                "SELECT dataset_name, column_name, metric_name, metric_value"
                " FROM baselinr_results WHERE run_id = ANY(%s)", [new]):
            entry = out.setdefault(name, {"row_count": None, "columns": {}})
            entry["columns"].setdefault(column, {})[metric] = value
    return new, out


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def check_baselinr(env: Env, before: set[str]) -> tuple[str | None, dict[str, Any]]:
    new, tables = baselinr_tables(env, before)
    problems = [] if len(new) == 1 else [f"{len(new)} new runs in baselinr_runs, not 1"]
    missing = [name for name, _ in env.tables if name not in tables]
    if missing:
        problems.append(f"tables missing from the output: {', '.join(missing[:5])}")
    column_errors = [f"{t}.{c}: {m['error']}" for t, body in tables.items()
                     for c, m in body["columns"].items() if isinstance(m, dict) and "error" in m]
    if column_errors:
        problems.append(f"{len(column_errors)} columns failed, e.g. {column_errors[0]}")
    compared = 0
    for name, truth in env.truth.items():
        t = tables.get(name)
        if t is None:
            continue
        if t["row_count"] is not None and t["row_count"] != truth["row_count"]:
            problems.append(f"{name}: row_count {t['row_count']} != SQL {truth['row_count']}")
        for c, want in truth["columns"].items():
            got = t["columns"].get(c) or {}
            if "count" in got and _int(got["count"]) != truth["row_count"]:
                problems.append(f"{name}.{c}: count {got['count']} != SQL {truth['row_count']}")
            for metric in ("null_count", "distinct_count"):
                if metric in got:
                    compared += 1
                    if _int(got[metric]) != want[metric]:
                        problems.append(f"{name}.{c}: {metric} {got[metric]} != SQL"
                                        f" {want[metric]}")
    if not compared and not problems:
        problems.append("no null_count/distinct_count of the checked tables in the output")
    metrics_seen = sorted({m for body in tables.values() for cm in body["columns"].values()
                           if isinstance(cm, dict) for m in cm})
    return ("; ".join(problems[:6]) or None), {"metrics_seen": metrics_seen,
                                               "compared_values": compared,
                                               "run_id": new[0] if new else None}


def run_once(env: Env, method: Method, rep: int) -> Outcome:
    out = env.workdir / f"{method.key}-{rep}.json"
    out.unlink(missing_ok=True)
    child_env = dict(os.environ)
    child_env.pop("PGPASSWORD", None)
    if method.key == "baselinr":
        child_env[PASSWORD_ENV] = env.password
    outcome = Outcome()
    before = baselinr_runs(env) if method.key == "baselinr" else set()
    started = time.perf_counter()
    with (env.workdir / f"{method.key}.stdout").open("wb") as stdout, \
         (env.workdir / f"{method.key}.stderr").open("wb") as stderr:
        proc = subprocess.Popen(method.argv(env, out), stdout=stdout, stderr=stderr,
                                env=child_env, cwd=env.workdir)
        sampler = TreeSampler(env, proc.pid)
        if env.memory:
            sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - started
        if env.memory:
            sampler.finish()
            outcome.memory = sampler.summary()
    if method.key != "baselinr" and not code:
        out.write_bytes((env.workdir / f"{method.key}.stdout").read_bytes())
    if code:
        err = (env.workdir / f"{method.key}.stderr").read_text(errors="replace")
        outcome.error = f"exit status {code}: {last_lines(err)}"
        return outcome
    try:
        error, detail = (check_baselinr(env, before) if method.key == "baselinr"
                         else check_dms(env, out))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        error, detail = f"unreadable output: {type(exc).__name__}: {exc}", {}
    outcome.detail = detail
    outcome.seconds = seconds
    outcome.error = error
    return outcome


@dataclass
class Result:
    method: Method
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [o.seconds for o in self.outcomes if o.ok and o.seconds is not None]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def peak(self, key: str) -> float | None:
        values = [o.memory[key] for o in self.outcomes
                  if o.memory and not o.memory.get("sampler_error")]
        return max(values) if values else None


def run_all(env: Env, chosen: list[Method], runs: int) -> list[Result]:
    results = [Result(m) for m in chosen]
    for rep in range(runs):
        for result in results:
            print(f"run {rep + 1}/{runs}: {result.method.key} ...", file=sys.stderr, end=" ",
                  flush=True)
            outcome = run_once(env, result.method, rep)
            result.outcomes.append(outcome)
            print(f"{outcome.seconds:.2f} s" if outcome.seconds is not None else "",
                  "ok" if outcome.ok else f"FAILED: {outcome.error}", file=sys.stderr)
    return results


# ------------------------------------------------------------------ cost split
NUMBER_COLUMNS = ["id", "qty", "score", "amount"]
STRING_COLUMNS = ["note", "category"]
DATE_COLUMNS = ["day", "ts"]


def baselinr_queries(table: str, edges: dict[str, tuple[float, ...]]) -> dict[str, list[str]]:
    """The queries baselinr 0.9 sends for one table, by group, in its shapes
    (profiling/metrics.py: each over ``(SELECT ... FROM table) AS filtered``, which
    PostgreSQL flattens; here on the table directly)."""
    t = f"public.{table}"
    groups: dict[str, list[str]] = {
        "row count": [f"SELECT count(*) FROM {t}"],
        "count/null/distinct, a query per column": [
            f"SELECT count(*), count({c}), count(DISTINCT {c}) FROM {t}" for c in COLUMN_NAMES],
        "min/max/mean/stddev per number column": [
            f"SELECT min({c}), max({c}), avg({c}::float), stddev({c}::float) FROM {t}"
            for c in NUMBER_COLUMNS],
        "histograms: min/max + 10 counts per number column": [],
        "lengths and min/max per string/date column": [
            *[f"SELECT min(length({c})), max(length({c})), avg(length({c})) FROM {t}"
              for c in STRING_COLUMNS],
            *[f"SELECT min({c}), max({c}) FROM {t}" for c in STRING_COLUMNS + DATE_COLUMNS]],
    }
    for c in NUMBER_COLUMNS:
        lo, hi = edges[c]
        width = (hi - lo) / 10
        groups["histograms: min/max + 10 counts per number column"].append(
            f"SELECT min({c}), max({c}) FROM {t}")
        for k in range(10):
            op = "<=" if k == 9 else "<"
            groups["histograms: min/max + 10 counts per number column"].append(
                f"SELECT count(*) FROM {t} WHERE {c} >= {lo + k * width}"
                f" AND {c} {op} {lo + (k + 1) * width}")
    return groups


def dms_queries(env: Env, table: str) -> dict[str, list[str]]:
    """The two scans dms profile sends for one table (its own SQL builders, unchanged),
    and scan 1 split into its COUNT(DISTINCT)s and the rest."""
    from dms_pkg.db.sources import open_source
    from dms_pkg.jobs.profile import metrics
    from dms_pkg.jobs.schema_diff import catalog

    with open_source(env.box.dsn(DB)) as source:
        columns = catalog.read(source, "public", table).columns
        plan = metrics.scan_one(source.dialect, "public", table, columns)
        row = source.fetch(plan.sql, {})[0]
        _, profiles = metrics.read_scan_one(plan, row, columns)
        second = metrics.histograms(source.dialect, "public", table, profiles, columns)
    t = f"public.{table}"
    return {
        "scan 1 (every metric of every column)": [plan.sql],
        "  of it: the 9 COUNT(DISTINCT)s alone": [
            f"SELECT {', '.join(f'count(DISTINCT {c})' for c in COLUMN_NAMES)} FROM {t}"],
        "  of it: everything but COUNT(DISTINCT)": [plan.sql.replace("COUNT(DISTINCT ", "COUNT(")],
        "scan 2 (every histogram)": [second.sql] if second else [],
    }


def cost_split(env: Env, repeats: int = 3) -> dict[str, Any]:
    """Server time of each tool's queries for the largest table, one session, untimed
    for the methods (median of ``repeats``)."""
    table = max(env.tables, key=lambda t: t[1])[0]
    with connect(env.box) as conn:
        edges = {c: tuple(float(v) for v in conn.execute(
            f"SELECT min({c}), max({c}) FROM public.{table}").fetchone() or (0, 0))
            for c in NUMBER_COLUMNS}
        out: dict[str, Any] = {"table": table, "rows": dict(env.tables)[table], "dms": {},
                               "baselinr": {}}
        for tool, groups in (("dms", dms_queries(env, table)),
                             ("baselinr", baselinr_queries(table, edges))):
            for group, queries in groups.items():
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    for q in queries:
                        conn.execute(q).fetchall()
                    times.append(time.perf_counter() - started)
                out[tool][group] = {"queries": len(queries),
                                    "seconds": statistics.median(times)}
    return out


def cost_split_lines(split: dict[str, Any] | None) -> list[str]:
    if not split:
        return []
    lines = [f"Server time of each tool's queries for the largest table ({split['table']},"
             f" {split['rows']:,} rows), one after the other in one session (median of 3,"
             " measured after the timed runs):", "",
             "| tool | queries | how many | seconds |", "|---|---|---|---|"]
    for tool in ("dms", "baselinr"):
        total = 0.0
        for group, v in split[tool].items():
            lines.append(f"| {tool} | {group} | {v['queries']} | {v['seconds']:.3f} |")
            if not group.startswith("  "):
                total += v["seconds"]
        lines.append(f"| {tool} | **all** | | **{total:.3f}** |")
        split[tool + "_total"] = total
    d, b = split["dms_total"], split["baselinr_total"]
    distinct = split["dms"]["  of it: the 9 COUNT(DISTINCT)s alone"]["seconds"]
    lines += ["", f"dms's queries take {d / b:.2f}x baselinr's for this table. The 9 exact"
              f" distinct counts alone take {distinct:.3f} s ({distinct / d:.0%} of dms's"
              f" queries): every COUNT(DISTINCT) sorts its column, in dms's one scan as in"
              f" baselinr's per-column queries, so both tools pay it and it bounds the ratio"
              f" from below at about {distinct / b:.2f}x."]
    return lines


# ------------------------------------------------------------------ report
METRICS_NOTE = [
    "| metric | baselinr 0.9 (as configured) | dms profile |",
    "|---|---|---|",
    "| row count | yes (a `count(*)` query per table, and `count` per column) | yes |",
    "| non-NULL count | as `count - null_count` | `count` |",
    "| null count, null ratio | all columns | all columns |",
    "| exact distinct count, unique ratio | all columns (`unique_ratio` = distinct / rows)"
    " | all but JSON/binary (= distinct / non-NULL) |",
    "| min, max | all but boolean | numbers, strings, dates |",
    "| mean, stddev | numbers | numbers |",
    "| min/avg/max length | strings | strings |",
    "| 10-bucket histogram | numbers | numbers and dates |",
    "| how it scans | a query per metric group and column, and one per histogram bucket:"
    " here 64 queries over each 9-column table (1 row count; per column 1 count/null/"
    "distinct; per number column 1 min/max/mean/stddev, 1 min/max and 10 bucket counts;"
    " per string column 1 lengths and 1 min/max; per date column 1 min/max) | 2 scans"
    " per table (every metric of every column, then every histogram) |",
]


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def result_rows(env: Env, results: list[Result]) -> list[str]:
    ref = results[0].median
    rows = ["| method | median s [min-max] | rows/s | ratio to baselinr | client private MB"
            " (tree) | client VmHWM MB | backends private MB | backend VmHWM MB | failed |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = r.times
        span = f"{r.median:.2f} [{min(t):.2f}-{max(t):.2f}]" if t else "—"
        ratio = f"{r.median / ref:.3f}x" if r.median and ref else "—"
        rate = f"{env.total_rows / r.median:,.0f}" if r.median else "—"
        failed = sum(1 for o in r.outcomes if not o.ok)
        rows.append(f"| {r.method.label} | {span} | {rate} | {ratio} |"
                    f" {fmt(r.peak('client_private_mb'), '.0f')} |"
                    f" {fmt(r.peak('client_hwm_mb'), '.0f')} |"
                    f" {fmt(r.peak('backend_private_mb'), '.0f')} |"
                    f" {fmt(r.peak('backend_hwm_mb'), '.0f')} | {failed}/{len(r.outcomes)} |")
    return rows


def goals(results: list[Result]) -> dict[str, Any]:
    ref = results[0].median
    out: dict[str, Any] = {"goal": TIME_GOAL, "reference": results[0].method.key}
    for r in results[1:]:
        ratio = r.median / ref if r.median and ref else None
        out[r.method.key] = {"ratio": ratio,
                             "met": None if ratio is None else ratio <= TIME_GOAL}
    return out


def goal_lines(results: list[Result], g: dict[str, Any]) -> list[str]:
    lines = []
    for r in results[1:]:
        entry = g[r.method.key]
        if entry["ratio"] is None:
            lines.append(f"- {r.method.label}: no successful run of it or of baselinr — "
                         "goal not measured")
            continue
        verdict = "met" if entry["met"] else "missed"
        lines.append(f"- {r.method.label} / baselinr = {entry['ratio']:.3f}x:"
                     f" goal ≤ {TIME_GOAL}x: **{verdict}**")
    return lines


def breakdown_lines(env: Env, results: list[Result]) -> list[str]:
    lines = []
    for r in results[1:]:
        ok = [o for o in r.outcomes if o.ok and "table_seconds_sum" in o.detail]
        if not ok or r.median is None:
            continue
        busy = statistics.median(o.detail["table_seconds_sum"] for o in ok)
        longest = statistics.median(o.detail["table_seconds_max"] for o in ok)
        ideal = busy / env.parallel
        lines.append(f"- {r.method.label}: {r.median:.2f} s wall; the tables' own times"
                     f" (connect, catalog, 2 scans) add up to {busy:.2f} s, i.e."
                     f" {ideal:.2f} s spread over {env.parallel} workers (longest table"
                     f" {longest:.2f} s); the remaining ~{max(r.median - ideal, 0):.2f} s is"
                     " the process's start (interpreter, imports), the wait for the last"
                     " tables" + (", and keeping the profile" if r.method.key == "dms-store"
                                  else "") + " and printing the JSON")
    return lines


def machine_facts() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next((line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": int(meminfo[meminfo.index("MemTotal:") + 1]) / (1 << 20),
        "kernel": platform.release(),
        "load_start": os.getloadavg(),
        "python": platform.python_version(),
    }


def render(env: Env, results: list[Result], machine: dict[str, Any],
           args: argparse.Namespace, g: dict[str, Any], server: str,
           split: dict[str, Any] | None) -> str:
    rows = [r for _, r in env.tables]
    ls, le = machine["load_start"], machine["load_end"]
    lines = [
        "# dms profile vs baselinr",
        "",
        f"{machine['date']}:"
        f" `{shlex.join(['bench/profile_bench.py', *sys.argv[1:]])}` ({len(env.tables)}"
        f" tables, scale {args.scale}, runs {args.runs}, parallel {env.parallel}) on the"
        f" sandbox (PostgreSQL port {env.box.port}, database {DB}).",
        "",
        "## Machine",
        f"- {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']:.1f} GiB memory,"
        f" kernel {machine['kernel']}, Python {machine['python']}",
        f"- load average (1/5/15 min) {ls[0]:.2f}/{ls[1]:.2f}/{ls[2]:.2f} at the start,"
        f" {le[0]:.2f}/{le[1]:.2f}/{le[2]:.2f} at the end (other work on the machine makes"
        " numbers noisy)",
        f"- {server}; {machine['baselinr']} in bench/.venv-baselinr",
        "",
        "## Data",
        f"- {len(env.tables)} tables public.t01..public.{env.tables[-1][0]}, {min(rows):,} to"
        f" {max(rows):,} rows, {env.total_rows:,} rows in all; 9 columns: id bigint PK,"
        " qty int (skewed), score int (5 % NULL), amount numeric(12,2), note text (10 % NULL),"
        " category varchar(20) (12 skewed values), day date (20 % NULL), ts timestamp,"
        " flag boolean",
        f"- both tools with {env.parallel} tables at once (baselinr `execution.max_workers:"
        f" {env.parallel}`, dms `--parallel {env.parallel}`)",
        f"- checked against plain SQL every run (row count, null and distinct counts of every"
        f" column): {', '.join(env.truth)}",
        "",
        "## Results",
        "",
        "Median of the runs [min-max]; rows/s = all tables' rows / median; memory = the"
        " largest over the runs (client: sum of RssAnon over the CLI's process tree at one"
        " instant, and the largest VmHWM of one of its processes; backends: the same over"
        " the server sessions serving it — VmHWM includes shared buffers touched).",
        "",
        *result_rows(env, results),
        "",
        "## Goal of the issue (dms profile / baselinr)",
        "",
        *goal_lines(results, g),
        "",
        "## Where dms profile's time goes",
        "",
        *breakdown_lines(env, results),
        "",
        *cost_split_lines(split),
        "",
        "## Metrics each tool computed",
        "",
        f"baselinr `profiling.metrics`: {', '.join(BASELINR_METRICS)}; histogram_bins 10;"
        " enrichment, approximate distinct and type inference off; no sampling.",
        "",
        *METRICS_NOTE,
        "",
    ]
    seen = next((o.detail.get("metrics_seen") for o in results[0].outcomes
                 if o.detail.get("metrics_seen")), None)
    if seen:
        lines += [f"Metrics in baselinr's output: {', '.join(seen)}.", ""]
    failures = [(r.method.label, o.error) for r in results for o in r.outcomes if not o.ok]
    if failures:
        lines += ["## Failed runs", "", *[f"- {label}: {error}" for label, error in failures],
                  ""]
    lines += ["## Commands", "", *[f"- `{r.method.key}`: `{r.method.command(env)}`"
                                   for r in results],
              "- baselinr's config: `source`/`storage` postgres on 127.0.0.1 as"
              f" `{ROLE}` (password from `${{{PASSWORD_ENV}}}`), `profiling.tables` the"
              f" {len(env.tables)} tables, the metrics above, `execution.max_workers:"
              f" {env.parallel}`", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every table's rows (e.g. 0.05 for a smoke test)")
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=4,
                        help="tables at once, for both tools (default 4)")
    parser.add_argument("--no-store-only", action="store_true",
                        help="leave out dms-store (dms profile keeping its profile)")
    parser.add_argument("--no-memory", action="store_true",
                        help="do not sample memory")
    parser.add_argument("--no-cost-split", action="store_true",
                        help="do not time each tool's queries for the largest table")
    parser.add_argument("--cost-split-only", action="store_true",
                        help="only time each tool's queries for the largest table and append"
                             " that to bench/results/profile-latest.md")
    args = parser.parse_args()
    if args.runs < 1 or args.tables < 1 or args.scale <= 0 or not 1 <= args.parallel <= 8:
        parser.error("--runs and --tables at least 1, --scale above 0, --parallel 1..8")
    env = setup(args)
    if args.cost_split_only:
        only = cost_split(env)
        load = os.getloadavg()
        text = "\n".join(["", f"## Cost split (added by `bench/profile_bench.py"
                                 f" --cost-split-only` at"
                                 f" {dt.datetime.now(dt.UTC).strftime('%H:%M UTC')},"
                                 f" load average {load[0]:.2f})", "",
                           *cost_split_lines(only), ""])
        print(text)
        with (RESULTS / "profile-latest.md").open("a") as report_file:
            report_file.write(text)
        return 0
    with tempfile.TemporaryDirectory(prefix="dms-profile-bench-") as tmp:
        env.workdir = Path(tmp)
        (env.workdir / "baselinr.json").write_text(json.dumps(baselinr_config(env), indent=2))
        machine = machine_facts()
        machine["baselinr"] = baselinr_version()
        with connect(env.box) as conn:
            server = "PostgreSQL " + str(scalar(conn, "SHOW server_version"))
        results = run_all(env, methods(not args.no_store_only), args.runs)
    machine["load_end"] = os.getloadavg()
    split = None if args.no_cost_split else cost_split(env)
    g = goals(results)
    report = render(env, results, machine, args, g, server, split)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profile-latest.md").write_text(report)
    path = RESULTS / f"profile-{time.strftime('%Y%m%dT%H%M%S')}.json"
    raw = {"args": vars(args), "machine": machine, "server": server,
           "tables": [{"table": n, "rows": r} for n, r in env.tables],
           "sql_truth": env.truth, "goals": g, "cost_split": split,
           "methods": [{"key": r.method.key, "label": r.method.label,
                        "command": r.method.command(env), "median_s": r.median,
                        "rows_per_s": env.total_rows / r.median if r.median else None,
                        "runs": [{"seconds": o.seconds, "error": o.error, "memory": o.memory,
                                  **o.detail} for o in r.outcomes]} for r in results]}
    path.write_text(json.dumps(raw, indent=2, default=str))
    print(f"written to {RESULTS / 'profile-latest.md'} and {path}", file=sys.stderr)
    return 0 if all(o.ok for r in results for o in r.outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
