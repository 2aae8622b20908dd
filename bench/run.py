"""The project's benchmark: dms table moves against the usual ways of moving a table.

    .venv/bin/python bench/run.py [--rows 2000000] [--runs 3] [--only NAME,NAME] [--skip-install]
                                  [--databases SRC,DST] [--fresh]

Not a test and not run by CI: it takes several minutes for 2M rows and
wants the machine to itself (other work on the same cores moves every
number).  It works on the project's own PostgreSQL cluster (``dms
sandbox``, started if needed, never stopped):

* ``dms_bench_src``: the source, ``orders`` with ``--rows`` rows
  (``dms_pkg.sample_data``; an existing table of that size is reused),
  ``orders_copy`` as the same-database target, and dms installed;
* ``dms_bench``: the cross-database target ``orders``, dms installed and the
  source registered as connection ``bench_src``.

``--databases SRC,DST`` uses two other databases (other work shares the
cluster); ``--fresh`` drops and recreates them first, which is needed when
dms in them was installed from another version of a migration.

Every method runs ``--runs`` times, round-robin (one run of each method,
then the next repetition), so slow drift of the machine spreads over all of
them; the median is reported.  Before each timed run, untimed: TRUNCATE the
target and CHECKPOINT its database.  After each dms run the target must
equal the source by content checksum, or the run counts as failed, with the
reason; reference runs are checked by row count.

Methods (``--only`` takes these names, or a prefix such as ``cross-db``):

====================  ===========================================================
cross-db-1/2/4        ``CALL dms.execute_query_parallel`` in dms_bench, source
                      bench_src, ``max_workers`` 1, 2, 4
same-db-1/2           the same CALL inside dms_bench_src into orders_copy
mapper-scd2-first     ``CALL pkgdwjob.run_job`` of a DIM mapping (SCD2 and SCD1 columns)
mapper-scd2-reload    over 583,000 rows in dms_bench_src: first load into an empty
                      dimension / reload after 10 % of the keys changed
pipe-text/-binary     ``psql -c "COPY orders TO STDOUT" | psql -c "COPY orders FROM STDIN"``
pipes-2-binary        two binary pipes at once, the table split by ctid
pgcopydb              ``pgcopydb copy table-data``, 2 table jobs, table in 2 parts
insert-select         ``INSERT INTO orders_copy SELECT * FROM orders`` in dms_bench_src
row-by-row            psycopg, one INSERT per row, commit every 1,000 rows, 50,000
                      rows, extrapolated to ``--rows`` (bench/row_by_row.py)
====================  ===========================================================

``pgcopydb`` and GNU ``time`` are installed with apt-get when missing, unless
``--skip-install``.  Peak memory of dms runs is sampled every 20 ms from
/proc (see bench/procmem.py): private memory (RssAnon) is the number that
matters; VmHWM also counts the shared buffers a backend touched.  For the
reference commands GNU time gives the peak RSS of the largest client
process.  MB/s is the text-COPY size of the source table / median seconds,
the anchor rig's normalised rate.

Output: a markdown report on stdout and in ``bench/results/latest.md``, raw
data in ``bench/results/<timestamp>.json``.  Run it as root (apt-get, and
/proc of the server's processes) or as the postgres OS user with
``--skip-install``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import procmem
import psycopg

from dms_pkg.errors import DmsError
from dms_pkg.install.installer import install
from dms_pkg.sample_data import checksum, create_empty_orders, create_orders
from dms_pkg.sandbox import Sandbox, pg_bindir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_DATABASES = "dms_bench_src,dms_bench"
ROW_SAMPLE = 50_000
SETTINGS = ("shared_buffers", "max_wal_size", "synchronous_commit", "wal_compression",
            "max_connections", "checkpoint_timeout")
CALL_SQL = ("CALL dms.execute_query_parallel(%s::bigint, 'SELECT * FROM orders', NULL,"
            " 'public', %s::text, %s::jsonb)")


@dataclass(frozen=True)
class Databases:
    """The source database and the cross-database target (``--databases``)."""

    src: str
    dst: str

    def __iter__(self) -> Iterator[str]:
        return iter((self.src, self.dst))


class NotAvailable(Exception):
    """A method that cannot run on this machine or at this stage of the project."""


# ------------------------------------------------------------------ environment
@dataclass
class Env:
    """What every method needs: the cluster, the data's facts and the tools."""

    box: Sandbox
    dbs: Databases
    rows: int
    psql: str
    conid: int
    source_sum: tuple[int, int]
    sizes: dict[str, int]
    workdir: Path
    time_bin: str | None
    pgcopydb: str | None
    pgcopydb_missing: str | None
    tools: dict[str, str] = field(default_factory=dict)

    def db(self, side: str) -> str:
        """``"src"`` or ``"dst"`` to a database name."""
        return self.dbs.src if side == "src" else self.dbs.dst

    def dsn(self, side: str) -> str:
        return self.box.dsn(self.db(side))

    def psql_cmd(self, side: str) -> str:
        """The server's psql, no psqlrc, quiet, stopping at the first error (shell words)."""
        return shlex.join([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(side)])


def connect(box: Sandbox, db: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(box.dsn(db), autocommit=True)


def scalar(conn: psycopg.Connection[tuple[Any, ...]], query: str,
           params: list[Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def ensure_databases(box: Sandbox, dbs: Databases, fresh: bool) -> None:
    with connect(box, "postgres") as admin:
        for db in dbs:
            if fresh:
                # No FORCE: a database someone is connected to is refused, not cut off.
                admin.execute(f'DROP DATABASE IF EXISTS "{db}"')
            if not scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", [db]):
                admin.execute(f'CREATE DATABASE "{db}"')


def prepare_data(box: Sandbox, dbs: Databases, rows: int) -> tuple[int, int]:
    """Source table, both empty targets, dms in both databases; the source checksum."""
    # Same-database runs call dms inside the source database.
    for db in dbs:
        try:
            install(box.dsn(db))
        except DmsError as exc:
            raise SystemExit(
                f"dms install into {db} failed: {exc}\n"
                "If dms in it came from another version of a migration, recreate the"
                " benchmark databases: add --fresh (or use others with --databases)."
            ) from None
    with connect(box, dbs.src) as src:
        if create_orders(src, rows):
            print(f"generated {dbs.src}.orders with {rows:,} rows", file=sys.stderr)
        create_empty_orders(src, table="orders_copy")
        source_sum = checksum(src, "public", "orders")
    with connect(box, dbs.dst) as dst:
        create_empty_orders(dst)
    return source_sum


def register_source(box: Sandbox, dbs: Databases) -> int:
    with connect(box, dbs.dst) as dst:
        row = dst.execute("SELECT conid FROM dms.dms_dbcondtls"
                          " WHERE connm = 'bench_src' AND curflg = 'Y'").fetchone()
        if row is None:
            row = dst.execute(
                "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr)"
                " VALUES ('bench_src', 'POSTGRESQL', %s) RETURNING conid",
                [box.dsn(dbs.src)]).fetchone()
        assert row is not None
        return int(row[0])


def table_sizes(box: Sandbox, src_db: str, psql: str) -> dict[str, int]:
    with connect(box, src_db) as src:
        row = src.execute(
            "SELECT pg_relation_size('orders'), pg_indexes_size('orders'),"
            " pg_total_relation_size('orders'), current_setting('block_size')::int").fetchone()
    assert row is not None
    heap, indexes, total, block = (int(v) for v in row)
    return {"heap": heap, "indexes": indexes, "total": total, "block_size": block,
            # the 2-pipe split point: the middle page of the heap
            "half_page": heap // block // 2,
            "copy_text": copy_text_bytes(box, src_db, psql)}


def copy_text_bytes(box: Sandbox, src_db: str, psql: str) -> int:
    """Size of ``COPY orders TO STDOUT`` (text): the MB/s basis, as in the anchor rig."""
    proc = subprocess.Popen([psql, "-X", "-q", "-d", box.dsn(src_db), "-c",
                             "COPY orders TO STDOUT"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    total = 0
    while block := proc.stdout.read(1 << 20):
        total += len(block)
    if proc.wait() != 0:
        raise SystemExit("COPY orders TO STDOUT failed")
    return total


def apt_install(package: str) -> str | None:
    """Install a Debian package; None when it worked, else why not.

    A machine whose package lists were never fetched needs ``apt-get update``
    first, so a failed install is retried once after one.
    """
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
    """Path of ``binary`` (installing ``package`` if allowed), or the reason it is missing."""
    path = shutil.which(binary)
    if path is None and not skip_install:
        failure = apt_install(package)
        if failure:
            return None, failure
        path = shutil.which(binary)
    return (path, None) if path else (None, f"{binary} not installed: apt-get install {package}")


def tool_version(args: list[str], word: str) -> str:
    """The last word of the first output line of ``args`` holding ``word``: the version."""
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return next((line.split()[-1] for line in lines if word in line), "?")


def setup(args: argparse.Namespace) -> Env:
    box = Sandbox.default()
    box.start()
    psql = str(pg_bindir() / "psql")
    # GNU time (Debian package "time"), not the shell keyword: it reports peak RSS.
    time_bin, _ = find_tool("time", "time", args.skip_install)
    pgcopydb, pgcopydb_missing = find_tool("pgcopydb", "pgcopydb", args.skip_install)
    dbs: Databases = args.databases
    ensure_databases(box, dbs, args.fresh)
    source_sum = prepare_data(box, dbs, args.rows)
    tools = {"psql": psql, "psycopg": psycopg.__version__, "python": platform.python_version()}
    if pgcopydb:
        tools["pgcopydb"] = tool_version([pgcopydb, "--version"], "version")
    return Env(box=box, dbs=dbs, rows=args.rows, psql=psql, conid=register_source(box, dbs),
               source_sum=source_sum, sizes=table_sizes(box, dbs.src, psql),
               workdir=Path(tempfile.mkdtemp(prefix="dms_bench_")), time_bin=time_bin,
               pgcopydb=pgcopydb, pgcopydb_missing=pgcopydb_missing, tools=tools)


# ---------------------------------------------------------------- one timed run
@dataclass
class Outcome:
    seconds: float | None = None
    error: str | None = None
    private_mb: float | None = None
    rss_mb: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else "(no message)"


def run_info(conn: psycopg.Connection[tuple[Any, ...]], run_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT path, strategy, workers, chunks_total, state, parallel_note"
                       " FROM dms.run_progress WHERE run_id = %s", [run_id]).fetchone()
    keys = ("path", "strategy", "workers", "chunks", "state", "parallel_note")
    return {"run_id": run_id, **dict(zip(keys, row or (), strict=False))}


def timed_call(env: Env, side: str, query: str, params: list[Any]
               ) -> tuple[Outcome, tuple[Any, ...] | None]:
    """One CALL, timed, with its processes' memory sampled; the outcome and its row."""
    with connect(env.box, env.db(side)) as conn:
        sampler = procmem.RunSampler(env.dsn(side), caller_pid=conn.info.backend_pid,
                                     databases=tuple(env.dbs), by_database=True)
        sampler.start()
        started = time.perf_counter()
        try:
            row = conn.execute(query, params).fetchone()
            seconds = time.perf_counter() - started
        except psycopg.Error as exc:
            return Outcome(error=f"CALL failed: {first_line(str(exc))}"), None
        finally:
            sampler.finish()
    detail = {"memory": sampler.summary()}
    if sampler.error or not sampler.peaks:  # no samples: say "—", not 0 MB
        return Outcome(seconds=seconds, detail=detail), row
    largest = sampler.largest()
    return Outcome(seconds=seconds, private_mb=procmem.mb(largest.private_kb),
                   rss_mb=procmem.mb(largest.hwm_kb), detail=detail), row


def call_parallel(env: Env, side: str, conid: int | None, table: str, workers: int
                  ) -> Outcome:
    """One ``CALL dms.execute_query_parallel``, timed, with its processes' memory sampled."""
    params = json.dumps({"max_workers": workers})
    outcome, row = timed_call(env, side, CALL_SQL, [conid, table, params])
    if row is not None:
        with connect(env.box, env.db(side)) as conn:
            outcome.detail.update(run_info(conn, int(row[0])))
    return outcome


def timed_shell(env: Env, script: str, log: Path | None = None) -> Outcome:
    """Run a bash command (pipefail: any failing stage fails it), timed from outside,
    with GNU time's peak RSS of its largest process."""
    with tempfile.NamedTemporaryFile("r", dir=env.workdir, suffix=".rss") as rss:
        prefix = [env.time_bin, "-f", "%M", "-o", rss.name] if env.time_bin else []
        started = time.perf_counter()
        done = subprocess.run([*prefix, "bash", "-o", "pipefail", "-c", script],
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        # GNU time writes "Command exited with non-zero status N" before the number.
        lines = rss.read().split()
    if done.returncode != 0:
        text = log.read_text(errors="replace") if log and log.exists() else done.stderr
        tail = [line for line in text.strip().splitlines() if line.strip()][-1:]
        return Outcome(error=f"exit {done.returncode}: {tail[0].strip() if tail else ''}")
    rss_mb = round(int(lines[-1]) / 1024, 1) if lines and lines[-1].isdigit() else None
    return Outcome(seconds=seconds, rss_mb=rss_mb)


# ---------------------------------------------------------------- the methods
def cross_db(env: Env, workers: int) -> Outcome:
    return call_parallel(env, "dst", env.conid, "orders", workers)


def same_db(env: Env, workers: int) -> Outcome:
    return call_parallel(env, "src", None, "orders_copy", workers)


MAPPER_ROWS = 583_000
MAPPER_SETTINGS = json.dumps({"max_workers": 2})
# The customer dimension's source: a business key, two SCD2 columns (name,
# city) and two SCD1 columns (segment, credit limit), values derived from the
# key so a reset restores them exactly.
MAPPER_SOURCE = f"""
DROP TABLE IF EXISTS bench_customer;
CREATE TABLE bench_customer (cust_id integer PRIMARY KEY, name text, city text,
                             segment text, credit_limit numeric(12,2));
INSERT INTO bench_customer SELECT g, 'customer ' || g, 'city ' || (g % 997),
       'segment ' || (g % 7), (g % 5000) * 10.5 FROM generate_series(1, {MAPPER_ROWS}) g;
"""
MAPPER_RESET = """
UPDATE bench_customer SET name = 'customer ' || cust_id, segment = 'segment ' || (cust_id % 7)
 WHERE name <> 'customer ' || cust_id OR segment <> 'segment ' || (cust_id % 7)
"""
# 10 % of the keys change: half in an SCD2 column, half in an SCD1 column.
MAPPER_CHANGE = """
UPDATE bench_customer SET name = name || ' (renamed)' WHERE cust_id % 20 = 0;
UPDATE bench_customer SET segment = 'moved' WHERE cust_id % 20 = 10;
"""
MAPPER_DETAILS = [("CUST_ID", "INTEGER", "Y", 2), ("NAME", "STRING", "N", 2),
                  ("CITY", "STRING", "N", 2), ("SEGMENT", "STRING", "N", 1),
                  ("CREDIT_LIMIT", "MONEY", "N", 1)]


def define_mapper_job(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """The DIM_BENCH_CUSTOMER job, defined through the packages as a DBA would."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS bench_dw")
    conn.execute("SELECT pkgdwmapr.create_update_mapping(p_mapref => 'DIM_BENCH_CUSTOMER',"
                 " p_mapdesc => 'benchmark customer dimension', p_trgschm => 'bench_dw',"
                 " p_trgtbtyp => 'DIM', p_trgtbnm => 'dim_customer')")
    query = "SELECT cust_id, name, city, segment, credit_limit FROM public.bench_customer"
    for seq, (column, dtype, key, scd) in enumerate(MAPPER_DETAILS, start=1):
        conn.execute("SELECT pkgdwmapr.create_update_mapping_detail(p_mapref =>"
                     " 'DIM_BENCH_CUSTOMER', p_trgclnm => %s, p_trgcldtyp => %s,"
                     " p_trgkeyflg => %s, p_trgkeyseq => %s, p_maplogic => %s,"
                     " p_keyclnm => 'cust_id', p_valclnm => %s, p_excseq => %s, p_scdtyp => %s)",
                     [column, dtype, key, 1 if key == "Y" else None, query, column.lower(), seq,
                      scd])
    problems = conn.execute(
        "SELECT errmsg FROM pkgdwmapr.validate_mapping_details('DIM_BENCH_CUSTOMER')").fetchall()
    if problems:
        raise NotAvailable("the benchmark mapping does not validate: " + problems[0][0])
    conn.execute("SELECT pkgdwmapr.activate_deactivate_mapping('DIM_BENCH_CUSTOMER', 'A')")
    conn.execute("SELECT pkgdwjob.create_update_job('DIM_BENCH_CUSTOMER')")


def prepare_mapper(env: Env) -> None:
    """Untimed: the source at its base content, the job defined, the target empty."""
    with connect(env.box, env.db("src")) as conn:
        if scalar(conn, "SELECT to_regclass('public.bench_customer') IS NULL") or scalar(
                conn, "SELECT count(*) FROM bench_customer") != MAPPER_ROWS:
            conn.execute(MAPPER_SOURCE)
        else:
            conn.execute(MAPPER_RESET)
        if not scalar(conn, "SELECT count(*) FROM dms.dms_job WHERE mapref ="
                            " 'DIM_BENCH_CUSTOMER' AND curflg = 'Y'"):
            define_mapper_job(conn)
        conn.execute("TRUNCATE bench_dw.dim_customer")
        conn.execute("VACUUM ANALYZE bench_customer")
        conn.execute("CHECKPOINT")


def verify_mapper(env: Env, expired: int) -> str | None:
    """Current versions equal the source; exactly ``expired`` closed versions."""
    with connect(env.box, env.db("src")) as conn:
        differ = scalar(conn, """
            SELECT count(*) FROM (
              (SELECT cust_id, name, city, segment, credit_limit FROM bench_customer
               EXCEPT ALL SELECT cust_id, name, city, segment, credit_limit
               FROM bench_dw.dim_customer WHERE curflg = 'Y')
              UNION ALL
              (SELECT cust_id, name, city, segment, credit_limit
               FROM bench_dw.dim_customer WHERE curflg = 'Y'
               EXCEPT ALL SELECT cust_id, name, city, segment, credit_limit FROM bench_customer)
            ) AS d""")
        closed = scalar(conn, "SELECT count(*) FROM bench_dw.dim_customer WHERE curflg = 'N'")
    if differ:
        return f"{differ:,} rows differ between the current versions and the source"
    if closed != expired:
        return f"{closed:,} expired versions, expected {expired:,}"
    return None


def run_mapper_scd2(env: Env, changed: float) -> Outcome:
    """The SCD2 mapper job: the first load of an empty dimension (``changed`` 0), or
    the reload after 10 % of the source rows changed (the first load is then done
    untimed before).  The job runs as users run it: ``CALL pkgdwjob.run_job``."""
    prepare_mapper(env)
    call = "CALL pkgdwjob.run_job(p_mapref => 'DIM_BENCH_CUSTOMER', p_params => %s::jsonb)"
    expired = 0
    if changed:
        with connect(env.box, env.db("src")) as conn:
            conn.execute(call, [MAPPER_SETTINGS])
            conn.execute(MAPPER_CHANGE)
            expired = scalar(conn, "SELECT count(*) FROM bench_customer WHERE cust_id % 20 = 0")
            conn.execute("VACUUM ANALYZE bench_customer")
            conn.execute("CHECKPOINT")
    outcome, row = timed_call(env, "src", call, [MAPPER_SETTINGS])
    if not outcome.ok or row is None:
        return outcome
    with connect(env.box, env.db("src")) as conn:
        log = conn.execute("SELECT srcrows, trgrows, errrows, status FROM dms.dms_joblog"
                           " WHERE prcid = %s", [row[0]]).fetchone()
        first_run = scalar(conn, "SELECT min(run_id) FROM dms.run WHERE prcid = %s", [row[0]])
        outcome.detail.update(run_info(conn, int(first_run)))
    outcome.detail["joblog"] = dict(zip(("srcrows", "trgrows", "errrows", "status"),
                                        log or (), strict=False))
    reason = verify_mapper(env, expired)
    if reason:
        return Outcome(error=f"verification failed: {reason}", detail=outcome.detail)
    return outcome


def pipe(env: Env, fmt: str) -> Outcome:
    return timed_shell(env, pipe_script(env, fmt, "orders"))


def pipe_script(env: Env, fmt: str, source: str) -> str:
    out = shlex.quote(f"COPY {source} TO STDOUT (FORMAT {fmt})")
    into = shlex.quote(f"COPY orders FROM STDIN (FORMAT {fmt})")
    return f"{env.psql_cmd('src')} -c {out} | {env.psql_cmd('dst')} -c {into}"


def two_pipes(env: Env) -> Outcome:
    half = env.sizes["half_page"]
    first = pipe_script(env, "binary", f"(SELECT * FROM orders WHERE ctid < '({half},0)')")
    second = pipe_script(env, "binary", f"(SELECT * FROM orders WHERE ctid >= '({half},0)')")
    # Both in the background; fail if either pipeline fails.
    return timed_shell(env, f"{first} & a=$!; {second} & b=$!; wait $a && wait $b")


def pgcopydb(env: Env) -> Outcome:
    if env.pgcopydb is None:
        raise NotAvailable(env.pgcopydb_missing or "pgcopydb not installed")
    work, log = env.workdir / "pgcopydb", env.workdir / "pgcopydb.log"
    shutil.rmtree(work, ignore_errors=True)  # untimed: a leftover --dir needs --restart
    filters = env.workdir / "pgcopydb_filter.ini"
    # It copies every table of the source database: keep it to orders (dms is installed there).
    filters.write_text("[include-only-table]\npublic.orders\n")
    # One part per table job, as the anchor rig did: parts = ceil(heap / threshold).
    # Half the heap rounded up in 10^6-byte MB gives 2 parts whether pgcopydb reads
    # "MB" as 10^6 or 2^20 bytes (for any heap above a few MB).
    threshold_mb = max(1, -(-env.sizes["heap"] // 2 // 1_000_000))
    command = [env.pgcopydb, "copy", "table-data", "--source", env.box.url(env.dbs.src),
               "--target", env.box.url(env.dbs.dst), "--filters", str(filters), "--dir", str(work),
               "--table-jobs", "2", "--split-tables-larger-than", f"{threshold_mb}MB"]
    outcome = timed_shell(env, f"{shlex.join(command)} > {shlex.quote(str(log))} 2>&1", log)
    outcome.detail["split_threshold_mb"] = threshold_mb
    parts = re.search(r"(\d+) COPY processes will be used", log.read_text(errors="replace")
                      if log.exists() else "")
    outcome.detail["parts"] = int(parts.group(1)) if parts else 1
    return outcome


def insert_select(env: Env) -> Outcome:
    statement = shlex.quote("INSERT INTO orders_copy SELECT * FROM orders")
    return timed_shell(env, f"{env.psql_cmd('src')} -c {statement}")


def row_sample(env: Env) -> int:
    return min(ROW_SAMPLE, env.rows)


def row_by_row(env: Env) -> Outcome:
    command = [sys.executable, str(HERE / "row_by_row.py"), env.dsn("src"), env.dsn("dst"),
               str(row_sample(env))]
    return timed_shell(env, shlex.join(command))


# ---------------------------------------------------------------- verification
def verify_checksum(env: Env, side: str, table: str) -> str | None:
    db = env.db(side)
    with connect(env.box, db) as conn:
        got = checksum(conn, "public", table)
    if got == env.source_sum:
        return None
    return f"{db}.{table} (count, hash) = {got}, source = {env.source_sum}"


def verify_count(env: Env, side: str, table: str, expected: Callable[[Env], int]
                 ) -> str | None:
    db = env.db(side)
    with connect(env.box, db) as conn:
        got = scalar(conn, f"SELECT count(*) FROM {table}")
    want = expected(env)
    return None if got == want else f"{db}.{table} has {got:,} rows, expected {want:,}"


def full_table(env: Env) -> int:
    return env.rows


@dataclass(frozen=True)
class Method:
    key: str  # the --only name
    label: str
    ours: bool
    run: Callable[[Env], Outcome]
    # ("src"/"dst", table) truncated before each run; None: the method prepares itself
    target: tuple[str, str] | None
    # None: the run function checks its own result
    verify: Callable[[Env], str | None] | None
    command: str  # for the report; {src} and {dst} stand for the databases
    rows: Callable[[Env], int] = full_table  # rows one run moves
    ratio_label: str | None = None  # references: the column in the ratios table


def our_methods() -> list[Method]:
    call = ("CALL dms.execute_query_parallel({conid}, 'SELECT * FROM orders', NULL, 'public',"
            " '{table}', '{{\"max_workers\": {n}}}')")
    methods = [
        Method(f"cross-db-{n}", f"dms cross-db, {n} worker{'s' if n > 1 else ''}", True,
               partial(cross_db, workers=n), ("dst", "orders"),
               partial(verify_checksum, side="dst", table="orders"),
               "in {dst}: " + call.format(conid="<bench_src>", table="orders", n=n))
        for n in (1, 2, 4)
    ]
    methods += [
        Method(f"same-db-{n}", f"dms same-db, {n} worker{'s' if n > 1 else ''}", True,
               partial(same_db, workers=n), ("src", "orders_copy"),
               partial(verify_checksum, side="src", table="orders_copy"),
               "in {src}: " + call.format(conid="NULL", table="orders_copy", n=n))
        for n in (1, 2)
    ]
    methods += [
        Method("mapper-scd2-first", "dms mapper job, DIM SCD2, first load", True,
               partial(run_mapper_scd2, changed=0.0), None, None,
               "in {src}: CALL pkgdwjob.run_job('DIM_BENCH_CUSTOMER', "
               "'{\"max_workers\": 2}') into an empty dimension",
               rows=lambda env: MAPPER_ROWS),
        Method("mapper-scd2-reload", "dms mapper job, DIM SCD2, 10% changed reload", True,
               partial(run_mapper_scd2, changed=0.1), None, None,
               "the same after 5 % of the keys changed an SCD2 column and 5 % an SCD1 column",
               rows=lambda env: MAPPER_ROWS),
    ]
    return methods


def reference_methods() -> list[Method]:
    dst_count = partial(verify_count, side="dst", table="orders", expected=full_table)
    return [
        Method("pipe-text", "ref: psql|psql COPY pipe, text", False, partial(pipe, fmt="text"),
               ("dst", "orders"), dst_count,
               'psql {src} -c "COPY orders TO STDOUT (FORMAT text)" | psql {dst} -c "COPY'
               ' orders FROM STDIN (FORMAT text)"', ratio_label="pipe text"),
        Method("pipe-binary", "ref: psql|psql COPY pipe, binary", False,
               partial(pipe, fmt="binary"), ("dst", "orders"), dst_count,
               "the same with (FORMAT binary)", ratio_label="pipe binary"),
        Method("pipes-2-binary", "ref: 2 parallel binary COPY pipes split by ctid", False,
               two_pipes, ("dst", "orders"), dst_count,
               "two binary pipes at once: WHERE ctid < '(half,0)' / >= '(half,0)',"
               " half = heap pages / 2", ratio_label="2 pipes"),
        Method("pgcopydb", "ref: pgcopydb copy table-data, 2 table jobs", False, pgcopydb,
               ("dst", "orders"), dst_count,
               "pgcopydb copy table-data --source {src} --target {dst} --filters (public.orders)"
               " --dir WORK --table-jobs 2 --split-tables-larger-than <heap/2>MB",
               ratio_label="pgcopydb"),
        Method("insert-select", "ref: INSERT ... SELECT (single statement, same db)", False,
               insert_select, ("src", "orders_copy"),
               partial(verify_count, side="src", table="orders_copy", expected=full_table),
               'psql {src} -c "INSERT INTO orders_copy SELECT * FROM orders"',
               ratio_label="INSERT...SELECT"),
        Method("row-by-row", "ref: row-by-row Python loader", False, row_by_row,
               ("dst", "orders"),
               partial(verify_count, side="dst", table="orders", expected=row_sample),
               "bench/row_by_row.py: one INSERT per row, commit every 1,000 rows",
               rows=row_sample, ratio_label="row-by-row"),
    ]


def select_methods(only: str | None) -> list[Method]:
    methods = our_methods() + reference_methods()
    if not only:
        return methods
    names = [n.strip() for n in only.split(",") if n.strip()]
    chosen = [m for m in methods
              if any(m.key == n or m.key.startswith(n + "-") for n in names)]
    unknown = [n for n in names
               if not any(m.key == n or m.key.startswith(n + "-") for m in methods)]
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}; known: "
                         + ", ".join(m.key for m in methods))
    return chosen


# ---------------------------------------------------------------- running
@dataclass
class Result:
    method: Method
    outcomes: list[Outcome] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def times(self) -> list[float]:
        return [o.seconds for o in self.outcomes if o.ok and o.seconds is not None]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def full_seconds(self, env: Env) -> float | None:
        """The median scaled to all ``env.rows`` (only the row-by-row sample differs)."""
        median = self.median
        return None if median is None else median * env.rows / self.method.rows(env)


def untimed_prep(env: Env, target: tuple[str, str]) -> None:
    side, table = target
    with connect(env.box, env.db(side)) as conn:
        conn.execute(f"TRUNCATE {table}")
        # Dirty pages of earlier runs are written now, not during the timed run.
        conn.execute("CHECKPOINT")


def run_once(env: Env, result: Result) -> None:
    method = result.method
    if method.target is not None:
        untimed_prep(env, method.target)
    try:
        outcome = method.run(env)
    except NotAvailable as exc:
        result.unavailable = str(exc)
        print(f"  {method.key}: not available: {exc}", file=sys.stderr)
        return
    if outcome.ok and method.verify is not None:
        reason = method.verify(env)
        if reason:
            outcome = Outcome(error=f"verification failed: {reason}", detail=outcome.detail)
    result.outcomes.append(outcome)
    shown = f"{outcome.seconds:.2f} s" if outcome.ok else f"FAILED: {outcome.error}"
    print(f"  {method.key}: {shown}", file=sys.stderr)


def run_all(env: Env, methods: list[Method], runs: int) -> list[Result]:
    results = [Result(m) for m in methods]
    for repetition in range(1, runs + 1):
        print(f"repetition {repetition}/{runs}", file=sys.stderr)
        # Round-robin: one run of every method per repetition, so a slow phase of
        # the machine is shared by all methods instead of hitting one.
        for result in results:
            if result.unavailable is None:
                run_once(env, result)
    return results


# ---------------------------------------------------------------- report
def cell(text: str) -> str:
    """Text for a markdown table cell: a bare | would end the cell."""
    return text.replace("|", "\\|")


def fmt_s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f}"


def fmt_mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def peak(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def result_row(env: Env, r: Result) -> str:
    m = r.method
    if r.unavailable:
        return f"| {cell(m.label)} | — | not available: {r.unavailable} | | | | | |"
    ok = [o for o in r.outcomes if o.ok]
    runs = f"{len(ok)}/{len(r.outcomes)}"
    if r.median is None:
        return f"| {cell(m.label)} | {runs} | every run failed (below) | | | | | |"
    rows = m.rows(env)
    seconds = f"{r.median:.2f} ({min(r.times):.2f}-{max(r.times):.2f})"
    mapper = m.key.startswith("mapper")
    if rows != env.rows and not mapper:
        seconds += f" on {rows:,} rows = {r.full_seconds(env):.0f} s for {env.rows:,}, extrapolated"
    # MB/s is of the orders table; the mapper job reads its own customer table.
    mb_s = "—" if mapper else f"{env.sizes['copy_text'] * rows / env.rows / r.median / 1e6:.1f}"
    private = fmt_mb(peak([o.private_mb for o in ok])) if m.ours else "—"
    return (f"| {cell(m.label)} | {runs} | {seconds} | {rows / r.median:,.0f} | {mb_s} | "
            f"{private} | {fmt_mb(peak([o.rss_mb for o in ok]))} | {run_note(r)} |")


def run_note(r: Result) -> str:
    ok = [o for o in r.outcomes if o.ok]
    if not ok:
        return ""
    d = ok[-1].detail
    if "path" in d:
        workers = d.get("workers")
        return (f"path {d['path']}, {d.get('chunks')} chunks, {workers} "
                f"worker{'' if workers == 1 else 's'}")
    if "split_threshold_mb" in d:
        return f"table in {d.get('parts')} parts (split threshold {d['split_threshold_mb']} MB)"
    return ""


def ratio(ours: Result, ref: Result, env: Env) -> float | None:
    a, b = ours.full_seconds(env), ref.full_seconds(env)
    return None if a is None or b is None else a / b


def ratios_table(env: Env, results: list[Result]) -> list[str]:
    refs = [r for r in results if r.method.ratio_label]
    # A mapper job merges into a dimension; its ratio to table copies means
    # nothing (it has its own target line against the row-by-row loader).
    ours = [r for r in results if r.method.ours and not r.method.key.startswith("mapper")]
    if not refs or not ours:
        return []
    lines = ["| ours \\ reference | " + " | ".join(str(r.method.ratio_label) for r in refs)
             + " |", "|---" * (len(refs) + 1) + "|"]
    for o in ours:
        cells = []
        for ref in refs:
            value = ratio(o, ref, env)
            cells.append("—" if value is None else f"{value:.2f}x")
        lines.append(f"| {cell(o.method.label)} | " + " | ".join(cells) + " |")
    return lines


def best(results: list[Result], prefix: str, env: Env) -> Result | None:
    done = [r for r in results if r.method.key.startswith(prefix) and r.median is not None]
    return min(done, key=lambda r: r.full_seconds(env) or 0.0, default=None)


def by_key(results: list[Result], key: str) -> Result | None:
    return next((r for r in results if r.method.key == key), None)


def target_line(text: str, ours: Result | None, ref: Result | None, limit: float,
                env: Env) -> dict[str, Any]:
    """One target of the issue: ours / reference time against ``limit``."""
    if ours is None:
        return {"target": text, "verdict": "not measured (no dms run of this kind ran ok)"}
    value = None if ref is None else ratio(ours, ref, env)
    if ref is None or value is None:
        return {"target": text, "verdict": "not measured (the reference did not run ok)"}
    return {"target": text, "ratio": round(value, 3),
            "verdict": "met" if value <= limit else "MISSED",
            "detail": f"{ours.method.label}: {fmt_s(ours.median)} s vs "
                      f"{ref.method.label}: {fmt_s(ref.full_seconds(env))} s = {value:.2f}x"}


def role_peak(results: list[Result], role: str) -> float | None:
    """The largest private MB of ``role`` over every successful dms run."""
    values = []
    for r in results:
        for o in r.outcomes:
            found = o.detail.get("memory", {}).get("by_role", {}).get(role)
            if o.ok and found:
                values.append(float(found["private_mb"]))
    return max(values, default=None)


def targets(env: Env, results: list[Result]) -> list[dict[str, Any]]:
    cross, same = best(results, "cross-db", env), best(results, "same-db", env)
    lines = [
        target_line("cross-database: <= 0.75x pgcopydb's time (best cross-db row)", cross,
                    by_key(results, "pgcopydb"), 0.75, env),
        target_line("cross-database: <= 1.0x the 2-pipe binary COPY ceiling (best cross-db row)",
                    cross, by_key(results, "pipes-2-binary"), 1.0, env),
        target_line("same-database: <= 0.8x single INSERT ... SELECT (best same-db row)", same,
                    by_key(results, "insert-select"), 0.8, env),
        *mapper_targets(env, results),
    ]
    return [*lines, memory_target(results)]


def mapper_targets(env: Env, results: list[Result]) -> list[dict[str, Any]]:
    """583K-row SCD2 job against issue 12's goals: first load <= 2.0 s and >= 30x the
    row-by-row loader, reload after 10 % changed <= 1.5 s and >= 40x (per row, same run)."""
    lines = []
    slow = by_key(results, "row-by-row")
    for key, limit, factor in (("mapper-scd2-first", 2.0, 30), ("mapper-scd2-reload", 1.5, 40)):
        text = (f"{key}: 583K-row SCD2 mapper job <= {limit} s and >= {factor}x the"
                " row-by-row loader")
        ours = by_key(results, key)
        if ours is None or ours.median is None:
            lines.append({"target": text, "verdict": "not measured (no run of it ran ok)"})
            continue
        line: dict[str, Any] = {"target": text, "seconds": round(ours.median, 3)}
        speedup = None
        if slow is not None and slow.median is not None:
            per_row = slow.median / slow.method.rows(env)
            speedup = per_row * MAPPER_ROWS / ours.median
            line["speedup"] = round(speedup, 1)
        met = ours.median <= limit and (speedup is None or speedup >= factor)
        line["verdict"] = ("met" if met else "MISSED") + (
            "" if speedup is not None else " (time only: row-by-row did not run ok)")
        line["detail"] = (f"{ours.median:.2f} s" + (
            f", {speedup:.0f}x the row-by-row loader's time for {MAPPER_ROWS:,} rows"
            if speedup is not None else ""))
        lines.append(line)
    return lines


def memory_target(results: list[Result]) -> dict[str, Any]:
    line: dict[str, Any] = {"target": "worker peak private memory <= 150 MB (flat across"
                                      " sizes: bench/memory_probe.py)"}
    worker = role_peak(results, "worker")
    caller = role_peak(results, "caller (coordinator)")
    if worker is None and caller is None:
        line["verdict"] = "not measured (no dms run ran ok)"
        return line
    # With one worker the CALL's own backend does the work, so it counts too.
    largest = max(v for v in (worker, caller) if v is not None)
    line.update(verdict="met" if largest <= 150 else "MISSED",
                detail=f"worker backends {fmt_mb(worker)} MB, the CALL's backend"
                       f" (coordinator; the worker itself when 1 worker) {fmt_mb(caller)} MB")
    return line


def cpu_table(results: list[Result], env: Env) -> list[str]:
    """CPU seconds of each process role in the median dms run, against what two cores
    give in that run's wall time: where a run's time goes, and whether it is waiting."""
    lines = ["| method | wall s | CPU s, all processes | of 2 cores x wall | by process: CPU s |",
             "|---|---|---|---|---|"]
    for r in results:
        runs = sorted((o for o in r.outcomes if o.ok and o.seconds is not None
                       and o.detail.get("memory", {}).get("by_role")),
                      key=lambda o: float(o.seconds or 0))
        if not runs:
            continue
        median = runs[len(runs) // 2]
        roles = median.detail["memory"]["by_role"]
        spent = {role: float(p.get("cpu_s", 0)) for role, p in roles.items()}
        total = sum(spent.values())
        wall = float(median.seconds or 0)
        split = ", ".join(f"{role} {cpu:.2f}" for role, cpu in
                          sorted(spent.items(), key=lambda kv: -kv[1]) if cpu >= 0.01)
        lines.append(f"| {cell(r.method.label)} | {wall:.2f} | {total:.2f} | "
                     f"{total / (2 * wall):.0%} | {cell(split)} |")
    return lines if len(lines) > 2 else []


def memory_table(results: list[Result]) -> list[str]:
    lines = ["| method | process | peak private MB | peak RSS (VmHWM) MB | processes |",
             "|---|---|---|---|---|"]
    for r in results:
        roles: dict[str, dict[str, float]] = {}
        for o in r.outcomes:
            for role, p in o.detail.get("memory", {}).get("by_role", {}).items():
                seen = roles.setdefault(role, {"private_mb": 0, "rss_mb": 0, "processes": 0})
                for key in seen:
                    seen[key] = max(seen[key], float(p[key]))
        for role, p in sorted(roles.items()):
            lines.append(f"| {cell(r.method.label)} | {role} | {p['private_mb']:.0f} | "
                         f"{p['rss_mb']:.0f} | {p['processes']:.0f} |")
    return lines if len(lines) > 2 else []


def header(env: Env, settings: dict[str, str], machine: dict[str, Any],
           args: argparse.Namespace) -> list[str]:
    s = env.sizes
    mib = 1 << 20
    return [
        f"# dms_pkg benchmark: moving {env.rows:,} orders",
        "",
        f"Generated {machine['date']} by `{shlex.join(['bench/run.py', *sys.argv[1:]])}`"
        f" (rows {env.rows:,}, runs {args.runs}) on the sandbox cluster.",
        "",
        "## Machine and server",
        f"- {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']:.1f} GiB memory,"
        f" kernel {machine['kernel']}; load average {machine['load_start']:.2f} at the start,"
        f" {machine['load_end']:.2f} at the end (other work on the machine makes numbers noisy)",
        f"- PostgreSQL {settings['server_version']}: "
        + ", ".join(f"{k}={settings[k]}" for k in SETTINGS),
        "- tools: " + ", ".join(f"{k} {v}" for k, v in env.tools.items()),
        "",
        "## Data",
        f"- `{env.dbs.src}.public.orders`: {env.rows:,} rows (`dms_pkg.sample_data`); heap"
        f" {s['heap'] / mib:.0f} MiB, indexes {s['indexes'] / mib:.0f} MiB, total"
        f" {s['total'] / mib:.0f} MiB",
        f"- text COPY size: {s['copy_text']:,} bytes. **MB/s = text-COPY bytes / median"
        " seconds** (the anchor rig's normalised rate, the same bytes for every method).",
        "",
    ]


NOTES = [
    "Each run: TRUNCATE target + CHECKPOINT first (untimed). dms rows: wall time of the CALL"
    " on an open connection, target checked equal to the source by content checksum after"
    " every run. References: wall time of the whole command (process start, connections"
    " included), checked by row count.",
    "Peak private MB (dms rows): the largest private memory (RssAnon) of any one process of"
    " the run -- the CALL's backend (it coordinates), the worker backends, their sessions and"
    " psql children -- sampled every 20 ms from /proc; the per-process table is below."
    " Peak RSS MB: dms rows VmHWM of the same processes, which also counts the shared buffers"
    " a backend touched, so it grows with the data read whatever the process allocates;"
    " references: GNU time's peak RSS of the largest client process (psql, pgcopydb, Python),"
    " server backends not counted. The sampler (a pg_stat_activity query and a /proc scan"
    " every 20 ms) runs only during dms runs and costs them a little CPU.",
]


def command_text(env: Env, method: Method) -> str:
    # str.replace, not format: the commands hold JSON braces.
    return method.command.replace("{src}", env.dbs.src).replace("{dst}", env.dbs.dst)


def render(env: Env, results: list[Result], settings: dict[str, str],
           machine: dict[str, Any], args: argparse.Namespace,
           goals: list[dict[str, Any]]) -> str:
    lines = header(env, settings, machine, args)
    lines += ["## Results", "", "Median of the runs (min-max).", "",
              "| method | runs ok | median s (min-max) | rows/s | MB/s | peak private MB |"
              " peak RSS MB | notes |", "|---|---|---|---|---|---|---|---|"]
    lines += [result_row(env, r) for r in results]
    lines += ["", *[f"- {n}" for n in NOTES], ""]
    ratios = ratios_table(env, results)
    if ratios:
        lines += ["## Ratios (ours / reference, time; below 1 = ours faster)", "", *ratios, "",
                  "The row-by-row reference is its 50,000-row time extrapolated to all rows.",
                  ""]
    lines += ["## Targets of the issue", "", "| target | verdict | measured |", "|---|---|---|"]
    lines += [f"| {g['target']} | {g['verdict']} | {cell(g.get('detail', ''))} |"
              for g in goals]
    cpu = cpu_table(results, env)
    if cpu:
        lines += ["", "## Where the CPU of the dms runs goes (the median run of each method)", "",
                  "CPU time (user + system, /proc) of every process of the run, sampled with "
                  "the memory; the source's and the target's data sessions are told apart by "
                  "database.  A run whose processes use close to 100 % of 2 cores x its wall "
                  "time is bound by CPU, and the split says whose.", "", *cpu]
    memory = memory_table(results)
    if memory:
        lines += ["", "## Memory of the dms runs by process (largest over the runs)", "",
                  *memory]
    failures = [(r.method.label, o.error) for r in results for o in r.outcomes if not o.ok]
    if failures:
        lines += ["", "## Failed runs", "", *[f"- {label}: {error}" for label, error in failures]]
    lines += ["", "## Commands", "", *[f"- `{r.method.key}`: {command_text(env, r.method)}"
                                       for r in results], ""]
    return "\n".join(lines)


def server_settings(env: Env) -> dict[str, str]:
    with connect(env.box, env.dbs.dst) as conn:
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
             goals: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "args": vars(args), "machine": machine, "settings": settings, "tools": env.tools,
        "data": {"rows": env.rows, "source_checksum": list(env.source_sum), **env.sizes},
        "methods": [{
            "key": r.method.key, "label": r.method.label, "ours": r.method.ours,
            "command": command_text(env, r.method), "rows": r.method.rows(env),
            "unavailable": r.unavailable, "median_s": r.median,
            "full_table_s": r.full_seconds(env),
            "runs": [{"seconds": o.seconds, "error": o.error, "private_mb": o.private_mb,
                      "rss_mb": o.rss_mb, **o.detail} for o in r.outcomes],
        } for r in results],
        "targets": goals,
    }


def parse_databases(text: str) -> Databases:
    names = [n.strip() for n in text.split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise argparse.ArgumentTypeError("two different database names: SRC,DST")
    return Databases(*names)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help="comma-separated method names or prefixes")
    parser.add_argument("--skip-install", action="store_true",
                        help="do not apt-get install pgcopydb or GNU time")
    parser.add_argument("--databases", type=parse_databases, default=DEFAULT_DATABASES,
                        metavar="SRC,DST", help="source and target databases (default %(default)s)")
    parser.add_argument("--fresh", action="store_true",
                        help="drop and recreate those databases first")
    args = parser.parse_args()
    if args.rows < 1 or args.runs < 1:
        parser.error("--rows and --runs must be at least 1")
    methods = select_methods(args.only)
    env = setup(args)
    machine = machine_facts()
    try:
        settings = server_settings(env)
        results = run_all(env, methods, args.runs)
    finally:
        shutil.rmtree(env.workdir, ignore_errors=True)
    machine["load_end"] = os.getloadavg()[0]
    goals = targets(env, results)
    report = render(env, results, settings, machine, args, goals)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(report)
    raw = RESULTS / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(json.dumps(raw_data(env, results, settings, machine, args, goals),
                              indent=2, default=str))
    print(f"written to {RESULTS / 'latest.md'} and {raw}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
