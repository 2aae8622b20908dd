"""MariaDB -> PostgreSQL benchmark: dms against pgloader and a single ``mariadb | psql`` pipe.

    .venv/bin/python bench/mariadb_bench.py [--rows 2000000] [--runs 3] [--skip-install]
                                            [--workers 2] [--no-mapper]

It also times the seed's own number: a mapper DIM job over 583,000 MariaDB
rows end to end (the seed took 5 minutes).

Not a test and not run by CI: for 2M rows it takes several minutes and wants
the machine to itself (other work on the same cores moves every number).  It
works on the project's own sandbox (``dms sandbox``: PostgreSQL and MariaDB,
started if needed, never stopped) and touches only these:

* MariaDB database ``dms_bench_my``: the source, ``orders`` with ``--rows``
  rows generated inside MariaDB from the sequence engine (``seq_1_to_N``, in
  batches), every value a pure function of id, the columns and value rules of
  the anchor rig (/work/shared/anchors-bench: setup_mariadb.sh, gen_pg.sql;
  ~10 % NULL notes, ~20 % NULL ship_date).  A table already holding
  ``--rows`` rows is reused;
* MariaDB ``dms_bench_my.bench_customer`` (unless ``--no-mapper``): the mapper
  job's source, 583,000 customers with bench/run.py's MAPPER_SOURCE columns
  and value rules (cust_id key, name, city, segment, credit_limit), generated
  from ``seq_1_to_583000``, reused when it holds 583,000 rows;
* MariaDB account ``dms_bench`` @ ``127.0.0.1`` and @ ``localhost``: no
  password, ``SELECT, RELOAD, LOCK TABLES ON *.*`` (dms and pgloader log in
  as it);
* PostgreSQL database ``dms_bench_my_dst``: dms installed, the source
  registered as connection ``bench_my`` (DBTYP MARIADB, 127.0.0.1, the
  sandbox's MariaDB port, PWDSRC NONE), target ``public.orders`` created by
  DDL with the types dms maps the source's columns to
  (``dms_pkg.backends.mysql.describe_query``) and a primary key on id; for the
  mapper method, defined once through the packages: the named query
  ``BENCH_MY_CUSTOMER_Q`` (``SELECT cust_id, name, city, segment, credit_limit
  FROM bench_customer`` on ``bench_my``), the DIM mapping and job
  ``DIM_BENCH_MY_CUSTOMER`` (bench/run.py's DIM_BENCH_CUSTOMER details: two
  SCD2 and two SCD1 columns) and its target ``bench_dw.dim_customer``;
* PostgreSQL database ``dms_bench_my_pgl``: pgloader's target, dropped and
  created again before each pgloader run, dropped at the end.

Methods, run ``--runs`` times round-robin (one run of each, then the next
repetition), median reported:

==============  ==============================================================
ours-N, ours-1  ``CALL dms.execute_query_parallel(<bench_my>, 'SELECT * FROM
                orders', NULL, 'public', 'orders', '{"max_workers": N,
                "create_target": false, "min_rows_for_parallel": 0}')`` in
                dms_bench_my_dst (N = ``--workers``, default 2)
mapper-583k     ``CALL pkgdwjob.run_job(p_mapref => 'DIM_BENCH_MY_CUSTOMER',
                p_params => '{"max_workers": 2}')`` in dms_bench_my_dst
                (bench/run.py's MAPPER_SETTINGS): the first load of the empty
                dimension from the 583,000 MariaDB rows (``--no-mapper``
                leaves it out); rows/s is of those rows; its median against
                the seed's 300 s is the last line of the goals
pipe            ``mariadb --batch --raw --skip-column-names --quick -e "<the
                SELECT dms's reader sends: every row as one COPY text line>" |
                psql -c "COPY orders FROM STDIN"``: the single-stream reference
pgloader        Debian's pgloader with the anchor rig's best setting
                (pgloader_parallel.load: workers = 4, concurrency = 2, multiple
                readers per thread, rows per range 250000, batch rows 50000,
                prefetch rows 100000; ``--dynamic-space-size 4096``), into a
                fresh database each run; it creates the table, loads it and
                builds the primary key, all inside its time
==============  ==============================================================

Before each timed run, untimed: TRUNCATE the target and CHECKPOINT (pgloader:
DROP and CREATE its database, CHECKPOINT; mapper-583k: the dimension).  After
each ours-* run, ``dms.run_progress`` must say SUCCEEDED and the target must
equal the source by count and column sums computed by SQL on both sides (id,
customer_id, amount, note count and length, created_at and ship_date offsets,
ship_date count, is_paid, payload qty).  After each mapper run the job log
rows of its process (``dms.dms_joblog``) must say PC with 0 error rows and
the dimension's current rows (curflg = 'Y') must equal ``bench_customer`` by
count and each column's count and sums (lengths of the text columns, their
distinct counts, each value weighted by its key) computed by SQL on both
sides.  Pipe and pgloader runs are checked by row count (pgloader's content
sums are recorded too).  Peak memory of dms runs (the mapper's too) is
sampled every 20 ms from /proc (bench/procmem.py): private memory (RssAnon)
of the largest process among the CALL's backend, the worker backends and
their ``mariadb`` client children; the references' peak is GNU time's RSS of
their largest process.  MariaDB's server is counted for no method.

pgloader reaches PostgreSQL through the sandbox's unix socket
(``postgresql://postgres@unix:<socket dir>:<port>/...``: local logins are
trusted, TCP asks for a password) and MariaDB over TCP as ``dms_bench``.
pgloader and GNU ``time`` are installed with apt-get when missing, unless
``--skip-install``; pgloader is no dependency of the project.

Output: a markdown report on stdout and in ``bench/results/mariadb-latest.md``,
raw data in ``bench/results/mariadb-<timestamp>.json``.  Run it as root
(apt-get, the MariaDB root account over the socket, /proc of the servers'
processes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import procmem
import psycopg
import pymysql

from dms_pkg.backends.mysql import describe_query
from dms_pkg.backends.mysql_types import MySQLColumn, render_select
from dms_pkg.errors import DmsError
from dms_pkg.install.installer import install
from dms_pkg.sandbox import Sandbox, default_home, pg_bindir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SRC_DB = "dms_bench_my"  # MariaDB
DST_DB = "dms_bench_my_dst"  # PostgreSQL, dms and pipe target
PGL_DB = "dms_bench_my_pgl"  # PostgreSQL, pgloader target
MY_USER = "dms_bench"
CONNM = "bench_my"
SOURCE_SQL = "SELECT * FROM orders"
BATCH_ROWS = 250_000
TIME_GOAL = 0.5  # ours / pgloader, time
MEMORY_GOAL = 0.2  # ours / pgloader, peak memory
SETTINGS = ("shared_buffers", "max_wal_size", "synchronous_commit", "wal_compression",
            "max_connections", "checkpoint_timeout")
CALL_SQL = ("CALL dms.execute_query_parallel(%s::bigint, %s, NULL, 'public', 'orders',"
            " %s::jsonb)")

# The anchor rig's MariaDB table (setup_mariadb.sh).
MY_DDL = """
CREATE TABLE orders (
  id          bigint        NOT NULL PRIMARY KEY,
  customer_id int           NOT NULL,
  amount      decimal(12,2) NOT NULL,
  status      varchar(16)   NOT NULL,
  note        varchar(120)  NULL,
  created_at  datetime      NOT NULL,
  ship_date   date          NULL,
  is_paid     tinyint(1)    NOT NULL,
  payload     json          NULL
) ENGINE=InnoDB
"""
# gen_pg.sql's value rules in MariaDB: seven hashes of the id (CRC32 here,
# hashint8 there), each column a function of them.  126144000 s = 4 * 365 days.
MY_FILL = """
INSERT INTO orders
SELECT id,
       1 + h1 % 100000,
       (h2 % 10000000) / 100,
       ELT(1 + h3 % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       IF(h4 % 10 = 0, NULL,
          LEFT(CONCAT('note ', MD5(id), ' ', MD5(id + 1), ' ', MD5(id + 2), ' ', MD5(id + 3)),
               20 + h4 % 101)),
       TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (h5 % 126144000) SECOND,
       IF(h6 % 5 = 0, NULL, DATE '2020-01-01' + INTERVAL (h5 % 126144000 DIV 86400 + h6 % 30) DAY),
       h7 % 2 = 0,
       CONCAT('{"sku": "SKU-', h1 % 5000, '", "qty": ', 1 + h2 % 10, ', "gift": ',
              IF(h3 % 7 = 0, 'true', 'false'), ', "tags": ["t', h4 % 13, '", "t', h6 % 17, '"]}')
  FROM (SELECT seq AS id,
               CRC32(seq * 7 + 1) AS h1, CRC32(seq * 7 + 2) AS h2, CRC32(seq * 7 + 3) AS h3,
               CRC32(seq * 7 + 4) AS h4, CRC32(seq * 7 + 5) AS h5, CRC32(seq * 7 + 6) AS h6,
               CRC32(seq * 7 + 7) AS h7
          FROM seq_FIRST_to_LAST) AS s
"""
# The same sums on both sides: order-independent, over normalised values.
SUM_NAMES = ("rows", "sum_id", "sum_customer_id", "sum_amount", "notes", "note_chars",
             "created_at_s", "ship_dates", "ship_date_days", "paid", "payload_qty")
MY_SUMS = """
SELECT COUNT(*), SUM(id), SUM(customer_id), SUM(amount), COUNT(note), SUM(CHAR_LENGTH(note)),
       SUM(TIMESTAMPDIFF(SECOND, '2020-01-01 00:00:00', created_at)), COUNT(ship_date),
       SUM(DATEDIFF(ship_date, '2020-01-01')), SUM(is_paid <> 0),
       SUM(CAST(JSON_VALUE(payload, '$.qty') AS UNSIGNED))
  FROM orders
"""
# created_at: timestamp in dms's target, timestamptz (UTC) in pgloader's.
PG_SUMS = """
SELECT count(*), sum(id), sum(customer_id), sum(amount), count(note), sum(char_length(note)),
       sum(extract(epoch FROM created_at::timestamp - timestamp '2020-01-01')::bigint),
       count(ship_date), sum(ship_date - date '2020-01-01'), count(*) FILTER (WHERE is_paid),
       sum((payload->>'qty')::int)
  FROM orders
"""

# The mapper method: bench/run.py's DIM_BENCH_CUSTOMER (MAPPER_SOURCE, MAPPER_DETAILS,
# MAPPER_SETTINGS) with its source table in MariaDB, read over the bench_my connection.
MAPPER_ROWS = 583_000
SEED_SECONDS = 300.0  # the seed's mapper job took 5 minutes for 583K MySQL rows
MAPREF = "DIM_BENCH_MY_CUSTOMER"
MAPPER_SQL_CODE = "BENCH_MY_CUSTOMER_Q"
MAPPER_QUERY = "SELECT cust_id, name, city, segment, credit_limit FROM bench_customer"
MAPPER_SCHEMA, MAPPER_TABLE = "bench_dw", "dim_customer"
MAPPER_SETTINGS = json.dumps({"max_workers": 2})  # bench/run.py's MAPPER_SETTINGS
MAPPER_CALL = "CALL pkgdwjob.run_job(p_mapref => %s, p_params => %s::jsonb)"
MAPPER_DETAILS = [("CUST_ID", "INTEGER", "Y", 2), ("NAME", "STRING", "N", 2),
                  ("CITY", "STRING", "N", 2), ("SEGMENT", "STRING", "N", 1),
                  ("CREDIT_LIMIT", "MONEY", "N", 1)]
MY_CUSTOMER_DDL = """
CREATE TABLE bench_customer (cust_id int PRIMARY KEY, name text, city text, segment text,
                             credit_limit decimal(12,2)) ENGINE=InnoDB
"""
MY_CUSTOMER_FILL = f"""
INSERT INTO bench_customer
SELECT seq, CONCAT('customer ', seq), CONCAT('city ', seq % 997), CONCAT('segment ', seq % 7),
       (seq % 5000) * 10.5
  FROM seq_1_to_{MAPPER_ROWS}
"""
# Count and sums of every column (and of each value weighted by its key, so a value
# on the wrong key shows), the same on both sides.
MAPPER_SUM_NAMES = ("rows", "sum_cust_id", "names", "name_chars", "key_name_chars",
                    "cities", "city_chars", "key_city_chars", "distinct_cities",
                    "segments", "segment_chars", "key_segment_chars", "distinct_segments",
                    "credit_limits", "sum_credit_limit", "key_credit_limit")
CUSTOMER_SUMS = """
SELECT COUNT(*), SUM(cust_id),
       COUNT(name), SUM(CHAR_LENGTH(name)), SUM(cust_id * CHAR_LENGTH(name)),
       COUNT(city), SUM(CHAR_LENGTH(city)), SUM(cust_id * CHAR_LENGTH(city)),
       COUNT(DISTINCT city),
       COUNT(segment), SUM(CHAR_LENGTH(segment)), SUM(cust_id * CHAR_LENGTH(segment)),
       COUNT(DISTINCT segment),
       COUNT(credit_limit), SUM(credit_limit), SUM(cust_id * credit_limit)
  FROM {table}
"""
MY_CUSTOMER_SUMS = CUSTOMER_SUMS.format(table="bench_customer")
PG_CUSTOMER_SUMS = CUSTOMER_SUMS.format(
    table=f"{MAPPER_SCHEMA}.{MAPPER_TABLE} WHERE curflg = 'Y'")

PGLOADER_LOAD = """\
-- The anchor rig's pgloader_parallel.load, pointed at the sandbox.
LOAD DATABASE
     FROM mysql://{user}@127.0.0.1:{my_port}/{src}
     INTO postgresql://postgres@unix:{sockdir}:{pg_port}/{dst}
 WITH include drop, create tables, create indexes, reset sequences, foreign keys,
      downcase identifiers,
      workers = 4, concurrency = 2,
      multiple readers per thread, rows per range = 250000,
      batch rows = 50000, prefetch rows = 100000
 CAST type varchar to text drop typemod,
      column orders.customer_id to integer drop typemod,
      column orders.payload to jsonb drop typemod
 ALTER SCHEMA '{src}' RENAME TO 'public'
;
"""
PGLOADER_ARGS = ("--dynamic-space-size", "4096")


class NotAvailable(Exception):
    """A method that cannot run on this machine."""


# ------------------------------------------------------------------ helpers
def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else "(no message)"


def pg_connect(box: Sandbox, db: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(box.dsn(db), autocommit=True)


def scalar(conn: psycopg.Connection[tuple[Any, ...]], query: str,
           params: list[Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def my_connect(box: Sandbox, *, user: str | None = None,
               database: str | None = None) -> pymysql.connections.Connection[Any]:
    """A MariaDB session over the sandbox's socket: as root (the OS user) by default."""
    args: dict[str, Any] = dict(box.mariadb.connect_args(database))
    if user:
        args["user"] = user
    return pymysql.connect(**args, autocommit=True, charset="utf8mb4",
                           init_command="SET time_zone = '+00:00'")


def my_all(conn: pymysql.connections.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


def normalise(values: tuple[Any, ...] | None,
              names: tuple[str, ...] = SUM_NAMES) -> dict[str, str]:
    """Sums as text of their exact value (int, Decimal, float alike)."""
    out: dict[str, str] = {}
    for name, value in zip(names, values or (), strict=True):
        out[name] = "NULL" if value is None else format(Decimal(str(value)).normalize(), "f")
    return out


def apt_install(package: str) -> str | None:
    """Install a Debian package (retried once after apt-get update); None when it worked."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"installing {package} with apt-get", file=sys.stderr)
    command = ["apt-get", "install", "-y", package]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode == 0:
        return None
    return f"apt-get install {package} failed: {first_line(done.stderr or done.stdout)}"


def find_tool(binary: str, package: str, skip_install: bool) -> tuple[str | None, str | None]:
    """Path of ``binary`` (installing ``package`` if allowed), or why it is missing."""
    path = shutil.which(binary)
    if path is None and not skip_install:
        failure = apt_install(package)
        if failure:
            return None, failure
        path = shutil.which(binary)
    return (path, None) if path else (None, f"{binary} not installed: apt-get install {package}")


def tool_output(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return " ".join((done.stdout + done.stderr).split())


# ------------------------------------------------------------------ environment
@dataclass
class Env:
    """The sandbox, the data's facts and the tools every method needs."""

    box: Sandbox
    rows: int
    psql: str
    mariadb: str
    conid: int
    columns: list[MySQLColumn]
    source_sums: dict[str, str]
    workdir: Path
    time_bin: str | None
    pgloader: str | None
    pgloader_missing: str | None
    facts: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    # The mapper method's MariaDB source: its sums and facts, found by its first prep.
    mapper_sums: dict[str, str] | None = None
    mapper_facts: dict[str, Any] = field(default_factory=dict)

    def dsn(self, db: str = DST_DB) -> str:
        return self.box.dsn(db)

    def psql_cmd(self, db: str = DST_DB) -> list[str]:
        return [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(db)]


def prepare_mariadb(box: Sandbox, rows: int) -> dict[str, Any]:
    """The account, the database and ``orders`` with ``rows`` rows; the table's facts."""
    with my_connect(box) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {SRC_DB}")
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER IF NOT EXISTS '{MY_USER}'@'{host}'")
            cur.execute(f"GRANT SELECT, RELOAD, LOCK TABLES ON *.* TO '{MY_USER}'@'{host}'")
        cur.execute(f"USE {SRC_DB}")
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'orders'", [SRC_DB])
        exists = (cur.fetchone() or (0,))[0]
        have = None
        if exists:
            cur.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM orders")
            have = cur.fetchone()
        if have is None or tuple(have) != (rows, 1, rows):
            print(f"generating {SRC_DB}.orders with {rows:,} rows in MariaDB", file=sys.stderr)
            started = time.perf_counter()
            cur.execute("DROP TABLE IF EXISTS orders")
            cur.execute(MY_DDL)
            for first in range(1, rows + 1, BATCH_ROWS):
                last = min(rows, first + BATCH_ROWS - 1)
                cur.execute(MY_FILL.replace("FIRST", str(first)).replace("LAST", str(last)))
            print(f"  generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        cur.execute("ANALYZE TABLE orders")
        cur.fetchall()
        cur.execute("SELECT DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'orders'", [SRC_DB])
        data, index = cur.fetchone() or (0, 0)
        cur.execute("SELECT VERSION(), @@innodb_buffer_pool_size")
        version, pool = cur.fetchone() or ("?", 0)
    return {"data_length": int(data), "index_length": int(index),
            "server_version": str(version), "innodb_buffer_pool_size": int(pool)}


def source_columns(box: Sandbox) -> tuple[list[MySQLColumn], dict[str, bool]]:
    """The columns dms's reader sees for SOURCE_SQL (as dms_bench), and which are NOT NULL."""
    with my_connect(box, user=MY_USER, database=SRC_DB) as conn:
        columns = describe_query(conn, SOURCE_SQL)
        rows = my_all(conn, "SELECT COLUMN_NAME, IS_NULLABLE FROM information_schema.COLUMNS"
                            f" WHERE TABLE_SCHEMA = '{SRC_DB}' AND TABLE_NAME = 'orders'")
    return columns, {str(name): str(nullable) == "NO" for name, nullable in rows}


def source_sums(box: Sandbox) -> dict[str, str]:
    with my_connect(box, user=MY_USER, database=SRC_DB) as conn:
        return normalise(my_all(conn, MY_SUMS)[0])


def target_sums(box: Sandbox, db: str) -> dict[str, str]:
    with pg_connect(box, db) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return normalise(conn.execute(PG_SUMS).fetchone())


def prepare_postgres(box: Sandbox, columns: list[MySQLColumn], not_null: dict[str, bool],
                     my_port: int) -> int:
    """The target database with dms, the connection row and an empty ``orders``; its conid."""
    with pg_connect(box, "postgres") as admin:
        if not scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", [DST_DB]):
            admin.execute(f'CREATE DATABASE "{DST_DB}"')
    try:
        install(box.dsn(DST_DB))
    except DmsError as exc:
        raise SystemExit(f"dms install into {DST_DB} failed: {exc}\n"
                         f"If dms in it came from another version of a migration, drop the"
                         f" database {DST_DB} and run again.") from None
    wanted = ("MARIADB", "127.0.0.1", my_port, SRC_DB, MY_USER, "NONE")
    with pg_connect(box, DST_DB) as conn:
        row = conn.execute("SELECT conid, dbtyp, dbhost, dbport, dbsrvnm, usrnm, pwdsrc"
                           " FROM dms.dms_dbcondtls WHERE connm = %s AND curflg = 'Y'",
                           [CONNM]).fetchone()
        if row is not None and (row[1], row[2], int(row[3] or 0), *row[4:]) != wanted:
            # An older row (another port): keep it as history, register the current one.
            conn.execute("UPDATE dms.dms_dbcondtls SET curflg = 'N' WHERE conid = %s", [row[0]])
            row = None
        if row is None:
            row = conn.execute(
                "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbhost, dbport, dbsrvnm, usrnm,"
                " pwdsrc) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING conid",
                [CONNM, *wanted]).fetchone()
        assert row is not None
        # The target by DDL: the types dms maps the source's columns to, and the PK
        # the anchor rig's target has.
        defs = [f'"{c.name}" {c.pg_type}' + (" NOT NULL" if not_null.get(c.name) else "")
                for c in columns]
        conn.execute("DROP TABLE IF EXISTS public.orders")
        conn.execute(f"CREATE TABLE public.orders ({', '.join(defs)}, PRIMARY KEY (id))")
        return int(row[0])


def setup(args: argparse.Namespace) -> Env:
    box = Sandbox(default_home())
    box.start()  # idempotent: starts what is not running, stops nothing
    time_bin, _ = find_tool("time", "time", args.skip_install)
    pgloader, pgloader_missing = find_tool("pgloader", "pgloader", args.skip_install)
    mariadb = shutil.which("mariadb") or shutil.which("mysql")
    if mariadb is None:
        raise SystemExit("no mariadb client program: apt-get install mariadb-client")
    facts = prepare_mariadb(box, args.rows)
    columns, not_null = source_columns(box)
    conid = prepare_postgres(box, columns, not_null, box.mariadb.port)
    psql = str(pg_bindir() / "psql")
    tools = {"mariadb client": tool_output([mariadb, "--version"]),
             "psql": tool_output([psql, "--version"]),
             "psycopg": psycopg.__version__, "pymysql": pymysql.__version__,
             "python": platform.python_version()}
    workdir = Path(tempfile.mkdtemp(prefix="dms_mariadb_bench_"))
    if pgloader:  # --root-dir: even --version makes pgloader's default /tmp/pgloader
        tools["pgloader"] = tool_output([pgloader, "--root-dir", str(workdir / "pgloader"),
                                         "--version"])
    if time_bin is None:
        print("GNU time missing: no peak RSS for the references", file=sys.stderr)
    return Env(box=box, rows=args.rows, psql=psql, mariadb=mariadb, conid=conid,
               columns=columns, source_sums=source_sums(box),
               workdir=workdir, time_bin=time_bin,
               pgloader=pgloader, pgloader_missing=pgloader_missing, facts=facts, tools=tools)


# ---------------------------------------------------------------- one timed run
@dataclass
class Outcome:
    seconds: float | None = None
    error: str | None = None
    private_mb: float | None = None  # dms: the largest process's RssAnon
    total_private_mb: float | None = None  # dms: all its processes at one instant
    rss_mb: float | None = None  # dms: VmHWM; references: GNU time's peak RSS
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None


def pg_error(exc: psycopg.Error) -> str:
    """The whole server message of ``exc``: message, detail, hint."""
    diag = exc.diag
    parts = [diag.message_primary or first_line(str(exc))]
    parts += [f"{label}: {text}" for label, text in (("DETAIL", diag.message_detail),
                                                     ("HINT", diag.message_hint)) if text]
    if diag.sqlstate:
        parts.append(f"SQLSTATE {diag.sqlstate}")
    return " | ".join(parts)


def sampled_call(env: Env, query: str, params: list[Any]
                 ) -> tuple[Outcome, tuple[Any, ...] | None]:
    """One CALL in DST_DB, timed on an open connection, the memory of its processes
    sampled; the outcome (no error: seconds and memory) and the CALL's row."""
    with pg_connect(env.box, DST_DB) as conn:
        # The mariadb clients that stream the rows are children of the worker backends.
        sampler = procmem.RunSampler(env.dsn(), caller_pid=conn.info.backend_pid,
                                     databases=(DST_DB,), child_comm="mariadb")
        sampler.start()
        started = time.perf_counter()
        try:
            row = conn.execute(query, params).fetchone()
            seconds = time.perf_counter() - started
        except psycopg.Error as exc:
            return Outcome(error=f"CALL failed: {pg_error(exc)}"), None
        finally:
            sampler.finish()
    outcome = Outcome(seconds=seconds, detail={"memory": sampler.summary()})
    if not sampler.error and sampler.peaks:  # no samples: "—", not 0 MB
        largest = sampler.largest()
        outcome.private_mb = procmem.mb(largest.private_kb)
        outcome.rss_mb = procmem.mb(largest.hwm_kb)
        outcome.total_private_mb = procmem.mb(sampler.total_private_kb)
    return outcome, row


def run_progress(conn: psycopg.Connection[tuple[Any, ...]], run_id: Any) -> dict[str, Any]:
    info = conn.execute(
        "SELECT run_id, state, path, strategy, workers, chunks_total, rows_done,"
        " parallel_note, message FROM dms.run_progress WHERE run_id = %s",
        [run_id]).fetchone()
    keys = ("run_id", "state", "path", "strategy", "workers", "chunks", "rows_done",
            "parallel_note", "message")
    return dict(zip(keys, info or (), strict=False))


def run_ours(env: Env, workers: int) -> Outcome:
    params = json.dumps({"max_workers": workers, "create_target": False,
                         "min_rows_for_parallel": 0})
    outcome, row = sampled_call(env, CALL_SQL, [env.conid, SOURCE_SQL, params])
    if outcome.error:
        return outcome
    detail = outcome.detail
    if row is not None and row[0] is not None:
        with pg_connect(env.box, DST_DB) as conn:
            detail.update(run_progress(conn, row[0]))
    if detail.get("state") != "SUCCEEDED":
        outcome.error = (f"run {detail.get('run_id')} state {detail.get('state')}:"
                         f" {detail.get('message')}")
        return outcome
    got = target_sums(env.box, DST_DB)
    if got != env.source_sums:
        differ = {k: (got[k], env.source_sums[k]) for k in got if got[k] != env.source_sums[k]}
        outcome.error = f"verification failed: (target, source) differ in {differ}"
    return outcome


# ---------------------------------------------------------------- the mapper job
def prepare_customer(env: Env) -> None:
    """MariaDB's ``bench_customer`` with MAPPER_ROWS rows (reused when it has them);
    its sums and facts, once."""
    with my_connect(env.box, database=SRC_DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'bench_customer'", [SRC_DB])
        have = None
        if (cur.fetchone() or (0,))[0]:
            cur.execute("SELECT COUNT(*), MIN(cust_id), MAX(cust_id) FROM bench_customer")
            have = cur.fetchone()
        if have is None or tuple(have) != (MAPPER_ROWS, 1, MAPPER_ROWS):
            print(f"generating {SRC_DB}.bench_customer with {MAPPER_ROWS:,} rows in MariaDB",
                  file=sys.stderr)
            started = time.perf_counter()
            cur.execute("DROP TABLE IF EXISTS bench_customer")
            cur.execute(MY_CUSTOMER_DDL)
            cur.execute(MY_CUSTOMER_FILL)
            cur.execute("ANALYZE TABLE bench_customer")
            cur.fetchall()
            print(f"  generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            env.mapper_sums = None
        if env.mapper_sums is None:
            cur.execute(MY_CUSTOMER_SUMS)
            env.mapper_sums = normalise(cur.fetchone(), MAPPER_SUM_NAMES)
            cur.execute("SELECT DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES"
                        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'bench_customer'", [SRC_DB])
            data, index = cur.fetchone() or (0, 0)
            env.mapper_facts = {"data_length": int(data), "index_length": int(index)}


def mapper_defined(conn: psycopg.Connection[tuple[Any, ...]], conid: int) -> bool:
    """The job exists and its source query is MAPPER_QUERY on the current bench_my row."""
    jobs = scalar(conn, "SELECT count(*) FROM dms.dms_job WHERE mapref = %s AND curflg = 'Y'",
                  [MAPREF])
    query = conn.execute("SELECT maprsql, sqlconid FROM dms.dms_maprsql"
                         " WHERE maprsqlcd = %s AND curflg = 'Y'", [MAPPER_SQL_CODE]).fetchone()
    return bool(jobs) and query is not None and tuple(query) == (MAPPER_QUERY, conid)


def define_mapper_job(conn: psycopg.Connection[tuple[Any, ...]], conid: int) -> None:
    """The source query on bench_my and the DIM mapping and job, through the packages
    as a DBA would define them (bench/run.py's define_mapper_job, the query in MariaDB)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MAPPER_SCHEMA}")
    conn.execute("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => %s, p_maprsql => %s,"
                 " p_sqlconid => %s)", [MAPPER_SQL_CODE, MAPPER_QUERY, conid])
    conn.execute("SELECT pkgdwmapr.create_update_mapping(p_mapref => %s,"
                 " p_mapdesc => 'benchmark customer dimension, MariaDB source',"
                 " p_trgschm => %s, p_trgtbtyp => 'DIM', p_trgtbnm => %s)",
                 [MAPREF, MAPPER_SCHEMA, MAPPER_TABLE])
    for seq, (column, dtype, key, scd) in enumerate(MAPPER_DETAILS, start=1):
        conn.execute("SELECT pkgdwmapr.create_update_mapping_detail(p_mapref => %s,"
                     " p_trgclnm => %s, p_trgcldtyp => %s, p_trgkeyflg => %s,"
                     " p_trgkeyseq => %s, p_maplogic => %s, p_keyclnm => 'cust_id',"
                     " p_valclnm => %s, p_excseq => %s, p_scdtyp => %s)",
                     [MAPREF, column, dtype, key, 1 if key == "Y" else None, MAPPER_SQL_CODE,
                      column.lower(), seq, scd])
    problems = conn.execute("SELECT errmsg FROM pkgdwmapr.validate_mapping_details(%s)",
                            [MAPREF]).fetchall()
    if problems:
        raise NotAvailable("the benchmark mapping does not validate: " + problems[0][0])
    conn.execute("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'A')", [MAPREF])
    conn.execute("SELECT pkgdwjob.create_update_job(%s)", [MAPREF])


def prepare_mapper(env: Env) -> None:
    """Untimed: the MariaDB source, the job defined once, the dimension empty."""
    prepare_customer(env)
    with pg_connect(env.box, DST_DB) as conn:
        try:
            if not mapper_defined(conn, env.conid):
                define_mapper_job(conn, env.conid)
            conn.execute(f"TRUNCATE {MAPPER_SCHEMA}.{MAPPER_TABLE}")
        except psycopg.Error as exc:
            raise NotAvailable(f"preparing {MAPREF} failed: {pg_error(exc)}") from None
        conn.execute("CHECKPOINT")


def run_mapper(env: Env) -> Outcome:
    """The first load of the empty dimension, run as users run it: ``CALL
    pkgdwjob.run_job``; then its job log and the current versions against the source."""
    outcome, row = sampled_call(env, MAPPER_CALL, [MAPREF, MAPPER_SETTINGS])
    if outcome.error:
        return outcome
    if row is None or row[0] is None:
        outcome.error = "run_job returned no process id"
        return outcome
    prcid = int(row[0])
    detail = outcome.detail
    detail["prcid"] = prcid
    with pg_connect(env.box, DST_DB) as conn:
        logs = conn.execute("SELECT mapcmbcd, srcrows, trgrows, errrows, status, msg"
                            " FROM dms.dms_joblog WHERE prcid = %s ORDER BY joblogid",
                            [prcid]).fetchall()
        detail["joblog"] = [dict(zip(("mapcmbcd", "srcrows", "trgrows", "errrows", "status",
                                      "msg"), log, strict=True)) for log in logs]
        first_run = scalar(conn, "SELECT min(run_id) FROM dms.run WHERE prcid = %s", [prcid])
        if first_run is not None:
            detail.update(run_progress(conn, first_run))
        conn.execute("SET TimeZone = 'UTC'")
        got = normalise(conn.execute(PG_CUSTOMER_SUMS).fetchone(), MAPPER_SUM_NAMES)
    bad = [log for log in detail["joblog"] if log["status"] != "PC" or log["errrows"] != 0]
    if not logs or bad:
        outcome.error = (f"job log of process {prcid}: "
                         + ("no row" if not logs else "; ".join(
                             f"status {b['status']}, errrows {b['errrows']}: {b['msg']}"
                             for b in bad)))
        return outcome
    expected = env.mapper_sums or {}
    if got != expected:
        differ = {k: (got[k], expected.get(k)) for k in got if got[k] != expected.get(k)}
        outcome.error = (f"verification failed: (dimension's current rows, source) differ in"
                         f" {differ}")
    return outcome


def timed_shell(env: Env, script: str, log: Path | None = None) -> Outcome:
    """A bash command (pipefail), timed from outside, with GNU time's peak RSS of its
    largest process."""
    with tempfile.NamedTemporaryFile("r", dir=env.workdir, suffix=".rss") as rss:
        prefix = [env.time_bin, "-f", "%M", "-o", rss.name] if env.time_bin else []
        started = time.perf_counter()
        done = subprocess.run([*prefix, "bash", "-o", "pipefail", "-c", script],
                              capture_output=True, text=True, check=False, cwd=env.workdir)
        seconds = time.perf_counter() - started
        # GNU time writes "Command exited with non-zero status N" before the number.
        words = rss.read().split()
    if done.returncode != 0:
        text = log.read_text(errors="replace") if log and log.exists() else done.stderr
        return Outcome(error=f"exit {done.returncode}: {last_error(text)}")
    rss_mb = round(int(words[-1]) / 1024, 1) if words and words[-1].isdigit() else None
    return Outcome(seconds=seconds, rss_mb=rss_mb)


def last_error(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if any(w in line for w in ("FATAL", "ERROR", "rror"))]
    return (errors or lines or ["(no message)"])[-1][:500]


def pipe_script(env: Env) -> str:
    select = "SET SESSION time_zone = '+00:00'; " + render_select(env.columns, SOURCE_SQL)
    mariadb = [env.mariadb, f"--defaults-file={env.box.mariadb.cnf}",
               "-S", str(env.box.mariadb.socket), "-u", MY_USER, "--batch", "--raw",
               "--skip-column-names", "--quick", "--default-character-set=utf8mb4",
               f"--database={SRC_DB}", "-e", select]
    into = [*env.psql_cmd(), "-c", "COPY orders FROM STDIN"]
    return f"{shlex.join(mariadb)} | {shlex.join(into)}"


def run_pipe(env: Env) -> Outcome:
    outcome = timed_shell(env, pipe_script(env))
    if outcome.ok:
        with pg_connect(env.box, DST_DB) as conn:
            got = int(scalar(conn, "SELECT count(*) FROM orders"))
        if got != env.rows:
            outcome.error = f"verification failed: {got:,} rows, expected {env.rows:,}"
    return outcome


def pgloader_load_file(env: Env) -> Path:
    path = env.workdir / "mariadb_parallel.load"
    path.write_text(PGLOADER_LOAD.format(user=MY_USER, my_port=env.box.mariadb.port, src=SRC_DB,
                                         sockdir=env.box.sockdir, pg_port=env.box.port,
                                         dst=PGL_DB))
    return path


def pgloader_command(env: Env) -> list[str]:
    return [env.pgloader or "pgloader", *PGLOADER_ARGS, "--root-dir",
            str(env.workdir / "pgloader"), str(pgloader_load_file(env))]


def fresh_pgl(env: Env) -> None:
    with pg_connect(env.box, "postgres") as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PGL_DB}"')
        admin.execute(f'CREATE DATABASE "{PGL_DB}"')
        admin.execute("CHECKPOINT")


def run_pgloader(env: Env) -> Outcome:
    if env.pgloader is None:
        raise NotAvailable(env.pgloader_missing or "pgloader not installed")
    fresh_pgl(env)
    log = env.workdir / "pgloader.log"
    outcome = timed_shell(env, f"{shlex.join(pgloader_command(env))} > {shlex.quote(str(log))}"
                               " 2>&1", log)
    text = log.read_text(errors="replace") if log.exists() else ""
    if "Heap exhausted" in text:
        outcome.detail["heap_exhausted"] = True
    if not outcome.ok:
        return outcome
    try:
        with pg_connect(env.box, PGL_DB) as conn:
            got = int(scalar(conn, "SELECT count(*) FROM public.orders"))
    except psycopg.Error as exc:
        outcome.error = f"verification failed: {first_line(str(exc))} ({last_error(text)})"
        return outcome
    if got != env.rows:
        outcome.error = (f"verification failed: {got:,} rows, expected {env.rows:,}"
                         f" ({last_error(text)})")
        return outcome
    try:
        outcome.detail["content_sums_match"] = target_sums(env.box, PGL_DB) == env.source_sums
    except psycopg.Error as exc:
        outcome.detail["content_sums_match"] = f"not computed: {first_line(str(exc))}"
    return outcome


def truncate_target(env: Env) -> None:
    with pg_connect(env.box, DST_DB) as conn:
        conn.execute("TRUNCATE public.orders")
        # Dirty pages of earlier runs are written now, not during the timed run.
        conn.execute("CHECKPOINT")


# ---------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    key: str
    label: str
    ours: bool
    run: Callable[[Env], Outcome]
    prep: Callable[[Env], None] | None
    command: Callable[[Env], str]
    rows: int | None = None  # rows one run moves; None: --rows

    def row_count(self, env: Env) -> int:
        return env.rows if self.rows is None else self.rows

    @property
    def mapper(self) -> bool:
        return self.key.startswith("mapper")


def ours_command(workers: int) -> Callable[[Env], str]:
    def text(env: Env) -> str:
        params = json.dumps({"max_workers": workers, "create_target": False,
                             "min_rows_for_parallel": 0})
        return (f"in {DST_DB}: CALL dms.execute_query_parallel(<{CONNM}>, '{SOURCE_SQL}', NULL,"
                f" 'public', 'orders', '{params}')")
    return text


def mapper_command(env: Env) -> str:
    return (f"in {DST_DB}: CALL pkgdwjob.run_job(p_mapref => '{MAPREF}', p_params =>"
            f" '{MAPPER_SETTINGS}') into an empty {MAPPER_SCHEMA}.{MAPPER_TABLE}; every"
            f" detail's MAPLOGIC is {MAPPER_SQL_CODE}: '{MAPPER_QUERY}' on <{CONNM}>")


def methods(workers: int, mapper: bool = True) -> list[Method]:
    counts = [workers, 1] if workers != 1 else [1]
    found = [Method(f"ours-{n}", f"dms, {n} worker{'s' if n > 1 else ''}", True,
                    partial(run_ours, workers=n), truncate_target, ours_command(n))
             for n in counts]
    if mapper:
        found.append(Method(
            "mapper-583k", "mapper DIM SCD2 job, 583K MariaDB rows, first load", True,
            run_mapper, prepare_mapper, mapper_command, rows=MAPPER_ROWS))
    found.append(Method(
        "pipe", "ref: mariadb | psql COPY pipe (single stream)", False, run_pipe,
        truncate_target,
        lambda env: "mariadb --batch --raw --skip-column-names --quick -e \"<dms's rendered"
                    " SELECT of orders>\" | psql -c \"COPY orders FROM STDIN\""))
    found.append(Method(
        "pgloader", "ref: pgloader, workers 4, concurrency 2, multiple readers, 4 GiB heap",
        False, run_pgloader, None,
        lambda env: shlex.join(["pgloader", *PGLOADER_ARGS, "--root-dir", "WORK",
                                "mariadb_parallel.load"])
        + f" (into a fresh {PGL_DB}; load file below)"))
    return found


@dataclass
class Result:
    method: Method
    outcomes: list[Outcome] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def times(self) -> list[float]:
        return [o.seconds for o in self.ok if o.seconds is not None]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def peak(self, attr: str) -> float | None:
        values = [getattr(o, attr) for o in self.ok if getattr(o, attr) is not None]
        return max(values) if values else None

    @property
    def memory(self) -> float | None:
        """The memory compared: private MB for dms runs, RSS for the references."""
        return self.peak("private_mb" if self.method.ours else "rss_mb")


def run_all(env: Env, chosen: list[Method], runs: int) -> list[Result]:
    results = [Result(m) for m in chosen]
    for repetition in range(1, runs + 1):
        print(f"repetition {repetition}/{runs}", file=sys.stderr)
        for result in results:  # round-robin: slow phases of the machine hit all methods
            if result.unavailable is not None:
                continue
            method = result.method
            try:
                if method.prep is not None:
                    method.prep(env)
                outcome = method.run(env)
            except NotAvailable as exc:
                result.unavailable = str(exc)
                print(f"  {method.key}: not available: {exc}", file=sys.stderr)
                continue
            result.outcomes.append(outcome)
            shown = f"{outcome.seconds:.2f} s" if outcome.ok else f"FAILED: {outcome.error}"
            print(f"  {method.key}: {shown}", file=sys.stderr)
    return results


# ---------------------------------------------------------------- report
def cell(text: str) -> str:
    return text.replace("|", "\\|")


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def run_note(r: Result) -> str:
    if not r.ok:
        return ""
    d = r.ok[-1].detail
    logs = d.get("joblog") or []
    job = "; ".join(f"job log {log['status']}: {log['srcrows']:,} source rows,"
                    f" {log['trgrows']:,} target rows, {log['errrows']} errors"
                    for log in logs)
    if job and "path" in d:
        return (f"{job}; first run: path {d['path']}, strategy {d.get('strategy')},"
                f" {d.get('chunks')} chunks, {d.get('workers')} workers")
    if job:
        return job
    if "path" in d:
        workers = d.get("workers")
        note = (f"path {d['path']}, strategy {d.get('strategy')}, {d.get('chunks')} chunks,"
                f" {workers} worker{'' if workers == 1 else 's'}")
        total = r.peak("total_private_mb")
        return note + (f"; all its processes together {total:.0f} MB private" if total else "")
    if "content_sums_match" in d:
        return f"content sums equal the source: {d['content_sums_match']}"
    return ""


def result_row(env: Env, r: Result) -> str:
    label = cell(r.method.label)
    if r.unavailable:
        return f"| {label} | — | not available: {cell(r.unavailable)} | | | | |"
    runs = f"{len(r.ok)}/{len(r.outcomes)}"
    if r.median is None:
        return f"| {label} | {runs} | every run failed (below) | | | | |"
    seconds = f"{r.median:.2f} [{min(r.times):.2f}-{max(r.times):.2f}]"
    private = fmt(r.peak("private_mb")) if r.method.ours else "—"
    rows = r.method.row_count(env)
    return (f"| {label} | {runs} | {seconds} | {rows / r.median:,.0f} | {private} |"
            f" {fmt(r.peak('rss_mb'))} | {cell(run_note(r))} |")


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def verdict(value: float | None, goal: float | None) -> str:
    if value is None:
        return "not measured"
    shown = f"{value:.2f}x"
    return shown if goal is None else f"{shown} {'met' if value <= goal else 'MISSED'}"


def goals(results: list[Result]) -> list[dict[str, Any]]:
    pgl = next((r for r in results if r.method.key == "pgloader"), None)
    pipe = next((r for r in results if r.method.key == "pipe"), None)
    out = []
    # The mapper job merges a dimension from its own table: no ratio to table moves.
    for r in (r for r in results if r.method.ours and not r.method.mapper):
        time_ratio = ratio(r.median, pgl.median if pgl else None)
        memory_ratio = ratio(r.memory, pgl.memory if pgl else None)
        total_ratio = ratio(r.peak("total_private_mb"), pgl.memory if pgl else None)
        pipe_ratio = ratio(r.median, pipe.median if pipe else None)
        out.append({
            "method": r.method.key,
            "time_vs_pgloader": time_ratio,
            "time_goal_met": None if time_ratio is None else time_ratio <= TIME_GOAL,
            "memory_vs_pgloader": memory_ratio,
            "memory_goal_met": None if memory_ratio is None else memory_ratio <= MEMORY_GOAL,
            "all_processes_memory_vs_pgloader": total_ratio,
            "time_vs_pipe": pipe_ratio,
        })
    return out


def seed_goal(results: list[Result]) -> dict[str, Any] | None:
    """The seed's own number: its mapper job took 5 minutes for 583K MySQL rows."""
    r = next((r for r in results if r.method.key == "mapper-583k"), None)
    if r is None:
        return None
    return {"method": r.method.key, "rows": MAPPER_ROWS, "seconds": r.median,
            "seed_seconds": SEED_SECONDS,
            "times_faster": ratio(SEED_SECONDS, r.median) if r.median else None}


def seed_line(goal: dict[str, Any] | None) -> str | None:
    if goal is None:
        return None
    seconds = "not measured" if goal["seconds"] is None else f"{goal['seconds']:.2f} s"
    faster = ("not measured" if goal["times_faster"] is None
              else f"{goal['times_faster']:.0f}\N{MULTIPLICATION SIGN} faster")
    return (f"seed: 583K MySQL rows through a mapper job: {seconds} (the seed took 5 minutes"
            f" = {SEED_SECONDS:.0f} s): {faster}")


def goals_table(results: list[Result], lines: list[dict[str, Any]]) -> list[str]:
    labels = {r.method.key: r.method.label for r in results}
    out = [f"| ours | time / pgloader (goal <= {TIME_GOAL}) | peak memory / pgloader"
           f" (goal <= {MEMORY_GOAL}) | all processes' memory / pgloader | time / pipe"
           " (reported) |", "|---|---|---|---|---|"]
    for g in lines:
        out.append(f"| {cell(labels[g['method']])} | {verdict(g['time_vs_pgloader'], TIME_GOAL)}"
                   f" | {verdict(g['memory_vs_pgloader'], MEMORY_GOAL)} |"
                   f" {verdict(g['all_processes_memory_vs_pgloader'], None)} |"
                   f" {verdict(g['time_vs_pipe'], None)} |")
    return out


def memory_table(results: list[Result]) -> list[str]:
    lines = ["| method | process | peak private MB | peak RSS (VmHWM) MB | processes |",
             "|---|---|---|---|---|"]
    for r in results:
        roles: dict[str, dict[str, float]] = {}
        for o in r.ok:
            for role, p in o.detail.get("memory", {}).get("by_role", {}).items():
                seen = roles.setdefault(role, {"private_mb": 0, "rss_mb": 0, "processes": 0})
                for key in seen:
                    seen[key] = max(seen[key], float(p[key]))
        for role, p in sorted(roles.items()):
            lines.append(f"| {cell(r.method.label)} | {role} | {p['private_mb']:.0f} |"
                         f" {p['rss_mb']:.0f} | {p['processes']:.0f} |")
    return lines if len(lines) > 2 else []


NOTES = [
    "Each run: TRUNCATE the target + CHECKPOINT first (pgloader: DROP and CREATE its"
    " database + CHECKPOINT), untimed. dms rows: wall time of the CALL on an open"
    " connection; afterwards dms.run_progress must say SUCCEEDED and count and column sums of"
    " the target must equal the source's. References: wall time of the whole command"
    " (process start and connections included), checked by row count; pgloader's time"
    " includes creating the table and building its primary key.",
    f"mapper row: {MAPPER_ROWS:,} rows of MariaDB's {SRC_DB}.bench_customer, read by the"
    f" named query {MAPPER_SQL_CODE} on {CONNM}, merged by the DIM job {MAPREF} (2 SCD2 and 2"
    f" SCD1 columns) into the empty {MAPPER_SCHEMA}.{MAPPER_TABLE}; before each run, untimed:"
    " TRUNCATE the dimension + CHECKPOINT. Time: the CALL pkgdwjob.run_job; afterwards the"
    " job log rows of its process must say PC with 0 error rows and the dimension's current"
    " rows (curflg = 'Y') must equal the source by count and per-column counts and sums"
    " computed by SQL on both sides. Its rows/s is of the customer rows.",
    "Peak private MB (dms rows): the largest private memory (RssAnon) of any one process of"
    " the run -- the CALL's backend (it coordinates; with 1 worker it is the worker), the"
    " worker backends, their sessions and their mariadb client children -- sampled every"
    " 20 ms from /proc. Peak RSS MB: for dms rows VmHWM of the same processes (it also counts"
    " shared buffers a backend touched); for the references GNU time's peak RSS of the"
    " largest client process (pgloader's SBCL image; mariadb or psql for the pipe). Server"
    " memory (PostgreSQL shared buffers, the MariaDB server) is counted for no method.",
]


def header(env: Env, settings: dict[str, str], machine: dict[str, Any],
           args: argparse.Namespace) -> list[str]:
    mib = 1 << 20
    f = env.facts
    mapping = ", ".join(f"{c.name} {c.mysql_type} -> {c.pg_type}" for c in env.columns)
    return [
        f"# dms_pkg benchmark: MariaDB -> PostgreSQL, {env.rows:,} orders",
        "",
        f"Generated {machine['date']} by"
        f" `{shlex.join(['bench/mariadb_bench.py', *sys.argv[1:]])}` (rows {env.rows:,},"
        f" runs {args.runs}, workers {args.workers}) on the sandbox (PostgreSQL port"
        f" {env.box.port}, MariaDB port {env.box.mariadb.port}).",
        "",
        "## Machine and servers",
        f"- {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']:.1f} GiB memory,"
        f" kernel {machine['kernel']}; load average {machine['load_start']:.2f} at the start,"
        f" {machine['load_end']:.2f} at the end (other work on the machine makes numbers noisy)",
        f"- PostgreSQL {settings['server_version']}: "
        + ", ".join(f"{k}={settings[k]}" for k in SETTINGS),
        f"- MariaDB {f['server_version']}: innodb_buffer_pool_size"
        f" {f['innodb_buffer_pool_size'] // mib} MiB",
        "- tools: " + "; ".join(f"{k}: {v}" for k, v in env.tools.items()),
        "",
        "## Data",
        f"- MariaDB `{SRC_DB}.orders` (InnoDB): {env.rows:,} rows, data_length"
        f" {f['data_length'] / mib:.0f} MiB, index_length {f['index_length'] / mib:.0f} MiB;"
        " generated in MariaDB from seq_1_to_N, the anchor rig's columns and value rules",
        f"- columns as dms maps them: {mapping}",
        "- source sums: " + ", ".join(f"{k} {v}" for k, v in env.source_sums.items()),
        *mapper_data(env),
        "",
    ]


def mapper_data(env: Env) -> list[str]:
    if env.mapper_sums is None:  # the mapper method was left out, or never prepared
        return []
    mib = 1 << 20
    f = env.mapper_facts
    return [
        f"- mapper source: MariaDB `{SRC_DB}.bench_customer` (InnoDB): {MAPPER_ROWS:,} rows,"
        f" data_length {f.get('data_length', 0) / mib:.0f} MiB; generated in MariaDB from"
        f" seq_1_to_{MAPPER_ROWS}, bench/run.py's MAPPER_SOURCE columns and value rules",
        "- mapper source sums: " + ", ".join(f"{k} {v}" for k, v in env.mapper_sums.items()),
    ]


def render(env: Env, results: list[Result], settings: dict[str, str],
           machine: dict[str, Any], args: argparse.Namespace,
           goal_lines: list[dict[str, Any]]) -> str:
    lines = header(env, settings, machine, args)
    lines += ["## Results", "", "Median of the runs [min-max].", "",
              "| method | runs ok | median s [min-max] | rows/s | peak private MB |"
              " peak RSS MB | notes |", "|---|---|---|---|---|---|---|"]
    lines += [result_row(env, r) for r in results]
    lines += ["", *[f"- {n}" for n in NOTES], ""]
    lines += ["## Goals of the issue (ours / reference; below 1 = ours faster or smaller)", "",
              *goals_table(results, goal_lines), "",
              *([f"- {line}", ""] if (line := seed_line(seed_goal(results))) else []),
              "Memory compared: the largest single process of a dms run (private) against"
              " pgloader's peak RSS; the column after it sums the private memory of all the"
              " dms run's processes at one instant.", ""]
    memory = memory_table(results)
    if memory:
        lines += ["## Memory of the dms runs by process (largest over the runs)", "", *memory,
                  ""]
    failures = [(r.method.label, o.error) for r in results for o in r.outcomes if not o.ok]
    if failures:
        lines += ["## Failed runs", "", *[f"- {label}: {error}" for label, error in failures],
                  ""]
    lines += ["## Commands", "", *[f"- `{r.method.key}`: {r.method.command(env)}"
                                   for r in results]]
    lines += ["", "pgloader load file:", "", "```", pgloader_load_file(env).read_text().strip(),
              "```", ""]
    return "\n".join(lines)


def server_settings(env: Env) -> dict[str, str]:
    with pg_connect(env.box, DST_DB) as conn:
        return {name: str(scalar(conn, f"SHOW {name}"))
                for name in ("server_version", *SETTINGS)}


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
        "load_start": os.getloadavg()[0],
    }


def raw_data(env: Env, results: list[Result], settings: dict[str, str],
             machine: dict[str, Any], args: argparse.Namespace,
             goal_lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "args": vars(args), "machine": machine, "settings": settings, "tools": env.tools,
        "data": {"rows": env.rows, "source_sums": env.source_sums, **env.facts,
                 "columns": [{"name": c.name, "mysql": c.mysql_type, "pg": c.pg_type}
                             for c in env.columns]},
        "methods": [{
            "key": r.method.key, "label": r.method.label, "ours": r.method.ours,
            "command": r.method.command(env), "unavailable": r.unavailable,
            "rows": r.method.row_count(env), "median_s": r.median,
            "rows_per_s": r.method.row_count(env) / r.median if r.median else None,
            "memory_mb": r.memory,
            "runs": [{"seconds": o.seconds, "error": o.error, "private_mb": o.private_mb,
                      "total_private_mb": o.total_private_mb, "rss_mb": o.rss_mb, **o.detail}
                     for o in r.outcomes],
        } for r in results],
        "goals": goal_lines,
        "seed_goal": seed_goal(results),
        "mapper_source": None if env.mapper_sums is None else {
            "rows": MAPPER_ROWS, "sums": env.mapper_sums, **env.mapper_facts},
        "pipe_script": pipe_script(env),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2,
                        help="max_workers of the ours-N row (ours-1 runs too)")
    parser.add_argument("--skip-install", action="store_true",
                        help="do not apt-get install pgloader or GNU time")
    parser.add_argument("--no-mapper", action="store_true",
                        help="leave out the mapper-583k method (the DIM mapper job)")
    args = parser.parse_args()
    if args.rows < 1 or args.runs < 1 or args.workers < 1:
        parser.error("--rows, --runs and --workers must be at least 1")
    env = setup(args)
    machine = machine_facts()  # after the data is made: the load the runs start in
    try:
        settings = server_settings(env)
        results = run_all(env, methods(args.workers, mapper=not args.no_mapper), args.runs)
        machine["load_end"] = os.getloadavg()[0]
        goal_lines = goals(results)
        report = render(env, results, settings, machine, args, goal_lines)
        raw = raw_data(env, results, settings, machine, args, goal_lines)
    finally:
        with pg_connect(env.box, "postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PGL_DB}"')
        shutil.rmtree(env.workdir, ignore_errors=True)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mariadb-latest.md").write_text(report)
    path = RESULTS / f"mariadb-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(raw, indent=2, default=str))
    print(f"written to {RESULTS / 'mariadb-latest.md'} and {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
