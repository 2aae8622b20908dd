"""Where the chunk predicate lands: driving table through joins, CTEs, subqueries."""

from __future__ import annotations

import pytest

from dms_pkg.chunking import BoundsInput, analyze_query, plan_query

INT_STATS = BoundsInput(key_kind="int", min_value=1, max_value=100, row_count=1000)


def middle_chunk_sql(sql: str, dialect: str, key: str | None = None) -> str:
    """The query of a chunk with both bounds, where the predicate shape is fullest."""
    plan = plan_query(sql, dialect, key, 3, "key_range", INT_STATS)
    assert plan.refused_reason is None, plan.refused_reason
    return plan.chunks[1].query_sql


def test_join_predicate_lands_on_first_table_with_its_alias() -> None:
    sql = "SELECT o.id, c.name FROM orders o JOIN customers c ON o.cust_id = c.id WHERE c.x = 1"
    assert middle_chunk_sql(sql, "postgres", "id") == (
        "SELECT o.id, c.name FROM orders AS o JOIN customers AS c ON o.cust_id = c.id "
        "WHERE c.x = 1 AND (o.id >= %(dms_lo)s AND o.id < %(dms_hi)s)"
    )


def test_key_qualified_by_joined_alias_makes_that_table_driving() -> None:
    sql = "SELECT o.id, c.name FROM orders o JOIN customers c ON o.cust_id = c.id"
    analysis = analyze_query(sql, "postgres", "c.id")
    assert analysis.driving_table == "customers"
    assert middle_chunk_sql(sql, "postgres", "c.id").endswith(
        "WHERE c.id >= %(dms_lo)s AND c.id < %(dms_hi)s"
    )


def test_cte_is_followed_to_its_base_table_and_keeps_user_filters() -> None:
    sql = (
        "WITH recent AS (SELECT order_id AS oid, amount FROM sales.orders WHERE amount > 0) "
        "SELECT r.oid, r.amount FROM recent r WHERE r.amount < 100"
    )
    assert analyze_query(sql, "postgres", "oid").driving_table == "sales.orders"
    assert middle_chunk_sql(sql, "postgres", "oid") == (
        "WITH recent AS (SELECT order_id AS oid, amount FROM sales.orders WHERE amount > 0 "
        "AND (orders.order_id >= %(dms_lo)s AND orders.order_id < %(dms_hi)s)) "
        "SELECT r.oid, r.amount FROM recent AS r WHERE r.amount < 100"
    )


def test_cte_used_twice_keeps_the_filter_outside() -> None:
    sql = (
        "WITH c AS (SELECT id, parent FROM nodes) "
        "SELECT a.id, b.id FROM c a JOIN c b ON a.parent = b.id"
    )
    analysis = analyze_query(sql, "postgres", "a.id")
    assert analysis.paths[0].table is None
    assert middle_chunk_sql(sql, "postgres", "a.id").endswith(
        "JOIN c AS b ON a.parent = b.id WHERE a.id >= %(dms_lo)s AND a.id < %(dms_hi)s"
    )


def test_aggregating_cte_is_not_entered_when_key_is_not_grouped() -> None:
    sql = "WITH t AS (SELECT region, SUM(x) AS s FROM f GROUP BY region) SELECT * FROM t"
    assert middle_chunk_sql(sql, "postgres", "s") == (
        "WITH t AS (SELECT region, SUM(x) AS s FROM f GROUP BY region) "
        "SELECT * FROM t WHERE t.s >= %(dms_lo)s AND t.s < %(dms_hi)s"
    )


def test_subquery_in_from_is_followed() -> None:
    sql = "SELECT s.id FROM (SELECT t.id, t.v FROM t WHERE t.v > 0) s WHERE s.v < 9"
    assert middle_chunk_sql(sql, "postgres", "id") == (
        "SELECT s.id FROM (SELECT t.id, t.v FROM t WHERE t.v > 0 "
        "AND (t.id >= %(dms_lo)s AND t.id < %(dms_hi)s)) AS s WHERE s.v < 9"
    )


def test_subquery_on_nullable_side_of_left_join_is_filtered_outside() -> None:
    # Filtering inside the right side of a LEFT JOIN would turn missing
    # matches into NULL-extended rows in every chunk.
    sql = "SELECT a.x, s.id FROM a LEFT JOIN (SELECT id FROM b) s ON a.bid = s.id"
    assert middle_chunk_sql(sql, "postgres", "s.id").endswith(
        "ON a.bid = s.id WHERE s.id >= %(dms_lo)s AND s.id < %(dms_hi)s"
    )


def test_quoted_mixed_case_identifiers_survive() -> None:
    sql = 'SELECT "o"."OrderId", "o"."Total" FROM "Sales"."Orders" AS "o"'
    assert middle_chunk_sql(sql, "postgres", '"OrderId"') == (
        'SELECT "o"."OrderId", "o"."Total" FROM "Sales"."Orders" AS "o" '
        'WHERE "o"."OrderId" >= %(dms_lo)s AND "o"."OrderId" < %(dms_hi)s'
    )


def test_mysql_backticks_survive() -> None:
    sql = "SELECT `Order Id`, total FROM `shop`.`Order Lines` ol"
    assert middle_chunk_sql(sql, "mysql", "`Order Id`") == (
        "SELECT `Order Id`, total FROM `shop`.`Order Lines` AS ol "
        "WHERE ol.`Order Id` >= %(dms_lo)s AND ol.`Order Id` < %(dms_hi)s"
    )


def test_oracle_nvl_decode_and_ansi_join() -> None:
    sql = (
        "SELECT e.empno, NVL(e.comm, 0) AS comm, DECODE(d.loc, 'NY', 1, 0) AS ny "
        "FROM emp e INNER JOIN dept d ON e.deptno = d.deptno WHERE e.sal > 100"
    )
    assert middle_chunk_sql(sql, "oracle", "empno") == (
        "SELECT e.empno, NVL(e.comm, 0) AS comm, DECODE(d.loc, 'NY', 1, 0) AS ny "
        "FROM emp e INNER JOIN dept d ON e.deptno = d.deptno "
        "WHERE e.sal > 100 AND (e.empno >= :dms_lo AND e.empno < :dms_hi)"
    )


def test_union_all_gets_a_predicate_in_every_branch() -> None:
    sql = "SELECT id, v FROM a UNION ALL SELECT b.code, b.v FROM b"
    assert middle_chunk_sql(sql, "sqlite", "id") == (
        "SELECT id, v FROM a WHERE a.id >= :dms_lo AND a.id < :dms_hi "
        "UNION ALL SELECT b.code, b.v FROM b WHERE b.code >= :dms_lo AND b.code < :dms_hi"
    )


def test_percent_literals_are_escaped_for_pyformat_drivers() -> None:
    sql = "SELECT id FROM t WHERE name LIKE 'a%'"
    assert middle_chunk_sql(sql, "postgres", "id") == (
        "SELECT id FROM t WHERE name LIKE 'a%%' AND (t.id >= %(dms_lo)s AND t.id < %(dms_hi)s)"
    )
    assert "LIKE 'a%'" in middle_chunk_sql(sql, "oracle", "id")


def test_grouped_on_key_is_split() -> None:
    sql = "SELECT cust_id, SUM(amount) FROM orders GROUP BY cust_id"
    assert middle_chunk_sql(sql, "postgres", "cust_id") == (
        "SELECT cust_id, SUM(amount) FROM orders "
        "WHERE orders.cust_id >= %(dms_lo)s AND orders.cust_id < %(dms_hi)s GROUP BY cust_id"
    )


@pytest.mark.parametrize("key", ["id", "o.id"])
def test_original_query_is_not_modified_between_chunks(key: str) -> None:
    plan = plan_query("SELECT o.id FROM t o", "postgres", key, 3, "key_range", INT_STATS)
    assert [c.query_sql.count("dms_") for c in plan.chunks] == [1, 2, 1, 0]
