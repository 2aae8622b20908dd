"""A backend running the engine stays interruptible however it waits (issue 15).

The worker's data statement waits on a lock held by another session.  The
backend that runs ``CALL dms.execute_query_parallel`` waits for that
statement over a loopback connection; it used to sit in libpq, deaf to
``pg_terminate_backend`` and to the ProcSignalBarrier that ``DROP DATABASE``
(of any database in the cluster) waits for.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.conftest import Cluster, DatabaseFactory, wait_for

ROWS = 2000


@pytest.fixture(scope="module")
def home(cluster: Cluster, databases: DatabaseFactory) -> str:
    name = databases.create(installed=True)
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE src AS SELECT g::bigint AS id FROM generate_series(1, %s) g",
                     [ROWS])
        conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
    return name


def _start_blocked_run(cluster: Cluster, home: str, table: str
                       ) -> tuple[psycopg.Connection[Any], threading.Thread, list[BaseException],
                                  int]:
    """Hold a row lock on ``table``, start a run loading it in a thread; return the holder,
    the thread, its errors and the pid of the backend running the CALL once its
    data statement waits on the lock."""
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY)").format(
            sql.Identifier(table)))
    # An uncommitted row with a key the run loads: the run's INSERT waits for
    # this transaction (planning reads and probes the table, and does not).
    holder = psycopg.connect(cluster.dsn(home))
    holder.execute(sql.SQL("INSERT INTO {} VALUES (5)").format(sql.Identifier(table)))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(cluster.dsn(home), autocommit=True,
                                 application_name="interrupt-test") as conn:
                conn.execute("CALL dms.execute_query_parallel(NULL, 'SELECT id FROM src', NULL,"
                             " 'public', %s, %s::jsonb)",
                             [table, json.dumps({"max_workers": 1, "snapshot": False})])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    with psycopg.connect(cluster.dsn(home), autocommit=True) as watch:
        wait_for(lambda: watch.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'dms worker run % data'"
            " AND wait_event_type = 'Lock' AND datname = current_database()").fetchone(),
            60, "the data statement to wait on the lock")
        pid = watch.execute("SELECT pid FROM pg_stat_activity"
                            " WHERE application_name = 'interrupt-test'").fetchone()
    assert pid is not None
    return holder, thread, errors, int(pid[0])


def _gone(cluster: Cluster, pid: int) -> bool:
    with cluster.admin() as conn:
        return conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                            [pid]).fetchone() is None


def test_terminate_ends_a_backend_waiting_on_its_data_statement(
        cluster: Cluster, home: str, databases: DatabaseFactory) -> None:
    scratch = databases.create()
    holder, thread, _errors, pid = _start_blocked_run(cluster, home, "t_terminate")
    try:
        with cluster.admin() as conn:
            # DROP DATABASE waits for every backend to absorb a barrier: within
            # the timeout now, where it used to hang as long as the lock was held.
            conn.execute("SET statement_timeout = '20s'")
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(scratch)))
            databases.created.remove(scratch)
            assert conn.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        wait_for(lambda: _gone(cluster, pid), 20, "the terminated backend to end")
        thread.join(20)
        assert not thread.is_alive()
    finally:
        holder.rollback()
        holder.close()
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        # Its data session went with it: nothing was loaded, nothing waits.
        wait_for(lambda: conn.execute(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name LIKE"
            " 'dms worker run % data'").fetchone()[0], 20, "the data session to end")  # type: ignore[index]
        assert conn.execute("SELECT count(*) FROM t_terminate").fetchone() == (0,)


def test_cancel_ends_the_call_and_the_run_resumes(cluster: Cluster, home: str) -> None:
    holder, thread, errors, pid = _start_blocked_run(cluster, home, "t_cancel")
    try:
        with cluster.admin() as conn:
            assert conn.execute("SELECT pg_cancel_backend(%s)", [pid]).fetchone() == (True,)
        thread.join(20)
        assert not thread.is_alive()
    finally:
        holder.rollback()
        holder.close()
    assert len(errors) == 1 and isinstance(errors[0], psycopg.errors.QueryCanceled)
    assert str(errors[0].diag.message_primary).endswith(
        "canceling statement due to user request")
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        run_id, state = conn.execute(
            "SELECT run_id, state FROM dms.run WHERE target_table = 't_cancel'").fetchone()  # type: ignore[misc]
        assert state == "FAILED"
        # The chunk being moved went back to the queue; none is left running.
        assert conn.execute("SELECT count(*) FILTER (WHERE state = 'RUNNING'),"
                            " count(*) FILTER (WHERE state = 'PENDING') > 0 FROM dms.chunk"
                            " WHERE run_id = %s", [run_id]).fetchone() == (0, True)
        conn.execute("CALL dms.resume_run(%s)", [run_id])
        assert conn.execute("SELECT state FROM dms.run WHERE run_id = %s",
                            [run_id]).fetchone() == ("SUCCEEDED",)
        assert conn.execute("SELECT count(*), sum(id) FROM t_cancel").fetchone() == (
            ROWS, ROWS * (ROWS + 1) // 2)
