"""The job flow's run-time SQL: parameters and the checkpoint filter."""

from __future__ import annotations

import pytest

from dms_pkg.mapper.flow import source_query, with_params

COMBINATION = ("SELECT q1.sale_id AS sale_id, q2.name AS name FROM (SELECT sale_id, cust_id"
               " FROM src.sales WHERE region = 'EU' OR region = 'UK') AS q1 LEFT JOIN"
               " (SELECT cust_id, name FROM src.customer) AS q2 ON q2.cust_id = q1.cust_id")


def test_checkpoint_filter_goes_into_the_driving_query() -> None:
    # There the planner measures and cuts only the rows after the checkpoint.
    # ">=": rows that tie with the last value and came later are read too; NULLs
    # are read by every run (no comparison ever selects them).
    assert source_query(COMBINATION, "sale_id", "10000") == (
        "SELECT * FROM (SELECT q1.sale_id AS sale_id, q2.name AS name FROM (SELECT sale_id,"
        " cust_id FROM src.sales WHERE (region = 'EU' OR region = 'UK') AND (sale_id >= '10000'"
        " OR sale_id IS NULL)) AS q1 LEFT JOIN (SELECT cust_id, name FROM src.customer) AS q2"
        " ON q2.cust_id = q1.cust_id) AS dms_src")


def test_a_later_combination_reads_no_further_than_the_first() -> None:
    assert source_query(COMBINATION, "sale_id", "10000", ceiling="15000") == (
        "SELECT * FROM (SELECT q1.sale_id AS sale_id, q2.name AS name FROM (SELECT sale_id,"
        " cust_id FROM src.sales WHERE (region = 'EU' OR region = 'UK') AND ((sale_id >= '10000'"
        " AND sale_id <= '15000') OR sale_id IS NULL)) AS q1 LEFT JOIN (SELECT cust_id, name"
        " FROM src.customer) AS q2 ON q2.cust_id = q1.cust_id) AS dms_src")


@pytest.mark.parametrize("combination", [
    "SELECT q1.id AS id FROM (SELECT id, count(*) AS n FROM t GROUP BY id) AS q1",
    "SELECT q1.id AS id FROM (SELECT DISTINCT id FROM t) AS q1",
    "SELECT q1.id AS id FROM (SELECT id FROM t ORDER BY id LIMIT 10) AS q1",
    "SELECT q1.id AS id FROM (SELECT t.id + 1 AS id FROM t) AS q1",
    "SELECT q2.id AS id FROM (SELECT id FROM t) AS q1 JOIN (SELECT id FROM u) AS q2"
    " ON q2.id = q1.id",
], ids=["group-by", "distinct", "limit", "expression", "inner-join"])
def test_checkpoint_filter_stays_outside_when_pushing_it_could_change_the_rows(
        combination: str) -> None:
    assert source_query(combination, "id", "5").endswith(
        ") AS dms_src WHERE dms_src.id >= '5' OR dms_src.id IS NULL")


def test_no_checkpoint_no_filter() -> None:
    assert source_query("SELECT q1.id AS id FROM (SELECT id FROM t) AS q1") == (
        "SELECT * FROM (SELECT q1.id AS id FROM (SELECT id FROM t) AS q1) AS dms_src")


def test_parameters_become_literals_and_cannot_change_the_statement() -> None:
    text = with_params("SELECT id FROM t WHERE d >= DWT_PARAM1 AND d < DWT_PARAM2"
                       " AND x = DWT_PARAM3", ["2026-01-01", "x'; DROP TABLE t; --"])
    assert text == ("SELECT id FROM t WHERE d >= '2026-01-01' AND d < 'x''; DROP TABLE t; --'"
                    " AND x = NULL")
