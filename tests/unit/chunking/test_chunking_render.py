"""Exact chunk SQL per dialect and strategy, with bind parameters only."""

from __future__ import annotations

import pytest

from dms_pkg.chunking import BoundsInput, ParamStyle, plan_query

SQL = "SELECT o.id, o.total FROM orders o WHERE o.total > 0"
INT = BoundsInput(key_kind="int", min_value=1, max_value=30, row_count=30)


def predicates(
    dialect: str,
    strategy: str,
    key: str | list[str] | None = "id",
    n: int = 3,
    stats: BoundsInput = INT,
    **kwargs: object,
) -> list[str]:
    plan = plan_query(SQL, dialect, key, n, strategy, stats, **kwargs)  # type: ignore[arg-type]
    assert plan.refused_reason is None
    for chunk in plan.chunks:  # the predicate is what was injected
        assert chunk.predicate_sql in chunk.query_sql
    return [c.predicate_sql for c in plan.chunks]


@pytest.mark.parametrize(
    ("dialect", "lo", "hi"),
    [
        ("postgres", "%(dms_lo)s", "%(dms_hi)s"),
        ("mysql", "%(dms_lo)s", "%(dms_hi)s"),
        ("oracle", ":dms_lo", ":dms_hi"),
        ("sqlite", ":dms_lo", ":dms_hi"),
    ],
)
def test_key_range_half_open_with_null_chunk(dialect: str, lo: str, hi: str) -> None:
    assert predicates(dialect, "key_range") == [
        f"o.id < {hi}",
        f"o.id >= {lo} AND o.id < {hi}",
        f"o.id >= {lo}",
        "o.id IS NULL",
    ]


def test_key_range_params_and_full_query() -> None:
    plan = plan_query(SQL, "postgres", "id", 3, "key_range", INT)
    assert [c.params for c in plan.chunks] == [
        {"dms_hi": 11},
        {"dms_lo": 11, "dms_hi": 21},
        {"dms_lo": 21},
        {},
    ]
    assert [(c.lo, c.hi, c.kind) for c in plan.chunks] == [
        (None, 11, "range"),
        (11, 21, "range"),
        (21, None, "range"),
        (None, None, "null"),
    ]
    assert plan.chunks[1].query_sql == (
        "SELECT o.id, o.total FROM orders AS o "
        "WHERE o.total > 0 AND (o.id >= %(dms_lo)s AND o.id < %(dms_hi)s)"
    )


def test_numeric_param_style_for_plpy() -> None:
    plan = plan_query(SQL, "postgres", "id", 3, "key_range", INT, param_style=ParamStyle.NUMERIC)
    assert plan.chunks[1].predicate_sql == "o.id >= $1 AND o.id < $2"
    assert list(plan.chunks[1].params.values()) == [11, 21]


COMPOSITE = BoundsInput(sample=[(r, i) for r in (1, 2, 3) for i in range(10)], row_count=30)


@pytest.mark.parametrize(
    ("dialect", "middle", "null"),
    [
        (
            "postgres",
            "(o.region, o.id) >= (%(dms_lo_1)s, %(dms_lo_2)s) AND "
            "(o.region, o.id) < (%(dms_hi_1)s, %(dms_hi_2)s) AND NOT o.id IS NULL",
            "o.region IS NULL OR o.id IS NULL",
        ),
        (
            "sqlite",
            "(o.region, o.id) >= (:dms_lo_1, :dms_lo_2) AND "
            "(o.region, o.id) < (:dms_hi_1, :dms_hi_2) AND NOT o.id IS NULL",
            "o.region IS NULL OR o.id IS NULL",
        ),
        (
            "oracle",
            "(o.region > :dms_lo_1 OR (o.region = :dms_lo_1 AND o.id >= :dms_lo_2)) AND "
            "(o.region < :dms_hi_1 OR (o.region = :dms_hi_1 AND o.id < :dms_hi_2)) "
            "AND NOT o.id IS NULL",
            "o.region IS NULL OR o.id IS NULL",
        ),
    ],
)
def test_composite_key_row_value_or_lexicographic(dialect: str, middle: str, null: str) -> None:
    preds = predicates(dialect, "quantile", ["region", "id"], 3, COMPOSITE)
    assert preds[1] == middle
    assert preds[-1] == null
    plan = plan_query(SQL, dialect, "region, id", 3, "quantile", COMPOSITE)
    assert plan.chunks[1].params == {"dms_lo_1": 2, "dms_lo_2": 0, "dms_hi_1": 3, "dms_hi_2": 0}
    assert "(o.region IS NULL OR o.id IS NULL)" in plan.chunks[-1].query_sql


def test_ctid_ranges_with_tid_binds() -> None:
    plan = plan_query(SQL, "postgres", None, 3, "ctid", BoundsInput(relpages=300))
    assert [c.predicate_sql for c in plan.chunks] == [
        "o.ctid < CAST(%(dms_hi)s AS tid)",
        "o.ctid >= CAST(%(dms_lo)s AS tid) AND o.ctid < CAST(%(dms_hi)s AS tid)",
        "o.ctid >= CAST(%(dms_lo)s AS tid)",
    ]
    assert [c.params for c in plan.chunks] == [
        {"dms_hi": "(100,0)"},
        {"dms_lo": "(100,0)", "dms_hi": "(200,0)"},
        {"dms_lo": "(200,0)"},
    ]


def test_rowid_ranges() -> None:
    ranges = [
        ("AAAR1AAEAAAAAIAAA", "AAAR1AAEAAAAAPH/8"),
        ("AAAR1AAEAAAAAQAAA", "AAAR1AAEAAAAAXH/8"),
    ]
    plan = plan_query(SQL, "oracle", None, 2, "rowid", BoundsInput(rowid_ranges=ranges))
    assert [c.predicate_sql for c in plan.chunks] == ["o.ROWID BETWEEN :dms_lo AND :dms_hi"] * 2
    assert [c.params for c in plan.chunks] == [{"dms_lo": lo, "dms_hi": hi} for lo, hi in ranges]


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            "postgres",
            "COALESCE((HASHTEXTEXTENDED(CAST(o.id AS TEXT), 0) & 9223372036854775807) %% 4, 0)"
            " = %(dms_bucket)s",
        ),
        ("mysql", "COALESCE(CRC32(WEIGHT_STRING(RTRIM(o.id))) %% 4, 0) = %(dms_bucket)s"),
        ("oracle", "COALESCE(MOD(ORA_HASH(o.id), 4), 0) = :dms_bucket"),
    ],
)
def test_hash_buckets(dialect: str, expected: str) -> None:
    plan = plan_query(SQL, dialect, "id", 4, "hash")
    assert [c.predicate_sql for c in plan.chunks] == [expected] * 4
    assert [c.params for c in plan.chunks] == [{"dms_bucket": b} for b in range(4)]


def test_hash_composite_keys() -> None:
    """Each part is hashed in its own collation (PostgreSQL: chained seeds, not
    ROW(...)::text; MySQL: the collation's weights), so equal keys share a bucket."""
    assert predicates("postgres", "hash", ["region", "id"], 2)[0] == (
        "COALESCE((HASHTEXTEXTENDED(CAST(o.id AS TEXT), HASHTEXTEXTENDED(CAST(o.region AS "
        "TEXT), 0)) & 9223372036854775807) %% 2, 0) = %(dms_bucket)s"
    )
    assert predicates("mysql", "hash", ["region", "id"], 2)[0] == (
        "COALESCE(CRC32(CONCAT_WS('|', WEIGHT_STRING(RTRIM(o.region)), "
        "WEIGHT_STRING(RTRIM(o.id)))) %% 2, 0) = %(dms_bucket)s"
    )
    assert predicates("oracle", "hash", ["region", "id"], 2)[0] == (
        "COALESCE(MOD(ORA_HASH(o.region || '|' || o.id), 2), 0) = :dms_bucket"
    )


@pytest.mark.parametrize(
    ("dialect", "middle", "last"),
    [
        (
            "postgres",
            "ORDER BY o.id ASC LIMIT %(dms_limit)s OFFSET %(dms_offset)s",
            "ORDER BY o.id ASC OFFSET %(dms_offset)s",
        ),
        (
            "oracle",
            "ORDER BY o.id ASC OFFSET :dms_offset ROWS FETCH FIRST :dms_limit ROWS ONLY",
            "ORDER BY o.id ASC OFFSET :dms_offset ROWS",
        ),
        (
            "mysql",
            "ORDER BY o.id ASC LIMIT %(dms_limit)s OFFSET %(dms_offset)s",
            "ORDER BY o.id ASC LIMIT %(dms_limit)s OFFSET %(dms_offset)s",
        ),
        (
            "sqlite",
            "ORDER BY o.id ASC LIMIT :dms_limit OFFSET :dms_offset",
            "ORDER BY o.id ASC LIMIT :dms_limit OFFSET :dms_offset",
        ),
    ],
)
def test_offset_windows(dialect: str, middle: str, last: str) -> None:
    plan = plan_query(SQL, dialect, "id", 3, "offset", BoundsInput(row_count=30))
    assert [c.predicate_sql for c in plan.chunks] == [middle, middle, last]
    no_limit = {"mysql": 18446744073709551615, "sqlite": -1}
    expected_last = {"dms_offset": 20}
    if dialect in no_limit:
        expected_last["dms_limit"] = no_limit[dialect]
    assert [c.params for c in plan.chunks] == [
        {"dms_offset": 0, "dms_limit": 10},
        {"dms_offset": 10, "dms_limit": 10},
        expected_last,
    ]
    assert plan.chunks[0].query_sql.startswith(
        "SELECT o.id, o.total FROM orders"
        + (" o " if dialect == "oracle" else " AS o ")
        + "WHERE o.total > 0 ORDER BY o.id ASC"
    )


def test_hot_value_gets_a_point_chunk_and_splits_on_secondary_key() -> None:
    sample = [7] * 90 + list(range(100, 110))
    stats = BoundsInput(sample=sample, row_count=100, hot_value_cuts={7: ["m"]})
    plan = plan_query(SQL, "postgres", "id", 4, "quantile", stats, secondary_key="name")
    assert [c.predicate_sql for c in plan.chunks] == [
        "o.id < %(dms_hi)s",
        "o.id = %(dms_value)s AND o.name < %(dms_sec_hi)s",
        "o.id = %(dms_value)s AND o.name >= %(dms_sec_lo)s",
        "o.id = %(dms_value)s AND o.name IS NULL",
        "o.id > %(dms_lo)s AND o.id < %(dms_hi)s",
        "o.id >= %(dms_lo)s AND o.id < %(dms_hi)s",
        "o.id >= %(dms_lo)s",
        "o.id IS NULL",
    ]
    assert plan.chunks[1].params == {"dms_value": 7, "dms_sec_hi": "m"}
    assert [c.params for c in plan.chunks[4:7]] == [
        {"dms_lo": 7, "dms_hi": 103},
        {"dms_lo": 103, "dms_hi": 106},
        {"dms_lo": 106},
    ]
    assert plan.hot_values[0].value == 7
    assert [c.estimated_rows for c in plan.chunks] == [0, 45, 45, 0, 3, 3, 4, None]
    assert plan.notes == ("the largest chunk is estimated at 3.1x the mean chunk",)
    unsplit = plan_query(SQL, "postgres", "id", 4, "quantile", BoundsInput(sample=sample))
    assert unsplit.notes == (
        "the largest chunk cannot be kept under 2x the mean because id value 7 holds 90% of rows",
    )


def test_single_strategy_leaves_the_query_alone() -> None:
    plan = plan_query(SQL, "oracle", None, None, "single")
    assert [(c.predicate_sql, c.params, c.kind) for c in plan.chunks] == [("", {}, "all")]
    assert plan.chunks[0].query_sql == "SELECT o.id, o.total FROM orders o WHERE o.total > 0"


def test_no_value_is_ever_pasted_into_sql() -> None:
    marker = 987654321
    stats = BoundsInput(key_kind="int", min_value=marker, max_value=marker * 2, row_count=10)
    for dialect in ("postgres", "mysql", "oracle", "sqlite"):
        plan = plan_query(SQL, dialect, "id", 5, "key_range", stats)
        assert all(str(marker)[:6] not in c.query_sql for c in plan.chunks)
