"""Fault tolerance, caused for real: killed workers and coordinators, cancelled
reads, failing rows, concurrent changes, stops and resumes, overlapping runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory, wait_for
from tests.integration.engine_env import EngineEnv, make_engine_env

COLUMNS = "id, customer_id, amount, status, note, created_at, ship_date, is_paid, payload"
# slow_id() sleeps a little per row, so chunks take long enough to be hit mid-flight.
SLOW = (f"SELECT slow_id(id) AS id, {COLUMNS.removeprefix('id, ')} FROM orders"
        " WHERE id <= {rows}")
SLOW_FN = ("CREATE OR REPLACE FUNCTION slow_id(x bigint) RETURNS bigint LANGUAGE sql VOLATILE"
           " AS 'SELECT x FROM pg_sleep({seconds})'")


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> EngineEnv:
    environment = make_engine_env(cluster, databases)
    for db in (environment.home, environment.source):
        with environment.connect(db) as conn:
            conn.execute(SLOW_FN.format(seconds=0.0002))
    return environment


def params(**kwargs: Any) -> str:
    """Run parameters; these small test runs are parallel whatever their size."""
    return json.dumps({"min_rows_for_parallel": 0, **kwargs})


class Call(threading.Thread):
    """CALL dms.execute_query_parallel(...) in the background; keeps the error."""

    def __init__(self, env: EngineEnv, *args: Any) -> None:
        super().__init__(daemon=True)
        self.env, self.args = env, args
        self.error: psycopg.Error | None = None
        self.run_id = 0

    def run(self) -> None:
        try:
            self.env.call(*self.args)
        except psycopg.Error as exc:
            self.error = exc


def latest_run(env: EngineEnv) -> int:
    with env.connect() as conn:
        row = conn.execute("SELECT coalesce(max(run_id), 0) FROM dms.run").fetchone()
    assert row is not None
    return int(row[0])


def one(env: EngineEnv, sql: str, *args: Any, db: str | None = None) -> Any:
    with env.connect(db) as conn:
        row = conn.execute(sql, list(args)).fetchone()
    return row[0] if row else None


def no_duplicates(env: EngineEnv, db: str, table: str) -> bool:
    return bool(one(env, f"SELECT count(*) = count(DISTINCT id) FROM {table}", db=db))


@contextmanager
def background(env: EngineEnv, *args: Any) -> Iterator[Call]:
    before = latest_run(env)
    call = Call(env, *args)
    call.start()
    call.run_id = wait_for(lambda: latest_run(env) > before and latest_run(env),
                           what="the run to be recorded")
    try:
        yield call
    finally:
        call.join(timeout=300)


def expected_sum(env: EngineEnv, rows: int) -> tuple[int, int]:
    with env.connect(env.source) as conn:
        conn.execute("DROP TABLE IF EXISTS expected")
        conn.execute(f"CREATE TABLE expected AS SELECT {COLUMNS} FROM orders WHERE id <= {rows}")
    return env.checksum(env.source, "expected")


def test_three_killed_workers_do_not_lose_or_duplicate_a_row(env: EngineEnv) -> None:
    env.empty_target(env.home, "killed")
    rows = 40_000
    expected = expected_sum(env, rows)
    with background(env, None, SLOW.format(rows=rows), None, "public", "killed",
                    params(max_workers=2, chunk_size=1_600)) as call:
        killed: list[int] = []
        for _ in range(3):
            pid = wait_for(lambda: one(
                env, "SELECT worker_pid FROM dms.chunk WHERE run_id = %s AND state = 'RUNNING'"
                " AND worker_pid <> ALL(%s) AND started_at < clock_timestamp() - interval "
                "'50 ms' LIMIT 1", call.run_id, killed), what="a busy worker")
            assert one(env, "SELECT pg_terminate_backend(%s)", pid)
            killed.append(pid)
    assert call.error is None, call.error
    run = env.run(call.run_id)
    assert run["state"] == "SUCCEEDED" and run["chunks_total"] >= 20
    assert env.checksum(env.home, "killed") == expected
    assert no_duplicates(env, env.home, "killed")
    # the killed chunks ran again, and every chunk is in the ledger exactly once
    chunks = env.chunks(call.run_id)
    assert sum(c["attempts"] for c in chunks) >= len(chunks) + 3
    with env.connect() as conn:
        ledger = conn.execute(
            "SELECT count(*), count(DISTINCT chunk_no), sum(rows) FROM dms_ledger.chunk_ledger"
            " WHERE run_uuid = (SELECT run_uuid FROM dms.run WHERE run_id = %s)",
            [call.run_id]).fetchone()
    assert ledger == (len(chunks), len(chunks), rows)


def test_killed_coordinator_then_resume(env: EngineEnv) -> None:
    env.empty_target(env.target)
    rows = 30_000
    expected = expected_sum(env, rows)
    with background(env, env.source_conid, SLOW.format(rows=rows), env.target_conid, "public",
                    "orders", params(max_workers=2, chunk_size=1_500)) as call:
        wait_for(lambda: one(env, "SELECT chunks_done >= 2 FROM dms.run_progress WHERE run_id"
                             " = %s", call.run_id), what="two chunks done")
        coordinator = one(env, "SELECT coordinator_pid FROM dms.run WHERE run_id = %s",
                          call.run_id)
        assert one(env, "SELECT pg_terminate_backend(%s)", coordinator)
    assert call.error is not None  # its session was terminated
    with env.connect() as conn:
        conn.execute("CALL dms.resume_run(%s)", [call.run_id])
    run = env.run(call.run_id)
    assert run["state"] == "SUCCEEDED", run["message"]
    assert env.checksum(env.target, "orders") == expected
    assert no_duplicates(env, env.target, "orders")


def test_check_violation_fails_one_chunk_once_and_resume_reruns_only_it(
    env: EngineEnv,
) -> None:
    with env.connect(env.target) as conn:
        conn.execute("DROP TABLE IF EXISTS checked")
        conn.execute("CREATE TABLE checked (LIKE orders_like INCLUDING ALL, "
                     "CHECK (customer_id <> -1))")
    with env.connect(env.source) as conn:
        conn.execute("UPDATE orders SET customer_id = -1 WHERE id = 7777")
    try:
        with pytest.raises(psycopg.Error):
            env.call(env.source_conid, f"SELECT {COLUMNS} FROM orders", env.target_conid,
                     "public", "checked", params(chunk_size=10_000, max_workers=2))
        run_id = latest_run(env)
        run = env.run(run_id)
        assert run["state"] == "PARTIAL"
        chunks = env.chunks(run_id)
        failed = [c for c in chunks if c["state"] == "FAILED"]
        assert len(failed) == 1
        assert failed[0]["attempts"] == 1
        assert failed[0]["sqlstate"] == "23514"
        assert failed[0]["last_error"].startswith(
            'new row for relation "checked" violates check constraint "checked_customer_id_check"')
        done_before = {c["chunk_no"]: c["ended_at"] for c in chunks if c["state"] == "DONE"}
        assert len(done_before) == len(chunks) - 1
    finally:
        with env.connect(env.source) as conn:  # fix the data
            conn.execute("UPDATE orders SET customer_id = 1 + (abs(hashint8(id * 7 + 1)) "
                         "% 100000)::int WHERE id = 7777")
    with env.connect() as conn:
        conn.execute("CALL dms.resume_run(%s)", [run_id])
    chunks = env.chunks(run_id)
    assert env.run(run_id)["state"] == "SUCCEEDED"
    assert {c["chunk_no"]: c["ended_at"] for c in chunks
            if c["chunk_no"] in done_before} == done_before  # untouched
    rerun = next(c for c in chunks if c["chunk_no"] == failed[0]["chunk_no"])
    assert (rerun["state"], rerun["attempts"]) == ("DONE", 2)
    assert env.checksum(env.target, "checked") == env.checksum(env.source, "orders")


def test_terminated_source_session_is_retried(env: EngineEnv) -> None:
    env.empty_target(env.target)
    rows = 20_000
    expected = expected_sum(env, rows)
    with background(env, env.source_conid, SLOW.format(rows=rows), env.target_conid, "public",
                    "orders", params(max_workers=2, chunk_size=2_000,
                                     retry_initial_delay=0.1)) as call:
        pid = wait_for(lambda: one(
            env, "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
            " AND application_name = %s LIMIT 1", env.source, f"dms worker run {call.run_id} data"),
            what="a worker reading the source")
        assert one(env, "SELECT pg_terminate_backend(%s)", pid)
    assert call.error is None, call.error
    assert env.run(call.run_id)["state"] == "SUCCEEDED"
    retried = [c for c in env.chunks(call.run_id) if c["attempts"] > 1]
    assert retried, "no chunk was retried"
    assert env.checksum(env.target, "orders") == expected
    assert no_duplicates(env, env.target, "orders")


def test_failed_truncate_and_load_leaves_the_target_as_it_was(env: EngineEnv) -> None:
    with env.connect(env.target) as conn:
        conn.execute("DROP TABLE IF EXISTS kept")
        conn.execute("CREATE TABLE kept (LIKE orders_like INCLUDING ALL, "
                     "CHECK (status <> 'cancelled' OR id < 100000))")
        conn.execute("INSERT INTO kept SELECT * FROM orders_like")  # empty: fill from source
    env.call(env.source_conid, f"SELECT {COLUMNS} FROM orders WHERE id <= 5000",
             env.target_conid, "public", "kept", "{}")
    before = env.checksum(env.target, "kept")
    assert before[0] == 5000
    with pytest.raises(psycopg.Error) as err:
        env.call(env.source_conid, f"SELECT {COLUMNS} FROM orders", env.target_conid, "public",
                 "kept", params(write_mode="truncate", chunk_size=10_000, max_workers=2))
    assert "violates check constraint" in (err.value.diag.message_primary or "")
    assert env.checksum(env.target, "kept") == before  # old contents, untouched
    run = env.run(latest_run(env))
    assert run["state"] in ("PARTIAL", "FAILED")


def test_reads_are_consistent_while_the_source_changes(env: EngineEnv) -> None:
    env.empty_target(env.target)
    rows = 20_000
    expected = expected_sum(env, rows)
    try:
        with background(env, env.source_conid, SLOW.format(rows=rows), env.target_conid,
                        "public", "orders", params(max_workers=2, chunk_size=2_000)) as call:
            wait_for(lambda: one(env, "SELECT chunks_done >= 1 FROM dms.run_progress"
                                 " WHERE run_id = %s", call.run_id), what="a chunk done")
            with env.connect(env.source) as conn:
                conn.execute("UPDATE orders SET amount = amount + 1 WHERE id %% 3 = 0"
                             " AND id <= %s", [rows])
                conn.execute("INSERT INTO orders SELECT id + 1000000, customer_id, amount,"
                             " status, note, created_at, ship_date, is_paid, payload"
                             " FROM orders WHERE id <= 500")
                conn.execute("UPDATE orders SET id = -id WHERE id BETWEEN 100 AND 120")
        assert call.error is None, call.error
        assert env.checksum(env.target, "orders") == expected  # as of the run's start
    finally:
        with env.connect(env.source) as conn:
            conn.execute("UPDATE orders SET id = -id WHERE id BETWEEN -120 AND -100")
            conn.execute("DELETE FROM orders WHERE id > 1000000")
            conn.execute("UPDATE orders SET amount = amount - 1 WHERE id %% 3 = 0 AND id <= %s",
                         [rows])


def test_stop_returns_quickly_and_resume_completes_exactly(env: EngineEnv) -> None:
    env.empty_target(env.target)
    rows = 40_000
    expected = expected_sum(env, rows)
    with env.connect(env.source) as conn:  # about a second per chunk
        conn.execute(SLOW_FN.format(seconds=0.0005))
    try:
        with background(env, env.source_conid, SLOW.format(rows=rows), env.target_conid,
                        "public", "orders", params(max_workers=2, chunk_size=2_000)) as call:
            wait_for(lambda: one(env, "SELECT chunks_done >= 2 FROM dms.run_progress"
                                 " WHERE run_id = %s", call.run_id), what="two chunks done")
            chunk_seconds = one(env, "SELECT max(extract(epoch FROM ended_at - started_at))"
                                " FROM dms.chunk WHERE run_id = %s AND state = 'DONE'",
                                call.run_id)
            started = time.monotonic()
            with env.connect() as conn:
                conn.execute("CALL dms.stop_run(%s)", [call.run_id])
            took = time.monotonic() - started
        assert took <= float(chunk_seconds) + 2.0, (took, chunk_seconds)
        run = env.run(call.run_id)
        assert run["state"] == "STOPPED" and run["chunks_pending"] > 0
        assert call.error is not None
        assert f"run {call.run_id} STOPPED" in (call.error.diag.message_primary or "")
    finally:
        with env.connect(env.source) as conn:
            conn.execute(SLOW_FN.format(seconds=0.0002))
    with env.connect() as conn:
        conn.execute("CALL dms.resume_run(%s)", [call.run_id])
    assert env.run(call.run_id)["state"] == "SUCCEEDED"
    assert env.checksum(env.target, "orders") == expected
    assert no_duplicates(env, env.target, "orders")


def test_second_run_on_the_same_target_is_refused_or_queued(env: EngineEnv) -> None:
    env.empty_target(env.target)
    rows = 10_000
    with background(env, env.source_conid, SLOW.format(rows=rows), env.target_conid, "public",
                    "orders", params(max_workers=2, chunk_size=1_000)) as first:
        wait_for(lambda: one(env, "SELECT state = 'RUNNING' FROM dms.run WHERE run_id = %s",
                             first.run_id), what="the first run to start")
        with pytest.raises(psycopg.Error) as err:
            env.call(env.source_conid, f"SELECT {COLUMNS} FROM orders WHERE id > 100000",
                     env.target_conid, "public", "orders", "{}")
        assert err.value.diag.sqlstate == "55006"
        assert (err.value.diag.message_primary or "").startswith(
            f'dms: target "public"."orders" is being loaded by run {first.run_id} (RUNNING,')
        # queued behind it, it runs once the first is done
        second = env.call(env.source_conid, f"SELECT {COLUMNS} FROM orders WHERE id > 100000",
                          env.target_conid, "public", "orders", params(if_busy="queue"))
    assert first.error is None
    assert env.run(second)["state"] == "SUCCEEDED"
    assert env.run(second)["started_at"] >= env.run(first.run_id)["ended_at"]
    assert env.checksum(env.target, "orders")[0] == rows + 20_000


def test_truncate_resume_loads_under_the_targets_current_constraints(env: EngineEnv) -> None:
    """docs/operations.md: a row the target's CHECK refuses fails its chunk; drop (or
    fix) the constraint and resume.  The staging table must follow the target."""
    with env.connect(env.target) as conn:
        conn.execute("DROP TABLE IF EXISTS guarded_load")
        conn.execute("CREATE TABLE guarded_load (LIKE orders_like INCLUDING ALL,"
                     " CONSTRAINT no_negative_customer CHECK (customer_id <> -1),"
                     " CONSTRAINT known_status CHECK (status IS NOT NULL))")
        conn.execute("INSERT INTO guarded_load SELECT * FROM orders_like")  # empty
    with env.connect(env.source) as conn:
        conn.execute("UPDATE orders SET customer_id = -1 WHERE id = 4321")
    try:
        with pytest.raises(psycopg.Error) as err:
            env.call(env.source_conid, f"SELECT {COLUMNS} FROM orders WHERE id <= 20000",
                     env.target_conid, "public", "guarded_load",
                     params(write_mode="truncate", chunk_size=5_000, max_workers=2))
        assert 'violates check constraint "no_negative_customer"' in (
            err.value.diag.message_primary or "")
        run_id = latest_run(env)
        failed = [c for c in env.chunks(run_id) if c["state"] == "FAILED"]
        assert [c["sqlstate"] for c in failed] == ["23514"]
        # the database's DETAIL says which row: the chunk's error keeps it
        assert "violates check constraint \"no_negative_customer\" (DETAIL: Failing row " \
            "contains (4321, -1, " in failed[0]["last_error"]
        assert env.checksum(env.target, "guarded_load")[0] == 0  # the target untouched
        # the documented fix: the constraint goes, the run resumes
        with env.connect(env.target) as conn:
            conn.execute("ALTER TABLE guarded_load DROP CONSTRAINT no_negative_customer")
        with env.connect() as conn:
            conn.execute("CALL dms.resume_run(%s)", [run_id])
        assert env.run(run_id)["state"] == "SUCCEEDED"
        expected = expected_sum(env, 20_000)  # the source as it is, the -1 included
        assert env.checksum(env.target, "guarded_load") == expected
        with env.connect(env.target) as conn:
            kept = conn.execute("SELECT conname FROM pg_constraint WHERE conrelid ="
                                " 'guarded_load'::regclass AND contype = 'c'").fetchall()
        assert kept == [("known_status",)]  # the target's other CHECK stays
    finally:
        with env.connect(env.source) as conn:
            conn.execute("UPDATE orders SET customer_id = 1 + (abs(hashint8(id * 7 + 1)) "
                         "% 100000)::int WHERE id = 4321")


def test_a_chunk_left_running_under_the_resuming_sessions_own_pid_is_taken_again(
        env: EngineEnv) -> None:
    """A chunk a coordinator moved itself (one worker) that stayed RUNNING after
    its attempt was cut short (a cancel while the failure was recorded) names
    the coordinator's own backend as its worker.  That backend is alive, so the
    chunk looked taken for good: a resume from the same session waited for it
    forever.  Nothing can be moving it while this session resumes the run, so
    it goes back to the queue (the ledger keeps it from being loaded twice).
    The recorded state is made directly: the cut cannot be timed for real."""
    env.empty_target(env.target)
    rows = 6_000
    expected = expected_sum(env, rows)
    run_id = env.call(env.source_conid, SLOW.format(rows=rows).replace("slow_id(id)", "id"),
                      env.target_conid, "public", "orders",
                      params(max_workers=2, chunk_size=1_500))
    assert env.run(run_id)["state"] == "SUCCEEDED"
    with env.connect() as conn:
        conn.execute("SET statement_timeout = '30s'")  # a hang fails the test
        pid = conn.info.backend_pid
        one(env, "UPDATE dms.run SET state = 'FAILED' WHERE run_id = %s RETURNING run_id",
            run_id)
        one(env, "UPDATE dms.chunk SET state = 'RUNNING', worker_pid = %s, started_at ="
                 " clock_timestamp() WHERE run_id = %s AND chunk_no = 2 RETURNING chunk_no",
            pid, run_id)
        conn.execute("CALL dms.resume_run(%s)", [run_id])
    run = env.run(run_id)
    assert run["state"] == "SUCCEEDED", run["message"]
    assert [c["state"] for c in env.chunks(run_id)] == ["DONE"] * len(env.chunks(run_id))
    assert env.checksum(env.target, "orders") == expected
    assert no_duplicates(env, env.target, "orders")
