"""A mapper DIM job whose source queries run on MariaDB: SCD2 and SCD1 loads into
PostgreSQL, defined and run only through the packages' SQL calls."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.mapper_env import MapperEnv, define_dim
from tests.integration.test_mysql_runs import my_port

CUSTOMERS = 20_000


@pytest.fixture(scope="module")
def source(mariadb: dict[str, object], cluster: Cluster) -> Iterator[tuple[str, int, str]]:
    db, login = f"dmst_myd_{uuid.uuid4().hex[:8]}", f"dmst_m{uuid.uuid4().hex[:6]}"
    args: dict[str, Any] = dict(mariadb)
    with pymysql.connect(**args, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER '{login}'@'{host}'")
            cur.execute(f"GRANT SELECT, RELOAD, LOCK TABLES ON *.* TO '{login}'@'{host}'")
        cur.execute(f"USE `{db}`")
        cur.execute("CREATE TABLE customer (cust_id int PRIMARY KEY, name varchar(60),"
                    " segment varchar(20))")
        cur.execute("CREATE TABLE credit (cust_id int PRIMARY KEY, credit_limit decimal(12,2),"
                    " rating varchar(10))")
        cur.execute("INSERT INTO customer SELECT seq, CONCAT('customer ', seq),"
                    f" CONCAT('segment ', seq % 7) FROM seq_1_to_{CUSTOMERS}")
        cur.execute("INSERT INTO credit SELECT seq, seq * 10.5, CONCAT('r', seq % 3)"
                    f" FROM seq_1_to_{CUSTOMERS}")
    yield db, my_port(cluster), login
    with pymysql.connect(**args, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"DROP USER IF EXISTS '{login}'@'{host}'")


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory, source: tuple[str, int, str]
        ) -> MapperEnv:
    db, port, login = source
    environment = MapperEnv(cluster, databases.create(installed=True))
    with environment.connect() as conn:
        conn.execute("CREATE SCHEMA dw")
        conid = conn.execute(
            "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbhost, dbport, dbsrvnm, usrnm, pwdsrc)"
            " VALUES ('crm_mariadb', 'MARIADB', '127.0.0.1', %s, %s, %s, 'NONE')"
            " RETURNING conid", [port, db, login]).fetchone()
    assert conid is not None
    environment.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => 'CUST_Q', p_maprsql =>"
                     " 'SELECT cust_id, name, segment FROM customer', p_sqlconid => %s)",
                     [conid[0]])
    environment.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => 'CREDIT_Q', p_maprsql"
                     " => 'SELECT cust_id, credit_limit, rating FROM credit', p_sqlconid => %s)",
                     [conid[0]])
    return environment


def current(env: MapperEnv) -> dict[int, tuple[Any, ...]]:
    return {r["cust_id"]: (r["name"], r["segment"], r["credit_limit"], r["rating"])
            for r in env.rows("SELECT cust_id, name, segment, credit_limit, rating"
                              " FROM dw.dim_customer WHERE curflg = 'Y'")}


def mariadb_rows(source: tuple[str, int, str], mariadb: dict[str, object]
                 ) -> dict[int, tuple[Any, ...]]:
    args: dict[str, Any] = dict(mariadb)
    with pymysql.connect(**args, database=source[0]) as conn, conn.cursor() as cur:
        cur.execute("SELECT c.cust_id, c.name, c.segment, k.credit_limit, k.rating"
                    " FROM customer c LEFT JOIN credit k USING (cust_id)")
        return {int(r[0]): tuple(r[1:]) for r in cur.fetchall()}


def test_a_dim_scd2_job_loads_a_mariadb_source_and_keeps_history(
        env: MapperEnv, source: tuple[str, int, str], mariadb: dict[str, object]) -> None:
    define_dim(env, "DIM_CUSTOMER", "dim_customer")
    first = env.run_job("DIM_CUSTOMER", '{"max_workers": 2, "min_rows_for_parallel": 0}')
    # two combinations, each reading every key once
    log = env.rows("SELECT srcrows, trgrows, errrows, status FROM dms.dms_joblog"
                   " WHERE prcid = %s", [first])
    assert log == [{"srcrows": 2 * CUSTOMERS, "trgrows": CUSTOMERS, "errrows": 0, "status": "PC"}]
    assert current(env) == mariadb_rows(source, mariadb)

    # 10 % of the keys change in MariaDB: names (SCD2: a new version), segments (SCD1: in place).
    args: dict[str, Any] = dict(mariadb)
    with pymysql.connect(**args, database=source[0], autocommit=True) as conn, \
            conn.cursor() as cur:
        cur.execute("UPDATE customer SET name = CONCAT(name, ' (renamed)')"
                    " WHERE cust_id % 20 = 0")
        cur.execute("UPDATE customer SET segment = 'moved' WHERE cust_id % 20 = 10")
    second = env.run_job("DIM_CUSTOMER", '{"max_workers": 2, "min_rows_for_parallel": 0}')
    assert env.rows("SELECT status, errrows FROM dms.dms_joblog WHERE prcid = %s",
                    [second]) == [{"status": "PC", "errrows": 0}]
    assert current(env) == mariadb_rows(source, mariadb)
    with psycopg.connect(env.cluster.dsn(env.db)) as pg:
        versions = pg.execute(
            "SELECT count(*) FILTER (WHERE curflg = 'N'), count(*) FROM dw.dim_customer"
        ).fetchone()
    # every renamed key has one expired version; segments changed in place
    assert versions == (CUSTOMERS // 20, CUSTOMERS + CUSTOMERS // 20)
