"""Oracle as a source against a real Oracle server, into the real PostgreSQL sandbox.

These run when ``DMS_ORACLE_DSN`` names a server (``oracle://user:pw@host:1521/service``;
the login needs CREATE TABLE, and SELECT on V_$DATABASE or EXECUTE on
DBMS_FLASHBACK), or through testcontainers (``pip install
'testcontainers[oracle-free]==4.15.0'``) where a container engine is
available.  Neither exists on the machine this project is built on, so here
they are skipped with that reason; every statement they send is rendered
and unit-tested in tests/unit/backends/test_oracle_*.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dms_pkg.backends.base import Chunk
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.oracle import OracleBackend, OracleSource, _Planning, _Reader, planned_scn
from dms_pkg.backends.oracle_connect import Caller, params_from_url
from dms_pkg.backends.oracle_types import OracleColumn
from dms_pkg.chunking import plan_query
from dms_pkg.chunking.dialects import ParamStyle
from dms_pkg.engine import config as cfg
from dms_pkg.engine.planning import plan_source
from tests.integration.conftest import Cluster, DatabaseFactory

SKIP_REASON = "no Oracle server: set DMS_ORACLE_DSN or run where a container engine is available"
CALLER = Caller("dms_test", is_superuser=True)  # a test login may well be SYSTEM


def _container_engine() -> bool:
    return bool(os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()
                or shutil.which("docker") or shutil.which("podman"))


@pytest.fixture(scope="module")
def oracle_params() -> Iterator[dict[str, Any]]:
    url = os.environ.get("DMS_ORACLE_DSN")
    if url:
        yield params_from_url(url)
        return
    try:
        from testcontainers.oracle import OracleDbContainer  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip(SKIP_REASON)
    if not _container_engine():
        pytest.skip(SKIP_REASON)
    with OracleDbContainer(username="dms", password="dms_test_pw") as container:
        yield params_from_url(container.get_connection_url())


@pytest.fixture(scope="module")
def ora(oracle_params: dict[str, Any]) -> Iterator[Any]:
    conn = OracleBackend.connect(oracle_params, label="the test Oracle server", caller=CALLER)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pg(ora: Any, databases: DatabaseFactory, cluster: Cluster
       ) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(cluster.dsn(databases.create()), autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET IntervalStyle = 'postgres'")
        yield conn


def ora_run(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.commit()


def ora_drop(conn: Any, table: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM user_tables WHERE table_name = :t", {"t": table})
        if cur.fetchone()[0]:
            cur.execute(f'DROP TABLE "{table}" PURGE')


def load(ora: Any, pg: psycopg.Connection[Any], query: str, target: str,
         params: dict[str, Any] | None = None, *, server: bool = True) -> list[OracleColumn]:
    """Read ``query`` at the current SCN through the backend into a new
    PostgreSQL table ``target`` built from the mapped types."""
    with ora.cursor() as cur:
        columns = OracleBackend.describe(cur, query, {k: None for k in (params or {})})
    chunk = OracleBackend.as_of_scn(query, OracleBackend.current_scn(ora))
    layout = OracleBackend.copy_layout(chunk.sql, columns, server=server)
    pg.execute(sql.SQL("CREATE TABLE {} ({})").format(
        sql.Identifier(target),
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name.lower()),
                                                    sql.SQL(c.pg_type)) for c in columns)))
    with ora.cursor() as cur, pg.cursor() as pcur, pcur.copy(
            sql.SQL("COPY {} FROM STDIN (FORMAT text)").format(sql.Identifier(target))) as copy:
        for block in OracleBackend.read_copy_text(cur, layout, {**(params or {}),
                                                                **chunk.params}):
            copy.write(block)
    return columns


def checksum(pg: psycopg.Connection[Any], table: str) -> tuple[int, str]:
    row = pg.execute(sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
        "FROM {} t").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


EVERY_TYPE_DDL = """CREATE TABLE "DMS_EVERY_TYPE" (
  id NUMBER(9) PRIMARY KEY, n_small NUMBER(4), n_big NUMBER(18), n_money NUMBER(12,2),
  n_any NUMBER, n_float FLOAT(126), f_float BINARY_FLOAT, f_double BINARY_DOUBLE,
  s_varchar VARCHAR2(30 CHAR), s_nvarchar NVARCHAR2(12), s_char CHAR(4), s_clob CLOB,
  s_nclob NCLOB, b_raw RAW(4), b_blob BLOB, d_date DATE, d_ts TIMESTAMP(6),
  d_tstz TIMESTAMP(6) WITH TIME ZONE, d_tsltz TIMESTAMP(6) WITH LOCAL TIME ZONE,
  i_ds INTERVAL DAY(2) TO SECOND(6), i_ym INTERVAL YEAR(2) TO MONTH)"""
EVERY_TYPE_ROWS = [
    "INSERT INTO \"DMS_EVERY_TYPE\" VALUES (1, -9999, 999999999999999999, -1234567890.05, "
    "1.5E-30, 0.1, 0.5, 1E-300, 'back\\slash' || CHR(9) || 'tab' || CHR(10) || 'nl', "
    "N'Grüße', 'ab', TO_CLOB(RPAD('x', 4000, 'x')) || RPAD('y', 4000, 'y'), N'東京', "
    "HEXTORAW('000AFF5C'), HEXTORAW('DEADBEEF'), DATE '2024-02-29', "
    "TIMESTAMP '2020-01-02 03:04:05.123456', TIMESTAMP '2020-06-01 12:00:00.5 +02:00', "
    "TIMESTAMP '2020-06-01 12:00:00.5 +00:00', INTERVAL '-1 02:03:04.5' DAY TO SECOND, "
    "INTERVAL '-1-2' YEAR TO MONTH)",
    "INSERT INTO \"DMS_EVERY_TYPE\" (id) VALUES (2)",
]
EXPECTED_ROW_1 = (
    "1", "-9999", "999999999999999999", "-1234567890.05", "0.0000000000000000000000000000015",
    "0.1", "0.5", "1e-300", "back\\slash\ttab\nnl", "Grüße", "ab",
    "x" * 4000 + "y" * 4000, "東京", "\\x000aff5c", "\\xdeadbeef", "2024-02-29 00:00:00",
    "2020-01-02 03:04:05.123456", "2020-06-01 10:00:00.5+00", "2020-06-01 12:00:00.5+00",
    "-1 days -02:03:04.5", "-1 years -2 mons")


def test_every_type_reaches_postgresql_by_both_paths_with_one_checksum(
    ora: Any, pg: psycopg.Connection[Any]
) -> None:
    ora_drop(ora, "DMS_EVERY_TYPE")
    ora_run(ora, EVERY_TYPE_DDL, *EVERY_TYPE_ROWS)
    try:
        query = 'SELECT * FROM "DMS_EVERY_TYPE"'
        columns = load(ora, pg, query, "every_server")
        load(ora, pg, query, "every_driver", server=False)
    finally:
        ora_drop(ora, "DMS_EVERY_TYPE")
    layout = OracleBackend.copy_layout(query, columns)
    assert layout.path("N_MONEY") == "server" and layout.path("S_CLOB") == "driver"
    names = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name.lower()))
                               for c in columns)
    rows = pg.execute(sql.SQL("SELECT {} FROM every_server ORDER BY id").format(names)).fetchall()
    assert rows[0] == EXPECTED_ROW_1
    assert rows[1] == ("2",) + (None,) * (len(columns) - 1)
    assert checksum(pg, "every_server") == checksum(pg, "every_driver")


def test_rows_committed_after_the_scn_are_not_read(ora: Any, pg: psycopg.Connection[Any]) -> None:
    ora_drop(ora, "DMS_SCN_T")
    ora_run(ora, 'CREATE TABLE "DMS_SCN_T" (id NUMBER(9))',
            'INSERT INTO "DMS_SCN_T" SELECT LEVEL FROM dual CONNECT BY LEVEL <= 100')
    try:
        scn = OracleBackend.current_scn(ora)
        ora_run(ora, 'INSERT INTO "DMS_SCN_T" SELECT 100 + LEVEL FROM dual CONNECT BY LEVEL <= 7',
                'DELETE FROM "DMS_SCN_T" WHERE id <= 10')
        chunk = OracleBackend.as_of_scn('SELECT id FROM "DMS_SCN_T"', scn)
        with ora.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), SUM(id) FROM ({chunk.sql})", chunk.params)
            assert cur.fetchone() == (100, 5050)  # as of the SCN: not the 7 new, all 10 old
            cur.execute('SELECT COUNT(*) FROM "DMS_SCN_T"')
            assert cur.fetchone() == (97,)
    finally:
        ora_drop(ora, "DMS_SCN_T")


def test_rowid_chunks_partition_the_table(ora: Any) -> None:
    ora_drop(ora, "DMS_ROWID_T")
    ora_run(ora, 'CREATE TABLE "DMS_ROWID_T" (id NUMBER(9), pad VARCHAR2(200))',
            "INSERT INTO \"DMS_ROWID_T\" SELECT LEVEL, RPAD('x', 200, 'x') FROM dual "
            "CONNECT BY LEVEL <= 20000")
    try:
        source = OracleSource(ora)
        scn = OracleBackend.current_scn(ora)  # before the extents, see oracle_rowid
        stats = OracleBackend.rowid_bounds(source, "DMS_ROWID_T", 2_000, scn=scn)
        assert stats.row_count == 20_000 and len(stats.rowid_ranges) > 1
        plan = plan_query('SELECT t.id FROM "DMS_ROWID_T" t', "oracle", None, None, "rowid",
                          stats)
        seen: list[int] = []
        for chunk in plan.chunks:
            at_scn = OracleBackend.as_of_scn(chunk.query_sql, scn)
            seen += [int(r[0]) for r in source.fetch(at_scn.sql, {**chunk.params,
                                                                  **at_scn.params})]
        assert sorted(seen) == list(range(1, 20_001))  # every row once, none twice
    finally:
        ora_drop(ora, "DMS_ROWID_T")


def test_planning_cuts_rowid_ranges_after_its_scn_and_the_run_reads_at_it(ora: Any) -> None:
    # The engine's own path: plan_source through the planning session, then
    # the consistent point and a reader as the coordinator and workers get them.
    ora_drop(ora, "DMS_ROWID_P")
    ora_run(ora, 'CREATE TABLE "DMS_ROWID_P" (id NUMBER(9), pad VARCHAR2(200))',
            "INSERT INTO \"DMS_ROWID_P\" SELECT LEVEL, RPAD('x', 200, 'x') FROM dual "
            "CONNECT BY LEVEL <= 20000")
    try:
        config = cfg.resolve([("p_params", {"chunk_size": 2_000})])
        plan, _ = plan_source(_Planning(ora), 'SELECT t.id FROM "DMS_ROWID_P" t', config,
                              ParamStyle.NAMED)
        assert plan.strategy == "rowid" and len(plan.chunks) > 1 and plan.point is not None
        # Rows committed after planning, some in extents the ranges do not list.
        ora_run(ora, "INSERT INTO \"DMS_ROWID_P\" SELECT 20000 + LEVEL, RPAD('y', 200, 'y') "
                "FROM dual CONNECT BY LEVEL <= 20000")
        options = {name: entry["value"] for name, entry in config.as_json().items()}
        reader = _Reader(Endpoint(None, "test", "ORACLE"), 4000, planned_scn(options))
        reader._conn = ora
        seen: list[int] = []
        for chunk in plan.chunks:
            with reader.rows(Chunk(chunk.query_sql, chunk.params, snapshot=plan.point),
                             5_000) as batches:
                seen += [int(row["ID"]) for batch in batches for row in batch]
        reader._conn = None  # the module's connection: not the reader's to close
        assert sorted(seen) == list(range(1, 20_001))  # as of the planning SCN, each once
    finally:
        ora_drop(ora, "DMS_ROWID_P")


def test_a_wrong_password_fails_without_showing_it(oracle_params: dict[str, Any]) -> None:
    from dms_pkg.errors import DmsError

    wrong = {**oracle_params, "password": "Not-The-Password-42"}
    with pytest.raises(DmsError) as err:
        OracleBackend.connect(wrong, label="the test Oracle server")
    assert err.value.sqlstate == "08001"
    assert "ORA-01017" in err.value.message
    assert "Not-The-Password-42" not in str(err.value)
