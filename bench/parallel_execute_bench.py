"""DBMS_PARALLEL_EXECUTE benchmark: ``run_task`` of a chunked UPDATE against the single UPDATE.

    .venv/bin/python bench/parallel_execute_bench.py [--rows 2000000] [--runs 3]
                                                     [--chunk-size N] [--rowid-chunk-pages N]
                                                     [--parallel-level 2] [--count-rows]
                                                     [--no-memory] [--only KEY,KEY]

The issue's acceptance test: ``run_task`` of ``UPDATE orders SET amount =
amount + 0 WHERE id BETWEEN :start_id AND :end_id`` over 2M rows with
``parallel_level`` 2 against the same single ``UPDATE``, in one run: the
time ratio (goal <= 1.0x) and the longest lock held (each chunk commits, so
it must be a small fraction of the single statement's).

Not a test and not run by CI: for 2M rows it takes a few minutes and wants
the machine to itself (other work on the same cores moves every number).  It
works on the project's own sandbox (``dms sandbox``, started if needed, never
stopped) and touches only database ``dms_bench_pe`` (created if missing, dms
installed into it):

* ``public.orders_base``: the pristine data, ``--rows`` rows with the anchor
  rig's columns and value rules (/work/shared/anchors-bench/gen_pg.sql: id
  bigint primary key, customer_id, amount numeric(12,2), status, note with
  ~10 % NULLs, created_at, ship_date with ~20 % NULLs, is_paid, payload
  jsonb; every value a pure function of id through hashint8, generated with
  generate_series) plus ``n integer NOT NULL DEFAULT 0`` for ``--count-rows``.
  Generated once and reused while it holds ids 1..``--rows`` and has ``n``;
  never updated.
* ``public.orders``: what the methods update.  Before every timed run,
  untimed, it is **re-created from orders_base**: DROP, CREATE (autovacuum
  off for this table), ``INSERT ... SELECT * FROM orders_base`` (sequential
  scan, synchronized scans off, so the heap is in id order every time),
  primary key, ``VACUUM (FREEZE, ANALYZE)``, ``CHECKPOINT``.
* tasks ``bench_pe_<method>`` of the connecting login (postgres), dropped
  before and after each run.

Why re-create rather than VACUUM: an UPDATE of every row writes a second
version of every row, so the table doubles and the next method would update
a different, bloated table.  VACUUM makes the old versions' space free but
leaves the table twice as large and the new versions wherever the previous
method wrote them (after 2 parallel workers, interleaved chunk by chunk);
VACUUM FULL compacts it but keeps that order, which changes how well id
order matches the heap and so the cost of the id-range chunks.  A copy of
orders_base gives every method the same pages in the same order, hint bits
set and the visibility map all-frozen, statistics fresh, and no dirty
buffers (CHECKPOINT) -- so the first UPDATE after it pays the same
full-page writes in every method.  Autovacuum is off for ``orders`` so that
it cannot wake up between the chunks of one method (freeing space, making
later chunks' updates HOT) and not in another.

Methods, run ``--runs`` times round-robin (one run of each, then the next
repetition), each on a fresh connection (autocommit; a ``run_task`` session
pays PL/Python's start, as a user's psql session does), median reported:

==================  ============================================================
single-update       ``UPDATE orders SET amount = amount + 0``: one statement,
                    one transaction -- the reference.  Its rows stay locked
                    until it commits, so its longest lock is its duration.
run_task-2          ``CALL dbms_parallel_execute.create_task``, then
                    ``create_chunks_by_number_col(table_column => 'id',
                    chunk_size => --chunk-size)``, then ``run_task(sql_stmt =>
                    'UPDATE orders SET amount = amount + 0 WHERE id BETWEEN
                    :start_id AND :end_id', language_flag => 1, parallel_level
                    => 2)`` (``--parallel-level``): two worker sessions
run_task-1          the same with ``parallel_level => 0``: the chunks run one
                    after the other in the calling session
run_task-rowid-2    ``create_chunks_by_rowid(by_row => false, chunk_size =>
                    --rowid-chunk-pages)`` and ``run_task`` of ``UPDATE orders
                    SET amount = amount + 0 WHERE rowid BETWEEN :start_id AND
                    :end_id`` with ``parallel_level`` 2
==================  ============================================================

Chunk sizes: ``--chunk-size`` id values (default ``--rows`` / 25, rounded up:
25 chunks) and ``--rowid-chunk-pages`` pages (default: the heap's pages / 25,
rounded up: 25 chunks).  A run_task method's time is from ``create_task`` to
the end of ``run_task`` (chunking included; chunking alone is reported too).
Its longest lock is the longest chunk: ``max(end_ts - start_ts)`` of
``user_parallel_execute_chunks`` (a chunk's row locks are taken inside that
interval and released by the commit right after ``end_ts``, so it is a hair
short of the true hold, by one commit).  From the chunk timestamps and the
server clock read just before and after ``run_task`` the report also splits
``run_task``'s time: start (the call to the first chunk's claim: statement
check, workers' connections and PL/Python start), the span of the chunks,
and the end (the last chunk to the call's return: polling, finishing), and
the mean gap between two chunks of one worker (commit, claim); with worker
sessions the start is split again at the first worker backend's start
(``worker_start`` of ``dms.pe_chunk``, read, never written): connecting,
then the worker's boot (PL/Python, dms_pkg's imports) up to its first claim.

``--count-rows`` makes every method's statement ``SET amount = amount + 0,
n = n + 1`` (the same for all methods, so they stay comparable); without it
the issue's statement runs as given.

After every run, untimed, it must hold, or the run counts as failed with the
reason: the task's status is FINISHED (``dbms_parallel_execute.task_status``
= 7) and every chunk PROCESSED; ``orders`` has ``--rows`` rows, the ids of
orders_base, every row's amount equal to orders_base's and ``sum(amount)``
equal; no live row still carries the transaction id that filled the table
(every row was rewritten at least once); and the table's ``n_tup_upd``
(pg_stat_user_tables, flushed with ``pg_stat_force_next_flush``) is exactly
``--rows`` (rows updated in all, so with the line before: each row exactly
once).  With ``--count-rows`` also ``min(n) = max(n) = 1`` (1, not the run
count: the table is re-created before each run).

Peak memory (optional in the issue, cheap here): the calling backend and the
task's worker backends (``application_name`` ``dms pe <job prefix>_<n>``)
are sampled every 20 ms from /proc (bench/procmem.py): private memory
(RssAnon) of the largest process, and VmHWM (which also counts the shared
buffers a backend touched).  Needs root or the postgres OS user.  The
sampler's thread and its query every 20 ms cost ~6 % of one core (measured
here), which on 2 cores is taken from the methods that use both;
``--no-memory`` leaves it out.

Output: a markdown report on stdout and in
``bench/results/parallel-execute-latest.md``, raw data in
``bench/results/parallel-execute-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import procmem
import psycopg

from dms_pkg.errors import DmsError
from dms_pkg.install.installer import install
from dms_pkg.sandbox import Sandbox, default_home

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DB = "dms_bench_pe"
BASE = "orders_base"
TABLE = "orders"
CHUNKS_WANTED = 25  # default chunk sizes aim at this many chunks
TIME_GOAL = 1.0  # run_task-N / single-update
FINISHED = 7  # dbms_parallel_execute.finished()
PROCESSED = 2  # dbms_parallel_execute.processed()
STATS_WAIT = 10.0  # seconds to wait for n_tup_upd to be flushed
SETTINGS = ("shared_buffers", "max_wal_size", "synchronous_commit", "wal_compression",
            "work_mem", "max_connections", "checkpoint_timeout")

SET_PLAIN = "amount = amount + 0"
SET_COUNTED = "amount = amount + 0, n = n + 1"

# gen_pg.sql's columns, plus the exactly-once counter.
COLUMNS = """
    id          bigint        NOT NULL,
    customer_id int           NOT NULL,
    amount      numeric(12,2) NOT NULL,
    status      text          NOT NULL,
    note        text,
    created_at  timestamptz   NOT NULL,
    ship_date   date,
    is_paid     boolean       NOT NULL,
    payload     jsonb,
    n           integer       NOT NULL DEFAULT 0
"""
# gen_pg.sql's value rules (every value a pure function of id), in slices.
FILL = f"""
INSERT INTO {BASE} (id, customer_id, amount, status, note, created_at, ship_date, is_paid,
                    payload)
SELECT id,
       1 + (h1 %% 100000)::int,
       ((h2 %% 10000000) / 100.0)::numeric(12,2),
       (ARRAY['new','paid','shipped','delivered','cancelled'])[1 + (h3 %% 5)::int],
       CASE WHEN h4 %% 10 = 0 THEN NULL
            ELSE left('note ' || md5(id::text) || ' ' || md5((id+1)::text) || ' ' ||
                      md5((id+2)::text) || ' ' || md5((id+3)::text), 20 + (h4 %% 101)::int)
       END,
       timestamptz '2020-01-01 00:00:00+00' + make_interval(secs => (h5 %% (4*365*86400))),
       CASE WHEN h6 %% 5 = 0 THEN NULL
            ELSE (date '2020-01-01' + (h5 %% (4*365*86400) / 86400)::int + (h6 %% 30)::int)
       END,
       (h7 %% 2 = 0),
       jsonb_build_object('sku', 'SKU-' || (h1 %% 5000), 'qty', 1 + h2 %% 10,
                          'gift', h3 %% 7 = 0,
                          'tags', jsonb_build_array('t' || (h4 %% 13), 't' || (h6 %% 17)))
  FROM (SELECT g AS id,
               abs(hashint8(g * 7 + 1)::bigint) AS h1, abs(hashint8(g * 7 + 2)::bigint) AS h2,
               abs(hashint8(g * 7 + 3)::bigint) AS h3, abs(hashint8(g * 7 + 4)::bigint) AS h4,
               abs(hashint8(g * 7 + 5)::bigint) AS h5, abs(hashint8(g * 7 + 6)::bigint) AS h6,
               abs(hashint8(g * 7 + 7)::bigint) AS h7
          FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g) AS s
"""
FILL_SLICE = 1_000_000

# After a run: everything the verification needs, in one pass over both tables.
CHECK_SQL = f"""
SELECT count(*), count(b.id), count(*) FILTER (WHERE o.amount IS DISTINCT FROM b.amount),
       sum(o.amount), min(o.n), max(o.n), count(*) FILTER (WHERE o.xmin = %s::text::xid)
  FROM {TABLE} o LEFT JOIN {BASE} b USING (id)
"""

Conn = psycopg.Connection[tuple[Any, ...]]


class NotAvailable(Exception):
    """A method that cannot run on this machine."""


# ------------------------------------------------------------------ helpers
def connect(box: Sandbox, db: str = DB) -> Conn:
    return psycopg.connect(box.dsn(db), autocommit=True)


def scalar(conn: Conn, query: str, params: list[Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else "(no message)"


def pg_error(exc: psycopg.Error) -> str:
    """The whole server message of ``exc``: message, detail, hint, SQLSTATE."""
    diag = exc.diag
    parts = [diag.message_primary or first_line(str(exc))]
    parts += [f"{label}: {text}" for label, text in (("DETAIL", diag.message_detail),
                                                     ("HINT", diag.message_hint)) if text]
    if diag.sqlstate:
        parts.append(f"SQLSTATE {diag.sqlstate}")
    return " | ".join(parts)


def exact(value: Any) -> str:
    """A number as the text of its exact value (int and Decimal alike)."""
    return "NULL" if value is None else format(Decimal(str(value)).normalize(), "f")


# ------------------------------------------------------------------ environment
@dataclass
class Env:
    """The sandbox, the benchmark's settings and the facts of the data."""

    box: Sandbox
    rows: int
    level: int
    count_rows: bool
    chunk_size: int  # id values per chunk (create_chunks_by_number_col)
    rowid_pages: int  # pages per chunk (create_chunks_by_rowid, by_row false)
    base_sum: str  # sum(amount) of orders_base, exact text
    memory: bool  # sample the backends' memory (not with --no-memory)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def set_clause(self) -> str:
        return SET_COUNTED if self.count_rows else SET_PLAIN

    def single_sql(self) -> str:
        return f"UPDATE {TABLE} SET {self.set_clause}"

    def number_sql(self) -> str:
        return f"UPDATE {TABLE} SET {self.set_clause} WHERE id BETWEEN :start_id AND :end_id"

    def rowid_sql(self) -> str:
        return (f"UPDATE {TABLE} SET {self.set_clause}"
                " WHERE rowid BETWEEN :start_id AND :end_id")


def prepare_database(box: Sandbox) -> None:
    with connect(box, "postgres") as admin:
        if not scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", [DB]):
            admin.execute(f'CREATE DATABASE "{DB}"')
    try:
        install(box.dsn(DB))
    except DmsError as exc:
        raise SystemExit(f"dms install into {DB} failed: {exc}\n"
                         f"If dms in it came from another version of a migration, drop the"
                         f" database {DB} and run again.") from None


def prepare_base(conn: Conn, rows: int) -> None:
    """orders_base with ids 1..rows (reused when it has them and the column n)."""
    have = None
    if scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", [BASE]):
        has_n = scalar(conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass"
                             " AND attname = 'n' AND NOT attisdropped", [BASE])
        if has_n:
            have = conn.execute(f"SELECT count(*), min(id), max(id) FROM {BASE}").fetchone()
    if have is not None and tuple(have) == (rows, 1, rows):
        return
    print(f"generating {DB}.{BASE} with {rows:,} rows", file=sys.stderr)
    started = time.perf_counter()
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(f"DROP TABLE IF EXISTS {BASE}")
    conn.execute(f"CREATE TABLE {BASE} ({COLUMNS})")
    for first in range(1, rows + 1, FILL_SLICE):
        conn.execute(FILL, {"first": first, "last": min(rows, first + FILL_SLICE - 1)})
    conn.execute(f"ALTER TABLE {BASE} ADD PRIMARY KEY (id)")
    conn.execute(f"VACUUM (FREEZE, ANALYZE) {BASE}")
    print(f"  generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def reset_orders(box: Sandbox) -> str:
    """Untimed, before every run: orders as a fresh copy of orders_base (see the module
    docstring); the transaction id that filled it (every row carries it as xmin)."""
    with connect(box) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} ({COLUMNS})"
                     " WITH (autovacuum_enabled = off, toast.autovacuum_enabled = off)")
        conn.execute("SET synchronize_seqscans = off")  # copy from page 0: id order
        fill_xid = str(scalar(conn, f"WITH c AS (INSERT INTO {TABLE} SELECT * FROM {BASE})"
                                    " SELECT pg_current_xact_id()"))
        conn.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {TABLE}")
        conn.execute("CHECKPOINT")
    return str(int(fill_xid) % (1 << 32))  # xmin is the 32-bit part of the xid8


def table_facts(conn: Conn) -> dict[str, Any]:
    row = conn.execute(
        "SELECT pg_relation_size(%s), pg_indexes_size(%s), pg_total_relation_size(%s),"
        " current_setting('block_size')::int", [TABLE, TABLE, TABLE]).fetchone()
    assert row is not None
    heap, indexes, total, block = (int(v) for v in row)
    return {"heap_bytes": heap, "index_bytes": indexes, "total_bytes": total,
            "block_size": block, "pages": heap // block}


def setup(args: argparse.Namespace) -> Env:
    box = Sandbox(default_home())
    box.start()  # idempotent: starts what is not running, stops nothing
    prepare_database(box)
    with connect(box) as conn:
        prepare_base(conn, args.rows)
        base_sum = exact(scalar(conn, f"SELECT sum(amount) FROM {BASE}"))
    reset_orders(box)
    with connect(box) as conn:
        facts = table_facts(conn)
    chunk_size = args.chunk_size or math.ceil(args.rows / CHUNKS_WANTED)
    pages = args.rowid_chunk_pages or max(1, math.ceil(facts["pages"] / CHUNKS_WANTED))
    return Env(box=box, rows=args.rows, level=args.parallel_level, count_rows=args.count_rows,
               chunk_size=chunk_size, rowid_pages=pages, base_sum=base_sum,
               memory=not args.no_memory, facts=facts)


# ---------------------------------------------------------------- one timed run
@dataclass
class Outcome:
    seconds: float | None = None
    error: str | None = None
    private_mb: float | None = None  # the largest process's RssAnon
    rss_mb: float | None = None  # the largest process's VmHWM
    lock_s: float | None = None  # the longest lock held (see the module docstring)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None


class TaskSampler(procmem.RunSampler):
    """procmem's sampler, told what a DBMS_PARALLEL_EXECUTE worker is called: the
    task's sessions are ``dms pe <job prefix>_<n>``, not ``dms worker run N``."""

    def __init__(self, dsn: str, *, caller_pid: int, caller_role: str, enabled: bool) -> None:
        super().__init__(dsn, caller_pid=caller_pid, databases=(DB,))
        self.caller_role, self.enabled = caller_role, enabled

    def begin(self) -> None:
        if self.enabled:  # --no-memory: no thread, no samples ("—" in the report)
            self.start()

    def end(self) -> None:
        if self.enabled:
            self.finish()

    def _backends(self, conn: Conn) -> dict[int, str]:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s"
                            " AND application_name LIKE 'dms pe %%'", [DB]).fetchall()
        roles = {int(pid): "worker" for (pid,) in rows}
        if self.caller_pid is not None:
            roles[self.caller_pid] = self.caller_role
        return roles


def memory_into(outcome: Outcome, sampler: TaskSampler) -> None:
    outcome.detail["memory"] = sampler.summary()
    if not sampler.error and sampler.peaks:  # no samples: "—", not 0 MB
        largest = sampler.largest()
        outcome.private_mb = procmem.mb(largest.private_kb)
        outcome.rss_mb = procmem.mb(largest.hwm_kb)


def flush_stats(conn: Conn) -> None:
    """This backend's table counters go to shared memory when it is next idle."""
    conn.execute("SELECT pg_stat_force_next_flush()")


def verify(env: Env, fill_xid: str) -> str | None:
    """The table after a run (see the module docstring); None, or what is wrong."""
    with connect(env.box) as conn:
        row = conn.execute(CHECK_SQL, [fill_xid]).fetchone()
        assert row is not None
        rows, matched, changed, total, n_min, n_max, untouched = row
        problems = []
        if rows != env.rows or matched != env.rows:
            problems.append(f"{rows:,} rows, {matched:,} of them with an id of {BASE};"
                            f" expected {env.rows:,}")
        if changed:
            problems.append(f"{changed:,} rows have another amount than in {BASE}")
        if exact(total) != env.base_sum:
            problems.append(f"sum(amount) {exact(total)}, expected {env.base_sum}")
        if untouched:
            problems.append(f"{untouched:,} rows were not updated (still the fill's xmin)")
        if env.count_rows and (n_min, n_max) != (1, 1):
            problems.append(f"n from {n_min} to {n_max}, expected 1 for every row")
        updated = tuple_updates(conn, env.rows)
        if updated is not None and updated != env.rows:
            problems.append(f"n_tup_upd {updated:,}: rows updated in all, expected"
                            f" {env.rows:,} (each row once)")
    return "; ".join(problems) or None


def tuple_updates(conn: Conn, expected: int) -> int | None:
    """orders' n_tup_upd once the run's backends have flushed it (None: no statistics)."""
    if scalar(conn, "SHOW track_counts") != "on":
        return None
    deadline = time.monotonic() + STATS_WAIT
    while True:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        updated = int(scalar(conn, "SELECT coalesce(max(n_tup_upd), 0) FROM"
                                   " pg_stat_user_tables WHERE relid = %s::regclass", [TABLE]))
        if updated >= expected or time.monotonic() > deadline:
            return updated
        time.sleep(0.1)


def run_single(env: Env) -> Outcome:
    fill_xid = reset_orders(env.box)
    with connect(env.box) as conn:
        sampler = TaskSampler(env.box.dsn(DB), caller_pid=conn.info.backend_pid,
                              caller_role="backend (the UPDATE)", enabled=env.memory)
        sampler.begin()
        started = time.perf_counter()
        try:
            updated = conn.execute(env.single_sql()).rowcount
            seconds = time.perf_counter() - started
        except psycopg.Error as exc:
            return Outcome(error=f"UPDATE failed: {pg_error(exc)}")
        finally:
            sampler.end()
        flush_stats(conn)
    # One transaction: every row it updated stays locked until it commits.
    outcome = Outcome(seconds=seconds, lock_s=seconds, detail={"rowcount": updated})
    memory_into(outcome, sampler)
    outcome.error = verify(env, fill_xid)
    return outcome


def drop_task(conn: Conn, name: str) -> None:
    if scalar(conn, "SELECT count(*) FROM dbms_parallel_execute.user_parallel_execute_tasks"
                    " WHERE task_name = %s", [name]):
        conn.execute("CALL dbms_parallel_execute.drop_task(%s)", [name])


def chunk_rows(conn: Conn, task: str) -> list[dict[str, Any]]:
    # worker_start (when the chunk's backend started) is only in the table itself.
    rows = conn.execute(
        "SELECT u.chunk_id, u.status, u.job_name, u.start_ts, u.end_ts,"
        " extract(epoch FROM u.end_ts - u.start_ts)::float8, c.worker_start"
        " FROM dbms_parallel_execute.user_parallel_execute_chunks u"
        " LEFT JOIN dms.pe_chunk c USING (chunk_id) WHERE u.task_name = %s"
        " ORDER BY u.chunk_id", [task]).fetchall()
    keys = ("chunk_id", "status", "job_name", "start_ts", "end_ts", "seconds", "worker_start")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def timeline(chunks: list[dict[str, Any]], call_start: dt.datetime,
             call_end: dt.datetime, sessions: bool) -> dict[str, Any]:
    """Where run_task's time went, from the chunks' timestamps and the server clock.
    ``sessions``: the chunks ran in worker sessions that run_task started."""
    done = [c for c in chunks if c["start_ts"] is not None and c["end_ts"] is not None]
    if not done:
        return {}
    first = min(c["start_ts"] for c in done)
    last = max(c["end_ts"] for c in done)
    gaps: list[float] = []
    boots: list[float] = []
    for job in {c["job_name"] for c in done}:
        mine = sorted((c for c in done if c["job_name"] == job), key=lambda c: c["start_ts"])
        gaps += [(b["start_ts"] - a["end_ts"]).total_seconds()
                 for a, b in itertools.pairwise(mine)]
        if sessions and mine[0]["worker_start"] is not None:
            # The worker's backend started -> its first claim: PL/Python, dms_pkg's
            # imports, reading the task.
            boots.append((mine[0]["start_ts"] - mine[0]["worker_start"]).total_seconds())
    durations = [float(c["seconds"]) for c in done]
    born = [c["worker_start"] for c in done if c["worker_start"] is not None]
    return {
        "to_workers_s": (min(born) - call_start).total_seconds() if sessions and born else None,
        "worker_boot_s": statistics.mean(boots) if boots else None,
        "start_s": (first - call_start).total_seconds(),
        "span_s": (last - first).total_seconds(),
        "end_s": (call_end - last).total_seconds(),
        "chunk_sum_s": sum(durations),
        "chunk_median_s": statistics.median(durations),
        "chunk_max_s": max(durations),
        "gap_mean_ms": 1000 * statistics.mean(gaps) if gaps else None,
        "workers_seen": len({c["job_name"] for c in done}),
    }


def run_task(env: Env, key: str, by: str, level: int) -> Outcome:
    """create_task, create_chunks_by_<by>, run_task -- timed together, on a fresh
    connection; then the task's and the table's checks."""
    fill_xid = reset_orders(env.box)
    task = f"bench_pe_{key.replace('-', '_')}"
    with connect(env.box) as conn:
        drop_task(conn, task)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        sampler = TaskSampler(env.box.dsn(DB), caller_pid=conn.info.backend_pid,
                              caller_role="caller (coordinator)", enabled=env.memory)
        sampler.begin()
        try:
            started = time.perf_counter()
            conn.execute("CALL dbms_parallel_execute.create_task(%s)", [task])
            if by == "number":
                conn.execute("CALL dbms_parallel_execute.create_chunks_by_number_col("
                             "task_name => %s, table_owner => 'public', table_name => %s,"
                             " table_column => 'id', chunk_size => %s)",
                             [task, TABLE, env.chunk_size])
                sql_stmt = env.number_sql()
            else:
                conn.execute("CALL dbms_parallel_execute.create_chunks_by_rowid("
                             "task_name => %s, table_owner => 'public', table_name => %s,"
                             " by_row => false, chunk_size => %s)",
                             [task, TABLE, env.rowid_pages])
                sql_stmt = env.rowid_sql()
            chunked = time.perf_counter()
            call_start = scalar(conn, "SELECT clock_timestamp()")
            ran = time.perf_counter()
            conn.execute("CALL dbms_parallel_execute.run_task(task_name => %s, sql_stmt => %s,"
                         " language_flag => 1, parallel_level => %s)",
                         [task, sql_stmt, level])
            ended = time.perf_counter()
            call_end = scalar(conn, "SELECT clock_timestamp()")
        except psycopg.Error as exc:
            return Outcome(error=f"CALL failed: {pg_error(exc)}")
        finally:
            sampler.end()
        flush_stats(conn)
        status = scalar(conn, "SELECT dbms_parallel_execute.task_status(%s)", [task])
        chunks = chunk_rows(conn, task)
        drop_task(conn, task)
    # The clock_timestamp() between chunking and run_task is not counted.
    seconds = (chunked - started) + (ended - ran)
    detail: dict[str, Any] = {
        "chunking_s": chunked - started, "run_task_s": ended - ran, "task_status": status,
        "chunks": len(chunks), "notices": notices,
        **timeline(chunks, call_start, call_end, sessions=level > 1),
    }
    durations = [float(c["seconds"]) for c in chunks if c["seconds"] is not None]
    outcome = Outcome(seconds=seconds, lock_s=max(durations) if durations else None,
                      detail=detail)
    memory_into(outcome, sampler)
    problems = []
    if status != FINISHED:
        problems.append(f"task status {status}, expected {FINISHED} (FINISHED)")
    unprocessed = [c for c in chunks if c["status"] != "PROCESSED"]
    if not chunks or unprocessed:
        problems.append(f"{len(unprocessed)} of {len(chunks)} chunks not PROCESSED"
                        + (f" (first: {unprocessed[0]['status']})" if unprocessed else ""))
    table = verify(env, fill_xid)
    if table:
        problems.append(table)
    outcome.error = "; ".join(problems) or None
    return outcome


# ---------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    key: str
    label: str
    run: Callable[[Env], Outcome]
    command: Callable[[Env], str]
    task: bool  # a run_task method


def task_command(by: str, level: int) -> Callable[[Env], str]:
    def text(env: Env) -> str:
        if by == "number":
            chunks = (f"create_chunks_by_number_col(..., table_column => 'id', chunk_size =>"
                      f" {env.chunk_size})")
            stmt = env.number_sql()
        else:
            chunks = (f"create_chunks_by_rowid(..., by_row => false, chunk_size =>"
                      f" {env.rowid_pages})")
            stmt = env.rowid_sql()
        return (f"create_task; {chunks}; run_task(sql_stmt => '{stmt}', language_flag => 1,"
                f" parallel_level => {level})")
    return text


def methods(level: int) -> list[Method]:
    found = [Method("single-update", "ref: one UPDATE (one transaction)", run_single,
                    lambda env: env.single_sql(), task=False)]

    def task_method(key: str, label: str, by: str, lvl: int) -> Method:
        def go(env: Env) -> Outcome:
            return run_task(env, key, by, lvl)
        return Method(key, label, go, task_command(by, lvl), task=True)

    found.append(task_method(f"run_task-{level}",
                             f"run_task by id, parallel_level {level}", "number", level))
    if level > 1:
        found.append(task_method("run_task-1", "run_task by id, parallel_level 0 (chunks in"
                                 " the calling session)", "number", 0))
    found.append(task_method(f"run_task-rowid-{level}",
                             f"run_task by rowid (pages), parallel_level {level}", "rowid",
                             level))
    return found


@dataclass
class Result:
    method: Method
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def times(self) -> list[float]:
        return [o.seconds for o in self.ok if o.seconds is not None]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def median_of(self, attr: str) -> float | None:
        values = [v for o in self.ok if (v := getattr(o, attr)) is not None]
        return statistics.median(values) if values else None

    def max_of(self, attr: str) -> float | None:
        values = [v for o in self.ok if (v := getattr(o, attr)) is not None]
        return max(values) if values else None

    def median_detail(self, key: str) -> float | None:
        values = [float(v) for o in self.ok if (v := o.detail.get(key)) is not None]
        return statistics.median(values) if values else None


def run_all(env: Env, chosen: list[Method], runs: int) -> list[Result]:
    results = [Result(m) for m in chosen]
    for repetition in range(1, runs + 1):
        print(f"repetition {repetition}/{runs}", file=sys.stderr)
        for result in results:  # round-robin: slow phases of the machine hit all methods
            outcome = result.method.run(env)
            result.outcomes.append(outcome)
            shown = (f"{outcome.seconds:.2f} s, longest lock {outcome.lock_s or 0:.2f} s"
                     if outcome.ok else f"FAILED: {outcome.error}")
            print(f"  {result.method.key}: {shown}", file=sys.stderr)
    return results


# ---------------------------------------------------------------- report
def cell(text: str) -> str:
    return text.replace("|", "\\|")


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def reference(results: list[Result]) -> Result | None:
    return next((r for r in results if r.method.key == "single-update"), None)


def result_rows(env: Env, results: list[Result]) -> list[str]:
    ref = reference(results)
    ref_s = ref.median if ref else None
    lines = ["| method | runs ok | median s [min-max] | rows/s | time / single-update |"
             " chunking s | longest lock s (median, max) | longest lock / single statement |"
             " peak private MB | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        label = cell(r.method.label)
        runs = f"{len(r.ok)}/{len(r.outcomes)}"
        if r.median is None:
            lines.append(f"| {label} | {runs} | every run failed (below) | | | | | | | |")
            continue
        seconds = f"{r.median:.2f} [{min(r.times):.2f}-{max(r.times):.2f}]"
        time_ratio = ratio(r.median, ref_s)
        lock = r.median_of("lock_s")
        lock_ratio = ratio(lock, ref_s)
        chunking = fmt(r.median_detail("chunking_s")) if r.method.task else "—"
        lines.append(
            f"| {label} | {runs} | {seconds} | {env.rows / r.median:,.0f} |"
            f" {fmt(time_ratio)}x | {chunking} | {fmt(lock)} ({fmt(r.max_of('lock_s'))}) |"
            f" {'—' if lock_ratio is None else f'{100 * lock_ratio:.1f} %'} |"
            f" {fmt(r.max_of('private_mb'), 0)} | {fmt(r.max_of('rss_mb'), 0)} |")
    return lines


def breakdown_rows(results: list[Result]) -> list[str]:
    lines = ["| method | chunks | workers | chunking s | run_task s | start s (to workers +"
             " worker boot) | chunks' span s | end s | chunk median s | chunk sum s |"
             " gap between chunks ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r.method.task or not r.ok:
            continue
        chunks = r.median_detail("chunks")
        workers = r.median_detail("workers_seen")
        lines.append(
            f"| {cell(r.method.label)} | {fmt(chunks, 0)} | {fmt(workers, 0)} |"
            f" {fmt(r.median_detail('chunking_s'))} | {fmt(r.median_detail('run_task_s'))} |"
            f" {fmt(r.median_detail('start_s'))}{start_parts(r)} |"
            f" {fmt(r.median_detail('span_s'))} |"
            f" {fmt(r.median_detail('end_s'))} | {fmt(r.median_detail('chunk_median_s'), 3)} |"
            f" {fmt(r.median_detail('chunk_sum_s'))} | {fmt(r.median_detail('gap_mean_ms'), 1)} |")
    return lines


def start_parts(r: Result) -> str:
    to_workers, boot = r.median_detail("to_workers_s"), r.median_detail("worker_boot_s")
    if to_workers is None or boot is None:
        return ""
    return f" ({to_workers:.2f} + {boot:.2f})"


def goals(results: list[Result], level: int) -> dict[str, Any]:
    ref = reference(results)
    ref_s = ref.median if ref else None
    out: dict[str, Any] = {"single_update_s": ref_s, "methods": []}
    for r in results:
        if not r.method.task:
            continue
        time_ratio = ratio(r.median, ref_s)
        lock_ratio = ratio(r.median_of("lock_s"), ref_s)
        out["methods"].append({
            "method": r.method.key, "time_vs_single": time_ratio,
            "time_goal_met": None if time_ratio is None else time_ratio <= TIME_GOAL,
            "longest_lock_vs_single": lock_ratio,
            "worst_lock_vs_single": ratio(r.max_of("lock_s"), ref_s),
            "chunks": r.median_detail("chunks"),
            "issue_method": r.method.key == f"run_task-{level}",
        })
    return out


def goal_lines(results: list[Result], g: dict[str, Any]) -> list[str]:
    labels = {r.method.key: r.method.label for r in results}
    lines = []
    for m in g["methods"]:
        tag = " (the issue's method)" if m["issue_method"] else ""
        name = f"{labels[m['method']]}{tag}"
        if m["time_vs_single"] is None:
            lines.append(f"- {name}: not measured")
            continue
        met = "met" if m["time_goal_met"] else "MISSED"
        share = m["longest_lock_vs_single"]
        even = 100 / m["chunks"] if m["chunks"] else None
        lines.append(
            f"- {name}: goal <= {TIME_GOAL:.1f}x: {met} ({m['time_vs_single']:.2f}x);"
            f" longest lock a small fraction: {fmt(None if share is None else 100 * share, 1)} %"
            f" of the single statement's (worst run {fmt(100 * m['worst_lock_vs_single'], 1)} %;"
            f" 1/{m['chunks']:.0f} chunks would be {fmt(even, 1)} %)")
    return lines


NOTES = [
    f"Every run starts from a fresh copy of {BASE} (re-created, primary key, VACUUM (FREEZE,"
    " ANALYZE), CHECKPOINT; untimed) on a fresh autocommit connection. Time: wall time of the"
    " statements on that connection; for run_task rows create_task + create_chunks_* +"
    " run_task (chunking included, and the session's PL/Python start, which the first of"
    " these calls pays).",
    "Longest lock: single-update = its duration (one transaction: rows stay locked until it"
    " commits); run_task = the longest chunk, max(end_ts - start_ts) of"
    " user_parallel_execute_chunks (a chunk commits right after its end_ts). The share is"
    " of the single UPDATE's median time.",
    "Checks after every run: task FINISHED and every chunk PROCESSED; orders has the rows and"
    f" ids of {BASE}, every amount and sum(amount) unchanged; no row still has the fill's"
    " xmin (each updated at least once) and n_tup_upd equals the row count (so each exactly"
    " once).",
    "Peak memory: the largest single process among the calling backend and the task's worker"
    " backends, RssAnon (private) and VmHWM (RSS, counts shared buffers touched), sampled"
    " every 20 ms from /proc.",
]

BREAKDOWN_NOTE = (
    "From the chunks' timestamps (medians over the runs): start = run_task called -> first"
    " chunk claimed; with worker sessions split into: to workers = run_task called -> the"
    " first worker's backend started (statement check, task bookkeeping, dblink connecting)"
    " and worker boot = a worker's backend started -> its first claim (mean over the"
    " workers: PL/Python starting, dms_pkg's imports, reading the task); span = first chunk"
    " claimed -> last chunk done; end ="
    " last chunk done -> run_task returned (the coordinator polls every 0.1 s, then finishes"
    " the task); chunk sum = the chunks' durations added up (more than the span when workers"
    " run side by side); gap = mean time between one worker's chunk end and its next claim"
    " (commit, claim, commit).")


def header(env: Env, settings: dict[str, str], machine: dict[str, Any],
           args: argparse.Namespace) -> list[str]:
    mib = 1 << 20
    f = env.facts
    return [
        f"# dms_pkg benchmark: DBMS_PARALLEL_EXECUTE run_task vs one UPDATE,"
        f" {env.rows:,} orders",
        "",
        f"Generated {machine['date']} by"
        f" `{shlex.join(['bench/parallel_execute_bench.py', *sys.argv[1:]])}` (rows"
        f" {env.rows:,}, runs {args.runs}, parallel_level {env.level}) on the sandbox"
        f" (PostgreSQL port {env.box.port}, database {DB}).",
        "",
        "## Machine and server",
        f"- {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']:.1f} GiB memory,"
        f" kernel {machine['kernel']}; load average {machine['load_start']:.2f} at the start,"
        f" {machine['load_end']:.2f} at the end (other work on the machine makes numbers noisy)",
        f"- PostgreSQL {settings['server_version']}: "
        + ", ".join(f"{k}={settings[k]}" for k in SETTINGS),
        "",
        "## Data and statements",
        f"- `{TABLE}`: {env.rows:,} rows copied from `{BASE}` before every run (the anchor"
        " rig's columns and value rules, gen_pg.sql, plus `n integer DEFAULT 0`), heap"
        f" {f['heap_bytes'] / mib:.0f} MiB = {f['pages']:,} pages, primary key"
        f" {f['index_bytes'] / mib:.0f} MiB; autovacuum off for it",
        f"- statement: `{env.single_sql()}`"
        + (" (--count-rows: every method also counts n)" if env.count_rows else
           " (the issue's; `--count-rows` adds `n = n + 1` to every method)"),
        f"- chunks by id: chunk_size {env.chunk_size:,} ids"
        f" ({math.ceil(env.rows / env.chunk_size)} chunks); by rowid: {env.rowid_pages:,}"
        f" pages a chunk ({math.ceil(f['pages'] / env.rowid_pages)} chunks)",
        "",
    ]


def render(env: Env, results: list[Result], settings: dict[str, str],
           machine: dict[str, Any], args: argparse.Namespace, g: dict[str, Any]) -> str:
    lines = header(env, settings, machine, args)
    lines += ["## Results", "", "Median of the runs [min-max].", "", *result_rows(env, results),
              "", *[f"- {n}" for n in NOTES], ""]
    lines += ["## Goals of the issue (run_task / single UPDATE)", "", *goal_lines(results, g),
              ""]
    breakdown = breakdown_rows(results)
    if len(breakdown) > 2:
        lines += ["## Where run_task's time goes", "", *breakdown, "", BREAKDOWN_NOTE, ""]
    failures = [(r.method.label, o.error) for r in results for o in r.outcomes if not o.ok]
    if failures:
        lines += ["## Failed runs", "", *[f"- {label}: {error}" for label, error in failures],
                  ""]
    lines += ["## Commands", "", *[f"- `{r.method.key}`: {r.method.command(env)}"
                                   for r in results], ""]
    return "\n".join(lines)


def server_settings(box: Sandbox) -> dict[str, str]:
    with connect(box) as conn:
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
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
    }


def raw_data(env: Env, results: list[Result], settings: dict[str, str],
             machine: dict[str, Any], args: argparse.Namespace,
             g: dict[str, Any]) -> dict[str, Any]:
    return {
        "args": vars(args), "machine": machine, "settings": settings,
        "data": {"rows": env.rows, "base_sum_amount": env.base_sum, **env.facts,
                 "chunk_size": env.chunk_size, "rowid_chunk_pages": env.rowid_pages,
                 "statement": env.single_sql()},
        "methods": [{
            "key": r.method.key, "label": r.method.label, "command": r.method.command(env),
            "median_s": r.median,
            "rows_per_s": env.rows / r.median if r.median else None,
            "longest_lock_median_s": r.median_of("lock_s"),
            "runs": [{"seconds": o.seconds, "error": o.error, "longest_lock_s": o.lock_s,
                      "private_mb": o.private_mb, "rss_mb": o.rss_mb, **o.detail}
                     for o in r.outcomes],
        } for r in results],
        "goals": g,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"ids per chunk of the by-id methods (default: rows /"
                             f" {CHUNKS_WANTED})")
    parser.add_argument("--rowid-chunk-pages", type=int, default=None,
                        help=f"pages per chunk of the rowid method (default: pages /"
                             f" {CHUNKS_WANTED})")
    parser.add_argument("--parallel-level", type=int, default=2,
                        help="parallel_level of the run_task-N methods (run_task-1 runs too)")
    parser.add_argument("--count-rows", action="store_true",
                        help="every method also sets n = n + 1; checks min(n) = max(n) = 1")
    parser.add_argument("--no-memory", action="store_true",
                        help="do not sample the backends' memory (the sampler's thread and"
                             " its queries cost a few %% of a core)")
    parser.add_argument("--only", default=None,
                        help="comma-separated method keys (single-update always runs: it is"
                             " the reference)")
    args = parser.parse_args()
    if args.rows < 1 or args.runs < 1 or args.parallel_level < 2:
        parser.error("--rows and --runs must be at least 1, --parallel-level at least 2")
    if (args.chunk_size or 1) < 1 or (args.rowid_chunk_pages or 1) < 1:
        parser.error("--chunk-size and --rowid-chunk-pages must be at least 1")
    chosen = methods(args.parallel_level)
    if args.only:
        wanted = {k.strip() for k in args.only.split(",")} | {"single-update"}
        unknown = wanted - {m.key for m in chosen}
        if unknown:
            parser.error(f"unknown method {sorted(unknown)[0]}; known:"
                         f" {', '.join(m.key for m in chosen)}")
        chosen = [m for m in chosen if m.key in wanted]
    env = setup(args)
    machine = machine_facts()  # after the data is made: the load the runs start in
    settings = server_settings(env.box)
    results = run_all(env, chosen, args.runs)
    machine["load_end"] = os.getloadavg()[0]
    g = goals(results, args.parallel_level)
    report = render(env, results, settings, machine, args, g)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "parallel-execute-latest.md").write_text(report)
    path = RESULTS / f"parallel-execute-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(raw_data(env, results, settings, machine, args, g), indent=2,
                               default=str))
    print(f"written to {RESULTS / 'parallel-execute-latest.md'} and {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
