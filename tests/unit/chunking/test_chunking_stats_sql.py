"""SQL handed to the database-facing planner for statistics (rendered, not run)."""

from __future__ import annotations

import pytest
import sqlglot

from dms_pkg.chunking import ParamStyle, analyze_query
from dms_pkg.chunking.stats_sql import (
    min_max_count_sql,
    quantiles_sql,
    relpages_sql,
    rowid_ranges_sql,
    sample_sql,
)

# o.x > 0 reads the driving table alone and narrows its statistics; c.ok and
# the subquery reach beyond it and are left out.
SQL = ('SELECT o.id FROM "Sales"."Orders" o JOIN c ON o.cid = c.id '
       "WHERE o.x > 0 AND c.ok AND o.y IN (SELECT 1)")


def test_min_max_count_reads_the_driving_table_with_its_own_filters() -> None:
    query = min_max_count_sql(analyze_query(SQL, "postgres", "id"))
    assert query.sql == (
        'SELECT (SELECT o.id FROM "Sales"."Orders" AS o WHERE NOT o.id IS NULL AND o.x > 0 '
        "ORDER BY o.id ASC LIMIT 1) AS min_value, "
        '(SELECT o.id FROM "Sales"."Orders" AS o WHERE NOT o.id IS NULL AND o.x > 0 '
        "ORDER BY o.id DESC LIMIT 1) AS max_value, dms_c.row_count, dms_c.null_count "
        "FROM (SELECT COUNT(*) AS row_count, COUNT(*) - COUNT(o.id) AS null_count "
        'FROM "Sales"."Orders" AS o WHERE o.x > 0) AS dms_c'
    )
    assert query.params == {}
    assert query.columns == ("min_value", "max_value", "row_count", "null_count")


def test_min_max_count_of_a_derived_relation_keeps_its_ctes() -> None:
    sql = "WITH t AS (SELECT g, SUM(x) AS s FROM f GROUP BY g) SELECT * FROM t"
    query = min_max_count_sql(analyze_query(sql, "sqlite", "s"))
    assert query.sql == (
        "WITH t AS (SELECT g, SUM(x) AS s FROM f GROUP BY g) "
        "SELECT (SELECT t.s FROM t WHERE NOT t.s IS NULL ORDER BY t.s ASC LIMIT 1) AS min_value, "
        "(SELECT t.s FROM t WHERE NOT t.s IS NULL ORDER BY t.s DESC LIMIT 1) AS max_value, "
        "dms_c.row_count, dms_c.null_count FROM (SELECT COUNT(*) AS row_count, "
        "COUNT(*) - COUNT(t.s) AS null_count FROM t) AS dms_c"
    )


RANK = "DENSE_RANK() OVER (ORDER BY o.id ASC) AS dms_rank"


@pytest.mark.parametrize(
    ("dialect", "sql", "params"),
    [
        (
            "postgres",
            f'SELECT o.id, {RANK} FROM "Sales"."Orders" AS o '
            "TABLESAMPLE BERNOULLI (%(dms_percent)s) WHERE o.x > 0 AND NOT o.id IS NULL",
            {"dms_percent": 2.0},
        ),
        (
            "oracle",
            f'SELECT o.id, {RANK} FROM "Sales"."Orders" SAMPLE (2.0) o '
            "WHERE o.x > 0 AND NOT o.id IS NULL",
            {},
        ),
        (
            "mysql",
            f"SELECT o.id, {RANK} FROM `Sales`.`Orders` AS o "
            "WHERE (o.x > 0 AND NOT o.id IS NULL) AND RAND() < %(dms_fraction)s",
            {"dms_fraction": 0.02},
        ),
        (
            "sqlite",
            f'SELECT o.id, {RANK} FROM "Sales"."Orders" AS o '
            "WHERE (o.x > 0 AND NOT o.id IS NULL) AND ABS(RANDOM() % 1000000) < :dms_per_million",
            {"dms_per_million": 20000},
        ),
    ],
)
def test_sample_per_dialect(dialect: str, sql: str, params: dict[str, object]) -> None:
    """Each sampled value comes with its rank in the database's own ORDER BY: the
    planner orders bounds by it, so they follow the key's collation."""
    source = SQL.replace('"', "`") if dialect == "mysql" else SQL
    query = sample_sql(analyze_query(source, dialect, "id"), 2.0)
    assert (query.sql, query.params) == (sql, params)
    assert query.columns == ("id", "dms_rank")


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgres", "WITH c AS (SELECT * FROM t) SELECT a.id, DENSE_RANK() OVER (ORDER BY "
         "a.id ASC) AS dms_rank FROM c AS a WHERE NOT a.id IS NULL AND RANDOM() < "
         "%(dms_fraction)s"),
        ("oracle", "WITH c AS (SELECT * FROM t) SELECT a.id, DENSE_RANK() OVER (ORDER BY "
         "a.id ASC) AS dms_rank FROM c a WHERE NOT a.id IS NULL AND DBMS_RANDOM.VALUE < "
         ":dms_fraction"),
    ],
)
def test_a_derived_relation_is_sampled_row_by_row(dialect: str, sql: str) -> None:
    """TABLESAMPLE and SAMPLE take base tables only; a CTE used twice stays a
    derived relation, so its sample is a per-row random filter."""
    query = sample_sql(analyze_query(
        "WITH c AS (SELECT * FROM t) SELECT a.id FROM c a JOIN c b ON a.id = b.id",
        dialect, "a.id"), 2.0)
    assert query.sql == sql
    assert query.params == {"dms_fraction": 0.02}


def test_a_view_is_sampled_row_by_row_when_asked() -> None:
    query = sample_sql(analyze_query("SELECT id FROM v", "postgres", "id"), 5.0,
                       table_sample=False)
    assert "TABLESAMPLE" not in query.sql and "RANDOM() < %(dms_fraction)s" in query.sql


def test_postgres_quantiles_use_percentile_disc() -> None:
    query = quantiles_sql(analyze_query(SQL, "postgres", "id"), 4)
    assert query.sql == (
        "SELECT PERCENTILE_DISC(CAST(%(dms_fractions)s AS DOUBLE PRECISION[])) "
        'WITHIN GROUP (ORDER BY o.id ASC) AS quantiles FROM "Sales"."Orders" AS o '
        "WHERE o.x > 0"
    )
    assert query.params == {"dms_fractions": [0.25, 0.5, 0.75, 1.0]}


def test_quantiles_by_rank_elsewhere_and_for_composite_keys() -> None:
    query = quantiles_sql(analyze_query(SQL, "oracle", "id, x"), 4)
    assert query.sql == (
        "SELECT dms_k1, dms_k2, dms_rank FROM (SELECT o.id AS dms_k1, o.x AS dms_k2, "
        "ROW_NUMBER() OVER (ORDER BY o.id ASC, o.x ASC) AS dms_rn, COUNT(*) OVER () AS dms_total, "
        "DENSE_RANK() OVER (ORDER BY o.id ASC, o.x ASC) AS dms_rank "
        'FROM "Sales"."Orders" o WHERE o.x > 0 AND (NOT o.id IS NULL AND NOT o.x IS NULL)) dms_q '
        "WHERE MOD(dms_rn * :dms_n, dms_total) < :dms_n ORDER BY dms_rn ASC"
    )
    assert query.params == {"dms_n": 4}
    assert query.columns == ("dms_k1", "dms_k2", "dms_rank")


def test_relpages_binds_the_quoted_table_name() -> None:
    """A partitioned table counts the pages of its largest partition: a TID range
    applies to every partition, so the ranges must reach the end of each."""
    query = relpages_sql(analyze_query(SQL, "postgres"))
    assert query.sql == (
        "SELECT c.relpages, c.reltuples, CASE WHEN c.relkind = 'p' THEN (SELECT "
        "COALESCE(max(pg_catalog.pg_relation_size(p.relid)), 0) FROM "
        "pg_catalog.pg_partition_tree(c.oid) AS p WHERE p.isleaf) ELSE "
        "pg_catalog.pg_relation_size(c.oid) END / "
        "pg_catalog.current_setting('block_size')::bigint AS pages, c.relkind::text AS relkind "
        "FROM pg_catalog.pg_class AS c WHERE c.oid = CAST(%(dms_table)s AS regclass)"
    )
    assert query.params == {"dms_table": '"Sales"."Orders"'}
    assert query.columns == ("relpages", "reltuples", "pages", "relkind")


def test_rowid_ranges_sql_uses_extents_and_rowid_create() -> None:
    own = rowid_ranges_sql("ORDERS", 8)
    dba = rowid_ranges_sql("ORDERS", 8, owner="SALES")
    assert own.params == {"dms_n": 8, "dms_table": "ORDERS"}
    assert dba.params == {"dms_n": 8, "dms_table": "ORDERS", "dms_owner": "SALES"}
    assert "FROM user_extents e" in own.sql and "JOIN user_objects o" in own.sql
    assert "FROM dba_extents e" in dba.sql and "AND e.owner = :dms_owner" in dba.sql
    assert dba.sql.count("DBMS_ROWID.ROWID_CREATE(1, data_object_id,") == 2
    assert "* :dms_n / SUM(e.blocks) OVER ()" in dba.sql
    assert "GROUP BY grp, data_object_id" in dba.sql
    for query in (own, dba):
        assert "ORDERS" not in query.sql and "SALES" not in query.sql  # bound, not pasted
        sqlglot.parse_one(query.sql, read="oracle")  # well-formed Oracle SQL
    assert ":dms_n" not in rowid_ranges_sql("T", 2, style=ParamStyle.NUMERIC).sql
