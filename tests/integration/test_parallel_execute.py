"""DBMS_PARALLEL_EXECUTE on a real cluster, as an operator login would use it.

Every run updates a per-row counter column ``n``, so "every row exactly
once" is checked row by row: after a task, each row it should touch has
n = 1, whatever the chunking, the parallel level, failures, crashes, stops
and resumes on the way.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.conftest import Cluster, DatabaseFactory, wait_for

PE = "dbms_parallel_execute"


class Env:
    def __init__(self, cluster: Cluster, db: str, operator: str) -> None:
        self.cluster, self.db, self.operator = cluster, db, operator
        self.notices: list[str] = []

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.cluster.dsn(self.db), autocommit=True)

    def op(self, user: str | None = None) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.cluster.dsn(self.db, user=user or self.operator),
                               autocommit=True)
        conn.add_notice_handler(lambda d: self.notices.append(d.message_primary or ""))
        return conn

    def one(self, query: str, params: Any = None, user: str | None = None) -> Any:
        with self.op(user) as conn:
            row = conn.execute(query, params).fetchone()
        return row[0] if row and len(row) == 1 else row

    def table(self, name: str, rows: str, nullable: bool = False) -> None:
        """A table ``name`` (id, k, amount, n) with the ids of the ``rows`` query,
        owned by the operator, with fillfactor 100 so updated rows move pages."""
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            conn.execute(sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, k bigint {}, amount numeric NOT NULL,"
                " n integer NOT NULL DEFAULT 0, bad boolean NOT NULL DEFAULT false)"
                " WITH (fillfactor = 100, autovacuum_enabled = false)").format(
                    sql.Identifier(name), sql.SQL("" if nullable else "NOT NULL")))
            conn.execute(sql.SQL("INSERT INTO {} (id, k, amount) SELECT g, g, g FROM ({}) AS s(g)")
                         .format(sql.Identifier(name), sql.SQL(rows)))
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(self.operator)))
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))

    def counts(self, table: str) -> dict[int, int]:
        with self.admin() as conn:
            return dict(conn.execute(sql.SQL("SELECT n, count(*) FROM {} GROUP BY n").format(
                sql.Identifier(table))).fetchall())

    def chunks(self, task: str, user: str | None = None) -> list[tuple[Any, ...]]:
        with self.op(user) as conn:
            return conn.execute(
                f"SELECT chunk_id, status, start_id, end_id, start_rowid::text, end_rowid::text,"
                f" error_code, error_message, job_name FROM {PE}.user_parallel_execute_chunks"
                " WHERE task_name = %s ORDER BY chunk_id", [task]).fetchall()

    def status(self, task: str, user: str | None = None) -> int:
        return int(self.one(f"SELECT {PE}.task_status(%s)", [task], user=user))


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> Iterator[Env]:
    db = databases.create(installed=True)
    operator = f"dmst_pe_{uuid.uuid4().hex[:8]}"
    with cluster.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE dms_operator").format(
            sql.Identifier(operator)))
    yield Env(cluster, db, operator)
    databases.drop_all()
    databases.created.clear()
    with cluster.admin() as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(operator)))


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def task(env: Env, name: str | None = None) -> str:
    name = name or f"t_{uuid.uuid4().hex[:6]}"
    with env.op() as conn:
        conn.execute(f"CALL {PE}.create_task(task_name => %s, comment => 'test')", [name])
    return name


# ------------------------------------------------------------------ chunking

GAPS_NULLS_SKEW = ("SELECT g FROM generate_series(1, 3000) g WHERE g % 10 <> 3"
                   " UNION ALL SELECT g FROM generate_series(1000000, 1000050) g")


def test_number_col_chunks_cover_every_value_once_and_leave_nulls_out(env: Env) -> None:
    env.table("num_t", GAPS_NULLS_SKEW, nullable=True)
    with env.admin() as conn:
        conn.execute("UPDATE num_t SET k = NULL WHERE id % 97 = 0")
        nulls = scalar(conn, "SELECT count(*) FROM num_t WHERE k IS NULL")
    name = task(env)
    env.notices.clear()
    with env.op() as conn:
        conn.execute(f"CALL {PE}.create_chunks_by_number_col(task_name => %s, table_owner =>"
                     " 'PUBLIC', table_name => 'NUM_T', table_column => 'K', chunk_size => 50000)",
                     [name])
    chunks = env.chunks(name)
    # Oracle's ranges: MIN to MAX of k in steps of chunk_size, skew or not.
    assert [(c[2], c[3]) for c in chunks] == [
        (1 + 50000 * i, min(1 + 50000 * i + 49999, 1000050)) for i in range(21)]
    assert {c[1] for c in chunks} == {"UNASSIGNED"}
    assert env.status(name) == 5  # CHUNKED
    assert f"task {name}: {nulls} rows of public.num_t have NULL in k and are in no chunk" \
        in env.notices
    with env.admin() as conn:
        # every non-NULL k in exactly one chunk
        assert conn.execute(
            "SELECT count(*) FILTER (WHERE m <> 1), count(*) FROM (SELECT t.id, count(c.*) AS m"
            " FROM num_t t LEFT JOIN dms.pe_chunk c ON t.k BETWEEN c.start_id AND c.end_id"
            " AND c.task_id = (SELECT task_id FROM dms.pe_task WHERE task_name = %s)"
            " WHERE t.k IS NOT NULL GROUP BY t.id) s", [name]).fetchone() == (0, 2751 - nulls)


def test_rowid_chunks_are_page_ranges_that_cover_every_row_once(env: Env) -> None:
    env.table("rid_t", "SELECT g FROM generate_series(1, 20000) g")
    with env.admin() as conn:
        conn.execute("DELETE FROM rid_t WHERE id % 3 = 0")  # gaps
        conn.execute("VACUUM rid_t")
        pages = scalar(conn, "SELECT pg_relation_size('rid_t') / 8192")
    by_blocks, by_rows = task(env), task(env)
    with env.op() as conn:
        conn.execute(f"CALL {PE}.create_chunks_by_rowid(%s, 'public', 'rid_t', false, 10)",
                     [by_blocks])
        conn.execute(f"CALL {PE}.create_chunks_by_rowid(task_name => %s, table_owner =>"
                     " 'public', table_name => 'rid_t', by_row => true, chunk_size => 1000)",
                     [by_rows])
    blocks = env.chunks(by_blocks)
    assert [(c[4], c[5]) for c in blocks] == [
        (f"({p},0)", f"({min(p + 9, pages - 1)},65535)") for p in range(0, pages, 10)]
    rows = env.chunks(by_rows)
    assert 2 <= len(rows) <= 30
    with env.admin() as conn:
        for name in (by_blocks, by_rows):
            assert conn.execute(
                "SELECT count(*) FILTER (WHERE m <> 1) FROM (SELECT t.id, count(c.*) AS m"
                " FROM rid_t t LEFT JOIN dms.pe_chunk c ON t.ctid BETWEEN c.start_rowid"
                " AND c.end_rowid AND c.task_id = (SELECT task_id FROM dms.pe_task"
                " WHERE task_name = %s) GROUP BY t.id) s", [name]).fetchone() == (0,)


def test_chunks_by_sql_are_the_query_rows_in_order(env: Env) -> None:
    env.table("sql_t", "SELECT g FROM generate_series(1, 1000) g")
    numbers, rowids, none = task(env), task(env), task(env)
    with env.op() as conn:
        conn.execute(f"CALL {PE}.create_chunks_by_sql(%s, 'SELECT lo, lo + 99 FROM"
                     " generate_series(901, 1, -100) AS lo', false)", [numbers])
        conn.execute(f"CALL {PE}.create_chunks_by_sql(%s, $$SELECT '(0,0)'::tid,"
                     " '(2,65535)'::tid UNION ALL SELECT '(3,0)', '(1000,0)'$$, true)", [rowids])
        conn.execute(f"CALL {PE}.create_chunks_by_sql(%s, 'SELECT 1, 2 WHERE false', false)",
                     [none])
    assert [(int(c[2]), int(c[3])) for c in env.chunks(numbers)] == [
        (lo, lo + 99) for lo in range(901, 0, -100)]
    assert [(c[4], c[5]) for c in env.chunks(rowids)] == [("(0,0)", "(2,65535)"),
                                                         ("(3,0)", "(1000,0)")]
    assert env.one(f"SELECT chunk_type FROM {PE}.user_parallel_execute_tasks"
                   " WHERE task_name = %s", [rowids]) == "ROWID_RANGE"
    assert env.status(none) == 4  # NO_CHUNKS


# ------------------------------------------------------------------ run_task

UPDATE_BY_ID = "UPDATE {t} SET n = n + 1 WHERE k BETWEEN :start_id AND :end_id"
UPDATE_BY_ROWID = "UPDATE {t} SET n = n + 1 WHERE rowid BETWEEN :start_id AND :end_id"


def _chunk(env: Env, name: str, method: str, table: str) -> None:
    with env.op() as conn:
        if method == "number":
            conn.execute(f"CALL {PE}.create_chunks_by_number_col(%s, 'public', %s, 'k', 700)",
                         [name, table])
        elif method == "rowid":
            conn.execute(f"CALL {PE}.create_chunks_by_rowid(%s, 'public', %s, false, 3)",
                         [name, table])
        else:
            conn.execute(f"CALL {PE}.create_chunks_by_sql(%s, 'SELECT lo, lo + 499 FROM"
                         " generate_series(1, 12000, 500) lo', false)", [name])


@pytest.mark.parametrize("level", [1, 2, 4])
@pytest.mark.parametrize("method", ["number", "rowid", "sql"])
def test_run_task_updates_every_row_exactly_once(env: Env, method: str, level: int) -> None:
    table = f"run_{method}_{level}"
    env.table(table, "SELECT g FROM generate_series(1, 12000) g WHERE g % 11 <> 5")
    with env.admin() as conn:
        # Free space all over the table: updated row versions land in pages of
        # chunks that have not run yet, which is what ROWID chunks must survive.
        conn.execute(f"DELETE FROM {table} WHERE id % 4 = 0")
        conn.execute(f"VACUUM {table}")
        total = scalar(conn, f"SELECT count(*) FROM {table}")
    name = task(env)
    _chunk(env, name, method, table)
    statement = (UPDATE_BY_ROWID if method == "rowid" else UPDATE_BY_ID).format(t=table)
    with env.op() as conn:
        conn.execute(f"CALL {PE}.run_task(task_name => %s, sql_stmt => %s, language_flag => 1,"
                     " parallel_level => %s)", [name, statement, level])
    assert env.counts(table) == {1: total}
    assert env.status(name) == 7  # FINISHED
    chunks = env.chunks(name)
    assert {c[1] for c in chunks} == {"PROCESSED"}
    jobs = {c[8] for c in chunks}
    assert len(jobs) <= level and all(j.startswith("TASK$_") for j in jobs)


def test_rowid_chunks_without_the_task_filter_would_update_moved_rows_twice(env: Env) -> None:
    """Why ROWID statements are rewritten: the same ranges, run by hand, touch
    some rows twice, because an UPDATE moves rows into later pages."""
    env.table("moved_t", "SELECT g FROM generate_series(1, 12000) g")
    with env.admin() as conn:
        conn.execute("DELETE FROM moved_t WHERE id % 4 = 0")
        conn.execute("VACUUM moved_t")
        total = scalar(conn, "SELECT count(*) FROM moved_t")
    name = task(env)
    _chunk(env, name, "rowid", "moved_t")
    with env.op() as conn:
        for _, _, _, _, lo, hi, *_ in env.chunks(name):
            conn.execute("UPDATE moved_t SET n = n + 1 WHERE ctid BETWEEN %s AND %s", [lo, hi])
    by_hand = env.counts("moved_t")
    assert by_hand.get(2, 0) > 0, by_hand
    # The same table again, the same chunks, through run_task: each row once.
    env.table("moved_t", "SELECT g FROM generate_series(1, 12000) g")
    with env.admin() as conn:
        conn.execute("DELETE FROM moved_t WHERE id % 4 = 0")
        conn.execute("VACUUM moved_t")
    again = task(env)
    _chunk(env, again, "rowid", "moved_t")
    assert [c[4:6] for c in env.chunks(again)] == [c[4:6] for c in env.chunks(name)]
    with env.op() as conn:
        conn.execute(f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 1)",
                     [again, UPDATE_BY_ROWID.format(t="moved_t")])
    assert env.counts("moved_t") == {1: total}


def test_a_failing_chunk_finishes_with_error_and_resume_runs_only_it(env: Env) -> None:
    env.table("fail_t", "SELECT g FROM generate_series(1, 5000) g")
    with env.admin() as conn:
        conn.execute("ALTER TABLE fail_t ADD CONSTRAINT fail_t_ok CHECK (NOT (bad AND n > 0))")
        conn.execute("UPDATE fail_t SET bad = true WHERE id = 2345")
    name = task(env)
    _chunk(env, name, "number", "fail_t")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 2)",
                     [name, UPDATE_BY_ID.format(t="fail_t")])
    assert env.status(name) == 8  # FINISHED_WITH_ERROR
    chunks = env.chunks(name)
    failed = [c for c in chunks if c[1] == "PROCESSED_WITH_ERROR"]
    assert [(int(c[2]), int(c[3]), c[6]) for c in failed] == [(2101, 2800, "23514")]
    assert failed[0][7] == ('new row for relation "fail_t" violates check constraint '
                            '"fail_t_ok"')
    assert {c[1] for c in chunks if c not in failed} == {"PROCESSED"}
    assert env.counts("fail_t") == {0: 700, 1: 4300}
    with env.admin() as conn:
        conn.execute("UPDATE fail_t SET bad = false")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.resume_task(task_name => %s)", [name])
    assert env.status(name) == 7
    assert env.counts("fail_t") == {1: 5000}
    assert {c[1] for c in env.chunks(name)} == {"PROCESSED"}


SLOW = ("UPDATE {t} SET n = n + 1 WHERE k BETWEEN :start_id AND :end_id"
        " AND (SELECT pg_sleep(delay) FROM {t}_ctl) IS NOT NULL")


def _slow_table(env: Env, table: str, delay: float) -> None:
    env.table(table, "SELECT g FROM generate_series(1, 7000) g")
    with env.admin() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}_ctl")
        conn.execute(f"CREATE TABLE {table}_ctl (delay float8)")
        conn.execute(f"INSERT INTO {table}_ctl VALUES ({delay})")
        conn.execute(f"GRANT SELECT, UPDATE ON {table}_ctl TO {env.operator}")


def _in_thread(env: Env, statement: str, params: list[Any]) -> tuple[threading.Thread,
                                                                      list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            with env.op() as conn:
                conn.execute(statement, params)
            outcome.append("ok")
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_killed_worker_leaves_the_task_crashed_and_resume_finishes_it(env: Env) -> None:
    _slow_table(env, "crash_t", 1.0)
    name = task(env)
    _chunk(env, name, "number", "crash_t")
    thread, outcome = _in_thread(env, f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 2)",
                                 [name, SLOW.format(t="crash_t")])
    with env.admin() as conn:
        pid = wait_for(lambda: conn.execute(
            "SELECT c.worker_pid FROM dms.pe_chunk c JOIN dms.pe_task t USING (task_id)"
            " WHERE t.task_name = %s AND c.status = 1 AND c.worker_pid <> t.coordinator_pid"
            " LIMIT 1", [name]).fetchone(), what="a worker holding a chunk")[0]
        conn.execute("UPDATE crash_t_ctl SET delay = 0")
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    thread.join(60)
    assert outcome == ["ok"]
    assert env.status(name) == 9  # CRASHED
    chunks = env.chunks(name)
    assert [c[1] for c in chunks].count("ASSIGNED") == 1
    crashed = next(c for c in chunks if c[1] == "ASSIGNED")
    counts = env.counts("crash_t")
    assert counts == {0: int(crashed[3]) - int(crashed[2]) + 1,
                      1: 7000 - (int(crashed[3]) - int(crashed[2]) + 1)}
    with env.op() as conn:
        conn.execute(f"CALL {PE}.resume_task(%s)", [name])
    assert env.status(name) == 7
    assert env.counts("crash_t") == {1: 7000}


def test_a_task_whose_session_died_reads_crashed(env: Env) -> None:
    _slow_table(env, "gone_t", 0.5)
    name = task(env)
    _chunk(env, name, "number", "gone_t")
    thread, outcome = _in_thread(env, f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 0)",
                                 [name, SLOW.format(t="gone_t")])
    with env.admin() as conn:
        pid = wait_for(lambda: conn.execute(
            "SELECT coordinator_pid FROM dms.pe_task WHERE task_name = %s AND status = 6",
            [name]).fetchone(), what="the task running")[0]
        wait_for(lambda: conn.execute(
            "SELECT 1 FROM dms.pe_chunk c JOIN dms.pe_task t USING (task_id) WHERE"
            " t.task_name = %s AND c.status = 2", [name]).fetchone(), what="a chunk done")
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    thread.join(60)
    assert isinstance(outcome[0], psycopg.OperationalError)
    assert env.one(f"SELECT status FROM {PE}.user_parallel_execute_tasks WHERE task_name = %s",
                   [name]) == "CRASHED"
    assert env.status(name) == 9
    with env.admin() as conn:
        conn.execute("UPDATE gone_t_ctl SET delay = 0")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.resume_task(%s)", [name])
    assert env.status(name) == 7
    assert env.counts("gone_t") == {1: 7000}


def test_stop_task_then_resume_task(env: Env) -> None:
    _slow_table(env, "stop_t", 0.3)
    name = task(env)
    _chunk(env, name, "number", "stop_t")
    thread, outcome = _in_thread(env, f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 2)",
                                 [name, SLOW.format(t="stop_t")])
    with env.admin() as conn:
        wait_for(lambda: scalar(
            conn, "SELECT count(*) >= 2 FROM dms.pe_chunk c JOIN dms.pe_task t USING (task_id)"
            " WHERE t.task_name = %s AND c.status = 2", [name]),
            what="two chunks done")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.stop_task(%s)", [name])
    thread.join(60)
    assert outcome == ["ok"]
    assert env.status(name) == 9
    chunks = env.chunks(name)
    done = [c for c in chunks if c[1] == "PROCESSED"]
    assert 2 <= len(done) < len(chunks)
    assert {c[1] for c in chunks} <= {"PROCESSED", "UNASSIGNED"}
    done_rows = sum(int(c[3]) - int(c[2]) + 1 for c in done)
    assert env.counts("stop_t") == {1: done_rows, 0: 7000 - done_rows}
    assert env.one(f"SELECT message FROM {PE}.user_parallel_execute_tasks WHERE task_name = %s",
                   [name]).endswith("not processed (stopped by stop_task)")
    with env.admin() as conn:
        conn.execute("UPDATE stop_t_ctl SET delay = 0")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.resume_task(%s, force => false)", [name])
    assert env.status(name) == 7
    assert env.counts("stop_t") == {1: 7000}


def test_the_pull_model_and_a_ported_oracle_block(env: Env) -> None:
    env.table("pull_t", "SELECT g FROM generate_series(1, 3000) g")
    with env.op() as conn:
        conn.execute("""
DO $$
DECLARE
  l_chunk_id bigint; l_start_id numeric; l_end_id numeric; l_any_rows boolean;
BEGIN
  CALL dbms_parallel_execute.create_task('pull_task');
  CALL dbms_parallel_execute.create_chunks_by_number_col('pull_task', 'public', 'pull_t',
                                                          'id', 1000);
  LOOP
    CALL dbms_parallel_execute.get_number_col_chunk(task_name => 'pull_task',
        chunk_id => l_chunk_id, start_id => l_start_id, end_id => l_end_id,
        any_rows => l_any_rows);
    EXIT WHEN NOT l_any_rows;
    UPDATE pull_t SET n = n + 1 WHERE id BETWEEN l_start_id AND l_end_id;
    CALL dbms_parallel_execute.set_chunk_status('pull_task', l_chunk_id,
                                                dbms_parallel_execute.processed());
  END LOOP;
END $$""")
    assert env.status("pull_task") == 7
    assert env.counts("pull_t") == {1: 3000}
    # Oracle's own example, ported: chunk by rowid, run, retry while not finished.
    with env.op() as conn:
        conn.execute("""
DO $$
DECLARE
  l_sql_stmt text;
  l_try integer;
  l_status integer;
BEGIN
  CALL dbms_parallel_execute.create_task('mytask');
  CALL dbms_parallel_execute.create_chunks_by_rowid('mytask', 'public', 'pull_t', true, 100);
  l_sql_stmt := 'update pull_t e SET e.n = e.n + 1 WHERE rowid BETWEEN :start_id AND :end_id';
  CALL dbms_parallel_execute.run_task('mytask', l_sql_stmt, 1, parallel_level => 2);
  l_try := 0;
  l_status := dbms_parallel_execute.task_status('mytask');
  WHILE (l_try < 2 AND l_status != dbms_parallel_execute.finished()) LOOP
    l_try := l_try + 1;
    CALL dbms_parallel_execute.resume_task('mytask');
    l_status := dbms_parallel_execute.task_status('mytask');
  END LOOP;
  CALL dbms_parallel_execute.drop_task('mytask');
END $$""")
    assert env.counts("pull_t") == {2: 3000}
    assert env.one(f"SELECT count(*) FROM {PE}.user_parallel_execute_tasks"
                   " WHERE task_name = 'mytask'") == 0


def test_resume_with_force_takes_over_a_processing_task_with_a_new_statement(
        env: Env) -> None:
    env.table("force_t", "SELECT g FROM generate_series(1, 3000) g")
    name = task(env)
    _chunk(env, name, "number", "force_t")
    with env.op() as conn:
        # The pull model leaves the task PROCESSING with nobody running it.
        got = conn.execute(f"CALL {PE}.get_number_col_chunk(%s, NULL, NULL, NULL, NULL)",
                           [name]).fetchone()
        assert got is not None and got[3] is True
        conn.execute("UPDATE force_t SET n = n + 1 WHERE k BETWEEN %s AND %s", [got[1], got[2]])
        conn.execute(f"CALL {PE}.set_chunk_status(%s, %s, 2)", [name, got[0]])
    assert env.status(name) == 6
    _raises(env, f"CALL {PE}.resume_task(%s)", [name], "PE495",
            f"dms: ORA-29495: INVALID_STATE_FOR_RESUME: task {name} is PROCESSING; resume_task "
            "resumes a CRASHED or FINISHED_WITH_ERROR task")
    _raises(env, f"CALL {PE}.resume_task(%s, force => true)", [name], "PE495",
            f"dms: ORA-29495: INVALID_STATE_FOR_RESUME: task {name} has not run a statement: "
            "there is none to resume it with")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.resume_task(task_name => %s, sql_stmt => %s, language_flag => 1,"
                     " parallel_level => 2, force => true)",
                     [name, UPDATE_BY_ID.format(t="force_t")])
    assert env.status(name) == 7
    assert env.counts("force_t") == {1: 3000}


def test_workers_resolve_names_with_the_callers_search_path(env: Env) -> None:
    """An unqualified table in the statement is the one the caller's search_path
    finds, in every worker session too -- not a same-named table in public."""
    env.table("sp_t", "SELECT g FROM generate_series(1, 4000) g")
    with env.admin() as conn:
        conn.execute("DROP SCHEMA IF EXISTS hr CASCADE")
        conn.execute("CREATE SCHEMA hr")
        conn.execute("CREATE TABLE hr.sp_t (LIKE public.sp_t INCLUDING ALL)")
        conn.execute("INSERT INTO hr.sp_t SELECT * FROM public.sp_t")
        conn.execute(f"ALTER TABLE hr.sp_t OWNER TO {env.operator}")
        conn.execute(f"GRANT USAGE ON SCHEMA hr TO {env.operator}")
    name = task(env)
    with env.op() as conn:
        conn.execute(f"CALL {PE}.create_chunks_by_number_col(%s, 'hr', 'sp_t', 'k', 500)",
                     [name])
        conn.execute("SET search_path = hr, public")
        conn.execute(f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 2)",
                     [name, UPDATE_BY_ID.format(t="sp_t")])
    assert env.status(name) == 7
    with env.admin() as conn:
        assert scalar(conn, "SELECT count(*) FILTER (WHERE n = 1) FROM hr.sp_t") == 4000
    assert env.counts("sp_t") == {0: 4000}  # public.sp_t untouched


def test_a_plpgsql_block_runs_per_chunk(env: Env) -> None:
    env.table("blk_t", "SELECT g FROM generate_series(1, 2000) g")
    name = task(env)
    _chunk(env, name, "number", "blk_t")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 2)", [name, """
BEGIN
  UPDATE blk_t SET n = n + 1 WHERE k BETWEEN :start_id AND :end_id;
  IF :start_id > 100000 THEN RAISE EXCEPTION 'never'; END IF;
END;"""])
    assert env.status(name) == 7
    assert env.counts("blk_t") == {1: 2000}


def test_cancelling_run_task_stops_its_workers_and_resume_finishes(env: Env) -> None:
    _slow_table(env, "cancel_t", 0.3)
    name = task(env)
    _chunk(env, name, "number", "cancel_t")
    thread, outcome = _in_thread(env, f"CALL {PE}.run_task(%s, %s, 1, parallel_level => 2)",
                                 [name, SLOW.format(t="cancel_t")])
    with env.admin() as conn:
        pid = wait_for(lambda: conn.execute(
            "SELECT t.coordinator_pid FROM dms.pe_chunk c JOIN dms.pe_task t USING (task_id)"
            " WHERE t.task_name = %s AND c.status = 2 LIMIT 1", [name]).fetchone(),
            what="a chunk done")[0]
        conn.execute("SELECT pg_cancel_backend(%s)", [pid])
    thread.join(60)
    assert isinstance(outcome[0], psycopg.errors.QueryCanceled)
    assert env.status(name) == 9
    with env.admin() as conn:
        # no worker session is left behind, and no chunk is held by a live one
        wait_for(lambda: not scalar(
            conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE"
            " 'dms pe TASK$_%%'"), what="the workers gone")
    assert {c[1] for c in env.chunks(name)} <= {"PROCESSED", "PROCESSED_WITH_ERROR",
                                                "UNASSIGNED", "ASSIGNED"}
    with env.admin() as conn:
        conn.execute("UPDATE cancel_t_ctl SET delay = 0")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.resume_task(%s)", [name])
    assert env.status(name) == 7
    assert env.counts("cancel_t") == {1: 7000}


# ------------------------------------------------------------------ errors

def _raises(env: Env, statement: str, params: list[Any], sqlstate: str, message: str,
            user: str | None = None) -> psycopg.Error:
    with env.op(user) as conn, pytest.raises(psycopg.Error) as err:
        conn.execute(statement, params)
    assert err.value.diag.sqlstate == sqlstate
    assert err.value.diag.message_primary == message
    return err.value


# Each Oracle exception, from a task in the state it needs: (exception, SQLSTATE,
# the task's state before, the call, the message).  {t} is the task, {op} the
# operator, {c} one of the task's chunk ids.
EXCEPTIONS = [
    ("DUPLICATE_TASK_NAME", "PE497", "created", "CALL {pe}.create_task('{t}')",
     "dms: ORA-29497: DUPLICATE_TASK_NAME: {op} already has a task named {t}"),
    ("TASK_NOT_FOUND", "PE498", "created", "SELECT {pe}.task_status('nope')",
     "dms: ORA-29498: TASK_NOT_FOUND: task nope of {op} does not exist"),
    ("INVALID_TABLE", "PE491", "created",
     "CALL {pe}.create_chunks_by_number_col('{t}', 'public', 'no_such', 'id', 10)",
     "dms: ORA-29491: INVALID_TABLE: table public.no_such does not exist"),
    ("INVALID_STATE_FOR_RUN", "PE494", "created",
     "CALL {pe}.run_task('{t}', 'UPDATE err_t SET n = 1 WHERE id BETWEEN :start_id AND "
     ":end_id', 1)",
     "dms: ORA-29494: INVALID_STATE_FOR_RUN: task {t} is CREATED; run_task runs a CHUNKED task"),
    ("INVALID_STATE_FOR_CHUNK", "PE492", "chunked",
     "CALL {pe}.create_chunks_by_rowid('{t}', 'public', 'err_t', true, 10)",
     "dms: ORA-29492: INVALID_STATE_FOR_CHUNK: task {t} is CHUNKED; only a CREATED (or "
     "CHUNKING_FAILED) task is chunked"),
    ("INVALID_STATE_FOR_RESUME", "PE495", "chunked", "CALL {pe}.resume_task('{t}')",
     "dms: ORA-29495: INVALID_STATE_FOR_RESUME: task {t} is CHUNKED; resume_task resumes a "
     "CRASHED or FINISHED_WITH_ERROR task"),
    ("INVALID_STATUS", "PE493", "chunked", "CALL {pe}.set_chunk_status('{t}', {c}, 7)",
     "dms: ORA-29493: INVALID_STATUS: 7 is not a chunk status"),
    ("CHUNK_NOT_FOUND", "PE499", "chunked", "CALL {pe}.set_chunk_status('{t}', -1, 2)",
     "dms: ORA-29499: CHUNK_NOT_FOUND: task {t} has no chunk -1"),
    ("MISSING_ROLE", "PE490", "created", "SELECT {pe}.adm_task_status('{op}', '{t}')",
     "dms: ORA-29490: MISSING_ROLE: {op} may not administer other logins' tasks"),
]


@pytest.mark.parametrize(("exception", "sqlstate", "state", "call", "message"), EXCEPTIONS,
                         ids=[e[0] for e in EXCEPTIONS])
def test_each_oracle_exception_has_its_own_sqlstate(env: Env, exception: str, sqlstate: str,
                                                    state: str, call: str,
                                                    message: str) -> None:
    env.table("err_t", "SELECT g FROM generate_series(1, 100) g")
    name = task(env)
    if state == "chunked":
        _chunk(env, name, "number", "err_t")
    chunks_before = env.chunks(name)
    fill = {"pe": PE, "t": name, "op": env.operator,
            "c": chunks_before[0][0] if chunks_before else 0}
    _raises(env, call.format(**fill), [], sqlstate, message.format(**fill))
    # nothing changed, and PL/pgSQL catches it by its SQLSTATE
    assert env.status(name) == (5 if state == "chunked" else 1)
    assert env.chunks(name) == chunks_before
    env.notices.clear()
    with env.op() as conn:
        conn.execute(f"DO $$ BEGIN {call.format(**fill).replace('SELECT', 'PERFORM')};"
                     f" EXCEPTION WHEN SQLSTATE '{sqlstate}' THEN RAISE NOTICE 'caught %',"
                     " SQLERRM; END $$")
    assert env.notices == [f"caught {message.format(**fill)}"]


def test_bad_statements_are_refused_before_anything_runs(env: Env) -> None:
    env.table("bad_t", "SELECT g FROM generate_series(1, 100) g")
    name = task(env)
    _chunk(env, name, "number", "bad_t")
    run = f"CALL {PE}.run_task(%s, %s, 1)"
    _raises(env, run, [name, "UPDATE bad_t SET n = 1 WHERE k > :start_id"], "42P02",
            "dms: sql_stmt does not use :end_id: every chunk would run on the whole table")
    _raises(env, run, [name, "UPDATE bad_t SET n = :x WHERE k BETWEEN :start_id AND :end_id"],
            "42P02", "dms: sql_stmt uses the placeholder :x; a chunk binds only :start_id and "
            ":end_id")
    _raises(env, run, [name, "UPDATE bad_t SET nope = 1 WHERE k BETWEEN :start_id AND :end_id"],
            "42703", 'dms: sql_stmt cannot run: column "nope" of relation "bad_t" does not exist')
    _raises(env, f"CALL {PE}.run_task(%s, 'SELECT 1 WHERE 1 BETWEEN :start_id AND :end_id', 1,"
            " parallel_level => 65)", [name], "22023",
            "dms: parallel_level must be from 0 to 64, not 65")
    assert env.status(name) == 5  # still CHUNKED: nothing was written
    assert env.counts("bad_t") == {0: 100}
    rowid = task(env)
    _chunk(env, rowid, "rowid", "bad_t")
    _raises(env, run, [rowid, "UPDATE bad_t SET n = 1 WHERE k BETWEEN :start_id AND :end_id"],
            "42601", "dms: sql_stmt of a ROWID_RANGE task does not compare ROWID (or ctid) "
            "with :start_id and :end_id")
    failing = task(env)
    _raises(env, f"CALL {PE}.create_chunks_by_sql(%s, 'SELECT 1/0, 2', false)", [failing],
            "22012", "dms: division by zero")
    assert env.status(failing) == 3  # CHUNKING_FAILED
    _raises(env, f"CALL {PE}.create_chunks_by_sql(%s, 'SELECT 1', false)", [failing],
            "42601", "dms: sql_stmt returns 1 column; a chunk is two: start_id, end_id")


# ------------------------------------------------------------------ roles

def test_a_viewer_is_refused_and_nothing_changes(env: Env, login_role: Any) -> None:
    viewer = login_role("dms_viewer")
    mine = task(env)
    with env.admin() as conn:
        before = scalar(conn, "SELECT count(*) FROM dms.pe_task")
    _raises(env, f"CALL {PE}.create_task('viewer_task')", [], "42501",
            "permission denied for procedure create_task", user=viewer)
    _raises(env, f"CALL {PE}.drop_task(%s)", [mine], "42501",
            "permission denied for procedure drop_task", user=viewer)
    _raises(env, f"SELECT * FROM {PE}.dba_parallel_execute_tasks", [], "42501",
            "permission denied for view dba_parallel_execute_tasks", user=viewer)
    _raises(env, "SELECT * FROM dms.pe_task", [], "42501",
            "permission denied for table pe_task", user=viewer)
    assert env.one(f"SELECT count(*) FROM {PE}.user_parallel_execute_tasks", user=viewer) == 0
    with env.admin() as conn:
        assert scalar(conn, "SELECT count(*) FROM dms.pe_task") == before


def test_another_operator_cannot_see_or_touch_my_task(env: Env, login_role: Any) -> None:
    other = login_role("dms_operator")
    admin = login_role("dms_admin")
    mine = task(env)
    assert env.one(f"SELECT count(*) FROM {PE}.user_parallel_execute_tasks", user=other) == 0
    _raises(env, f"CALL {PE}.drop_task(%s)", [mine], "PE498",
            f"dms: ORA-29498: TASK_NOT_FOUND: task {mine} of {other} does not exist", user=other)
    _raises(env, f"CALL {PE}.run_task(%s, 'SELECT 1 WHERE 1 BETWEEN :start_id AND :end_id', 1)",
            [mine], "PE498",
            f"dms: ORA-29498: TASK_NOT_FOUND: task {mine} of {other} does not exist", user=other)
    assert env.status(mine) == 1
    # An administrator sees every task and may drop it.
    assert env.one(f"SELECT count(*) FROM {PE}.dba_parallel_execute_tasks WHERE task_owner = %s"
                   " AND task_name = %s", [env.operator, mine], user=admin) == 1
    assert env.one(f"SELECT {PE}.adm_task_status(%s, %s)", [env.operator, mine],
                   user=admin) == 1
    with env.op(admin) as conn:
        conn.execute(f"CALL {PE}.adm_drop_task(%s, %s)", [env.operator, mine])
    _raises(env, f"SELECT {PE}.task_status(%s)", [mine], "PE498",
            f"dms: ORA-29498: TASK_NOT_FOUND: task {mine} of {env.operator} does not exist")


def test_another_operator_cannot_work_or_claim_my_chunks(env: Env, login_role: Any) -> None:
    """An attacker with the operator role calls the internal entry points on
    someone else's task directly: refused, and nothing changes."""
    env.table("steal_t", "SELECT g FROM generate_series(1, 1000) g")
    other = login_role("dms_operator")
    mine = task(env)
    _chunk(env, mine, "number", "steal_t")
    with env.admin() as conn:
        task_id = scalar(conn, "SELECT task_id FROM dms.pe_task WHERE task_name = %s", [mine])
    refusal = f"dms: ORA-29498: TASK_NOT_FOUND: task {task_id} of {other} does not exist"
    _raises(env, "CALL dms.pe_work(%s, 1)", [task_id], "PE498", refusal, user=other)
    _raises(env, "SELECT * FROM dms.pe_claim(%s, 'x')", [task_id], "PE498", refusal, user=other)
    _raises(env, "SELECT dms.pe_start_workers(%s, 1, 1)", [task_id], "PE498", refusal,
            user=other)
    _raises(env, "SELECT dms.pe_end_chunk(%s, 1, 2, NULL, NULL)", [task_id], "PE498", refusal,
            user=other)
    _raises(env, "SELECT * FROM dms.pe_begin_run(%s, false, false, '{}')", [mine], "PE498",
            f"dms: ORA-29498: TASK_NOT_FOUND: task {mine} of {other} does not exist",
            user=other)
    assert {c[1] for c in env.chunks(mine)} == {"UNASSIGNED"}
    assert env.status(mine) == 5
    assert env.counts("steal_t") == {0: 1000}


def test_tables_that_cannot_be_chunked_are_refused(env: Env) -> None:
    with env.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS frac_t, part_t CASCADE")
        conn.execute("CREATE TABLE frac_t (x numeric, s text)")
        conn.execute("INSERT INTO frac_t VALUES (1.5, 'a'), (2, 'b')")
        conn.execute("CREATE TABLE part_t (id int) PARTITION BY RANGE (id)")
        conn.execute("CREATE OR REPLACE VIEW frac_v AS SELECT * FROM frac_t")
        conn.execute(f"GRANT SELECT ON frac_t, part_t, frac_v TO {env.operator}")
    name = task(env)
    by_number = f"CALL {PE}.create_chunks_by_number_col(%s, 'public', %s, %s, 10)"
    by_rowid = f"CALL {PE}.create_chunks_by_rowid(%s, 'public', %s, false, 10)"
    _raises(env, by_number, [name, "frac_t", "x"], "PE491",
            "dms: ORA-29491: INVALID_TABLE: column x of public.frac_t has values with a "
            "fractional part: ranges of whole numbers would miss the values between them")
    _raises(env, by_number, [name, "frac_t", "s"], "PE491",
            "dms: ORA-29491: INVALID_TABLE: column s of public.frac_t is text, not a number")
    _raises(env, by_number, [name, "frac_t", "nope"], "PE491",
            "dms: ORA-29491: INVALID_TABLE: column nope of public.frac_t does not exist")
    _raises(env, by_rowid, [name, "part_t"], "PE491",
            "dms: ORA-29491: INVALID_TABLE: public.part_t is partitioned: tuple ids repeat "
            "across its partitions")
    _raises(env, by_rowid, [name, "frac_v"], "PE491",
            "dms: ORA-29491: INVALID_TABLE: public.frac_v has no rowids (it is not a table)")
    _raises(env, f"CALL {PE}.create_chunks_by_rowid(%s, 'public', 'frac_t', false, 0)", [name],
            "22023", "dms: chunk_size must be a whole number from 1, not 0")
    assert env.status(name) == 1  # nothing was written: still CREATED


def test_generate_task_name_and_drop_and_purge(env: Env) -> None:
    env.table("gen_t", "SELECT g FROM generate_series(1, 100) g")
    first = env.one(f"SELECT {PE}.generate_task_name()")
    second = env.one(f"SELECT {PE}.generate_task_name(prefix => 'NIGHTLY_')")
    assert first.startswith("TASK$_") and second.startswith("NIGHTLY_")
    assert first[6:].isdigit() and int(second[8:]) > int(first[6:])
    name = task(env, first)
    _chunk(env, name, "number", "gen_t")
    with env.op() as conn:
        conn.execute(f"CALL {PE}.run_task(%s, %s, 1)", [name, UPDATE_BY_ID.format(t="gen_t")])
        conn.execute(f"CALL {PE}.purge_processed_chunks(%s)", [name])
    assert env.chunks(name) == []
    with env.op() as conn:
        conn.execute(f"CALL {PE}.drop_chunks(%s)", [name])
    assert env.status(name) == 1  # CREATED again
    with env.op() as conn:
        conn.execute(f"CALL {PE}.drop_task(%s)", [name])
    assert env.one(f"SELECT count(*) FROM {PE}.user_parallel_execute_tasks WHERE task_name = %s",
                   [name]) == 0
