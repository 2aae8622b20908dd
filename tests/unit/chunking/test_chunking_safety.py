"""Queries whose result would change when split are planned as one chunk, with a reason."""

from __future__ import annotations

import pytest

from dms_pkg.chunking import BoundsInput, plan_query
from dms_pkg.chunking import safety as s

STATS = BoundsInput(key_kind="int", min_value=1, max_value=100, row_count=1000)

CASES = [
    ("postgres", "SELECT id FROM t LIMIT 10", "id", s.LIMIT),
    ("oracle", "SELECT id FROM t FETCH FIRST 5 ROWS ONLY", "id", s.FETCH_FIRST),
    ("oracle", "SELECT id FROM t WHERE ROWNUM <= 10", "id", s.ROWNUM),
    ("postgres", "SELECT id FROM t ORDER BY id OFFSET 5", "id", s.OFFSET),
    ("postgres", "SELECT DISTINCT name FROM t", "id", s.DISTINCT.format(key="t.id")),
    (
        "postgres",
        "SELECT DISTINCT ON (name) name, id FROM t",
        "id",
        s.DISTINCT_ON.format(on="name", key="t.id"),
    ),
    (
        "postgres",
        "SELECT region, COUNT(*) FROM t GROUP BY region",
        "id",
        s.GROUP_BY.format(group="region", key="t.id"),
    ),
    ("postgres", "SELECT id, SUM(x) FROM t GROUP BY ROLLUP (id)", "id", s.GROUPING_SETS),
    ("postgres", "SELECT SUM(x) FROM t", "id", s.AGGREGATE.format(func="SUM")),
    (
        "postgres",
        "SELECT id, ROW_NUMBER() OVER (ORDER BY x) FROM t",
        "id",
        s.WINDOW.format(func="ROW_NUMBER"),
    ),
    ("postgres", "SELECT id FROM a UNION SELECT id FROM b", "id", s.UNION),
    ("postgres", "SELECT id FROM a INTERSECT SELECT id FROM b", "id", s.INTERSECT),
    ("postgres", "SELECT id FROM a EXCEPT SELECT id FROM b", "id", s.EXCEPT),
    ("postgres", "SELECT 1 AS id", "id", s.NO_TABLE),
    (
        "postgres",
        "SELECT id FROM t WHERE x IN (SELECT x FROM u LIMIT 3)",
        "id",
        s.SUBQUERY_LIMIT.format(what="LIMIT"),
    ),
    (
        "oracle",
        "SELECT id FROM t WHERE x = (SELECT x FROM u WHERE ROWNUM = 1)",
        "id",
        s.SUBQUERY_ROWNUM,
    ),
    (
        "postgres",
        "WITH c AS (SELECT id FROM t LIMIT 10) SELECT id FROM c",
        "id",
        s.SUBQUERY_LIMIT.format(what="LIMIT"),
    ),
    (
        "postgres",
        "SELECT id FROM a UNION ALL SELECT id + 1 FROM b",
        "id",
        s.UNION_BRANCH_KEY.format(branch=2, key="id"),
    ),
    ("postgres", "SELECT id FROM a UNION ALL SELECT id FROM b", None, s.PHYSICAL_SET_OPERATION),
    ("postgres", "SELECT DISTINCT x FROM t", None, s.PHYSICAL_DISTINCT),
    ("postgres", "SELECT x, COUNT(*) FROM t GROUP BY x", None, s.PHYSICAL_GROUP_BY),
]


@pytest.mark.parametrize(("dialect", "sql", "key", "reason"), CASES)
def test_refused_query_is_one_chunk_with_reason(
    dialect: str, sql: str, key: str | None, reason: str
) -> None:
    stats = STATS if key else BoundsInput(relpages=10, rowid_ranges=[("A", "B")])
    plan = plan_query(sql, dialect, key, 4, "auto", stats)
    assert plan.refused_reason == reason
    assert plan.strategy == "single"
    assert len(plan.chunks) == 1
    assert plan.chunks[0].params == {}
    assert "dms_" not in plan.chunks[0].query_sql


def test_limit_reason_reads_as_documented() -> None:
    plan = plan_query("SELECT id FROM t LIMIT 10", "postgres", "id", 4, "key_range", STATS)
    assert plan.refused_reason == (
        "LIMIT makes the result depend on row order across the whole query; it cannot be split"
    )
    assert plan.chunks[0].query_sql == "SELECT id FROM t LIMIT 10"


def test_rownum_in_oracle_is_refused_but_a_rownum_column_elsewhere_is_not() -> None:
    oracle = plan_query("SELECT id FROM t WHERE ROWNUM <= 10", "oracle", "id", 4, "auto", STATS)
    assert oracle.refused_reason == s.ROWNUM
    pg = plan_query("SELECT id FROM t WHERE rownum <= 10", "postgres", "id", 4, "auto", STATS)
    assert pg.refused_reason is None
    assert len(pg.chunks) == 5


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT DISTINCT id, name FROM t",
        "SELECT DISTINCT * FROM t",
        "SELECT id, COUNT(*) FROM t GROUP BY id",
        "SELECT id, COUNT(*) FROM t GROUP BY 1",
        "SELECT id FROM t ORDER BY name",
        "SELECT id FROM t WHERE x IN (SELECT x FROM u ORDER BY x LIMIT 3)",
        "SELECT id FROM a UNION ALL SELECT id FROM b",
    ],
)
def test_safe_shapes_are_split(sql: str) -> None:
    plan = plan_query(sql, "postgres", "id", 4, "auto", STATS)
    assert plan.refused_reason is None
    assert plan.strategy == "key_range"
    assert len(plan.chunks) == 5


def test_forcing_a_grouped_key_makes_a_refused_query_splittable() -> None:
    sql = "SELECT region, COUNT(*) FROM t GROUP BY region"
    assert plan_query(sql, "postgres", "id", 4, "auto", STATS).strategy == "single"
    assert plan_query(sql, "postgres", "region", 4, "auto", STATS).strategy == "key_range"
