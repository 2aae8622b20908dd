"""Table-compare benchmark: ``dms table-compare`` against data-diff 0.11.2 on the same tables.

    .venv/bin/python bench/compare_bench.py [--rows 2000000] [--runs 3] [--parallel 2]
                                            [--datadiff-threads 2] [--only CASE,CASE]

The issue's acceptance test: data-diff (0.11.x, the real package from PyPI
in a virtual environment of its own, no dependency of the project) and
``dms table-compare`` on the same 2M-row pairs in the same run, identical and
with 100 changed rows, PostgreSQL<->PostgreSQL and MariaDB<->PostgreSQL;
goal: dms <= 0.5x data-diff's time, with the same differences found.

Not a test and not run by CI: it wants the machine to itself (other work on
the same cores moves every number).  It works on the project's own sandbox
(``dms sandbox``: PostgreSQL and MariaDB, started if needed, never stopped)
and touches only these:

* ``bench/.venv-datadiff`` (gitignored): created with /usr/bin/python3.11
  when missing or when the pins below changed; ``pip install --no-deps
  data-diff==0.11.2``, then its requirements from its METADATA, pinned where
  the newest versions do not install or run here (DATADIFF_REQUIREMENTS:
  ``dbt-core==1.7.19``, ``pydantic<2``, ``mashumaro[msgpack]<3.11``,
  ``urllib3<2``, ``dsnparse<0.2``, ``psycopg2-binary``,
  ``mysql-connector-python``, ...).  Its ``pip freeze`` goes into the report.
* PostgreSQL database ``dms_bench_cmp``: ``orders_a`` (``--rows`` rows,
  generated with generate_series), ``orders_b`` (a copy: identical) and
  ``orders_b_changed`` (a copy with ``amount + 0.01`` in 100 rows whose ids
  are spread evenly over the table).  Columns: id bigint primary key,
  customer_id int, amount numeric(12,2), status text, note text (~10 %
  NULL), created_at timestamp, ship_date date (~20 % NULL) -- the anchor
  rig's columns and value rules (/work/shared/anchors-bench/gen_pg.sql)
  without is_paid and payload (a boolean/tinyint and a jsonb/json-text
  column would compare by different rules in the two tools), and with the
  seven per-row hashes taken from MD5 so that MariaDB computes the same
  values.  Reused while the table comments say the same generator and row
  count.
* MariaDB database ``dms_bench_cmp``: ``orders_a``, the same rows generated
  from ``seq_1_to_N`` (in batches) with the same formulas (varchar for text,
  datetime for timestamp).  Before anything is timed, ``dms table-compare``
  must find 0 differences between MariaDB's ``orders_a`` and PostgreSQL's
  ``orders_b`` (and between the PostgreSQL pair), and exactly the 100 ids
  against ``orders_b_changed``.
* a login ``dms_bench_cmp`` in both servers (PostgreSQL: LOGIN, SELECT on the
  database's tables; MariaDB: ``@127.0.0.1``, SELECT on the database) with a
  password generated for this run (``secrets``), set before the runs and
  replaced by a discarded one at the end.  Both tools log in as it over TCP
  (127.0.0.1; the sandbox's pg_hba asks for scram-sha-256 there).  The
  passwords reach the tools through the environment (data-diff: its
  ``--conf`` TOML file names ``${VAR}``; dms: ``PGPASSWORD``), except dms's
  MariaDB URL, which carries it on dms's command line (pymysql reads no
  environment); reports show ``****``.

Cases and methods, each run ``--runs`` times round-robin (one run of each,
then the next repetition), median reported:

* cases: ``pg-identical`` (orders_a : orders_b), ``pg-changed`` (orders_a :
  orders_b_changed), ``my-identical`` (MariaDB orders_a : PostgreSQL
  orders_b), ``my-changed`` (MariaDB orders_a : PostgreSQL orders_b_changed);
* ``data-diff``: ``data-diff --conf <toml> --run <case> -k id -c <the six
  other columns> -j <--datadiff-threads, default 2> --json --no-tracking``;
  everything else its defaults: algorithm ``auto`` (joindiff when both
  tables are in one database -- the PostgreSQL pairs --, hashdiff across
  databases), bisection factor 32, bisection threshold 16384;
* ``data-diff hashdiff`` (PostgreSQL pairs only): the same with ``-a
  hashdiff``, the segment-checksum algorithm dms also uses;
* ``dms``: ``dms table-compare --dsn 'host=127.0.0.1 ... user=dms_bench_cmp'
  --db my=mysql://dms_bench_cmp:****@127.0.0.1:<port>/dms_bench_cmp A:B --key
  id --parallel <--parallel, default 2> --format json``.

A run is correct when the tool exits normally and its keys are the expected
ones: none on an identical pair; on a changed pair exactly the 100 ids as
"different" (data-diff: each id once as ``-`` and once as ``+``) and none
only on one side.  A wrong answer fails the run (reported, not timed).
Memory: every 20 ms the tool's process tree (the command and its children)
is read from /proc (``bench/procmem.py``): the peak of its summed private
memory (RssAnon) and the largest resident high-water mark (VmHWM); and the
PostgreSQL backends of the benchmark login (the tool's sessions), largest
private memory of one backend.  The MariaDB server is not counted.

Output: a markdown report on stdout and in ``bench/results/compare-latest.md``,
raw data in ``bench/results/compare-<timestamp>.json`` (gitignored).  Run as
root (the MariaDB root account over the socket, /proc of the server's
processes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procmem
import psycopg
import pymysql
from psycopg import sql

from dms_pkg.sandbox import Sandbox

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DD_VENV = HERE / ".venv-datadiff"
DB = "dms_bench_cmp"  # the PostgreSQL and the MariaDB database
LOGIN = "dms_bench_cmp"  # the login both tools use, in both servers
CHANGED = 100
TIME_GOAL = 0.5  # dms / data-diff
GENERATOR = "dms compare_bench v1"
BATCH_ROWS = 250_000
COLUMNS = ("id", "customer_id", "amount", "status", "note", "created_at", "ship_date")
DD_BROKEN = "ship_date"  # data-diff 0.11.2 compares a MySQL DATE to a PostgreSQL date as unequal

DATADIFF = "data-diff==0.11.2"
# data-diff 0.11.2's Requires-Dist (its METADATA), the extras it needs for
# PostgreSQL and MySQL, pinned where the newest release does not install
# here (dbt-core >= 1.8 fetches from outside PyPI) or breaks data-diff.
DATADIFF_REQUIREMENTS = (
    "attrs>=23.1.0", "click>=8.1", "dbt-core==1.7.19", "dsnparse<0.2", "keyring",
    "mashumaro[msgpack]>=2.9,<3.11", "pydantic>=1.10.12,<2", "rich", "tabulate>=0.9.0",
    "toml>=0.10.2", "typing-extensions>=4.0.1", "urllib3<2", "psycopg2-binary",
    "mysql-connector-python>=8.0.29",
)

PG_TABLE = """
CREATE TABLE {name} (
    id          bigint PRIMARY KEY,
    customer_id int NOT NULL,
    amount      numeric(12,2) NOT NULL,
    status      text NOT NULL,
    note        text,
    created_at  timestamp NOT NULL,
    ship_date   date
)
"""
# The anchor rig's value rules; the seven hashes are 32-bit slices of MD5 so that
# MariaDB (below) computes the very same values.  126144000 s = 4 * 365 days.
PG_FILL = """
INSERT INTO orders_a
SELECT id, 1 + h1 % 100000, ((h2 % 10000000) / 100.0)::numeric(12,2),
       (ARRAY['new','paid','shipped','delivered','cancelled'])[1 + h3 % 5],
       CASE WHEN h4 % 10 = 0 THEN NULL
            ELSE left('note ' || md5(id::text) || ' ' || md5((id + 1)::text) || ' '
                      || md5((id + 2)::text) || ' ' || md5((id + 3)::text), (20 + h4 % 101)::int)
       END,
       timestamp '2020-01-01 00:00:00' + make_interval(secs => h5 % 126144000),
       CASE WHEN h6 % 5 = 0 THEN NULL
            ELSE date '2020-01-01' + (h5 % 126144000 / 86400 + h6 % 30)::int END
  FROM (SELECT g AS id, {hashes} FROM generate_series(1, {rows}::bigint) AS g) AS s
"""
PG_HASH = "('x' || substr(md5((g * 7 + {i})::text), 1, 8))::bit(32)::bigint AS h{i}"
MY_TABLE = """
CREATE TABLE orders_a (
  id          bigint        NOT NULL PRIMARY KEY,
  customer_id int           NOT NULL,
  amount      decimal(12,2) NOT NULL,
  status      varchar(16)   NOT NULL,
  note        varchar(120)  NULL,
  created_at  datetime      NOT NULL,
  ship_date   date          NULL
) ENGINE=InnoDB COMMENT='{comment}'
"""
MY_FILL = """
INSERT INTO orders_a
SELECT id, 1 + h1 % 100000, (h2 % 10000000) / 100,
       ELT(1 + h3 % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       IF(h4 % 10 = 0, NULL,
          LEFT(CONCAT('note ', MD5(id), ' ', MD5(id + 1), ' ', MD5(id + 2), ' ', MD5(id + 3)),
               20 + h4 % 101)),
       TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (h5 % 126144000) SECOND,
       IF(h6 % 5 = 0, NULL, DATE '2020-01-01' + INTERVAL (h5 % 126144000 DIV 86400 + h6 % 30) DAY)
  FROM (SELECT seq AS id, {hashes} FROM seq_{first}_to_{last}) AS s
"""
MY_HASH = "CAST(CONV(SUBSTRING(MD5(seq * 7 + {i}), 1, 8), 16, 10) AS UNSIGNED) AS h{i}"


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    a: str  # dms side spelling; data-diff: (database, table) below
    b: str
    dd_a: tuple[str, str]
    dd_b: tuple[str, str]
    changed: bool

    @property
    def cross(self) -> bool:
        return self.dd_a[0] != self.dd_b[0]


CASES = (
    Case("pg-identical", "PG↔PG identical", "public.orders_a", "public.orders_b",
         ("pg", "orders_a"), ("pg", "orders_b"), False),
    Case("pg-changed", "PG↔PG 100 changed", "public.orders_a", "public.orders_b_changed",
         ("pg", "orders_a"), ("pg", "orders_b_changed"), True),
    Case("my-identical", "MariaDB↔PG identical", f"my.{DB}.orders_a", "public.orders_b",
         ("my", "orders_a"), ("pg", "orders_b"), False),
    Case("my-changed", "MariaDB↔PG 100 changed", f"my.{DB}.orders_a",
         "public.orders_b_changed", ("my", "orders_a"), ("pg", "orders_b_changed"), True),
)


@dataclass
class Env:
    box: Sandbox
    rows: int
    parallel: int
    dd_threads: int
    workdir: Path
    pg_password: str
    my_password: str
    changed_ids: list[int]
    tools: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.workdir / "data-diff.toml"

    def tool_env(self) -> dict[str, str]:
        return dict(os.environ, PGPASSWORD=self.pg_password, DMS_BENCH_PG_PASSWORD=self.pg_password,
                    DMS_BENCH_MY_PASSWORD=self.my_password, COLUMNS="100000", NO_COLOR="1",
                    TERM="dumb")


# ------------------------------------------------------------------ helpers
def pg_connect(box: Sandbox, db: str = DB) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(box.dsn(db), autocommit=True)


def scalar(conn: psycopg.Connection[tuple[Any, ...]], query: str,
           params: dict[str, Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def my_connect(box: Sandbox, database: str | None = None) -> pymysql.connections.Connection[Any]:
    args: dict[str, Any] = dict(box.mariadb.connect_args(database))
    return pymysql.connect(**args, autocommit=True, charset="utf8mb4")


def my_scalar(conn: pymysql.connections.Connection[Any], query: str,
              params: tuple[Any, ...] | None = None) -> Any:
    with conn.cursor() as cur:
        cur.execute(query, params)
        row = cur.fetchone()
    return None if row is None else row[0]


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def changed_ids(rows: int) -> list[int]:
    step = rows // CHANGED
    return [1 + i * step + step // 2 for i in range(CHANGED)]


# ---------------------------------------------------------------- data-diff's venv
def datadiff_venv() -> str:
    """Create (or reuse) bench/.venv-datadiff; return data-diff's version line."""
    pins = "\n".join((DATADIFF, *DATADIFF_REQUIREMENTS))
    stamp = DD_VENV / ".pins"
    want = hashlib.sha256(pins.encode()).hexdigest()
    pip = [str(DD_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    if not (stamp.exists() and stamp.read_text() == want):
        print(f"creating {DD_VENV} ({DATADIFF} and its pinned requirements)", file=sys.stderr)
        if not (DD_VENV / "bin" / "python").exists():
            subprocess.run(["/usr/bin/python3.11", "-m", "venv", str(DD_VENV)], check=True)
        for args in (["--no-deps", DATADIFF], list(DATADIFF_REQUIREMENTS)):
            done = subprocess.run(pip + args, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"pip install {' '.join(args)} failed: {done.stderr[-2000:]}")
        stamp.write_text(want)
    version = subprocess.run([str(DD_VENV / "bin" / "data-diff"), "--version"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return version


def datadiff_freeze() -> list[str]:
    done = subprocess.run([str(DD_VENV / "bin" / "pip"), "freeze", "--disable-pip-version-check"],
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


# ------------------------------------------------------------------ data
def pg_ready(conn: psycopg.Connection[tuple[Any, ...]], table: str, comment: str) -> bool:
    got = scalar(conn, "SELECT obj_description(to_regclass(%(t)s), 'pg_class')", {"t": table})
    return bool(got == comment)


def prepare_pg(box: Sandbox, rows: int, ids: list[int]) -> None:
    with pg_connect(box, "postgres") as admin:
        if not scalar(admin, "SELECT 1 FROM pg_database WHERE datname = %(d)s", {"d": DB}):
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    comment = f"{GENERATOR} rows={rows}"
    with pg_connect(box) as conn:
        if not pg_ready(conn, "orders_a", comment):
            print(f"generating {rows:,} rows in PostgreSQL {DB}.orders_a", file=sys.stderr)
            conn.execute("DROP TABLE IF EXISTS orders_a, orders_b, orders_b_changed")
            conn.execute(PG_TABLE.format(name="orders_a").replace(" PRIMARY KEY", ""))
            hashes = ", ".join(PG_HASH.format(i=i) for i in range(1, 8))
            conn.execute(PG_FILL.format(hashes=hashes, rows=int(rows)))
            conn.execute("ALTER TABLE orders_a ADD PRIMARY KEY (id)")
            conn.execute(sql.SQL("COMMENT ON TABLE orders_a IS {}").format(sql.Literal(comment)))
        for name, update in (("orders_b", False), ("orders_b_changed", True)):
            mine = f"{comment} copy" + (f" changed={CHANGED}" if update else "")
            if pg_ready(conn, name, mine):
                continue
            print(f"copying orders_a to {name}", file=sys.stderr)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(PG_TABLE.format(name=name).replace(" PRIMARY KEY", ""))
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM orders_a ORDER BY id").format(
                sql.Identifier(name)))
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(
                sql.Identifier(name)))
            if update:
                done = conn.execute("UPDATE orders_b_changed SET amount = amount + 0.01"
                                    " WHERE id = ANY(%(ids)s)", {"ids": ids})
                assert done.rowcount == CHANGED, done.rowcount
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
                sql.Identifier(name), sql.Literal(mine)))
        for name in ("orders_a", "orders_b", "orders_b_changed"):
            conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(sql.Identifier(name)))
        conn.execute("CHECKPOINT")


def prepare_my(box: Sandbox, rows: int) -> None:
    comment = f"{GENERATOR} rows={rows}"
    with my_connect(box) as my:
        my_scalar(my, f"CREATE DATABASE IF NOT EXISTS `{DB}`")
        my.select_db(DB)
        got = my_scalar(my, "SELECT table_comment FROM information_schema.tables"
                            " WHERE table_schema = %s AND table_name = 'orders_a'", (DB,))
        if got != comment:
            print(f"generating {rows:,} rows in MariaDB {DB}.orders_a", file=sys.stderr)
            my_scalar(my, "DROP TABLE IF EXISTS orders_a")
            my_scalar(my, MY_TABLE.format(comment=comment))
            hashes = ", ".join(MY_HASH.format(i=i) for i in range(1, 8))
            for first in range(1, rows + 1, BATCH_ROWS):
                last = min(rows, first + BATCH_ROWS - 1)
                my_scalar(my, MY_FILL.format(hashes=hashes, first=first, last=last))
        my_scalar(my, "ANALYZE TABLE orders_a")


def set_logins(env: Env, *, discard: bool = False) -> None:
    """The benchmark login in both servers, with this run's passwords (or discarded ones)."""
    pg_pw = secrets.token_urlsafe(24) if discard else env.pg_password
    my_pw = secrets.token_urlsafe(24) if discard else env.my_password
    with pg_connect(env.box) as conn:
        exists = scalar(conn, "SELECT 1 FROM pg_roles WHERE rolname = %(r)s", {"r": LOGIN})
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(LOGIN), sql.Literal(pg_pw)))
        if not discard:
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(DB), sql.Identifier(LOGIN)))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(
                sql.Identifier(LOGIN)))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                sql.Identifier(LOGIN)))
    with my_connect(env.box) as my:
        my_scalar(my, f"CREATE USER IF NOT EXISTS '{LOGIN}'@'127.0.0.1' IDENTIFIED BY %s",
                  (my_pw,))
        my_scalar(my, f"ALTER USER '{LOGIN}'@'127.0.0.1' IDENTIFIED BY %s", (my_pw,))
        my_scalar(my, f"GRANT SELECT ON `{DB}`.* TO '{LOGIN}'@'127.0.0.1'")


def write_conf(env: Env) -> None:
    """data-diff's configuration: the two databases (passwords as ${VAR}) and a run per case."""
    lines = ["[database.pg]", 'driver = "postgresql"', 'host = "127.0.0.1"',
             f"port = {env.box.port}", f'user = "{LOGIN}"',
             'password = "${DMS_BENCH_PG_PASSWORD}"', f'database = "{DB}"', "",
             "[database.my]", 'driver = "mysql"', 'host = "127.0.0.1"',
             f"port = {env.box.mariadb.port}", f'user = "{LOGIN}"',
             'password = "${DMS_BENCH_MY_PASSWORD}"', f'database = "{DB}"', ""]
    for case in CASES:
        lines += [f'[run."{case.key}"]',
                  f'1.database = "{case.dd_a[0]}"', f'1.table = "{case.dd_a[1]}"',
                  f'2.database = "{case.dd_b[0]}"', f'2.table = "{case.dd_b[1]}"', ""]
    env.conf.write_text("\n".join(lines))
    env.conf.chmod(0o600)


# ------------------------------------------------------------------ tools
def dms_argv(env: Env, case: Case, *, shown: bool = False) -> list[str]:
    password = "****" if shown else env.my_password
    dsn = f"host=127.0.0.1 port={env.box.port} dbname={DB} user={LOGIN}"
    url = f"my=mysql://{LOGIN}:{password}@127.0.0.1:{env.box.mariadb.port}/{DB}"
    dms = ".venv/bin/dms" if shown else str(ROOT / ".venv" / "bin" / "dms")
    return [dms, "table-compare", "--dsn", dsn, "--db", url, f"{case.a}:{case.b}",
            "--key", "id", "--parallel", str(env.parallel), "--format", "json"]


def datadiff_columns(case: Case) -> tuple[str, ...]:
    """data-diff's -c columns: all but the key; across databases without ship_date, which
    data-diff 0.11.2 renders differently in MySQL and PostgreSQL (see date_probe)."""
    return tuple(c for c in COLUMNS[1:] if not (case.cross and c == DD_BROKEN))


def datadiff_argv(env: Env, case: Case, algorithm: str | None, *, shown: bool = False,
                  columns: tuple[str, ...] | None = None, limit: int | None = None
                  ) -> list[str]:
    exe = "bench/.venv-datadiff/bin/data-diff" if shown else str(DD_VENV / "bin" / "data-diff")
    conf = "<data-diff.toml>" if shown else str(env.conf)
    argv = [exe, "--conf", conf, "--run", case.key, "-k", "id"]
    for column in datadiff_columns(case) if columns is None else columns:
        argv += ["-c", column]
    argv += ["-j", str(env.dd_threads), "--json", "--no-tracking"]
    if limit is not None:
        argv += ["-l", str(limit)]
    return argv + (["-a", algorithm] if algorithm else [])


@dataclass
class Found:
    only_a: set[int]
    only_b: set[int]
    different: set[int]
    segments: int | None = None
    first: list[Any] | None = None


def parse_dms(stdout: str) -> Found:
    pair = json.loads(stdout)["pairs"][0]
    if pair["status"] == "error":
        raise ValueError(f"dms: {pair['error']}")
    return Found({int(k[0]) for k in pair["only_in_a"]}, {int(k[0]) for k in pair["only_in_b"]},
                 {int(k[0]) for k in pair["different"]}, int(pair["segments"]))


def parse_datadiff(stdout: str) -> Found:
    minus: set[int] = set()
    plus: set[int] = set()
    first: list[Any] = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        op, values = json.loads(line)
        (minus if op == "-" else plus).add(int(values[0]))
        if len(first) < 2:
            first.append([op, values])
    return Found(minus - plus, plus - minus, minus & plus, first=first)


def verdict(found: Found, case: Case, env: Env) -> str | None:
    """None when the tool found exactly the expected keys, else what was wrong."""
    want = set(env.changed_ids) if case.changed else set()
    problems = []
    if found.different != want:
        problems.append(f"{len(found.different)} different (want {len(want)};"
                        f" {len(found.different - want)} unexpected,"
                        f" {len(want - found.different)} missed)")
    for name, keys in (("only in A", found.only_a), ("only in B", found.only_b)):
        if keys:
            problems.append(f"{len(keys)} {name} (want 0)")
    return "; ".join(problems) or None


class TreeSampler(threading.Thread):
    """Peak memory of a process tree (summed private, largest VmHWM) and of the
    PostgreSQL backends of the benchmark login, every procmem.TICK."""

    def __init__(self, root: int, dsn: str) -> None:
        super().__init__(daemon=True)
        self.root, self.dsn = root, dsn
        self.stop_event = threading.Event()
        self.tree_private_kb = self.tree_hwm_kb = self.processes = 0
        self.backend_private_kb = self.backends_total_kb = 0
        self.error: str | None = None
        self.parents: dict[int, int] = {}

    def tree(self) -> list[int]:
        alive = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        parents = self.parents
        for gone in parents.keys() - alive:
            del parents[gone]
        for pid in alive - parents.keys():  # a pid's parent is read once: it never changes
            try:
                text = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            parents[pid] = int(text.rpartition(")")[2].split()[1])
        found, frontier = [self.root], [self.root]
        while frontier:
            frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
            found += frontier
        return found

    def run(self) -> None:
        seen: set[int] = set()
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop_event.is_set():
                    pids = self.tree()
                    seen.update(pids)
                    kbs = [procmem.status_kb(p) for p in pids]
                    self.tree_private_kb = max(self.tree_private_kb,
                                               sum(k.get("RssAnon", 0) for k in kbs))
                    self.tree_hwm_kb = max([self.tree_hwm_kb, *(k.get("VmHWM", 0) for k in kbs)])
                    backends = [r[0] for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE usename = %s", [LOGIN])]
                    bk = [procmem.status_kb(p).get("RssAnon", 0) for p in backends]
                    self.backend_private_kb = max([self.backend_private_kb, *bk])
                    self.backends_total_kb = max(self.backends_total_kb, sum(bk))
                    time.sleep(procmem.TICK)
        except (OSError, psycopg.Error) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        self.processes = len(seen)


@dataclass
class Outcome:
    seconds: float | None = None
    error: str | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None


def run_tool(env: Env, case: Case, argv: list[str], parse: Callable[[str], Found],
             ok_codes: tuple[int, ...]) -> Outcome:
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env.tool_env(), cwd=env.workdir)
    sampler = TreeSampler(proc.pid, env.box.dsn("postgres"))
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.monotonic() - started
    sampler.stop_event.set()
    sampler.join()
    out = Outcome(memory={"tree_private_mb": procmem.mb(sampler.tree_private_kb),
                          "tree_rss_mb": procmem.mb(sampler.tree_hwm_kb),
                          "processes": sampler.processes,
                          "pg_backend_private_mb": procmem.mb(sampler.backend_private_kb),
                          "pg_backends_total_private_mb": procmem.mb(sampler.backends_total_kb),
                          "sampler_error": sampler.error})
    if proc.returncode not in ok_codes:
        out.error = f"exit {proc.returncode}: {first_line(stderr or stdout)[:300]}"
        return out
    try:
        found = parse(stdout)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        out.error = f"unreadable output ({exc}): {first_line(stdout)[:200]}"
        return out
    out.found = {"different": len(found.different), "only_in_a": len(found.only_a),
                 "only_in_b": len(found.only_b)}
    if found.segments is not None:
        out.found["segments"] = found.segments
    if found.first:
        out.found["first"] = found.first  # type: ignore[assignment]
    wrong = verdict(found, case, env)
    if wrong:
        out.error = f"wrong answer: {wrong}"
    else:
        out.seconds = seconds
    return out


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    run: Callable[[Env, Case], Outcome]
    command: Callable[[Env, Case], str]
    applies: Callable[[Case], bool] = lambda case: True

    @property
    def ours(self) -> bool:
        return self.key == "dms"


def make_methods() -> list[Method]:
    def dd(algorithm: str | None) -> Callable[[Env, Case], Outcome]:
        return lambda env, case: run_tool(env, case, datadiff_argv(env, case, algorithm),
                                          parse_datadiff, (0,))

    def dd_text(algorithm: str | None) -> Callable[[Env, Case], str]:
        return lambda env, case: shlex.join(datadiff_argv(env, case, algorithm, shown=True))

    return [
        Method("data-diff", "data-diff (defaults: auto)", dd(None), dd_text(None)),
        Method("data-diff-hashdiff", "data-diff -a hashdiff", dd("hashdiff"), dd_text("hashdiff"),
               lambda case: not case.cross),
        Method("dms", "dms table-compare",
               lambda env, case: run_tool(env, case, dms_argv(env, case), parse_dms, (0, 1)),
               lambda env, case: shlex.join(dms_argv(env, case, shown=True))),
    ]


@dataclass
class Result:
    case: Case
    method: Method
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [o.seconds for o in self.outcomes if o.ok and o.seconds is not None]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def peak(self, name: str) -> float | None:
        values = [o.memory[name] for o in self.outcomes if o.ok and name in o.memory]
        return max(values) if values else None


def run_all(env: Env, cases: list[Case], runs: int,
            after: Callable[[list[Result], int], None]) -> list[Result]:
    """The runs, round-robin; ``after(results, repetition)`` once each repetition is done
    (the report so far is written then, so a run cut short still leaves one)."""
    results = [Result(c, m) for c in cases for m in make_methods() if m.applies(c)]
    for repetition in range(1, runs + 1):
        print(f"repetition {repetition}/{runs}", file=sys.stderr)
        for result in results:  # round-robin: slow phases of the machine hit all methods
            outcome = result.method.run(env, result.case)
            result.outcomes.append(outcome)
            shown = (f"{outcome.seconds:.2f} s" if outcome.ok else f"FAILED: {outcome.error}")
            print(f"  {result.case.key} {result.method.key}: {shown}", file=sys.stderr)
        after(results, repetition)
    return results


def check_data(env: Env) -> list[str]:
    """Untimed: dms must find the identical pairs equal (the generators agree)."""
    notes = []
    for case in (c for c in CASES if not c.changed):
        out = run_tool(env, case, dms_argv(env, case), parse_dms, (0, 1))
        if not out.ok:
            raise SystemExit(f"data check failed for {case.key}: {out.error}")
        notes.append(f"{case.label}: {out.found['different']} different, "
                     f"{out.found['only_in_a']} only in A, {out.found['only_in_b']} only in B"
                     f" ({out.seconds:.1f} s, untimed warm-up)")
        print(f"data check {notes[-1]}", file=sys.stderr)
    return notes


def date_probe(env: Env) -> str:
    """Untimed: data-diff with ship_date on the identical MariaDB<->PG pair, stopped at 4
    differences -- why the timed data-diff runs across databases leave ship_date out."""
    case = next(c for c in CASES if c.key == "my-identical")
    argv = datadiff_argv(env, case, None, columns=COLUMNS[1:], limit=4)
    done = subprocess.run(argv, capture_output=True, text=True, env=env.tool_env(),
                          cwd=env.workdir, check=False)
    found = parse_datadiff(done.stdout)
    shown = shlex.join(datadiff_argv(env, case, None, shown=True, columns=COLUMNS[1:], limit=4))
    text = (f"`{shown}` on the identical pair (exit {done.returncode}): "
            f"{len(found.different) + len(found.only_a) + len(found.only_b)} keys reported"
            " (stopped at -l 4)" + (f", first lines: `{json.dumps(found.first)}`"
                                    if found.first else ""))
    print(f"data-diff date probe: {text}", file=sys.stderr)
    return text


# ---------------------------------------------------------------- report
def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def find(results: list[Result], case: Case, key: str) -> Result | None:
    return next((r for r in results if r.case == case and r.method.key == key), None)


def result_rows(env: Env, results: list[Result]) -> list[str]:
    lines = ["| case | tool | runs ok | median s [min-max] | rows/s | dms / this |"
             " tool peak private MB | tool peak RSS MB | PG backend peak private MB"
             " (largest; all) | found (different / only A / only B) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ok = f"{len(r.times)}/{len(r.outcomes)}"
        ours = find(results, r.case, "dms")
        found = next((o.found for o in r.outcomes if o.found), {})
        found_text = (f"{found['different']} / {found['only_in_a']} / {found['only_in_b']}"
                      if found else "—")
        if "segments" in found:
            found_text += f" ({found['segments']} segments checked)"
        if r.median is None:
            lines.append(f"| {r.case.label} | {r.method.label} | {ok} | every run failed"
                         f" (below) | | | | | | {found_text} |")
            continue
        rel = ratio(ours.median if ours else None, r.median)
        lines.append(
            f"| {r.case.label} | {r.method.label} | {ok} | {r.median:.2f}"
            f" [{min(r.times):.2f}-{max(r.times):.2f}] | {env.rows / r.median:,.0f} |"
            f" {'—' if r.method.ours else fmt(rel) + 'x'} |"
            f" {fmt(r.peak('tree_private_mb'), 0)} | {fmt(r.peak('tree_rss_mb'), 0)} |"
            f" {fmt(r.peak('pg_backend_private_mb'), 0)};"
            f" {fmt(r.peak('pg_backends_total_private_mb'), 0)} | {found_text} |")
    return lines


def goals(results: list[Result], cases: list[Case]) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        ours = find(results, case, "dms")
        for key in ("data-diff", "data-diff-hashdiff"):
            ref = find(results, case, key)
            if ref is None or ours is None:
                continue
            rel = ratio(ours.median, ref.median)
            met = rel is not None and rel <= TIME_GOAL and all(o.ok for o in ours.outcomes)
            out.append({"case": case.key, "label": case.label, "reference": ref.method.label,
                        "dms_s": ours.median, "reference_s": ref.median, "ratio": rel,
                        "verdict": "met" if met else "missed"})
    return out


def render(env: Env, results: list[Result], goal_list: list[dict[str, Any]],
           machine: dict[str, Any], settings: dict[str, str], checks: list[str], probe: str,
           args: argparse.Namespace, cases: list[Case]) -> str:
    mib = 1 << 20
    lines = [
        "# dms table-compare vs data-diff",
        "",
        f"`.venv/bin/python bench/compare_bench.py --rows {args.rows} --runs {args.runs}"
        f" --parallel {args.parallel} --datadiff-threads {args.datadiff_threads}`"
        + (f" `--only {args.only}`" if args.only else ""),
        "",
        "## Machine",
        f"- {machine['date']}; {machine['cores']} cores ({machine['cpu']}),"
        f" {machine['memory_gib']:.1f} GiB memory, kernel {machine['kernel']}",
        f"- load average {machine['load_start']:.2f} at the start, {machine['load_end']:.2f}"
        " at the end (other work on the machine makes numbers noisy)",
        f"- repetitions done: {machine['repetitions_done']} of {args.runs}"
        + ("" if machine["repetitions_done"] == args.runs else
           " (the run was stopped after this report was written)"),
        f"- PostgreSQL {settings['server_version']} (shared_buffers {settings['shared_buffers']},"
        f" work_mem {settings['work_mem']}); MariaDB {env.facts['mariadb_version']}"
        f" (innodb_buffer_pool_size {env.facts['innodb_buffer_pool_size'] // mib} MiB)",
        f"- {env.tools['data-diff']} in bench/.venv-datadiff (pip freeze:"
        f" {', '.join(env.tools['datadiff_freeze'])})",
        "",
        "## Data",
        f"- {env.rows:,} rows per table; PostgreSQL `{DB}`: orders_a"
        f" {env.facts['pg_orders_a_bytes'] / mib:.0f} MiB heap, orders_b (identical copy),"
        f" orders_b_changed (amount + 0.01 in {CHANGED} rows, ids {env.changed_ids[0]},"
        f" {env.changed_ids[1]}, ... {env.changed_ids[-1]}); MariaDB `{DB}.orders_a`"
        f" (InnoDB, data_length {env.facts['my_data_length'] / mib:.0f} MiB), the same rows",
        f"- columns: {', '.join(COLUMNS)} (key id)",
        "- untimed check before the runs (dms table-compare): "
        + "; ".join(checks),
        "",
        "## Results",
        "",
        "Median of the correct runs [min-max]; rows/s = rows of one table / median."
        " Memory: the largest over the runs; tool = the command's process tree (summed"
        " private memory, largest VmHWM), PG backend = the tool's PostgreSQL sessions.",
        "",
        *result_rows(env, results),
        "",
        f"## Goal: dms ≤ {TIME_GOAL}x data-diff's time, same differences found",
        "",
        "| case | reference | dms s | reference s | dms / reference | goal ≤ 0.5x |",
        "|---|---|---|---|---|---|",
        *[f"| {g['label']} | {g['reference']} | {fmt(g['dms_s'])} | {fmt(g['reference_s'])} |"
          f" {fmt(g['ratio'])}x | {g['verdict']} |" for g in goal_list],
        "",
        f"**data-diff and DATE across databases.** With `{DD_BROKEN}` (a DATE on both"
        " sides) data-diff 0.11.2 reports every MariaDB↔PG row whose date is not NULL as"
        " different: it writes MySQL's DATE as a timestamp (`YYYY-MM-DD 00:00:00.000000`)"
        " and PostgreSQL's as `YYYY-MM-DD` once more than one column is compared. Untimed"
        f" probe: {probe}. So data-diff's timed MariaDB↔PG runs compare the other five"
        f" columns ({', '.join(datadiff_columns(CASES[2]))}) while dms compares all six --"
        " less work for the reference, so the ratios there are conservative.",
        "",
        "data-diff's default algorithm (`auto`) is joindiff when both tables are in one"
        " database (the PG↔PG cases: one FULL OUTER JOIN query inside PostgreSQL) and"
        " hashdiff across databases; the hashdiff rows on PG↔PG are the same algorithm"
        " family as dms's (segment checksums, bisection).",
        "",
    ]
    failures = [(r.case.label, r.method.label, o.error) for r in results for o in r.outcomes
                if not o.ok]
    if failures:
        lines += ["## Failed runs", "", *[f"- {c}, {m}: {e}" for c, m, e in failures], ""]
    lines += ["## Commands", "",
              f"- data-diff: {datadiff_argv(env, cases[0], None, shown=True)[0]} with"
              " `--conf` a TOML file naming the two databases (127.0.0.1, the sandbox's"
              " ports, login dms_bench_cmp, password `${VAR}` from the environment) and"
              " one `[run.<case>]` per case", ""]
    for r in results:
        lines.append(f"- {r.case.key}, {r.method.key}: `{r.method.command(env, r.case)}`")
    return "\n".join(lines) + "\n"


def machine_facts() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next((line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(), "cpu": cpu,
            "memory_gib": int(meminfo[meminfo.index("MemTotal:") + 1]) / (1 << 20),
            "kernel": platform.release(), "load_start": os.getloadavg()[0]}


def data_facts(env: Env) -> None:
    with pg_connect(env.box) as conn:
        env.facts["pg_orders_a_bytes"] = scalar(conn, "SELECT pg_relation_size('orders_a')")
    with my_connect(env.box, DB) as my:
        env.facts["mariadb_version"] = my_scalar(my, "SELECT VERSION()")
        env.facts["innodb_buffer_pool_size"] = int(my_scalar(
            my, "SELECT @@innodb_buffer_pool_size"))
        env.facts["my_data_length"] = int(my_scalar(
            my, "SELECT data_length FROM information_schema.tables"
                " WHERE table_schema = %s AND table_name = 'orders_a'", (DB,)))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="dms --parallel")
    parser.add_argument("--datadiff-threads", type=int, default=2, help="data-diff -j")
    parser.add_argument("--only", help="cases, comma separated: "
                        + ", ".join(c.key for c in CASES))
    args = parser.parse_args()
    if args.rows < CHANGED * 2 or args.runs < 1 or args.parallel < 1:
        parser.error(f"--rows must be at least {CHANGED * 2}, --runs and --parallel at least 1")
    wanted = args.only.split(",") if args.only else [c.key for c in CASES]
    cases = [c for c in CASES if c.key in wanted]
    if not cases:
        parser.error("--only names no case")
    box = Sandbox.default()
    for line in box.start():
        print(f"sandbox: {line}", file=sys.stderr)
    tools: dict[str, Any] = {"data-diff": datadiff_venv(), "datadiff_freeze": datadiff_freeze()}
    ids = changed_ids(args.rows)
    prepare_pg(box, args.rows, ids)
    prepare_my(box, args.rows)
    with tempfile.TemporaryDirectory(prefix="dms-compare-bench-") as tmp:
        env = Env(box, args.rows, args.parallel, args.datadiff_threads, Path(tmp),
                  secrets.token_urlsafe(24), secrets.token_urlsafe(24), ids, tools)
        try:
            set_logins(env)
            write_conf(env)
            data_facts(env)
            checks = check_data(env)
            probe = date_probe(env)
            with pg_connect(box) as conn:
                settings = {n: str(scalar(conn, f"SHOW {n}"))
                            for n in ("server_version", "shared_buffers", "work_mem")}
            machine = machine_facts()
            path = RESULTS / f"compare-{time.strftime('%Y%m%dT%H%M%S')}.json"
            report = ""

            def write(results: list[Result], repetition: int) -> None:
                nonlocal report
                machine["load_end"] = os.getloadavg()[0]
                machine["repetitions_done"] = repetition
                goal_list = goals(results, cases)
                report = render(env, results, goal_list, machine, settings, checks, probe,
                                args, cases)
                raw = {"args": vars(args), "date_probe": probe, "machine": machine,
                       "settings": settings, "tools": env.tools, "facts": env.facts,
                       "changed_ids": ids, "goals": goal_list,
                       "results": [{"case": r.case.key, "method": r.method.key,
                                    "command": r.method.command(env, r.case),
                                    "median_s": r.median,
                                    "runs": [{"seconds": o.seconds, "error": o.error,
                                              "found": o.found, **o.memory}
                                             for o in r.outcomes]} for r in results]}
                RESULTS.mkdir(exist_ok=True)
                (RESULTS / "compare-latest.md").write_text(report)
                path.write_text(json.dumps(raw, indent=2, default=str))
                print(f"repetition {repetition}: written to {RESULTS / 'compare-latest.md'}"
                      f" and {path}", file=sys.stderr)

            run_all(env, cases, args.runs, write)
        finally:
            set_logins(env, discard=True)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
