"""``dms.plan_chunks()`` and ``dms plan``: a plan can be looked at without running it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg import errors

from dms_pkg.chunking.planner import plan_chunks
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
