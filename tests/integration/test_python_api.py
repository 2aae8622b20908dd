"""``dms_pkg.execute_query_parallel``: the user guide's Python API on real databases."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dms_pkg import (
    ParallelProcessor,
    ProgressSnapshot,
    ProgressTracker,
    RetryConfig,
    RetryHandler,
    create_progress_callback,
    execute_query_parallel,
)
from dms_pkg.errors import DmsError
from dms_pkg.sample_data import checksum, create_empty_orders, create_orders
from tests.integration.conftest import Cluster, DatabaseFactory

ROWS = 150_000


@pytest.fixture(scope="module")
def dbs(cluster: Cluster, databases: DatabaseFactory) -> dict[str, str]:
    source, target = databases.create(), databases.create()
    with psycopg.connect(cluster.dsn(source), autocommit=True) as conn:
        create_orders(conn, ROWS)
    return {"source": cluster.dsn(source), "target": cluster.dsn(target)}


def test_result_fields_and_progress_callback(dbs: dict[str, str]) -> None:
    snapshots: list[ProgressSnapshot] = []
    with psycopg.connect(dbs["source"]) as src, psycopg.connect(dbs["target"]) as dst:
        create_empty_orders(dst)
        dst.commit()
        result = execute_query_parallel(
            src, "SELECT * FROM orders", target_conn=dst, target_schema="public",
            target_table="orders", max_workers=2, chunk_size=10_000,
            progress_callback=snapshots.append,
        )
        assert checksum(dst, "public", "orders") == checksum(src, "public", "orders")
    assert result.total_rows_processed == result.total_rows_successful == ROWS
    assert result.total_rows_failed == 0
    assert result.chunks_total == result.chunks_succeeded >= 15
    assert result.chunks_failed == 0 and result.chunk_errors == []
    assert result.processing_time > 0
    assert (result.path, result.workers) == ("copy_binary", 2)
    # called, more than once, with percentages that never go down and end at 100
    percents = [s.progress_percentage for s in snapshots]
    assert len(percents) >= 2
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    assert snapshots[-1].total_rows_processed == ROWS
    assert snapshots[-1].estimated_remaining_time == 0.0


def test_transformation_and_failed_chunks_are_reported(dbs: dict[str, str]) -> None:
    def shout(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": r["id"], "status": r["status"].upper()} for r in rows]

    with psycopg.connect(dbs["target"], autocommit=True) as dst:
        dst.execute("DROP TABLE IF EXISTS shouted")
        dst.execute("CREATE TABLE shouted (id bigint PRIMARY KEY, status text "
                    "CHECK (status <> 'CANCELLED'))")
    result = execute_query_parallel(
        dbs["source"], "SELECT id, status FROM orders",
        transformation_func=shout, target_conn=dbs["target"], target_schema="public",
        target_table="shouted", max_workers=2, chunks=4, min_rows_for_parallel=0,
    )
    assert result.path == "rows"
    # every real chunk holds a cancelled order, so each fails with the CHECK message
    assert (result.chunks_total, result.chunks_failed) == (5, 4)  # and the NULL-key chunk
    assert result.total_rows_successful == 0
    assert result.total_rows_failed > 0
    assert {e["sqlstate"] for e in result.chunk_errors} == {"23514"}
    assert all(e["attempts"] == 1 for e in result.chunk_errors)
    assert 'violates check constraint "shouted_status_check"' in result.chunk_errors[0]["error"]


def test_without_target_the_rows_come_back(dbs: dict[str, str]) -> None:
    result = execute_query_parallel(
        dbs["source"], "SELECT id, status FROM orders WHERE id <= 1000",
        transformation_func=lambda rows: [r for r in rows if r["status"] == "paid"],
        min_rows_for_parallel=0, max_workers=2, chunks=3,
    )
    with psycopg.connect(dbs["source"]) as src:
        expected = src.execute(
            "SELECT id, status FROM orders WHERE id <= 1000 AND status = 'paid' ORDER BY id"
        ).fetchall()
    assert result.rows is not None
    assert sorted((r["id"], r["status"]) for r in result.rows) == expected


def test_bad_arguments(dbs: dict[str, str]) -> None:
    with pytest.raises(DmsError) as err:
        execute_query_parallel(dbs["source"], "SELECT 1", max_workers=0)
    assert err.value.message == "max_workers must be from 1 to 64, got 0 (from arguments)"
    with pytest.raises(DmsError) as err:
        execute_query_parallel(dbs["source"], "SELECT 1", max_worker=2)
    assert err.value.message == 'unknown parameter "max_worker" in options; did you mean ' \
        '"max_workers"?'
    with pytest.raises(DmsError) as err:
        execute_query_parallel(42, "SELECT 1")
    assert err.value.message.startswith("source_conn must be a psycopg connection")


# -- the user guide's names (issue 15) ---------------------------------------------------


def test_the_guides_names_are_exported() -> None:
    import dms_pkg

    for name in ("ParallelProcessor", "RetryHandler", "RetryConfig", "ProgressTracker",
                 "create_progress_callback", "ProgressSnapshot", "ParallelResult",
                 "execute_query_parallel"):
        assert name in dms_pkg.__all__
        assert getattr(dms_pkg, name).__name__ == name
    with pytest.raises(AttributeError, match="has no attribute 'ChunkManager'"):
        _ = dms_pkg.ChunkManager


def _orders_copy(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_empty_orders(conn, table=table)


def test_min_rows_for_parallel_comes_from_the_environment(
    dbs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAPPER_MIN_ROWS_FOR_PARALLEL is honoured: no argument default overrides it."""
    _orders_copy(dbs["target"], "orders_env")
    monkeypatch.setenv("MAPPER_MIN_ROWS_FOR_PARALLEL", "1000000")
    result = execute_query_parallel(
        dbs["source"], "SELECT * FROM orders", target_conn=dbs["target"],
        target_schema="public", target_table="orders_env", max_workers=2, chunk_size=50_000)
    assert result.workers == 1
    assert result.parallel_note is not None
    assert result.parallel_note.endswith("below min_rows_for_parallel (1,000,000)")
    assert result.settings["min_rows_for_parallel"] == {"value": 1_000_000,
                                                        "from": "environment"}
    with psycopg.connect(dbs["source"]) as src, psycopg.connect(dbs["target"]) as dst:
        assert checksum(dst, "public", "orders_env") == checksum(src, "public", "orders")

    # the other way round: a small query runs in parallel when the environment says so
    monkeypatch.setenv("MAPPER_MIN_ROWS_FOR_PARALLEL", "0")
    small = execute_query_parallel(dbs["source"], "SELECT id FROM orders WHERE id <= 5000",
                                   max_workers=2, chunks=4)
    assert (small.workers, small.parallel_note) == (2, None)
    assert small.rows is not None and len(small.rows) == 5000
    # and an argument still wins over the environment
    argued = execute_query_parallel(dbs["source"], "SELECT id FROM orders WHERE id <= 5000",
                                    max_workers=2, chunks=4, min_rows_for_parallel=10_000)
    assert argued.workers == 1
    assert argued.settings["min_rows_for_parallel"] == {"value": 10_000, "from": "arguments"}


@pytest.fixture
def bad_row_source(databases: DatabaseFactory, cluster: Cluster) -> dict[str, str]:
    """12,000 rows; the filter ``v % 3 = 0`` is estimated at 0.5 % of them (the
    planner cannot judge it) but keeps a third; one kept row breaks the target's CHECK."""
    source, target = databases.create(), databases.create()
    with psycopg.connect(cluster.dsn(source), autocommit=True) as conn:
        conn.execute("CREATE TABLE s (id int PRIMARY KEY, v int NOT NULL)")
        conn.execute("INSERT INTO s SELECT g, g FROM generate_series(1, 12000) g")
        conn.execute("ANALYZE s")
    with psycopg.connect(cluster.dsn(target), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL CHECK (v <> 7779))")
    return {"source": cluster.dsn(source), "target": cluster.dsn(target)}


@pytest.mark.parametrize("transformed", [False, True], ids=["copy", "rows"])
def test_failed_rows_are_counted_not_estimated(bad_row_source: dict[str, str],
                                               transformed: bool) -> None:
    result = execute_query_parallel(
        bad_row_source["source"], "SELECT id, v FROM s WHERE v % 3 = 0",
        transformation_func=(lambda rows: rows) if transformed else None,
        target_conn=bad_row_source["target"], target_schema="public", target_table="t",
        chunks=4, max_workers=2, min_rows_for_parallel=0)
    with psycopg.connect(bad_row_source["source"]) as src, \
            psycopg.connect(bad_row_source["target"]) as dst:
        loaded = {r[0] for r in dst.execute("SELECT id FROM t").fetchall()}
        wanted = {r[0] for r in src.execute("SELECT id FROM s WHERE v % 3 = 0").fetchall()}
    assert result.chunks_failed == 1
    [error] = result.chunk_errors
    assert error["sqlstate"] == "23514"
    assert 'violates check constraint "t_v_check"' in error["error"]
    assert error["chunk_id"] == error["chunk_no"]
    # the failed chunk loaded nothing, and exactly its rows are counted as failed
    assert 7779 in wanted - loaded
    assert result.total_rows_failed == len(wanted - loaded) == error["rows_in_chunk"]
    assert error["rows_counted"] is True
    assert result.total_rows_successful == len(loaded)
    assert result.total_rows_processed == len(wanted) == 4000


TUPLES = lambda rows: [tuple(r.values()) for r in rows]  # noqa: E731
RAISES = lambda rows: [{"id": r["id"], "v": r["nope"]} for r in rows]  # noqa: E731
RAGGED = lambda rows: [{"id": r["id"], **({"v": r["v"]} if r["id"] % 2 else {})}  # noqa: E731
                       for r in rows]
SCALAR = lambda rows: len(rows)  # noqa: E731


@pytest.mark.parametrize(("transform", "sqlstate", "message"), [
    (TUPLES, "42804", "the transformation must return a list of dicts, but on chunk {n} "
                      "row 1 of what it returned is a tuple"),
    (SCALAR, "42804", "the transformation must return a list of dicts, but on chunk {n} "
                      "it returned an int"),
    (RAISES, "38000", "the transformation failed on chunk {n}: KeyError: 'nope'"),
    (RAGGED, "42804", "the transformation returned rows with different keys on chunk {n}: "
                      "the first row has id, v; another lacks v"),
], ids=["tuples", "scalar", "raises", "ragged"])
def test_a_transformation_that_breaks_the_contract_is_named(
    bad_row_source: dict[str, str], transform: Any, sqlstate: str, message: str
) -> None:
    result = execute_query_parallel(
        bad_row_source["source"], "SELECT id, v FROM s WHERE id <= 3000",
        transformation_func=transform, target_conn=bad_row_source["target"],
        target_schema="public", target_table="t", chunks=2, min_rows_for_parallel=0)
    real = [e for e in result.chunk_errors if e["rows_in_chunk"]]
    assert len(real) == 2 and result.total_rows_failed == 3000
    for error in real:
        assert error["sqlstate"] == sqlstate
        assert error["error"] == message.format(n=error["chunk_id"])
        assert error["attempts"] == 1  # never retried: it would fail the same way
    with psycopg.connect(bad_row_source["target"]) as dst:
        assert dst.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_transformation_logic_is_another_name_for_transformation_func(
    dbs: dict[str, str]
) -> None:
    def paid(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if r["status"] == "paid"]

    result = execute_query_parallel(
        dbs["source"], "SELECT id, status FROM orders WHERE id <= 1000",
        transformation_logic=paid, min_rows_for_parallel=0, chunks=2)
    with psycopg.connect(dbs["source"]) as src:
        expected = src.execute("SELECT id, status FROM orders WHERE id <= 1000 AND "
                               "status = 'paid' ORDER BY id").fetchall()
    assert result.rows is not None
    assert sorted((r["id"], r["status"]) for r in result.rows) == expected
    with pytest.raises(DmsError) as err:
        execute_query_parallel(dbs["source"], "SELECT 1", transformation_func=paid,
                               transformation_logic=lambda rows: rows)
    assert err.value.sqlstate == "22023"
    assert err.value.message == ("transformation_func and transformation_logic are two "
                                 "names for one argument; both were given")


# -- what the Python API does not move: refused before anything is written -------------


def test_mysql_targets_are_refused(
    dbs: dict[str, str], mariadb: dict[str, Any], databases: DatabaseFactory,
    cluster: Cluster,
) -> None:
    """A MariaDB database is a source (tests/integration/test_mysql_runs.py), never a target."""
    import pymysql

    my = pymysql.connect(**mariadb)
    try:
        for target_conn, what in (
                (my, "a MySQL connection (pymysql.connections.Connection)"),
                ("mysql://root@127.0.0.1:3306/shop", "a MySQL URL (mysql://...)"),
                ("mariadb+pymysql://root@localhost/shop", "a MariaDB URL (mariadb://...)")):
            with pytest.raises(DmsError) as err:
                execute_query_parallel(dbs["source"], "SELECT 1 AS x", target_conn=target_conn,
                                       target_schema="public", target_table="t")
            assert err.value.sqlstate == "0A000"
            assert err.value.message == (
                f"target_conn is {what}: the engine loads PostgreSQL targets (psycopg "
                "connections or PostgreSQL connection strings)")
            assert err.value.hint == ("pass that database as source_conn and a PostgreSQL "
                                      "database as target_conn")
    finally:
        my.close()


def test_a_connection_string_that_is_no_such_thing_is_refused_without_echoing_it(
    dbs: dict[str, str]
) -> None:
    with pytest.raises(DmsError) as err:
        execute_query_parallel("host=x password=Sw0rdfish nonsense", "SELECT 1")
    assert err.value.sqlstate == "22023"
    assert err.value.message == "source_conn is not a valid PostgreSQL connection string"
    assert "Sw0rdfish" not in str(err.value)
    with pytest.raises(DmsError) as err:
        execute_query_parallel("http://db1/sales", "SELECT 1")
    assert err.value.message.startswith("source_conn is a http:// URL; the Python API "
                                        "connects to PostgreSQL")


# -- a password in the DSN (issue 15): every reader gets it, nobody sees it ---------------

PASSWORD = "Pw-" + uuid.uuid4().hex[:12]


@pytest.fixture
def password_login(cluster: Cluster, login_role: Any) -> Iterator[dict[str, str]]:
    """A LOGIN role WITH PASSWORD owning a source and a target database, reached over
    TCP on 127.0.0.1, where the sandbox asks for scram-sha-256."""
    role = login_role(None)
    port = conninfo_to_dict(cluster.admin_dsn).get("port") or "5432"
    names = [f"dmst_pw_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with cluster.admin() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(PASSWORD)))
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)))
    try:
        yield {"role": role, "port": str(port), "source": names[0], "target": names[1]}
    finally:
        with cluster.admin() as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


def _tcp_dsn(login: dict[str, str], which: str, form: str, password: str = PASSWORD) -> str:
    if form == "url":
        return (f"postgresql://{login['role']}:{password}@127.0.0.1:{login['port']}/"
                f"{login[which]}")
    return (f"host=127.0.0.1 port={login['port']} dbname={login[which]} "
            f"user={login['role']} password={password}")


@pytest.mark.parametrize("form", ["keywords", "url", "connection"])
def test_a_password_in_the_dsn_reaches_the_psql_reader(password_login: dict[str, str],
                                                       form: str) -> None:
    source_dsn = _tcp_dsn(password_login, "source", "url" if form == "url" else "keywords")
    target_dsn = _tcp_dsn(password_login, "target", "url" if form == "url" else "keywords")
    with psycopg.connect(source_dsn, autocommit=True) as src:
        create_orders(src, 30_000)
    with psycopg.connect(target_dsn, autocommit=True) as dst:
        create_empty_orders(dst)
    with psycopg.connect(source_dsn) as src_conn, psycopg.connect(target_dsn) as dst_conn:
        source: Any = src_conn if form == "connection" else source_dsn
        target: Any = dst_conn if form == "connection" else target_dsn
        result = execute_query_parallel(
            source, "SELECT * FROM orders", target_conn=target, target_schema="public",
            target_table="orders", copy_reader="psql", chunks=3, max_workers=2,
            min_rows_for_parallel=0, max_retries=0)
        assert result.chunk_errors == []
        assert (result.path, result.chunks_failed) == ("copy_binary", 0)
        assert result.total_rows_successful == 30_000
        assert checksum(dst_conn, "public", "orders") == checksum(src_conn, "public", "orders")


def test_a_wrong_password_is_refused_without_showing_it(password_login: dict[str, str]
                                                        ) -> None:
    wrong = "Wrong-" + uuid.uuid4().hex[:8]
    for form in ("keywords", "url"):
        with pytest.raises(DmsError) as err:
            execute_query_parallel(_tcp_dsn(password_login, "source", form, wrong),
                                   "SELECT 1")
        assert err.value.sqlstate == "08001"
        assert "password authentication failed" in err.value.message
        assert wrong not in str(err.value) and PASSWORD not in str(err.value)


# -- ParallelProcessor, RetryConfig, ProgressTracker drive the same engine ---------------


def test_retry_config_sets_the_runs_retry_policy(dbs: dict[str, str]) -> None:
    """A real transient failure: another session holds an uncommitted row with id 1, so
    the chunk that loads id 1 waits on it until the workers' lock_timeout fires (55P03)
    -- on every attempt; the attempts follow RetryConfig."""
    target = make_conninfo(dbs["target"], options="-c lock_timeout=50")
    for retries in (0, 2):
        table = f"orders_locked_{retries}"
        _orders_copy(dbs["target"], table)
        with psycopg.connect(dbs["target"]) as holder:
            holder.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} LIMIT 0").format(
                sql.Identifier(table), sql.Identifier(table)))
            holder.execute(sql.SQL(
                "INSERT INTO {} (id, customer_id, amount, status, created_at, is_paid)"
                " VALUES (1, 1, 0, 'held', now(), false)").format(sql.Identifier(table)))
            processor = ParallelProcessor(
                max_workers=2, chunk_size=50_000,
                retry_handler=RetryHandler(RetryConfig(max_retries=retries, initial_delay=0.0,
                                                       max_delay=0.0)))
            result = processor.process_mapper_job(
                source_conn=dbs["source"], source_sql="SELECT * FROM orders WHERE id <= 2000",
                target_conn=target, target_schema="public", target_table=table,
                min_rows_for_parallel=0, chunks=2)
            holder.rollback()
        [error] = result.chunk_errors
        assert error["sqlstate"] == "55P03"
        assert error["attempts"] == 1 + retries
        assert result.settings["max_retries"] == {"value": retries, "from": "RetryConfig"}
        assert result.settings["retry_max_delay"] == {"value": 0.0, "from": "RetryConfig"}
        assert result.settings["enable_retry"] == {"value": True, "from": "RetryConfig"}
        with psycopg.connect(dbs["target"]) as dst:
            loaded = dst.execute(sql.SQL("SELECT count(*), min(id) FROM {}").format(
                sql.Identifier(table))).fetchone()
        assert loaded is not None and loaded[1] > 1  # the chunk with id 1 loaded nothing
        assert result.total_rows_successful == loaded[0] == 2000 - error["rows_in_chunk"]
        assert result.total_rows_failed == error["rows_in_chunk"] > 0


def test_bad_processor_settings_are_refused_where_they_are_written() -> None:
    with pytest.raises(DmsError) as err:
        ParallelProcessor(max_workers=0)
    assert err.value.message == "max_workers must be from 1 to 64, got 0 (from ParallelProcessor)"
    with pytest.raises(DmsError) as err:
        ParallelProcessor(retry_handler=RetryHandler(RetryConfig(max_retries=-1)))
    assert err.value.message == "max_retries must be from 0 to 100, got -1 (from RetryConfig)"


def test_progress_tracker_follows_the_run(dbs: dict[str, str],
                                          capsys: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture) -> None:
    _orders_copy(dbs["target"], "orders_tracked")
    tracker = ProgressTracker(total_chunks=10, callback=create_progress_callback("Nightly"),
                              update_interval=3600)
    result = ParallelProcessor(max_workers=2, chunk_size=40_000,
                               progress_tracker=tracker).process_mapper_job(
        source_conn=dbs["source"], source_sql="SELECT * FROM orders ORDER BY id",
        target_conn=dbs["target"], target_schema="public", target_table="orders_tracked")
    assert result.chunks_failed == 0 and result.total_rows_successful == ROWS
    assert tracker.total_chunks == result.chunks_total != 10  # learnt from the run
    last = tracker.get_snapshot()
    assert last is not None
    assert (last.progress_percentage, last.completed_chunks, last.total_chunks,
            last.failed_chunks, last.total_rows_processed) == (
        100.0, result.chunks_total, result.chunks_total, 0, ROWS)
    # the first snapshot (unless that was already the end) and the end, once;
    # none in between at one per hour
    lines = capsys.readouterr().out.splitlines()
    assert 1 <= len(lines) <= 2
    assert not any(line.startswith("Nightly: 100.0%") for line in lines[:-1])
    assert lines[-1].startswith(
        f"Nightly: 100.0% ({result.chunks_total}/{result.chunks_total} chunks, 150,000 rows, ")
    assert "ETA" not in lines[-1]

    # with logging set up to show it, the line is logged instead of printed
    caplog.set_level(logging.INFO, logger="dms_pkg.progress")
    create_progress_callback("Logged")(last)
    assert capsys.readouterr().out == ""
    assert [r.getMessage() for r in caplog.records if r.name == "dms_pkg.progress"] == [
        lines[-1].replace("Nightly", "Logged", 1)]


def test_a_failing_tracker_callback_does_not_stop_the_run(
    dbs: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(snapshot: ProgressSnapshot) -> None:
        raise RuntimeError("display gone")

    result = ParallelProcessor(progress_tracker=ProgressTracker(callback=broken)
                               ).process_mapper_job(
        dbs["source"], "SELECT id FROM orders WHERE id <= 100", min_rows_for_parallel=0)
    assert result.rows is not None and len(result.rows) == 100
    assert any("progress callback" in r.getMessage() and r.exc_info for r in caplog.records)


def test_merge_is_applied_as_in_the_sql_api(dbs: dict[str, str]) -> None:
    """``merge=`` builds the same load target as the SQL API (planning.run_spec): an
    append of only the keys the target lacks, run twice, adds each row once."""
    with psycopg.connect(dbs["source"], autocommit=True) as src:
        src.execute("CREATE TABLE people (id int PRIMARY KEY, name text)")
        src.execute("INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 3000) g")
    with psycopg.connect(dbs["target"], autocommit=True) as dst:
        dst.execute("CREATE TABLE people (id int PRIMARY KEY, name text)")
        dst.execute("INSERT INTO people VALUES (1, 'kept'), (2, 'kept')")
    merge = {"kind": "append", "keys": ["id"], "only_new": True}
    for _ in range(2):
        result = execute_query_parallel(
            dbs["source"], "SELECT id, name FROM people", target_conn=dbs["target"],
            target_schema="public", target_table="people", max_workers=2, chunk_size=1000,
            min_rows_for_parallel=0, merge=merge)
        assert result.chunks_failed == 0, result.chunk_errors
        with psycopg.connect(dbs["target"]) as dst:
            assert dst.execute("SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE"
                               " name = 'kept') FROM people").fetchone() == (3000, 3000, 2)
    with pytest.raises(DmsError) as err:
        execute_query_parallel(
            dbs["source"], "SELECT id, name FROM people", target_conn=dbs["target"],
            target_schema="public", target_table="people",
            merge={"kind": "append", "keys": ["nope"], "only_new": True})
    assert "nope" in err.value.message, err.value.message


def test_a_worker_thread_that_dies_mid_chunk_is_replaced_and_its_chunk_moved_once(
        dbs: dict[str, str]) -> None:
    """The Python API's queue is driven like the coordinator's: a worker that is
    gone while it holds a chunk has the chunk put back and is replaced.  No
    database fault ends a worker thread (chunk errors are caught and recorded),
    so the thread is ended here by a transformation raising SystemExit once --
    the one fake in this module, standing in for a thread that dies."""
    calls: list[int] = []
    lock = threading.Lock()

    def dies_once(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with lock:
            calls.append(len(rows))
            first = len(calls) == 1
        if first:
            raise SystemExit("the worker thread ends here")
        return rows

    with psycopg.connect(dbs["target"], autocommit=True) as dst:
        dst.execute("DROP TABLE IF EXISTS revived")
        dst.execute("CREATE TABLE revived (id bigint PRIMARY KEY, status text)")
    result = execute_query_parallel(
        dbs["source"], "SELECT id, status FROM orders",
        transformation_func=dies_once, target_conn=dbs["target"], target_schema="public",
        target_table="revived", max_workers=2, chunks=4, min_rows_for_parallel=0,
    )
    assert result.chunks_failed == 0 and result.chunk_errors == []
    assert result.total_rows_successful == ROWS
    with psycopg.connect(dbs["target"]) as dst, psycopg.connect(dbs["source"]) as src:
        assert dst.execute("SELECT count(*), count(DISTINCT id), sum(id) FROM revived"
                           ).fetchone() == src.execute(
            "SELECT count(*), count(DISTINCT id), sum(id) FROM orders").fetchone()
