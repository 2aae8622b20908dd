"""Runs of CALL dms.execute_query_parallel whose chunks must partition the source.

Issue 15 found rows loaded twice (a text key under an ICU collation), and
internal errors where a plan was due (NaN keys, infinite timestamps, a
forced strategy on a query that must not be split).  Each case here moves
real rows and compares counts and content checksums of the source query and
the target.  Targets have no unique key on purpose: a row in two chunks would
show as a wrong count, not as a failed run.  Runs on the same-database path
log in as an operator (a LOGIN role that is only a member of dms_operator);
runs through DMS_DBCONDTLS connections run as the superuser whose rows those
are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from dms_pkg.chunking import safety
from dms_pkg.sample_data import checksum
from tests.integration.conftest import Cluster, DatabaseFactory

SOURCE = r"""
CREATE TABLE icu_names (name text COLLATE "en-US-x-icu" PRIMARY KEY, v int NOT NULL);
INSERT INTO icu_names
  SELECT (ARRAY['a','B','c','D','é','F','y','Z','ß'])[1 + g % 9] || chr(65 + g % 26)
         || chr(97 + (g * 7) % 26) || g, g
  FROM generate_series(1, 4678) g;
CREATE TABLE regions (region text COLLATE "en-US-x-icu" NOT NULL, id int NOT NULL,
  v text, PRIMARY KEY (region, id));
INSERT INTO regions
  SELECT (ARRAY['north','North','south','South','éast','East','west','WEST'])[1 + g % 8],
         g / 8, 'v' || g
  FROM generate_series(1, 20000) g;
CREATE TABLE events (id int PRIMARY KEY, ts timestamp, tz timestamptz, d date, note text);
INSERT INTO events SELECT g,
  CASE WHEN g = 1 THEN '-infinity' WHEN g = 2 THEN 'infinity'
       ELSE timestamp '2020-01-01' + g * interval '7 minutes' END,
  CASE WHEN g = 3 THEN '-infinity' WHEN g = 4 THEN 'infinity'
       ELSE timestamptz '2020-01-01 00:00+00' + g * interval '1 hour' END,
  CASE WHEN g = 5 THEN '-infinity' WHEN g = 6 THEN 'infinity' ELSE date '2020-01-01' + g END,
  'n' || g
  FROM generate_series(1, 3000) g;
CREATE TABLE nums (id int PRIMARY KEY, x numeric, f double precision);
INSERT INTO nums SELECT g,
  CASE WHEN g % 50 = 0 THEN 'NaN' WHEN g = 7 THEN 'Infinity' ELSE g::numeric / 3 END,
  CASE WHEN g % 40 = 0 THEN 'NaN' WHEN g = 9 THEN '-Infinity' ELSE g::double precision END
  FROM generate_series(1, 3000) g;
CREATE TABLE "R_Mixed" ("Id" int PRIMARY KEY, v text);
INSERT INTO "R_Mixed" SELECT g, 'v' || g FROM generate_series(1, 2000) g;
CREATE TABLE sales (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
  amount numeric NOT NULL);
INSERT INTO sales SELECT g, g % 97, (ARRAY['new','paid','shipped','cancelled'])[1 + g % 4], g
  FROM generate_series(1, 6000) g;
CREATE TABLE returns (id int PRIMARY KEY, amount numeric NOT NULL);
INSERT INTO returns SELECT 100000 + g, -g FROM generate_series(1, 900) g;
ANALYZE;
"""


@dataclass
class Env:
    cluster: Cluster
    home: str
    source: str
    source_conid: int
    target_conid: int

    def connect(self, db: str | None = None, user: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(self.cluster.dsn(db or self.home, user), autocommit=True)

    def call(self, source_conid: int | None, query: str, target_conid: int | None, table: str,
             params: dict[str, Any], user: str | None = None) -> int:
        with self.connect(user=user) as conn:
            row = conn.execute(
                "CALL dms.execute_query_parallel(%s, %s, %s, 'public', %s, %s::jsonb)",
                [source_conid, query, target_conid, table, json.dumps(params)],
            ).fetchone()
        assert row is not None
        return int(row[0])

    def run(self, run_id: int) -> dict[str, Any]:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "SELECT r.state, r.strategy, r.chunk_key, r.refused_reason, r.path,"
                " (SELECT count(*) FROM dms.chunk c WHERE c.run_id = r.run_id) AS chunks"
                " FROM dms.run r WHERE r.run_id = %s", [run_id]).fetchone()
        assert row is not None
        return row

    def target(self, db: str, name: str, like_query: str, source_db: str | None = None) -> None:
        """An empty target shaped like the query's result (no keys, no constraints)."""
        with self.connect(source_db or db) as conn:
            described = conn.execute(
                sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(sql.SQL(like_query)))
            assert described.description is not None
            columns = [
                (c.name, conn.execute("SELECT format_type(%s, NULL)", [c.type_code]).fetchone())
                for c in described.description
            ]
        with self.connect(db) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(
                sql.Identifier(name),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t[0] if t else "text"))
                    for n, t in columns),
            ))

    def expected(self, db: str, query: str) -> tuple[int, int]:
        """Count and checksum of the query's own result."""
        with self.connect(db) as conn:
            conn.execute("DROP TABLE IF EXISTS dms_expected")
            conn.execute(sql.SQL("CREATE TABLE dms_expected AS {}").format(sql.SQL(query)))
            result = checksum(conn, "public", "dms_expected")
            conn.execute("DROP TABLE dms_expected")
        return result

    def got(self, db: str, table: str) -> tuple[int, int]:
        with self.connect(db) as conn:
            return checksum(conn, "public", table)


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> Env:
    home = databases.create(installed=True)
    source = databases.create()
    for db in (home, source):
        with psycopg.connect(cluster.dsn(db), autocommit=True) as conn:
            conn.execute(SOURCE.encode())
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        ids = []
        for name, db in (("chunk_src", source), ("chunk_home", home)):
            row = conn.execute(
                "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr) VALUES (%s, 'POSTGRESQL', %s)"
                " RETURNING conid", [name, cluster.dsn(db)]).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return Env(cluster, home, source, ids[0], ids[1])


@pytest.fixture
def operator(env: Env, login_role: Any) -> Iterator[str]:
    """A login that is only a member of dms_operator; it may read the source
    tables and write the tables it is given."""
    name = login_role("dms_operator")
    with env.connect() as conn:
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(name)))
    yield name
    with env.connect() as conn:
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(
            sql.Identifier(name)))


def _grant_target(env: Env, table: str, role: str) -> None:
    with env.connect() as conn:
        conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(
            sql.Identifier(table), sql.Identifier(role)))


PARALLEL = {"max_workers": 2, "min_rows_for_parallel": 0}


@pytest.mark.parametrize("strategy", ["quantile", "auto"])
def test_icu_text_key_loads_every_row_once(env: Env, operator: str, strategy: str) -> None:
    """Issue 15: 4,939 rows were loaded from 4,678 (bounds in code-point order)."""
    query = "SELECT name, v FROM icu_names"
    env.target(env.home, "icu_copy", query)
    _grant_target(env, "icu_copy", operator)
    run_id = env.call(None, query, None, "icu_copy",
                      {**PARALLEL, "strategy": strategy, "chunks": 8}, user=operator)
    run = env.run(run_id)
    assert (run["state"], run["chunk_key"], run["path"]) == ("SUCCEEDED", "name", "same_db")
    assert run["strategy"] == "quantile" and run["chunks"] >= 8
    assert env.got(env.home, "icu_copy") == env.expected(env.home, query)
    assert env.got(env.home, "icu_copy")[0] == 4678


def test_icu_text_key_over_a_connection(env: Env) -> None:
    query = "SELECT name, v FROM icu_names"
    env.target(env.home, "icu_copied", query)
    run_id = env.call(env.source_conid, query, None, "icu_copied",
                      {**PARALLEL, "strategy": "quantile", "chunks": 8})
    assert env.run(run_id)["state"] == "SUCCEEDED"
    assert env.got(env.home, "icu_copied") == env.expected(env.source, query)


def test_composite_key_with_an_icu_part_loads_every_row_once(env: Env, operator: str) -> None:
    """Issue 15: 43,332 rows were loaded from 20,000 with (region COLLATE icu, id)."""
    query = "SELECT region, id, v FROM regions"
    env.target(env.home, "regions_copy", query)
    _grant_target(env, "regions_copy", operator)
    for strategy in ("quantile", "auto"):
        with env.connect() as conn:
            conn.execute("TRUNCATE regions_copy")
        run_id = env.call(None, query, None, "regions_copy",
                          {**PARALLEL, "strategy": strategy, "chunks": 8}, user=operator)
        run = env.run(run_id)
        assert (run["state"], run["chunk_key"], run["strategy"]) == (
            "SUCCEEDED", "region, id", "quantile")
        assert env.got(env.home, "regions_copy") == env.expected(env.home, query)
        assert env.got(env.home, "regions_copy")[0] == 20000


@pytest.mark.parametrize(("path", "key", "strategy"), [
    ("copy", "ts", "auto"), ("copy", "ts", "key_range"), ("copy", "tz", "quantile"),
    ("rows", "ts", "auto"), ("rows", "d", "key_range"), ("rows", "tz", "auto"),
])
def test_infinite_timestamps_move_intact(env: Env, path: str, key: str, strategy: str) -> None:
    """Issue 15: 'timestamp too small' on the copy and the rows path, and chunks
    whose values were infinite failed on the rows path."""
    query = "SELECT id, ts, tz, d, note FROM events"
    table = f"events_{path}"
    env.target(env.home, table, query)
    run_id = env.call(env.source_conid, query, None, table,
                      {**PARALLEL, "key": key, "strategy": strategy, "chunks": 5, "path": path})
    run = env.run(run_id)
    assert run["state"] == "SUCCEEDED", run
    assert run["strategy"] != "single" and run["chunks"] >= 5
    assert env.got(env.home, table) == env.expected(env.source, query)
    with env.connect() as conn:
        ends = conn.execute(f"SELECT count(*) FROM {table} WHERE NOT isfinite(ts) "
                            "OR NOT isfinite(tz) OR NOT isfinite(d)").fetchone()
    assert ends == (6,)


@pytest.mark.parametrize("key", ["ts", "d"])
def test_key_range_on_a_time_key_in_the_same_database(
    env: Env, operator: str, key: str
) -> None:
    """Issue 15: refused there ("got 'text'") and accepted over a connection."""
    query = "SELECT id, ts, tz, d, note FROM events WHERE isfinite(ts) AND isfinite(d)"
    env.target(env.home, "events_same", query)
    _grant_target(env, "events_same", operator)
    run_id = env.call(None, query, None, "events_same",
                      {**PARALLEL, "key": key, "strategy": "key_range", "chunks": 4},
                      user=operator)
    run = env.run(run_id)
    assert (run["state"], run["strategy"], run["chunks"]) == ("SUCCEEDED", "key_range", 5)
    assert env.got(env.home, "events_same") == env.expected(env.home, query)


@pytest.mark.parametrize("key", ["x", "f"])
def test_nan_keys_are_split_and_moved(env: Env, operator: str, key: str) -> None:
    """Issue 15: a numeric key holding NaN failed with decimal.InvalidOperation."""
    query = "SELECT id, x, f FROM nums"
    env.target(env.home, "nums_copy", query)
    _grant_target(env, "nums_copy", operator)
    run_id = env.call(None, query, None, "nums_copy",
                      {**PARALLEL, "key": key, "chunks": 4}, user=operator)
    run = env.run(run_id)
    assert run["state"] == "SUCCEEDED" and run["strategy"] != "single"
    assert env.got(env.home, "nums_copy") == env.expected(env.home, query)


def test_a_forced_strategy_on_a_query_that_must_not_be_split_runs_as_one_chunk(
    env: Env, operator: str
) -> None:
    """Issue 15: it raised 22023; now it runs as one chunk and the run says why."""
    query = "SELECT status, count(*) AS n, sum(amount) AS total FROM sales GROUP BY status"
    env.target(env.home, "by_status", query)
    _grant_target(env, "by_status", operator)
    run_id = env.call(None, query, None, "by_status", {"strategy": "key_range"}, user=operator)
    run = env.run(run_id)
    assert (run["state"], run["strategy"], run["chunks"]) == ("SUCCEEDED", "single", 1)
    assert run["refused_reason"] == (
        "GROUP BY status does not contain the chunk key sales.id; a group would be split "
        "across chunks and aggregated once per chunk")
    assert env.got(env.home, "by_status") == env.expected(env.home, query)
    # Without a primary key to name, the reason is the physical split's.
    run_id = env.call(None, "SELECT status, count(*) AS n, sum(amount) AS total FROM "
                      "(SELECT status, amount FROM sales) s GROUP BY status", None,
                      "by_status", {"strategy": "ctid"}, user=operator)
    assert env.run(run_id)["refused_reason"] == safety.PHYSICAL_GROUP_BY


@pytest.mark.parametrize(("query", "key"), [
    ("SELECT customer_id, count(*) AS n, sum(amount) AS total FROM sales GROUP BY customer_id",
     "customer_id"),
    ("SELECT DISTINCT status FROM sales", "status"),
    ("SELECT id, amount FROM sales UNION ALL SELECT id, amount FROM returns", "id"),
])
def test_a_key_that_makes_the_query_safe_splits_the_run(
    env: Env, operator: str, query: str, key: str
) -> None:
    """Issue 15: these ran as one chunk with refused_reason NULL."""
    env.target(env.home, "safe_split", query)
    _grant_target(env, "safe_split", operator)
    run_id = env.call(None, query, None, "safe_split", {**PARALLEL, "key": key, "chunks": 3},
                      user=operator)
    run = env.run(run_id)
    assert run["state"] == "SUCCEEDED" and run["refused_reason"] is None
    assert run["strategy"] != "single" and run["chunks"] >= 3
    assert env.got(env.home, "safe_split") == env.expected(env.home, query)


def test_a_union_branch_without_the_key_column_is_one_chunk(env: Env, operator: str) -> None:
    """A UNION ALL splits only when every branch selects the key as a plain column."""
    query = "SELECT id, amount FROM sales UNION ALL SELECT id + 100000, -amount FROM sales"
    env.target(env.home, "union_one", query)
    _grant_target(env, "union_one", operator)
    run_id = env.call(None, query, None, "union_one", {"key": "id", "strategy": "quantile"},
                      user=operator)
    run = env.run(run_id)
    assert (run["state"], run["strategy"], run["chunks"]) == ("SUCCEEDED", "single", 1)
    assert run["refused_reason"] == (
        "UNION ALL branch 2 does not select the chunk key id as a plain column, so the branch "
        "cannot be filtered on it")
    assert env.got(env.home, "union_one") == env.expected(env.home, query)


@pytest.mark.parametrize(("query", "chunk_key"), [
    ('SELECT "Id", v FROM "R_Mixed"', '"Id"'),
    ("WITH r AS (SELECT id AS sale_id, amount FROM sales) SELECT * FROM r", "sale_id"),
    ("SELECT r.sale_id, r.amount FROM (SELECT id AS sale_id, amount FROM sales) r", "sale_id"),
])
def test_the_default_key_as_the_query_names_it(
    env: Env, operator: str, query: str, chunk_key: str
) -> None:
    """Issue 15: "column R_Mixed.id does not exist" and "column r.id does not exist"."""
    env.target(env.home, "default_key", query)
    _grant_target(env, "default_key", operator)
    run_id = env.call(None, query, None, "default_key", {**PARALLEL, "chunks": 4},
                      user=operator)
    run = env.run(run_id)
    assert (run["state"], run["chunk_key"], run["strategy"]) == (
        "SUCCEEDED", chunk_key, "key_range")
    assert env.got(env.home, "default_key") == env.expected(env.home, query)


def test_strategy_single_runs_one_chunk(env: Env, operator: str) -> None:
    """Issue 15: ValueError: the analysis has no chunk key."""
    query = "SELECT id, amount FROM sales"
    env.target(env.home, "single_copy", query)
    _grant_target(env, "single_copy", operator)
    run_id = env.call(None, query, None, "single_copy", {"strategy": "single"}, user=operator)
    run = env.run(run_id)
    assert (run["state"], run["strategy"], run["chunks"], run["refused_reason"]) == (
        "SUCCEEDED", "single", 1, None)
    assert env.got(env.home, "single_copy") == env.expected(env.home, query)
