"""SQLite sources through every route a user has: the SQL API, the Python API, the CLI.

The file is read by the source backend (``dms_pkg.backends.sqlite``); the
runtime, the loaders and the queue are the ones every source uses.  Each run
is compared with the file by count and an order-independent checksum over
normalised values, every type of the backend's edge table included.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from dms_pkg import execute_query_parallel
from tests.integration.conftest import Cluster, DatabaseFactory
from tests.unit.backends.sqlite_files import (
    EDGE_DDL,
    EDGE_ROWS,
    checksum,
    expected,
    make_db,
    normalised,
    read_all,
)

ORDERS = 60_000


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """A directory the server's OS user may enter (pytest's tmp_path is root's own)."""
    path = Path(tempfile.mkdtemp(prefix="dms_sqlite_runs_"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def shop(folder: Path) -> Path:
    path = folder / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL,"
                     " amount NUMERIC(12,2), note TEXT, created TIMESTAMP, paid BOOLEAN)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
            [(i, i % 977, round(i * 1.25, 2), None if i % 10 == 0 else f"note\t{i}\\x",
              f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00", i % 2)
             for i in range(1, ORDERS + 1)])
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def home(cluster: Cluster, databases: DatabaseFactory, shop: Path) -> str:
    name = databases.create(installed=True)
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbsrvnm)"
                     " VALUES ('shop', 'SQLITE', %s)", [str(shop)])
    return name


def conid(cluster: Cluster, home: str) -> int:
    with psycopg.connect(cluster.dsn(home)) as conn:
        row = conn.execute("SELECT conid FROM dms.dms_dbcondtls WHERE connm = 'shop'").fetchone()
    assert row is not None
    return int(row[0])


def source_rows(path: Path) -> list[tuple[Any, ...]]:
    return read_all(path, "SELECT id, customer, amount, note, created, paid FROM orders")


def loaded(cluster: Cluster, db: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(cluster.dsn(db)) as conn:
        return conn.execute(sql.SQL(
            "SELECT id, customer, amount, note, created, paid FROM {}").format(
            sql.Identifier(table))).fetchall()


def same_content(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """Counts and checksums equal, the file's values as PostgreSQL reads them."""
    types = ["bigint", "bigint", "numeric(12,2)", "text", "timestamp without time zone",
             "boolean"]
    want = [tuple(expected(t, v) for t, v in zip(types, row, strict=True))
            for row in source_rows(path)]
    assert len(rows) == len(want) == ORDERS
    assert checksum(rows) == checksum(want)


def call(cluster: Cluster, home: str, user: str | None, source: int, table: str,
         params: dict[str, Any]) -> int:
    with psycopg.connect(cluster.dsn(home, user), autocommit=True) as conn:
        row = conn.execute(
            "CALL dms.execute_query_parallel(%s, %s, NULL, 'public', %s, %s::jsonb)",
            [source, "SELECT id, customer, amount, note, created, paid FROM orders", table,
             json.dumps(params)]).fetchone()
    assert row is not None
    return int(row[0])


def run_row(cluster: Cluster, home: str, run_id: int) -> dict[str, Any]:
    with psycopg.connect(cluster.dsn(home)) as conn, conn.cursor(
            row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM dms.run_progress WHERE run_id = %s",
                          [run_id]).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_the_sql_api_moves_a_sqlite_file(cluster: Cluster, home: str, shop: Path,
                                         workers: int) -> None:
    table = f"orders_w{workers}"
    run_id = call(cluster, home, None, conid(cluster, home), table,
                  {"max_workers": workers, "chunk_size": 10_000, "create_target": True,
                   "min_rows_for_parallel": 0})
    run = run_row(cluster, home, run_id)
    assert (run["state"], run["path"], run["workers"], run["chunks_total"]) == (
        "SUCCEEDED", "copy_text", 1, 7)
    if workers > 1:  # one reader per file, and the run says so
        assert run["parallel_note"] == ("capped at 1 worker: a SQLite source is read by at "
                                        "most 1 worker")
    same_content(shop, loaded(cluster, home, table))


def test_an_operator_needs_pg_read_server_files_to_read_a_file_in_the_server(
        cluster: Cluster, home: str, shop: Path, login_role: Any) -> None:
    operator = login_role("dms_operator")
    source = conid(cluster, home)
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        conn.execute("SELECT dms.grant_connection(%s, %s)", [source, operator])
        conn.execute("CREATE TABLE op_orders (id bigint, customer bigint, amount numeric(12,2),"
                     " note text, created timestamp, paid boolean)")
        conn.execute(sql.SQL("GRANT INSERT, SELECT ON op_orders TO {}").format(
            sql.Identifier(operator)))
        runs = conn.execute("SELECT count(*) FROM dms.run").fetchone()
    try:
        with pytest.raises(errors.InsufficientPrivilege) as err:
            call(cluster, home, operator, source, "op_orders", {})
        assert err.value.diag.message_primary == (
            f"dms: reading the SQLite file {shop} inside the server needs the privileges of "
            f"pg_read_server_files, which {operator} does not have")
        with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM dms.run").fetchone() == runs
            conn.execute(sql.SQL("GRANT pg_read_server_files TO {}").format(
                sql.Identifier(operator)))
        run_id = call(cluster, home, operator, source, "op_orders", {"chunk_size": 20_000})
        assert run_row(cluster, home, run_id)["state"] == "SUCCEEDED"
        same_content(shop, loaded(cluster, home, "op_orders"))
    finally:
        with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
            conn.execute("DROP TABLE op_orders")
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(operator)))
            conn.execute(sql.SQL("REVOKE pg_read_server_files FROM {}").format(
                sql.Identifier(operator)))


def test_every_type_arrives_through_the_sql_api(cluster: Cluster, home: str,
                                                folder: Path) -> None:
    path = make_db(folder / "edge.sqlite", EDGE_DDL, EDGE_ROWS)
    path.chmod(0o644)
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        edge = conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbsrvnm) VALUES"
                            " ('edge', 'SQLITE', %s) RETURNING conid", [str(path)]).fetchone()
        assert edge is not None
        row = conn.execute(
            "CALL dms.execute_query_parallel(%s, 'SELECT * FROM edge', NULL, 'public',"
            " 'edge', '{\"create_target\": true}')", [edge[0]]).fetchone()
        assert row is not None
        types = [r[0] for r in conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid ="
            " 'edge'::regclass AND attnum > 0 ORDER BY attnum")]
        got = conn.execute("SELECT * FROM edge ORDER BY id").fetchall()
    want = [tuple(expected(t, v) for t, v in zip(types, r, strict=True))
            for r in read_all(path, "SELECT * FROM edge ORDER BY id")]
    assert [tuple(normalised(v) for v in r) for r in got] == [
        tuple(normalised(v) for v in r) for r in want]
    assert checksum(got) == checksum(want)


def test_a_missing_file_is_refused_before_anything_is_written(cluster: Cluster,
                                                              home: str) -> None:
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        gone = conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbsrvnm) VALUES"
                            " ('gone', 'SQLITE', '/tmp/dms_no_such_file.sqlite')"
                            " RETURNING conid").fetchone()
        assert gone is not None
        runs = conn.execute("SELECT count(*) FROM dms.run").fetchone()
        with pytest.raises(psycopg.errors.UndefinedFile) as err:
            conn.execute("CALL dms.execute_query_parallel(%s, 'SELECT 1 AS id', NULL,"
                         " 'public', 'nowhere', '{\"create_target\": true}')", [gone[0]])
        assert "/tmp/dms_no_such_file.sqlite" in str(err.value.diag.message_primary)
        assert conn.execute("SELECT count(*) FROM dms.run").fetchone() == runs
        assert conn.execute("SELECT to_regclass('nowhere')").fetchone() == (None,)


@pytest.mark.parametrize("given", ["url", "connection"])
def test_the_python_api_reads_a_sqlite_file(cluster: Cluster, databases: DatabaseFactory,
                                            shop: Path, given: str) -> None:
    target = databases.create()
    source: Any = f"sqlite:///{shop}" if given == "url" else sqlite3.connect(shop)
    result = execute_query_parallel(
        source, "SELECT id, customer, amount, note, created, paid FROM orders",
        target_conn=cluster.dsn(target), target_schema="public", target_table="orders",
        create_target=True, max_workers=4, chunk_size=15_000, min_rows_for_parallel=0)
    assert (result.total_rows_successful, result.chunks_failed, result.workers,
            result.path) == (ORDERS, 0, 1, "copy_text")
    same_content(shop, loaded(cluster, target, "orders"))


def test_dms_run_reads_a_sqlite_file_from_the_client(cluster: Cluster,
                                                     databases: DatabaseFactory,
                                                     shop: Path) -> None:
    target = databases.create(installed=True)
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "run", "--dsn", cluster.dsn(target),
         "--source-dsn", f"sqlite:///{shop}", "--sql",
         "SELECT id, customer, amount, note, created, paid FROM orders", "--table", "orders",
         "--params", '{"create_target": true, "chunk_size": 20000}', "--no-watch"],
        capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{ORDERS:,} rows" in done.stdout, done.stdout
    same_content(shop, loaded(cluster, target, "orders"))
