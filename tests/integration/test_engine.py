"""The parallel engine on the real cluster: moves, progress, parallelism, bad input."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.engine_env import ORDERS_ROWS, EngineEnv, make_engine_env

ORDERS_SQL = ("SELECT id, customer_id, amount, status, note, created_at, ship_date, is_paid,"
              " payload FROM orders")


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> EngineEnv:
    return make_engine_env(cluster, databases)


def params(**kwargs: Any) -> str:
    return json.dumps(kwargs)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_same_database_move(env: EngineEnv, workers: int) -> None:
    env.empty_target(env.home, "orders_copy")
    run_id = env.call(None, ORDERS_SQL, None, "public", "orders_copy",
                      params(max_workers=workers, chunk_size=15_000))
    run = env.run(run_id)
    assert run["state"] == "SUCCEEDED"
    assert run["path"] == "same_db"
    assert run["workers"] == workers
    assert run["chunks_done"] == run["chunks_total"] >= 8
    assert run["rows_done"] == ORDERS_ROWS
    assert env.checksum(env.home, "orders_copy") == env.checksum(env.home, "orders")


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_cross_database_move(env: EngineEnv, workers: int) -> None:
    env.empty_target(env.target)
    run_id = env.call(env.source_conid, ORDERS_SQL, env.target_conid, "public", "orders",
                      params(max_workers=workers, chunk_size=15_000))
    run = env.run(run_id)
    assert run["state"] == "SUCCEEDED"
    assert run["path"] == "copy_binary"
    assert run["workers"] == workers
    assert run["rows_done"] == ORDERS_ROWS
    assert run["bytes_done"] > 0
    assert env.checksum(env.target, "orders") == env.checksum(env.source, "orders")


def test_remote_source_into_this_database(env: EngineEnv) -> None:
    env.empty_target(env.home, "orders_in")
    run_id = env.call(env.source_conid, ORDERS_SQL + " WHERE status <> 'cancelled'", None,
                      "public", "orders_in", params(max_workers=2, chunk_size=20_000))
    assert env.run(run_id)["path"] == "copy_binary"
    with env.connect(env.source) as conn:
        row = conn.execute("SELECT count(*) FROM orders WHERE status <> 'cancelled'").fetchone()
    assert row is not None
    assert env.checksum(env.home, "orders_in")[0] == row[0]


def test_progress_is_visible_from_another_session_and_workers_overlap(env: EngineEnv) -> None:
    env.empty_target(env.target)
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def watch() -> None:
        with env.connect() as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT chunks_done, chunks_total FROM dms.run_progress"
                    " WHERE state = 'RUNNING' ORDER BY run_id DESC LIMIT 1"
                ).fetchone()
                if row:
                    seen.append((int(row[0]), int(row[1])))
                time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_id = env.call(env.source_conid, ORDERS_SQL, env.target_conid, "public", "orders",
                          params(max_workers=2, chunk_size=4_000))
    finally:
        done.set()
        watcher.join()
    assert any(0 < d < t for d, t in seen), seen[:20]
    with env.connect() as conn:
        overlapping = conn.execute(
            "SELECT count(*) FROM dms.chunk a JOIN dms.chunk b"
            "  ON a.run_id = b.run_id AND a.worker_pid <> b.worker_pid"
            "  AND a.started_at < b.ended_at AND b.started_at < a.ended_at"
            " WHERE a.run_id = %s",
            [run_id],
        ).fetchone()
        pids = conn.execute("SELECT count(DISTINCT worker_pid) FROM dms.chunk WHERE run_id = %s",
                            [run_id]).fetchone()
    assert pids is not None and pids[0] == 2
    assert overlapping is not None and overlapping[0] > 0


def test_below_threshold_runs_sequentially_and_says_so(env: EngineEnv) -> None:
    env.empty_target(env.target)
    run_id = env.call(env.source_conid, ORDERS_SQL + " WHERE id <= 5000", env.target_conid,
                      "public", "orders", params(max_workers=4, chunk_size=1000))
    run = env.run(run_id)
    assert run["state"] == "SUCCEEDED"
    assert run["workers"] == 1
    # The server's estimate for the filtered query, not the table's 120,000 rows.
    note = re.fullmatch(
        r"sequential: about ([\d,]+) rows estimated, below min_rows_for_parallel \(100,000\)",
        run["parallel_note"],
    )
    assert note is not None, run["parallel_note"]
    assert 4000 <= int(note.group(1).replace(",", "")) <= 6000
    with env.connect() as conn:
        pids = conn.execute("SELECT count(DISTINCT worker_pid) FROM dms.chunk WHERE run_id = %s",
                            [run_id]).fetchone()
    assert pids == (1,)
    assert env.checksum(env.target, "orders")[0] == 5000


def test_enable_parallel_false_is_sequential(env: EngineEnv) -> None:
    env.empty_target(env.target)
    run_id = env.call(env.source_conid, ORDERS_SQL, env.target_conid, "public", "orders",
                      params(max_workers=4, enable_parallel=False, chunk_size=30_000))
    run = env.run(run_id)
    assert (run["workers"], run["parallel_note"]) == (1, "sequential: enable_parallel is false")


def test_create_target_and_truncate(env: EngineEnv) -> None:
    with env.connect(env.target) as conn:
        conn.execute("DROP TABLE IF EXISTS made_here")
    run_id = env.call(env.source_conid, "SELECT id, status, amount FROM orders WHERE id <= 3000",
                      env.target_conid, "public", "made_here",
                      params(create_target=True))
    assert env.run(run_id)["state"] == "SUCCEEDED"
    with env.connect(env.target) as conn:
        types = conn.execute(
            "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum)"
            " FROM pg_attribute WHERE attrelid = 'made_here'::regclass AND attnum > 0"
        ).fetchone()
    assert types == ("bigint, text, numeric(12,2)",)
    # truncate: a second load replaces the rows instead of adding to them
    env.call(env.source_conid, "SELECT id, status, amount FROM orders WHERE id <= 1000",
             env.target_conid, "public", "made_here", params(write_mode="truncate"))
    assert env.checksum(env.target, "made_here")[0] == 1000


def test_columns_are_matched_by_name_and_cast(env: EngineEnv) -> None:
    """Columns in another order, one of another (assignable) type."""
    with env.connect(env.target) as conn:
        conn.execute("DROP TABLE IF EXISTS narrow")
        conn.execute("CREATE TABLE narrow (status text, amount numeric, id integer, "
                     "extra text DEFAULT 'x')")
    env.call(env.source_conid, "SELECT id, amount, status FROM orders WHERE id <= 2000",
             env.target_conid, "public", "narrow", "{}")
    with env.connect(env.target) as conn:
        row = conn.execute("SELECT count(*), sum(id), min(extra) FROM narrow").fetchone()
    assert row == (2000, 2001000, "x")


def test_submit_returns_at_once_and_dms_worker_carries_it_out(env: EngineEnv) -> None:
    import subprocess
    import sys

    env.empty_target(env.target)
    with env.connect() as conn:
        row = conn.execute(
            "SELECT dms.submit_query_parallel(%s, %s, %s, 'public', 'orders', %s::jsonb)",
            [env.source_conid, ORDERS_SQL, env.target_conid, params(max_workers=2)],
        ).fetchone()
    assert row is not None
    run_id = int(row[0])
    assert env.run(run_id)["state"] == "QUEUED"
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "worker", "--run-id", str(run_id),
         "--dsn", env.dsn()],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"run {run_id}: started; now SUCCEEDED" in done.stdout
    assert env.checksum(env.target, "orders") == env.checksum(env.source, "orders")


def test_submit_then_dispatch(env: EngineEnv) -> None:
    env.empty_target(env.target)
    with env.connect() as conn:
        row = conn.execute(
            "SELECT dms.submit_query_parallel(%s, %s, %s, 'public', 'orders')",
            [env.source_conid, ORDERS_SQL + " WHERE id <= 50000", env.target_conid],
        ).fetchone()
        assert row is not None
        conn.execute("CALL dms.dispatch()")
    assert env.run(int(row[0]))["state"] == "SUCCEEDED"
    assert env.checksum(env.target, "orders")[0] == 50000


def test_failed_chunks_make_the_call_raise_with_the_database_message(env: EngineEnv) -> None:
    with env.connect(env.target) as conn:
        conn.execute("DROP TABLE IF EXISTS picky")
        conn.execute("CREATE TABLE picky (id bigint, amount numeric CHECK (amount < 50000))")
    with pytest.raises(psycopg.errors.RaiseException) as err:
        env.call(env.source_conid, "SELECT id, amount FROM orders", env.target_conid,
                 "public", "picky", params(chunk_size=20_000))
    message = err.value.diag.message_primary or ""
    assert message.startswith("dms: run ")
    assert '[23514] new row for relation "picky" violates check constraint "picky_amount_check"' \
        in message
    with env.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        run = cur.execute("SELECT * FROM dms.run_progress ORDER BY run_id DESC LIMIT 1"
                          ).fetchone()
    # Every chunk with rows failed; only the (empty) NULL-key chunk went through.
    assert run is not None
    assert (run["state"], run["rows_done"], run["chunks_done"]) == ("PARTIAL", 0, 1)
    assert env.checksum(env.target, "picky")[0] == 0


# ------------------------------------------------------------------ bad input


VALID_SQL = "SELECT id, customer_id, amount, status, created_at, is_paid FROM orders"
BAD_INPUT = [
    ({"source_conid": 999}, "42704",
     "dms: source connection 999 does not exist in DMS_DBCONDTLS (or is not current)"),
    ({"table": "no_such_table"}, "42P01",
     'dms: target table "public"."no_such_table" does not exist'),
    ({"sql": VALID_SQL.replace(" FROM", ", 1 AS bonus FROM")}, "42703",
     'dms: source column "bonus" has no column of that name in target "public"."orders"'),
    ({"sql": VALID_SQL.replace("amount,", "created_at AS amount,").replace(
        ", created_at,", ", ship_date AS created_at,")}, "42804",
     'dms: the source columns do not fit the target "public"."orders": column "amount" is of '
     "type numeric but expression is of type timestamp with time zone"),
    ({"params": {"max_workers": 0}}, "22023",
     "dms: max_workers must be from 1 to 64, got 0 (from p_params)"),
    ({"params": {"max_workers": 65}}, "22023",
     "dms: max_workers must be from 1 to 64, got 65 (from p_params)"),
    ({"params": {"chunk_size": 0}}, "22023",
     "dms: chunk_size must be from 1 to 1e+09, got 0 (from p_params)"),
    ({"params": {"max_worker": 2}}, "22023",
     'dms: unknown parameter "max_worker" in p_params; did you mean "max_workers"?'),
    ({"params": {"write_mode": "merge"}}, "22023",
     "dms: write_mode must be one of append, truncate, got 'merge' (from p_params)"),
    ({"params": {"path": "same_db"}}, "22023",
     'dms: path "same_db" needs the source and the target in one database, but the source is '
     "connection {source} (src) and the target is connection {target} (dst)"),
    ({"sql": "SELECT id FROM orders WHERE"}, "42601",
     'dms: cannot parse source SQL as postgres at line 1, column 27 near "WHERE": '
     "WHERE is incomplete"),
    ({"sql": VALID_SQL.replace("status", "no_such_column")}, "42703",
     'dms: the source query fails on connection {source} (src): column "no_such_column" does '
     "not exist"),
]


@pytest.mark.parametrize(("change", "sqlstate", "message"), BAD_INPUT)
def test_bad_input_is_refused_before_anything_moves(
    env: EngineEnv, change: dict[str, Any], sqlstate: str, message: str
) -> None:
    env.empty_target(env.target)
    with env.connect(env.target) as conn:
        conn.execute("INSERT INTO orders SELECT * FROM orders_like")  # stays empty
    runs_before = env.count_runs()
    args = {
        "source_conid": env.source_conid, "sql": VALID_SQL,
        "target_conid": env.target_conid, "schema": "public", "table": "orders",
        "params": {},
    }
    args.update(change)
    with pytest.raises(psycopg.Error) as err:
        env.call(args["source_conid"], args["sql"], args["target_conid"], args["schema"],
                 args["table"], json.dumps(args["params"]))
    assert err.value.diag.sqlstate == sqlstate
    assert err.value.diag.message_primary == message.format(
        source=env.source_conid, target=env.target_conid)
    assert env.count_runs() == runs_before  # no run recorded
    assert env.checksum(env.target, "orders")[0] == 0  # nothing written


def test_non_object_params_are_refused(env: EngineEnv) -> None:
    with pytest.raises(psycopg.Error) as err:
        env.call(env.source_conid, ORDERS_SQL, env.target_conid, "public", "orders", "[1, 2]")
    assert err.value.diag.message_primary == "dms: p_params must be a JSON object, got list"


def test_viewer_cannot_run(env: EngineEnv, login_role: Any) -> None:
    viewer = login_role("dms_viewer")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        env.call(env.source_conid, ORDERS_SQL, env.target_conid, "public", "orders", "{}",
                 user=viewer)
    assert str(err.value).startswith("permission denied for procedure execute_query_parallel")


def test_operator_runs_with_own_privileges(env: EngineEnv, login_role: Any) -> None:
    """Workers become the caller: an operator cannot load a table it may not write."""
    operator = login_role("dms_operator")
    with env.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS guarded")
        conn.execute("CREATE TABLE guarded (LIKE orders_like)")
        conn.execute(f'GRANT SELECT ON orders TO "{operator}"')
    try:
        with pytest.raises(psycopg.Error) as err:
            env.call(None, ORDERS_SQL, None, "public", "guarded", params(max_workers=2),
                     user=operator)
        assert err.value.diag.message_primary == (
            'dms: cannot load target "public"."guarded": permission denied for table guarded'
        )
        with env.connect() as conn:
            conn.execute(f'GRANT INSERT ON guarded TO "{operator}"')
        run_id = env.call(None, ORDERS_SQL, None, "public", "guarded",
                          params(max_workers=2, chunk_size=30_000), user=operator)
        run = env.run(run_id)
        assert (run["state"], run["workers"], run["created_by"]) == ("SUCCEEDED", 2, operator)
        assert env.checksum(env.home, "guarded") == env.checksum(env.home, "orders")
    finally:
        with env.connect() as conn:  # the role is dropped after the test
            conn.execute(f'REVOKE ALL ON orders, guarded FROM "{operator}"')


def test_dms_run_watch_and_status_commands(env: EngineEnv) -> None:
    import subprocess
    import sys

    env.empty_target(env.home, "orders_cli")
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "run", "--dsn", env.dsn(), "--sql", ORDERS_SQL,
         "--table", "orders_cli", "--params", params(max_workers=2)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = int(done.stdout.split()[1])  # "run N submitted"
    assert f"run {run_id} SUCCEEDED: {ORDERS_ROWS} rows in" in done.stdout
    assert env.checksum(env.home, "orders_cli") == env.checksum(env.home, "orders")
    watched = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "watch", str(run_id), "--dsn", env.dsn()],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert watched.returncode == 0 and "100.0%" in watched.stdout
    status = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "status", "--dsn", env.dsn(), "--limit", "3"],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert status.returncode == 0
    assert "orders -> public.orders_cli" in status.stdout and "SUCCEEDED" in status.stdout
