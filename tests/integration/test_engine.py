"""The parallel engine on the real cluster: moves, progress, parallelism, bad input."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.integration.conftest import Cluster, DatabaseFactory, wait_for
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


def test_dms_run_watch_and_status_speak_json(env: EngineEnv, tmp_path: Any) -> None:
    """docs/json.md: stdout is JSON only, with the documented fields and values
    that agree with the database."""
    import json
    import subprocess
    import sys

    from dms_pkg import cli_json

    def dms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dms_pkg.cli", *args, "--dsn", env.dsn()],
                              capture_output=True, text=True, check=False, timeout=300,
                              cwd=tmp_path)

    env.empty_target(env.home, "orders_json")
    done = dms("run", "--sql", ORDERS_SQL, "--table", "orders_json", "--params",
               params(max_workers=2), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(done.stdout)
    assert set(run) == {"kind", "version", *cli_json.PROGRESS_FIELDS, "final"}
    assert (run["kind"], run["state"], run["rows_done"], run["final"]) == (
        "run", "SUCCEEDED", ORDERS_ROWS, True)
    assert run["chunks_done"] == run["chunks_total"] == len(env.chunks(run["run_id"]))
    assert env.checksum(env.home, "orders_json") == env.checksum(env.home, "orders")

    watched = dms("watch", str(run["run_id"]), "--json")
    assert watched.returncode == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert lines[-1]["final"] is True and lines[-1]["state"] == "SUCCEEDED"
    assert lines[-1]["picture_png"].endswith(f"run-{run['run_id']}.png")
    assert (tmp_path / lines[-1]["picture_png"]).is_file()

    status = dms("status", "--limit", "2", "--json")
    runs = json.loads(status.stdout)["runs"]
    assert runs[0]["run_id"] == run["run_id"] and runs[0]["state"] == "SUCCEEDED"
    assert runs[0]["rows_done"] == ORDERS_ROWS and isinstance(runs[0]["elapsed_s"], float)

    failed = dms("run", "--sql", "SELECT * FROM no_such_table", "--table", "orders_json",
                 "--json")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("dms: error: table no_such_table does not exist on the "
                                    "postgres source")


# ------------------------------------------------- what the run says about itself


@pytest.fixture
def operator_on(env: EngineEnv, login_role: Any) -> Iterator[Callable[..., str]]:
    """Make a login that is only a member of dms_operator, with GRANTs in the home
    database (each "<privileges> ON <objects>"); its grants there go afterwards."""
    made: list[str] = []

    def make(*grants: str) -> str:
        name = str(login_role("dms_operator"))
        made.append(name)
        with env.connect() as conn:
            for grant in grants:
                conn.execute(f'GRANT {grant} TO "{name}"')
        return name

    yield make
    with env.connect() as conn:
        for name in made:
            conn.execute(f'DROP OWNED BY "{name}"')  # here: its privileges


def _call_noting(env: EngineEnv, user: str | None, *args: Any) -> tuple[int, list[str]]:
    """CALL dms.execute_query_parallel as ``user``; the run id and the NOTICEs."""
    notices: list[str] = []
    with psycopg.connect(env.dsn(env.home, user), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        row = conn.execute(
            "CALL dms.execute_query_parallel(%s, %s, %s, %s, %s, %s::jsonb)", list(args)
        ).fetchone()
    assert row is not None
    return int(row[0]), notices


def _estimated(env: EngineEnv, run_id: int) -> int:
    with env.connect() as conn:
        row = conn.execute("SELECT estimated_rows FROM dms.run WHERE run_id = %s",
                           [run_id]).fetchone()
    assert row is not None
    return int(row[0])


def _notes(env: EngineEnv, run_id: int) -> list[str]:
    with env.connect() as conn:
        row = conn.execute("SELECT notes FROM dms.run_progress WHERE run_id = %s",
                           [run_id]).fetchone()
    assert row is not None
    return list(row[0])


SIDE_EFFECTS = (
    "the source query calls audited(bigint), nextval(regclass), which can change data or "
    "state (side-effecting or VOLATILE functions); they run again for the rows of every "
    "chunk that is retried or resumed"
)


def test_functions_that_write_are_said_on_the_run(
    env: EngineEnv, operator_on: Callable[..., str]
) -> None:
    with env.connect() as conn:
        # Fresh statistics: the stale-statistics note must not depend on
        # whether autovacuum analysed the table yet.
        conn.execute("ANALYZE orders")
        conn.execute("DROP TABLE IF EXISTS audit, audited_copy")
        conn.execute("DROP SEQUENCE IF EXISTS audit_seq")
        conn.execute("CREATE TABLE audit (id bigint)")
        conn.execute("CREATE TABLE audited_copy (id bigint, status text, n bigint)")
        conn.execute("CREATE SEQUENCE audit_seq")
        conn.execute("CREATE OR REPLACE FUNCTION audited(x bigint) RETURNS bigint VOLATILE"
                     " LANGUAGE sql AS 'INSERT INTO audit VALUES (x) RETURNING x'")
    user = operator_on("SELECT ON orders", "INSERT ON audit, audited_copy",
                       "USAGE ON SEQUENCE audit_seq")
    run_id, notices = _call_noting(
        env, user, None, "SELECT audited(id) AS id, status, nextval('audit_seq') AS n"
        " FROM orders WHERE id <= 1000", None, "public", "audited_copy", params())
    assert f"run {run_id}: {SIDE_EFFECTS}" in notices
    assert _notes(env, run_id) == [SIDE_EFFECTS]
    assert env.run(run_id)["state"] == "SUCCEEDED"
    assert env.checksum(env.home, "audit")[0] == 1000
    # random() and now() change nothing: no note
    with env.connect() as conn:
        conn.execute("TRUNCATE audited_copy")
    run_id, notices = _call_noting(
        env, user, None, "SELECT id, status, (random() * 0)::bigint AS n FROM orders"
        " WHERE id <= 1000 AND created_at < now()", None, "public", "audited_copy", params())
    assert _notes(env, run_id) == []
    assert not any("change data" in n for n in notices)


def test_statistics_never_gathered_or_stale_are_measured_and_said_on_the_run(
    env: EngineEnv, operator_on: Callable[..., str]
) -> None:
    with env.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS fresh, fresh_copy")
        # autovacuum must not analyze it behind the test's back
        conn.execute("CREATE TABLE fresh (LIKE orders_like) WITH (autovacuum_enabled = false)")
        conn.execute("CREATE TABLE fresh_copy (LIKE orders_like)")
        conn.execute(f"INSERT INTO fresh SELECT {ORDERS_SQL.removeprefix('SELECT ')}")
    user = operator_on("SELECT ON fresh", "INSERT ON fresh_copy")
    run_id, notices = _call_noting(env, user, None, "SELECT * FROM fresh", None, "public",
                                   "fresh_copy", params(max_workers=2))
    never = ("statistics of fresh were never gathered (no ANALYZE since it was created or "
             "loaded), so the row estimate that sizes the run's chunks and workers may be far "
             "off; run ANALYZE fresh first")
    # An operator may not ANALYZE another's table: its rows are counted, and the run
    # is sized on the count.
    counted = (f"statistics of fresh were never gathered, and only its owner may ANALYZE it: "
               f"its {ORDERS_ROWS:,} rows were counted and the run was sized on that count")
    assert f"run {run_id}: {never}" in notices
    assert _notes(env, run_id) == [never, counted]
    assert _estimated(env, run_id) == ORDERS_ROWS
    assert env.checksum(env.home, "fresh_copy") == env.checksum(env.home, "fresh")
    # analysed with 1,000 rows, then 119,000 more: stale
    with env.connect() as conn:
        conn.execute("TRUNCATE fresh, fresh_copy")
        conn.execute(f"INSERT INTO fresh {ORDERS_SQL} WHERE id <= 1000")
        # This session's counts reach the shared statistics before the statement after
        # pg_stat_force_next_flush() returns: then ANALYZE starts its count at zero.
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
        conn.execute("ANALYZE fresh")
        conn.execute(f"INSERT INTO fresh {ORDERS_SQL} WHERE id > 1000")
        conn.execute("SELECT pg_stat_force_next_flush()")
        wait_for(lambda: conn.execute("SELECT pg_stat_get_mod_since_analyze('fresh'::regclass)"
                                      ).fetchone() == (ORDERS_ROWS - 1000,),
                 what="the changes to be counted")
    run_id, notices = _call_noting(env, user, None, "SELECT * FROM fresh", None, "public",
                                   "fresh_copy", params(max_workers=2))
    stale = (f"statistics of fresh are stale ({ORDERS_ROWS - 1000:,} rows changed since its "
             "last ANALYZE, when it had about 1,000), so the row estimate that sizes the run's "
             "chunks and workers may be off; run ANALYZE fresh first")
    assert _notes(env, run_id) == [stale, (
        f"statistics of fresh were stale ({ORDERS_ROWS - 1000:,} rows changed since its last "
        f"ANALYZE), and only its owner may ANALYZE it: its {ORDERS_ROWS:,} rows were counted "
        "and the run was sized on that count")]
    assert _estimated(env, run_id) == ORDERS_ROWS
    assert f"run {run_id}: {stale}" in notices
    # The owner's run analyses the table before it is sized: fresh statistics, one note.
    with env.connect() as conn:
        conn.execute("TRUNCATE fresh_copy")
    run_id, _ = _call_noting(env, None, None, "SELECT * FROM fresh", None, "public",
                             "fresh_copy", params(max_workers=2))
    assert _notes(env, run_id) == [
        f"statistics of fresh were stale ({ORDERS_ROWS - 1000:,} rows changed since its last "
        "ANALYZE): it was analysed (ANALYZE) before the run's chunks and workers were sized"]
    assert _estimated(env, run_id) == ORDERS_ROWS
    with env.connect() as conn:
        assert conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'fresh'::regclass"
                            ).fetchone() == (ORDERS_ROWS,)
        conn.execute("TRUNCATE fresh_copy")
    # and none once the statistics are fresh
    run_id, _ = _call_noting(env, user, None, "SELECT * FROM fresh", None, "public",
                             "fresh_copy", params(max_workers=2))
    assert _notes(env, run_id) == []


def test_eta_is_not_computed_from_an_empty_chunk(env: EngineEnv) -> None:
    """Two workers: one takes the NULL-key chunk (no rows, done at once), the other
    the one slow range; until that is done there is nothing to extrapolate from."""
    with env.connect() as conn:
        conn.execute("CREATE OR REPLACE FUNCTION slow_eta(x bigint) RETURNS bigint"
                     " LANGUAGE sql VOLATILE AS 'SELECT x FROM pg_sleep(0.01)'")
    env.empty_target(env.home, "eta_copy")
    seen: list[dict[str, Any]] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            env.call(None, "SELECT slow_eta(id) AS id, customer_id, amount, status, note,"
                     " created_at, ship_date, is_paid, payload FROM orders WHERE id <= 300",
                     None, "public", "eta_copy",
                     params(max_workers=2, chunks=1, min_rows_for_parallel=0))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def first_done() -> dict[str, Any] | None:
        with env.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "SELECT p.run_id, p.chunks_done, p.chunks_total, p.rows_done, p.eta"
                " FROM dms.run_progress p WHERE p.label LIKE '%%eta_copy'"
                " AND p.state = 'RUNNING' AND p.chunks_done >= 1"
                " ORDER BY p.run_id DESC LIMIT 1").fetchone()
        if row is not None:
            seen.append(row)
        return row

    thread = threading.Thread(target=run)
    thread.start()
    try:
        row = wait_for(first_done, what="a chunk of the slow run to be done")
    finally:
        thread.join(timeout=300)
    assert not errors, errors
    assert (row["chunks_done"], row["chunks_total"], row["rows_done"]) == (1, 2, 0)
    assert row["eta"] is None, row


def test_watch_of_a_finished_run_never_draws_zero_percent(env: EngineEnv) -> None:
    import os
    import subprocess
    import sys

    env.empty_target(env.home, "orders_watched")
    run_id = env.call(None, ORDERS_SQL + " WHERE id <= 2000", None, "public", "orders_watched",
                      params())
    watched = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "watch", str(run_id), "--dsn", env.dsn()],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "200"},  # draw as on a terminal
    )
    assert watched.returncode == 0, watched.stderr
    assert "100.0%" in watched.stdout
    assert "0.0%" not in watched.stdout.replace("100.0%", "")


def test_a_failed_swap_is_reported_with_the_database_message_and_can_be_resumed(
    env: EngineEnv,
) -> None:
    """Truncate-and-load: the chunks load the staging table (no foreign keys there);
    the swap into the target meets the foreign key."""
    with env.connect(env.target) as conn:
        conn.execute("DROP TABLE IF EXISTS child, parent")
        conn.execute("CREATE TABLE parent (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO parent SELECT g FROM generate_series(1, 999) g")
        conn.execute("CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint"
                     " REFERENCES parent)")
        conn.execute("INSERT INTO child VALUES (1, 1)")
    with pytest.raises(psycopg.Error) as err:
        env.call(env.source_conid, "SELECT id, id AS parent_id FROM orders WHERE id <= 1000",
                 env.target_conid, "public", "child", params(write_mode="truncate"))
    with env.connect() as conn:
        row = conn.execute("SELECT max(run_id) FROM dms.run").fetchone()
    assert row is not None
    run_id = int(row[0])
    fk = 'insert or update on table "child" violates foreign key constraint "child_parent_id_fkey"'
    detail = 'Key (parent_id)=(1000) is not present in table "parent".'
    assert err.value.diag.sqlstate == "23503"
    assert err.value.diag.message_primary == (
        f"dms: run {run_id} FAILED: the coordinator stopped: {fk}")
    assert err.value.diag.message_detail == detail
    assert err.value.diag.message_hint == (
        f"fix the cause and resume with CALL dms.resume_run({run_id})")
    run = env.run(run_id)
    assert run["state"] == "FAILED"
    assert run["message"] == f"the coordinator stopped: [23503] {fk} (DETAIL: {detail})"
    assert env.checksum(env.target, "child")[0] == 1  # as it was
    with env.connect(env.target) as conn:
        conn.execute("INSERT INTO parent VALUES (1000)")
    with env.connect() as conn:
        conn.execute("CALL dms.resume_run(%s)", [run_id])
    assert env.run(run_id)["state"] == "SUCCEEDED"
    with env.connect(env.target) as conn:
        row = conn.execute("SELECT count(*), sum(id), sum(parent_id) FROM child").fetchone()
    assert row == (1000, 500500, 500500)


def test_dms_run_no_watch_says_how_a_failed_run_ended(env: EngineEnv) -> None:
    import subprocess
    import sys

    with env.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS picky_cli")
        conn.execute("CREATE TABLE picky_cli (id bigint, amount numeric CHECK (amount < 0))")
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "run", "--dsn", env.dsn(), "--no-watch",
         "--sql", "SELECT id, amount FROM orders WHERE id <= 100", "--table", "picky_cli"],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 1
    run_id = int(done.stdout.split()[1])  # "run N submitted"
    run = env.run(run_id)
    assert run["state"] == "PARTIAL"
    assert done.stdout.splitlines()[1] == f"run {run_id} PARTIAL: {run['message']}"
    errors = done.stderr.splitlines()
    assert errors[0] == f"dms: error: run {run_id} PARTIAL: {run['message']}"
    assert f"HINT: fix the cause and resume with CALL dms.resume_run({run_id})" in errors
    assert "Traceback" not in done.stderr
