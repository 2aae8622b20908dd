"""dms.schema_diff, dms.compare_tables and dms.profile_tables: the checks from SQL, as an
operator login, with a MariaDB side reached through a DMS_DBCONDTLS connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg import sql

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.test_mysql_runs import my_port

PG = ("CREATE TABLE items (id integer PRIMARY KEY, name varchar(20) NOT NULL, amount"
      " numeric(10,2))",
      "INSERT INTO items SELECT g, 'n' || g, g * 1.5 FROM generate_series(1, 5000) g")
MY = ("CREATE TABLE items (id int(11) PRIMARY KEY, name varchar(20) NOT NULL, amount"
      " decimal(10,2))",
      "INSERT INTO items SELECT seq, CONCAT('n', seq), seq * 1.5 FROM seq_1_to_5000",
      "UPDATE items SET name = 'changed' WHERE id IN (10, 4000)",
      "DELETE FROM items WHERE id = 77")


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory,
        mariadb: dict[str, Any]) -> Iterator[dict[str, Any]]:
    home = databases.create(installed=True)
    operator, viewer = (f"dmst_ck_{uuid.uuid4().hex[:6]}" for _ in range(2))
    my_db, my_user = f"dmst_ck_{uuid.uuid4().hex[:8]}", f"dmst_ck{uuid.uuid4().hex[:6]}"
    with pymysql.connect(**mariadb, autocommit=True) as my, my.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{my_db}`")
        cur.execute(f"USE `{my_db}`")
        for statement in MY:
            cur.execute(statement)
        cur.execute(f"CREATE USER '{my_user}'@'127.0.0.1'")
        cur.execute(f"GRANT SELECT ON `{my_db}`.* TO '{my_user}'@'127.0.0.1'")
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        for statement in PG:
            conn.execute(statement.encode())
        for name, role in ((operator, "dms_operator"), (viewer, "dms_viewer")):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(name), sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON items TO {}").format(sql.Identifier(operator)))
        for connm in ("shop", "secret"):
            conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbhost, dbport, dbsrvnm,"
                         " usrnm, pwdsrc) VALUES (%s, 'MARIADB', '127.0.0.1', %s, %s, %s, 'NONE')",
                         [connm, my_port(cluster), my_db, my_user])
        conn.execute("SELECT dms.grant_connection((SELECT conid FROM dms.dms_dbcondtls"
                     " WHERE connm = 'shop'), %s)", [operator])
    yield {"dsn": cluster.dsn(home), "op": cluster.dsn(home, user=operator),
           "viewer": cluster.dsn(home, user=viewer), "operator": operator}
    with pymysql.connect(**mariadb, autocommit=True) as my, my.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{my_db}`")
        cur.execute(f"DROP USER IF EXISTS '{my_user}'@'127.0.0.1'")
    databases.drop_all()
    databases.created.clear()
    with cluster.admin() as conn:
        for name in (operator, viewer):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def one(dsn: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0]


def results(dsn: str, check_id: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT pair, status, error, differences FROM dms.check_results"
                            " WHERE check_id = %s ORDER BY seq", [check_id]).fetchall()


def test_schema_diff_from_sql(env: dict[str, Any]) -> None:
    check = one(env["op"], "SELECT dms.schema_diff(ARRAY['public.items:shop.items',"
                " 'items:public.nope', 'no pair', 'items:secret.items'])")
    rows = results(env["dsn"], check)
    assert rows[0] == ("public.items:shop.items", "equal", None, 0)
    assert rows[1][:3] == ("items:public.nope", "error",
                           "table public.nope does not exist on the postgres side, or it has no "
                           "columns you may read")
    assert rows[2][:3] == ("no pair", "error", '"no pair" is not a pair: write A:B (one colon)')
    assert rows[3][1] == "error" and rows[3][2].startswith("permission denied for ")
    assert one(env["dsn"], "SELECT (kind, pairs, equal, errors, created_by)::text FROM"
               " dms.check_run WHERE check_id = %s", [check]) == (
        f"(schema-diff,4,1,3,{env['operator']})")


def test_compare_tables_from_sql(env: dict[str, Any]) -> None:
    check = one(env["op"], "SELECT dms.compare_tables(ARRAY['public.items:shop.items'],"
                " '{\"parallel\": 2}')")
    with psycopg.connect(env["dsn"]) as conn:
        row = conn.execute("SELECT status, result->'only_in_a', result->'only_in_b',"
                           " result->'different' FROM dms.check_result WHERE check_id = %s",
                           [check]).fetchone()
    assert row == ("different", [[77]], [], [[10], [4000]])


def test_profile_tables_from_sql(env: dict[str, Any]) -> None:
    profile = one(env["op"], "SELECT dms.profile_tables(ARRAY['public.items', 'shop.items'])")
    with psycopg.connect(env["dsn"]) as conn:
        rows = conn.execute(
            "SELECT t.table_ref, t.row_count, c.distinct_count, c.max_value FROM"
            " dms.profile_table t JOIN dms.profile_column c USING (profile_id, table_ref)"
            " WHERE profile_id = %s AND c.column_name = 'name' ORDER BY 1", [profile]).fetchall()
    assert rows == [("public.items", 5000, 5000, "n999"), ("shop.items", 4999, 4998, "n999")]


def test_a_viewer_is_refused_and_nothing_is_written(env: dict[str, Any]) -> None:
    before = one(env["dsn"], "SELECT count(*) FROM dms.check_run")
    for call in ("SELECT dms.schema_diff(ARRAY['items:items'])",
                 "SELECT dms.compare_tables(ARRAY['items:items'])",
                 "SELECT dms.profile_tables(ARRAY['items'])",
                 "SELECT dms.record_check('schema-diff', '{}')"):
        with psycopg.connect(env["viewer"], autocommit=True) as conn, \
                pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            conn.execute(call.encode())
        assert str(err.value).startswith("permission denied for function")
    assert one(env["dsn"], "SELECT count(*) FROM dms.check_run") == before
