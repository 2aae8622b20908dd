"""Bad input raises DmsError with the SQLSTATE and message a user sees."""

from __future__ import annotations

import pytest

from dms_pkg.chunking import BoundsInput, plan_query
from dms_pkg.errors import DmsError

STATS = BoundsInput(key_kind="int", min_value=1, max_value=100, row_count=1000)


def error_of(**kwargs: object) -> DmsError:
    args: dict[str, object] = {
        "sql": "SELECT id FROM t",
        "dialect": "postgres",
        "key": "id",
        "n_chunks": 4,
        "strategy": "auto",
        "bounds_input": STATS,
    }
    args.update(kwargs)
    with pytest.raises(DmsError) as caught:
        plan_query(**args)  # type: ignore[arg-type]
    return caught.value


def test_unknown_dialect() -> None:
    err = error_of(dialect="db2")
    assert err.sqlstate == "22023"
    assert err.message == (
        'unknown SQL dialect "db2"; allowed dialects: '
        "mariadb, mysql, oracle, postgres, postgresql, sqlite"
    )


def test_unparseable_sql_reports_line_and_column() -> None:
    err = error_of(sql="SELECT id\nFROM WHERE x = 1")
    assert err.sqlstate == "42601"
    assert err.message == (
        'cannot parse source SQL as postgres at line 2, column 10 near "WHERE": '
        'Expected table name but got "WHERE"'
    )


def test_incomplete_clause_is_said_in_sql_words() -> None:
    err = error_of(sql="SELECT id FROM t WHERE")
    assert err.message == (
        'cannot parse source SQL as postgres at line 1, column 22 near "WHERE": '
        "WHERE is incomplete"
    )


def test_several_statements() -> None:
    err = error_of(sql="SELECT 1; SELECT 2")
    assert (err.sqlstate, err.message) == (
        "42601",
        "source SQL must be a single query, found 2 statements",
    )


def test_dml_is_not_a_query() -> None:
    err = error_of(sql="DELETE FROM t")
    assert (err.sqlstate, err.message) == (
        "0A000",
        "source SQL must be a query (SELECT), not DELETE",
    )


def test_user_bind_parameters_are_refused() -> None:
    err = error_of(sql="SELECT id FROM t WHERE x = :x", dialect="oracle")
    assert (err.sqlstate, err.message) == (
        "0A000",
        "source SQL contains the bind parameter :x",
    )


@pytest.mark.parametrize("n", [0, -1, 10001, True])
def test_chunk_count_out_of_range(n: object) -> None:
    err = error_of(n_chunks=n)
    assert err.sqlstate == "22023"
    assert err.message == f"n_chunks must be between 1 and 10000, got {n!r}"


def test_chunk_count_at_cap_is_accepted() -> None:
    plan = plan_query("SELECT id FROM t", "postgres", "id", 10000, "hash")
    assert len(plan.chunks) == 10000


def test_unknown_strategy() -> None:
    err = error_of(strategy="ntile")
    assert (err.sqlstate, err.message) == (
        "22023",
        'unknown chunk strategy "ntile"; allowed strategies: '
        "auto, key_range, quantile, ctid, rowid, hash, offset, single",
    )


def test_unknown_key_column_when_columns_are_known() -> None:
    with pytest.raises(DmsError) as caught:
        plan_query(
            "SELECT o.id FROM orders o",
            "postgres",
            "o.idd",
            4,
            "auto",
            STATS,
            columns=["id", "total"],
        )
    assert (caught.value.sqlstate, caught.value.message) == (
        "42703",
        'column "idd" does not exist in table orders',
    )
    assert caught.value.hint == "existing columns: id, total"


def test_key_qualified_by_a_table_not_in_from() -> None:
    err = error_of(sql="SELECT o.id FROM orders o JOIN c ON o.c = c.id", key="x.id")
    assert err.sqlstate == "42P01"
    assert err.message == (
        'chunk key x.id refers to "x", which is not a table or alias in the outermost FROM clause'
    )
    assert err.detail == "tables and aliases there: o, c"


def test_composite_key_from_two_tables() -> None:
    err = error_of(sql="SELECT o.id FROM orders o JOIN c ON o.c = c.id", key=["o.id", "c.id"])
    assert (err.sqlstate, err.message) == (
        "22023",
        "all columns of a composite chunk key must belong to one table, got o.id, c.id",
    )


@pytest.mark.parametrize("key", ["a + 1", "", "s.t.c"])
def test_key_that_is_not_a_column(key: str) -> None:
    err = error_of(key=key)
    assert err.sqlstate == "22023"
    assert err.message.startswith(f'invalid chunk key "{key}": expected a column name')


def test_union_key_with_qualifier() -> None:
    err = error_of(sql="SELECT id FROM a UNION ALL SELECT id FROM b", key="a.id")
    assert err.sqlstate == "22023"
    assert err.message == (
        "the chunk key of a UNION ALL query must name an output column without a table "
        "qualifier, got a.id"
    )


@pytest.mark.parametrize(
    ("dialect", "strategy", "message"),
    [
        (
            "sqlite",
            "hash",
            'chunk strategy "hash" is not available for sqlite: SQLite has no '
            "built-in hash function; use key_range or quantile",
        ),
        (
            "mysql",
            "ctid",
            'chunk strategy "ctid" is not available for mysql: '
            "ctid TID ranges exist only in PostgreSQL",
        ),
        (
            "postgres",
            "rowid",
            'chunk strategy "rowid" is not available for postgres: '
            "ROWID extent ranges exist only in Oracle",
        ),
    ],
)
def test_strategy_not_available_in_dialect(dialect: str, strategy: str, message: str) -> None:
    err = error_of(dialect=dialect, strategy=strategy)
    assert (err.sqlstate, err.message) == ("0A000", message)


def test_keyed_strategy_without_key() -> None:
    err = error_of(key=None, strategy="hash")
    assert (err.sqlstate, err.message) == ("22023", 'chunk strategy "hash" needs a chunk key')


def test_key_range_on_text_key_points_to_quantile() -> None:
    err = error_of(strategy="key_range", bounds_input=BoundsInput(key_kind="text", row_count=5))
    assert err.sqlstate == "22023"
    assert err.hint == "text and uuid keys have no width; use strategy quantile"


def test_missing_statistics_for_explicit_strategies() -> None:
    assert error_of(strategy="key_range", bounds_input=BoundsInput(key_kind="int")).message == (
        "strategy key_range needs bounds_input.min_value and max_value "
        "(or row_count for an empty or all-NULL key)"
    )
    assert error_of(strategy="quantile", bounds_input=None).message == (
        "strategy quantile needs bounds_input.sample (key values or quantiles)"
    )
    assert error_of(strategy="ctid", key=None, bounds_input=None).message == (
        "strategy ctid needs bounds_input.relpages (the table's page count)"
    )
    assert error_of(strategy="offset", bounds_input=None).message == (
        "strategy offset needs bounds_input.row_count"
    )
