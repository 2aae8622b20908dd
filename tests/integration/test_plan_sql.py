"""``dms.plan_chunks()`` and ``dms plan``: a plan can be looked at without running it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors

from dms_pkg.chunking import safety
from dms_pkg.chunking.planner import plan_chunks
from dms_pkg.db.pg_values import keep_out_of_range_as_text
from dms_pkg.db.sources import PsycopgSource
from tests.integration.conftest import Cluster

SETUP = """
CREATE TABLE t (id bigint PRIMARY KEY, k integer, v text);
INSERT INTO t SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 1000 END, 'v' || g
  FROM generate_series(1, 5000) g;
-- 90 % of the rows on one value, the rest spread, one far outlier
CREATE TABLE skew (id bigint PRIMARY KEY, k integer NOT NULL);
INSERT INTO skew SELECT g, CASE WHEN g <= 18000 THEN 500 ELSE g - 18000 END
  FROM generate_series(1, 20000) g;
INSERT INTO skew VALUES (20001, 1000000);
ANALYZE t; ANALYZE skew;
"""


@pytest.fixture(scope="module")
def db(cluster: Cluster, installed_db: str) -> str:
    with psycopg.connect(cluster.dsn(installed_db), autocommit=True) as conn:
        conn.execute(SETUP.encode())
    return cluster.dsn(installed_db)


def _plan(conn: psycopg.Connection[Any], **kwargs: Any) -> list[dict[str, Any]]:
    """SELECT * FROM dms.plan_chunks(p_x => ..., ...) in named notation."""
    names = ", ".join(f"{k} => %({k})s" for k in kwargs)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(f"SELECT * FROM dms.plan_chunks({names})", kwargs)
        return cur.fetchall()


def _rows_of_chunks(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> Counter[Any]:
    """Run each chunk's query with its binds ($1.. in params order)."""
    seen: Counter[Any] = Counter()
    for row in rows:
        with psycopg.RawCursor(conn) as cur:
            cur.execute(row["query_sql"], list(row["params"].values()) or None)
            seen.update(cur.fetchall())
    return seen


def test_plan_in_sql_partitions_the_query(db: str) -> None:
    sql = "SELECT id, k, v FROM t WHERE v LIKE 'v%'"
    with psycopg.connect(db) as conn:
        rows = _plan(conn, p_sql=sql, p_key="k", p_chunks=4)
        whole = Counter(conn.execute(sql.replace("%", "%%")).fetchall())
        assert [r["chunk_no"] for r in rows] == list(range(1, len(rows) + 1))
        assert {r["strategy"] for r in rows} == {"key_range"}
        assert [r["kind"] for r in rows] == ["range"] * 4 + ["null"]
        assert rows[0]["driving_table"] == "t" and rows[0]["chunk_key"] == "k"
        assert rows[0]["predicate_sql"] == "t.k < $1"
        assert rows[0]["hi"] is not None and rows[0]["refused_reason"] is None
        assert rows[-1]["predicate_sql"] == "t.k IS NULL"
        assert rows[-1]["estimated_rows"] == 500
        assert sum(r["estimated_rows"] for r in rows) == 5000
        assert _rows_of_chunks(conn, rows) == whole


def test_primary_key_is_the_default_key(db: str) -> None:
    with psycopg.connect(db) as conn:
        rows = _plan(conn, p_sql="SELECT id, v FROM t", p_chunk_size=1000, p_strategy="key_range")
    assert rows[0]["chunk_key"] == "id"
    assert len(rows) == 6  # 5000 rows / 1000 per chunk, plus the NULL chunk


def test_ctid_plan_without_key(db: str) -> None:
    with psycopg.connect(db) as conn:
        rows = _plan(conn, p_sql="SELECT id, v FROM t", p_chunks=3, p_strategy="ctid")
        assert [r["kind"] for r in rows] == ["tid"] * 3
        assert rows[1]["predicate_sql"] == (
            "t.ctid >= CAST($1 AS tid) AND t.ctid < CAST($2 AS tid)"
        )
        assert len(_rows_of_chunks(conn, rows)) == 5000


def test_refused_query_is_one_row_with_the_reason(db: str) -> None:
    with psycopg.connect(db) as conn:
        rows = _plan(conn, p_sql="SELECT k, count(*) FROM t GROUP BY k", p_key="id")
    assert len(rows) == 1
    assert rows[0]["strategy"] == "single"
    assert rows[0]["refused_reason"] == (
        "GROUP BY k does not contain the chunk key t.id; a group would be split "
        "across chunks and aggregated once per chunk"
    )
    assert rows[0]["query_sql"] == "SELECT k, COUNT(*) FROM t GROUP BY k"


def test_oracle_query_is_planned_without_a_connection(db: str) -> None:
    with psycopg.connect(db) as conn:
        hashed = _plan(conn, p_sql="SELECT e.empno, NVL(e.comm, 0) FROM emp e",
                       p_dialect="oracle", p_key="empno", p_chunks=2)
        refused = _plan(conn, p_sql="SELECT empno FROM emp WHERE ROWNUM <= 10",
                        p_dialect="oracle", p_key="empno")
    assert [r["predicate_sql"] for r in hashed] == [
        "COALESCE(MOD(ORA_HASH(e.empno), 2), 0) = :dms_bucket"
    ] * 2
    assert [r["params"] for r in hashed] == [{"dms_bucket": 0}, {"dms_bucket": 1}]
    assert refused[0]["refused_reason"] == (
        "ROWNUM numbers rows in the order the database reads them across the whole query; "
        "it cannot be split"
    )


@pytest.mark.parametrize(
    ("kwargs", "sqlstate", "message"),
    [
        ({"p_sql": "SELECT id FROM t", "p_dialect": "db2"}, "22023",
         'unknown SQL dialect "db2"; allowed dialects: '
         "mariadb, mysql, oracle, postgres, postgresql, sqlite"),
        ({"p_sql": "SELECT id FROM t", "p_strategy": "fastest"}, "22023",
         'unknown chunk strategy "fastest"; allowed strategies: '
         "auto, key_range, quantile, ctid, rowid, hash, offset, single"),
        ({"p_sql": "SELECT id FROM t", "p_chunks": 0}, "22023",
         "n_chunks must be between 1 and 10000, got 0"),
        ({"p_sql": "SELECT id FROM t", "p_chunks": 10001}, "22023",
         "n_chunks must be between 1 and 10000, got 10001"),
        ({"p_sql": "SELECT id FROM t", "p_chunk_size": 0}, "22023",
         "chunk_size must be between 1 and 1000000000, got 0"),
        ({"p_sql": "SELECT id FROM t", "p_key": "nope"}, "42703",
         'column "nope" does not exist in table t'),
        ({"p_sql": "SELECT id FROM t", "p_key": "x.id"}, "42P01",
         'chunk key x.id refers to "x", which is not a table or alias in the outermost '
         "FROM clause"),
        ({"p_sql": "SELECT id FROM no_such_table"}, "42P01",
         "table no_such_table does not exist on the postgres source, or it has no columns "
         "you may read"),
        ({"p_sql": "SELECT id FROM t WHERE", "p_key": "id"}, "42601",
         'cannot parse source SQL as postgres at line 1, column 22 near "WHERE": '
         "WHERE is incomplete"),
        ({"p_sql": "SELECT empno FROM emp", "p_dialect": "oracle", "p_key": "empno",
          "p_strategy": "key_range"}, "22023",
         'strategy "key_range" computes its bounds from the source database\'s statistics, '
         "and no connection to a oracle source was given"),
    ],
)
def test_bad_input_names_the_problem(
    db: str, kwargs: dict[str, Any], sqlstate: str, message: str
) -> None:
    with psycopg.connect(db) as conn, pytest.raises(psycopg.Error) as err:
        _plan(conn, **kwargs)
    assert err.value.diag.sqlstate == sqlstate
    assert err.value.diag.message_primary == f"dms: {message}"


def test_viewer_may_not_plan(cluster: Cluster, db: str, login_role: Any) -> None:
    viewer = login_role("dms_viewer")
    dsn = psycopg.conninfo.make_conninfo(db, user=viewer)
    with psycopg.connect(dsn) as conn, pytest.raises(errors.InsufficientPrivilege) as err:
        _plan(conn, p_sql="SELECT id FROM t")
    assert str(err.value).startswith("permission denied for function plan_chunks")


def test_skewed_key_keeps_chunks_balanced_or_says_why(db: str) -> None:
    """90 % of the rows on one value, 8 chunks: the hot value gets a chunk of its
    own and the plan names it; equal-width ranges put far more rows together."""
    with psycopg.connect(db, autocommit=True) as conn:
        source = PsycopgSource(conn)
        auto = plan_chunks(source, "SELECT id, k FROM skew", key="k", n_chunks=8)
        width = plan_chunks(source, "SELECT id, k FROM skew", key="k", n_chunks=8,
                            strategy="key_range")

        def sizes(plan: Any) -> list[int]:
            return [len(source.fetch(c.query_sql, c.params)) for c in plan.chunks
                    if c.kind != "null"]

        auto_sizes, width_sizes = sizes(auto), sizes(width)
    assert sum(auto_sizes) == sum(width_sizes) == 20001
    assert auto.strategy == "quantile"
    assert [h.value for h in auto.hot_values] == [500]
    mean = sum(auto_sizes) / len(auto_sizes)
    if max(auto_sizes) > 2 * mean:
        assert any(n.startswith("the largest chunk cannot be kept under 2x the mean because "
                                "k value 500 holds 9") for n in auto.notes), auto.notes
    # The hot value is alone; every other chunk is small and balanced.
    assert max(auto_sizes) == 18001  # 18000 + the one 500 among the spread keys
    others = [s for s in auto_sizes if s != 18001]
    assert len(others) >= 6 and max(others) <= 2 * (2000 / len(others))
    # Equal-width cuts from min/max (the outlier stretches them) leave nearly
    # everything in the first chunk.
    assert max(width_sizes) == 20000
    assert max(width_sizes) > max(auto_sizes)


def test_dms_plan_command_line(cluster: Cluster, db: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "plan", "--dsn", db, "--sql",
         "SELECT id, v FROM t", "--chunks", "3", "--strategy", "key_range"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "strategy key_range  dialect postgres  driving table t  key id  chunks 4" in (
        done.stdout
    )
    assert "t.id >= :dms_lo AND t.id < :dms_hi" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "plan", "--dsn", db, "--sql",
         "SELECT id FROM t", "--chunks", "0"],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[0] == (
        "dms: error: n_chunks must be between 1 and 10000, got 0"
    )


def test_params_are_json(db: str) -> None:
    with psycopg.connect(db) as conn:
        rows = _plan(conn, p_sql="SELECT id FROM t", p_chunks=2, p_strategy="key_range")
    assert json.loads(json.dumps(rows[0]["params"])) == {"dms_hi": 2501}


# ------------------------------------------------ issue 15: plans, not errors

ISSUE15 = r"""
CREATE COLLATION IF NOT EXISTS dms_ci
  (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
-- Upper and lower case interleave in ICU order, not in code-point order.
CREATE TABLE icu (name text COLLATE "en-US-x-icu" PRIMARY KEY, v int);
INSERT INTO icu SELECT (ARRAY['a','B','c','D','é','F','y','Z'])[1 + g % 8] || g, g
  FROM generate_series(1, 4678) g;
CREATE TABLE ci (id int PRIMARY KEY, k text COLLATE dms_ci);
INSERT INTO ci SELECT g, (ARRAY['e','E','f','F','y','Y','z'])[1 + g % 7]
  FROM generate_series(1, 700) g;
CREATE TABLE nums (id int PRIMARY KEY, x numeric, f double precision);
INSERT INTO nums SELECT g,
  CASE WHEN g % 50 = 0 THEN 'NaN' WHEN g = 7 THEN 'Infinity' WHEN g = 8 THEN '-Infinity'
       ELSE g::numeric / 4 END,
  CASE WHEN g % 40 = 0 THEN 'NaN' WHEN g = 9 THEN 'Infinity' WHEN g = 10 THEN '-Infinity'
       ELSE g::double precision END
  FROM generate_series(1, 1000) g;
CREATE TABLE events (id int PRIMARY KEY, ts timestamp, d date);
INSERT INTO events SELECT g,
  CASE WHEN g = 1 THEN '-infinity' WHEN g = 2 THEN 'infinity'
       ELSE timestamp '2020-01-01' + g * interval '90 minutes' END,
  CASE WHEN g = 3 THEN '-infinity' WHEN g = 4 THEN 'infinity'
       ELSE date '2020-01-01' + g END
  FROM generate_series(1, 1000) g;
CREATE TABLE plain_ts (id int PRIMARY KEY, ts timestamp NOT NULL, d date NOT NULL);
INSERT INTO plain_ts SELECT g, timestamp '2021-06-01' + g * interval '1 hour',
  date '2021-06-01' + g / 10 FROM generate_series(1, 1000) g;
CREATE TABLE "R_Mixed" ("Id" int PRIMARY KEY, v text);
INSERT INTO "R_Mixed" SELECT g, 'v' || (g % 5) FROM generate_series(1, 1000) g;
CREATE TABLE sales (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
  amount numeric NOT NULL);
INSERT INTO sales SELECT g, g % 97, (ARRAY['new','paid','shipped','cancelled'])[1 + g % 4], g
  FROM generate_series(1, 3000) g;
CREATE TABLE returns (id int PRIMARY KEY, amount numeric NOT NULL);
INSERT INTO returns SELECT 100000 + g, -g FROM generate_series(1, 800) g;
CREATE TABLE parted (id int, r int) PARTITION BY RANGE (r);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (10) TO (20);
INSERT INTO parted SELECT g, g % 20 FROM generate_series(1, 20000) g;
CREATE VIEW sales_view AS SELECT customer_id, status FROM sales;
CREATE TABLE c_names (name text COLLATE "C" PRIMARY KEY, v int);
INSERT INTO c_names SELECT 'x' || name, v FROM icu;
ANALYZE;
"""


@pytest.fixture(scope="module")
def issue15(db: str) -> str:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(ISSUE15.encode())
    return db


@pytest.fixture
def operator(issue15: str, login_role: Any) -> Iterator[str]:
    """A login that is only a member of dms_operator, with SELECT on the tables."""
    name = login_role("dms_operator")
    with psycopg.connect(issue15, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{name}"')
    yield psycopg.conninfo.make_conninfo(issue15, user=name)
    with psycopg.connect(issue15, autocommit=True) as conn:
        conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{name}"')


def _chunk_rows(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> list[Counter[Any]]:
    """The rows of each chunk, by running its query with its binds."""
    out = []
    for row in rows:
        with psycopg.RawCursor(conn) as cur:
            keep_out_of_range_as_text(cur.adapters)
            cur.execute(row["query_sql"], list(row["params"].values()) or None)
            out.append(Counter(_plain(r) for r in cur.fetchall()))
    return out


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str(v) if isinstance(v, float | Decimal) and v != v else v for v in row)


def _assert_partition(conn: psycopg.Connection[Any], sql: str, rows: list[dict[str, Any]],
                      ) -> list[Counter[Any]]:
    """Every row of ``sql`` in exactly one chunk (the first column is unique)."""
    with psycopg.RawCursor(conn) as cur:
        keep_out_of_range_as_text(cur.adapters)
        cur.execute(sql)
        whole = Counter(_plain(r) for r in cur.fetchall())
    chunks = _chunk_rows(conn, rows)
    union: Counter[Any] = Counter()
    for chunk in chunks:
        union.update(chunk)
    assert union == whole, [r["query_sql"] for r in rows]
    firsts = [r[0] for chunk in chunks for r in chunk.elements()]
    assert len(firsts) == len(set(firsts)), "a row is in two chunks"
    return chunks


@pytest.mark.parametrize("strategy", ["quantile", "auto", "hash"])
def test_icu_text_primary_key_is_cut_in_its_collation(operator: str, strategy: str) -> None:
    """Issue 15: 261 of 4,678 rows were in two chunks (bounds in code-point order)."""
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql="SELECT name, v FROM icu", p_chunks=6, p_strategy=strategy)
        assert rows[0]["chunk_key"] == "name" and rows[0]["refused_reason"] is None
        assert len(rows) >= 6
        chunks = _assert_partition(conn, "SELECT name, v FROM icu", rows)
    assert sum(sum(c.values()) for c in chunks) == 4678


def test_composite_key_with_a_collated_part(operator: str) -> None:
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql="SELECT name, v FROM icu", p_key="name, v", p_chunks=5)
        assert rows[0]["strategy"] == "quantile"
        _assert_partition(conn, "SELECT name, v FROM icu", rows)


@pytest.mark.parametrize("strategy", ["quantile", "auto", "hash"])
def test_group_by_a_nondeterministic_key_keeps_each_group_whole(
    operator: str, strategy: str
) -> None:
    """'e' = 'E' under the nondeterministic collation: each letter one group, one chunk."""
    sql = "SELECT min(id), count(*) FROM ci GROUP BY k"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_key="k", p_chunks=3, p_strategy=strategy)
        assert rows[0]["refused_reason"] is None and rows[0]["strategy"] != "single"
        chunks = _assert_partition(conn, sql, rows)
    assert sum(sum(c.values()) for c in chunks) == 4  # e, f, y, z


@pytest.mark.parametrize(("key", "strategy"), [
    ("x", "auto"), ("x", "key_range"), ("x", "quantile"), ("x", "hash"),
    ("f", "auto"), ("f", "key_range"), ("f", "quantile"),
])
def test_nan_and_infinite_numbers_are_split(operator: str, key: str, strategy: str) -> None:
    """numeric NaN made decimal.InvalidOperation; NaN sorts above every number in
    PostgreSQL, so it lands in the open top range."""
    sql = f"SELECT id, {key} FROM nums"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_key=key, p_chunks=4, p_strategy=strategy)
        assert rows[0]["refused_reason"] is None
        assert len(rows) == (4 if strategy == "hash" else 5)
        _assert_partition(conn, sql, rows)
    if strategy == "key_range":
        assert rows[0]["notes"].startswith(
            f"{key} holds values with no place on its number or time line (NaN, infinity, ")


@pytest.mark.parametrize(("key", "strategy"), [
    ("ts", "auto"), ("ts", "key_range"), ("ts", "quantile"), ("d", "key_range"),
    ("d", "auto"),
])
def test_infinite_timestamps_are_split(operator: str, key: str, strategy: str) -> None:
    """'-infinity' made psycopg fail ("timestamp too small"); here it is planned."""
    sql = f"SELECT id, {key} FROM events"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_key=key, p_chunks=4, p_strategy=strategy)
        assert rows[0]["refused_reason"] is None and len(rows) >= 5
        _assert_partition(conn, sql, rows)


@pytest.mark.parametrize("key", ["ts", "d"])
def test_key_range_on_a_time_key_inside_the_server(operator: str, key: str) -> None:
    """dms.plan_chunks measures through PL/Python, which passes times as text:
    key_range said "got 'text'" here and accepted the same key over a connection."""
    sql = f"SELECT id, {key} FROM plain_ts"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_key=key, p_chunks=4, p_strategy="key_range")
        assert [r["kind"] for r in rows] == ["range"] * 4 + ["null"]
        assert rows[1]["lo"].startswith("2021-06-")
        _assert_partition(conn, sql, rows)


def test_a_cte_referenced_twice_is_sampled_without_tablesample(operator: str) -> None:
    sql = ("WITH c AS (SELECT id, amount FROM sales) "
           "SELECT a.id, b.amount FROM c a JOIN c b ON a.id = b.id")
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_key="a.id", p_chunks=4, p_strategy="quantile")
        assert rows[0]["predicate_sql"] == "a.id < $1"
        _assert_partition(conn, sql, rows)


@pytest.mark.parametrize("sql", [
    "WITH r AS (SELECT id AS sale_id, amount FROM sales) SELECT * FROM r",
    "SELECT r.sale_id, r.amount FROM (SELECT id AS sale_id, amount FROM sales) r",
    "WITH r (sale_id, amount) AS (SELECT id, amount FROM sales) SELECT sale_id FROM r",
])
def test_a_renamed_primary_key_is_the_default_key_by_its_new_name(
    operator: str, sql: str
) -> None:
    """The default key is sales.id as the query names it: "column r.id does not exist"."""
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_chunks=3)
        assert rows[0]["chunk_key"] == "sale_id"
        assert rows[0]["predicate_sql"] == "sales.id < $1"  # still on the table's index
        _assert_partition(conn, sql, rows)


def test_a_hidden_primary_key_leaves_a_ctid_split_and_says_why(operator: str) -> None:
    sql = "SELECT s.amount FROM (SELECT amount FROM sales) s"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_chunks=3)
        assert rows[0]["strategy"] == "ctid"
        assert rows[0]["notes"] == (
            "the primary key (id) of sales is not passed on as a plain column by every level "
            "of the query above it, so it cannot be the chunk key")
        with pytest.raises(psycopg.Error) as err:
            _plan(conn, p_sql=sql, p_strategy="key_range")
    assert err.value.diag.sqlstate == "22023"
    assert err.value.diag.message_primary == (
        'dms: chunk strategy "key_range" needs a chunk key: the primary key (id) of sales is '
        "not passed on as a plain column by every level of the query above it, so it cannot "
        "be the chunk key")


def test_strategy_single_is_one_chunk(operator: str) -> None:
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql="SELECT id, amount FROM sales", p_strategy="single")
    assert [(r["strategy"], r["kind"], r["refused_reason"]) for r in rows] == [
        ("single", "all", None)]
    assert rows[0]["query_sql"] == "SELECT id, amount FROM sales"


def test_a_mixed_case_primary_key_is_the_default_key(operator: str) -> None:
    sql = 'SELECT "Id", v FROM "R_Mixed"'
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_chunks=4)
        assert rows[0]["chunk_key"] == '"Id"'
        assert rows[1]["predicate_sql"] == '"R_Mixed"."Id" >= $1 AND "R_Mixed"."Id" < $2'
        _assert_partition(conn, sql, rows)


@pytest.mark.parametrize(("sql", "key"), [
    ("SELECT customer_id, count(*), sum(amount) FROM sales GROUP BY customer_id",
     "customer_id"),
    ("SELECT DISTINCT status FROM sales", "status"),
    ("SELECT id, amount FROM sales UNION ALL SELECT id, amount FROM returns", "id"),
])
@pytest.mark.parametrize("strategy", ["auto", "key_range", "quantile", "hash"])
def test_a_key_that_makes_the_query_safe_splits_it(
    operator: str, sql: str, key: str, strategy: str
) -> None:
    """Issue 15: these planned as one chunk with refused_reason NULL, and a forced
    strategy failed with "needs bounds_input.key_kind ... got None"."""
    if strategy == "key_range" and key == "status":
        with psycopg.connect(operator) as conn, pytest.raises(psycopg.Error) as err:
            _plan(conn, p_sql=sql, p_key=key, p_strategy=strategy)
        assert err.value.diag.message_primary == (
            "dms: strategy key_range needs an integer, numeric, date or timestamp key, and "
            "status holds none (its smallest value is 'cancelled')")
        return
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_key=key, p_chunks=3, p_strategy=strategy)
        assert rows[0]["refused_reason"] is None
        assert rows[0]["strategy"] != "single" and len(rows) >= 3
        chunks = _assert_partition(conn, sql, rows)
    assert sum(1 for c in chunks if c) >= 2  # really split


def test_a_forced_strategy_on_a_query_that_must_not_be_split_is_one_chunk(
    operator: str
) -> None:
    """It raised 22023 ("needs a chunk key"); now one chunk with the reason."""
    sql = "SELECT status, count(*) FROM sales GROUP BY status"
    by_key = ("GROUP BY status does not contain the chunk key sales.id; a group would be split "
              "across chunks and aggregated once per chunk")
    with psycopg.connect(operator) as conn:
        for strategy in ("key_range", "quantile", "hash", "offset", "ctid"):
            rows = _plan(conn, p_sql=sql, p_strategy=strategy)
            reason = safety.PHYSICAL_GROUP_BY if strategy == "ctid" else by_key
            assert [(r["strategy"], r["refused_reason"]) for r in rows] == [
                ("single", reason)], strategy
        # With no primary key to fall back on either.
        rows = _plan(conn, p_sql="SELECT r, count(*) FROM parted GROUP BY r",
                     p_strategy="key_range")
    assert [(r["strategy"], r["refused_reason"]) for r in rows] == [
        ("single", safety.PHYSICAL_GROUP_BY)]


def test_ctid_on_a_partitioned_table_splits_every_partition(operator: str) -> None:
    sql = "SELECT id, r FROM parted"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_chunks=4)
        assert rows[0]["strategy"] == "ctid" and len(rows) == 4
        assert rows[0]["notes"].startswith(
            "ctid ranges on the partitioned table parted cut every partition at the same page "
            "numbers (the largest partition has ")
        chunks = _assert_partition(conn, sql, rows)
    assert all(len(c) > 1000 for c in chunks)


def test_a_view_without_a_key_is_one_chunk_with_the_reason(operator: str) -> None:
    """A view has no ctid ("column ctid does not exist" at run time) and takes no
    TABLESAMPLE: without a key it is one chunk saying so; with one it is sampled."""
    sql = "SELECT customer_id, status FROM sales_view"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_chunks=4)
        keyed = _plan(conn, p_sql=sql, p_key="customer_id", p_chunks=4, p_strategy="quantile")
        with psycopg.RawCursor(conn) as cur:
            cur.execute(sql)
            whole = Counter(cur.fetchall())
        union: Counter[Any] = Counter()
        for chunk in _chunk_rows(conn, keyed):
            union.update(chunk)
    assert [(r["strategy"], r["refused_reason"]) for r in rows] == [(
        "single", "sales_view is a view, which has no physical row address (ctid); name a "
        "chunk key to split it")]
    assert len(keyed) >= 5 and union == whole


def test_a_union_on_a_text_key_is_split_by_hash(operator: str) -> None:
    """The branches order their keys in other collations (ICU and C): cuts measured
    on the first need not ascend in the second, hash buckets hold for both."""
    sql = "SELECT name, v FROM icu UNION ALL SELECT name, v FROM c_names"
    with psycopg.connect(operator) as conn:
        rows = _plan(conn, p_sql=sql, p_key="name", p_chunks=4)
        assert rows[0]["strategy"] == "hash" and len(rows) == 4
        assert rows[0]["notes"].startswith("hash buckets split this UNION ALL: its key is text")
        _assert_partition(conn, sql, rows)
        with pytest.raises(psycopg.Error) as err:
            _plan(conn, p_sql=sql, p_key="name", p_strategy="quantile")
    assert err.value.diag.sqlstate == "22023"
    assert err.value.diag.message_primary == (
        "dms: quantile ranges cannot cut the text or composite key name of a UNION ALL: they "
        "are measured on the first branch, and another branch may order text in another "
        "collation")
