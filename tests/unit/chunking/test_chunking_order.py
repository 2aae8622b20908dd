"""Bounds follow the database's order, and the default key is found where it is.

Pure checks of the pieces the integration tests exercise on real servers:
``Ranked`` values (the database's rank, not Python's ``<``), ``key_above``
(the primary key as the outermost query names it), ``with_row_key`` and the
plans a refused or unmeasurable key gets.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dms_pkg.chunking import BoundsInput, analyze_query, get_dialect, plan_query, safety
from dms_pkg.chunking import boundaries as bnd
from dms_pkg.chunking.analyze import key_above, with_row_key
from dms_pkg.errors import DmsError


def _ranked(values: list[str], order: dict[str, int]) -> list[bnd.Ranked]:
    return [bnd.Ranked(order[v], v) for v in values]


# A case-insensitive order: 'e' = 'E' < 'F' = 'f' < 'y' = 'Y'; Python says 'E' < 'F' < 'e'.
CI = {"e": 1, "E": 1, "f": 2, "F": 2, "y": 3, "Y": 3}


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.sampled_from(sorted(CI)), min_size=1, max_size=60),
       n=st.integers(1, 6))
def test_ranked_cuts_ascend_in_the_database_order(values: list[str], n: int) -> None:
    """Every value lands in exactly one range when the ranges are evaluated with
    the database's comparison (the rank), whatever Python's order says."""
    sample = _ranked(values, CI)
    bounds, hot = bnd.skew_aware_ranges(sample, n)
    edges = [b.lo.rank for b in bounds if isinstance(b, bnd.RangeBounds) and b.lo is not None]
    assert edges == sorted(edges)
    for value in sample:
        assert sum(bnd.contains(b, value) for b in bounds) == 1, (value, bounds)
    # Values the collation calls equal are one value: 'e' and 'E' are never apart.
    assert {h.value.rank for h in hot} <= {1, 2, 3}


def test_ranked_values_bind_as_themselves() -> None:
    """Cut in rank order e < F < y (Python's would be F < e < y: cuts 'e', 'y')."""
    sample = [bnd.Ranked(2, "F"), bnd.Ranked(1, "e"), bnd.Ranked(3, "y")] * 10
    plan = plan_query("SELECT k FROM t", "postgres", "k", 3, "quantile",
                      BoundsInput(sample=sample, row_count=30))
    assert [c.params for c in plan.chunks] == [
        {"dms_hi": "F"}, {"dms_lo": "F", "dms_hi": "y"}, {"dms_lo": "y"}, {}]
    assert [(c.lo, c.hi) for c in plan.chunks] == [
        (None, "F"), ("F", "y"), ("y", None), (None, None)]
    hot = plan_query("SELECT k FROM t", "postgres", "k", 4, "quantile",
                     BoundsInput(sample=sample, row_count=30))
    assert [h.value for h in hot.hot_values] == ["e", "F", "y"]


def test_non_finite_min_max_is_refused_by_the_pure_planner() -> None:
    with pytest.raises(DmsError) as err:
        plan_query("SELECT x FROM t", "postgres", "x", 3, "key_range",
                   BoundsInput(key_kind="numeric", min_value=1.0, max_value=float("nan"),
                               row_count=3))
    assert err.value.message == (
        "strategy key_range needs a finite bounds_input.min_value and max_value, got 1.0 "
        "and nan")


@pytest.mark.parametrize(("sql", "names", "key"), [
    ("SELECT id, v FROM t", ["id"], "id"),
    ("SELECT * FROM (SELECT id AS sale_id FROM t) r", ["id"], "sale_id"),
    ("WITH r AS (SELECT t.id AS sale_id FROM t) SELECT r.sale_id FROM r", ["id"], "sale_id"),
    ("WITH r (a, b) AS (SELECT v, id FROM t) SELECT a FROM r", ["id"], "b"),
    ("SELECT s.* FROM (SELECT * FROM t) s", ["id"], "id"),
    ('SELECT "Id" FROM "R_Mixed"', ["Id"], '"Id"'),
    ("SELECT region, id FROM (SELECT region, id AS n FROM t) x", ["region", "id"],
     "region, n"),
    ("SELECT id, v FROM t UNION ALL SELECT id, v FROM u", ["id"], "id"),
    ("SELECT x.k FROM (SELECT id AS k FROM t) x UNION ALL SELECT id FROM u", ["id"], "k"),
])
def test_key_above_names_the_key_as_the_outer_query_sees_it(
    sql: str, names: list[str], key: str
) -> None:
    located = analyze_query(sql, "postgres", locate=True)
    assert key_above(located, names) == key


@pytest.mark.parametrize("sql", [
    "SELECT s.v FROM (SELECT v FROM t) s",  # not passed on
    "SELECT s.x FROM (SELECT id + 1 AS x FROM t) s",  # not a plain column
    "WITH r (a, b) AS (SELECT * FROM t) SELECT a FROM r",  # renamed star: position unknown
])
def test_key_above_gives_up_when_a_level_hides_the_key(sql: str) -> None:
    assert key_above(analyze_query(sql, "postgres", locate=True), ["id"]) is None


def test_locate_finds_the_table_of_a_query_that_must_not_be_split() -> None:
    located = analyze_query("SELECT k, count(*) FROM t GROUP BY k", "postgres", locate=True)
    assert located.refused_reason is None and located.driving_table == "t"
    judged = analyze_query("SELECT k, count(*) FROM t GROUP BY k", "postgres")
    assert judged.refused_reason == safety.PHYSICAL_GROUP_BY


def test_the_sqlite_rowid_goes_on_the_base_table_below_every_level() -> None:
    physical = analyze_query("WITH c AS (SELECT a FROM t) SELECT a FROM c", "sqlite")
    keyed = with_row_key(physical)
    assert keyed is not None
    plan = plan_query("WITH c AS (SELECT a FROM t) SELECT a FROM c", "sqlite", None, 2,
                      "key_range", BoundsInput(key_kind="int", min_value=1, max_value=9,
                                               row_count=9))
    assert plan.key == "rowid"
    assert plan.chunks[0].query_sql == (
        "WITH c AS (SELECT a FROM t WHERE t.rowid < :dms_hi) SELECT a FROM c")
    twice = analyze_query("WITH c AS (SELECT a FROM t) SELECT x.a FROM c x JOIN c y ON "
                          "x.a = y.a", "sqlite")
    assert with_row_key(twice) is None


@pytest.mark.parametrize("strategy", ["key_range", "quantile", "hash", "offset", "ctid"])
def test_a_forced_strategy_cannot_split_an_unsafe_query(strategy: str) -> None:
    plan = plan_query("SELECT k, count(*) FROM t GROUP BY k", "postgres",
                      "id" if strategy != "ctid" else None, 4, strategy,
                      BoundsInput(key_kind="int", min_value=1, max_value=9, row_count=9,
                                  relpages=10))
    assert (plan.strategy, len(plan.chunks)) == ("single", 1)
    assert plan.refused_reason is not None and plan.refused_reason.startswith("GROUP BY")


def test_oracle_sessions_pin_one_text_order() -> None:
    """ORDER BY follows NLS_SORT, ``<`` follows NLS_COMP: bounds from one are valid
    for the other only when both are pinned."""
    assert get_dialect("oracle").SESSION_SETUP == (
        "ALTER SESSION SET NLS_SORT = BINARY", "ALTER SESSION SET NLS_COMP = BINARY")
    assert get_dialect("postgres").SESSION_SETUP == ()
