"""Declared types -> PostgreSQL types, describe() and estimate() on real files, and
values -> COPY text, exactly."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from dms_pkg.backends import sqlite as lite
from dms_pkg.backends.sqlite_types import copy_lines, float_text, formatters, pg_type
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import DmsError
from tests.unit.backends.sqlite_files import (
    EDGE_DDL,
    EDGE_ROWS,
    EDGE_TYPES,
    MAX64,
    MIN64,
    make_db,
)


@pytest.mark.parametrize(("declared", "pg"), [
    # no declared type: the column may hold anything, text holds everything
    (None, "text"), ("", "text"),
    # every integer name is bigint: SQLite stores 64 bits whatever the width said
    ("INTEGER", "bigint"), ("INT", "bigint"), ("TINYINT", "bigint"), ("SMALLINT", "bigint"),
    ("MEDIUMINT", "bigint"), ("BIGINT", "bigint"), ("INT2", "bigint"), ("INT8", "bigint"),
    ("int unsigned", "bigint"),
    # names sqlglot cannot read follow SQLite's affinity rules, in their order
    ("UNSIGNED BIG INT", "bigint"), ("FLOATING POINT", "bigint"), ("POINT", "bigint"),
    ("VARYING CHARACTER(255)", "text"), ("NATIVE CHARACTER(70)", "text"),
    ("money", "numeric"), ("serial", "numeric"), ("ANY", "numeric"),
    ("REAL", "double precision"), ("DOUBLE", "double precision"),
    ("DOUBLE PRECISION", "double precision"), ("FLOAT", "double precision"),
    ("NUMERIC", "numeric"), ("DECIMAL", "numeric"), ("DECIMAL(10,5)", "numeric(10,5)"),
    ("decimal(10, 2)", "numeric(10,2)"), ("NUMERIC(12)", "numeric(12,0)"),
    ("BOOLEAN", "boolean"), ("BOOL", "boolean"),
    ("DATE", "date"), ("DATETIME", "timestamp without time zone"),
    ("TIMESTAMP", "timestamp without time zone"),
    ("TIMESTAMPTZ", "timestamp with time zone"),
    ("TIMESTAMP WITH TIME ZONE", "timestamp with time zone"),
    ("TEXT", "text"), ("VARCHAR(20)", "text"), ("CHARACTER(20)", "text"),
    ("NCHAR(55)", "text"), ("NVARCHAR(100)", "text"), ("CLOB", "text"), ("STRING", "text"),
    ("BLOB", "bytea"), ("VARBINARY", "bytea"), ("BINARY(16)", "bytea"),
    # known to sqlglot, no faithful PostgreSQL counterpart here: text
    ("JSON", "text"), ("UUID", "text"), ("TIME", "text"),
])
def test_declared_types_map_to_postgres_types(declared: str | None, pg: str) -> None:
    assert pg_type(declared) == pg


@pytest.fixture
def edge_db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "edge.sqlite", EDGE_DDL, EDGE_ROWS)


def test_describe_gives_each_column_its_declared_type(edge_db: Path) -> None:
    with closing(lite.connect(edge_db)) as conn:
        columns = lite.describe(conn, "SELECT * FROM edge")
    assert [(c.name, c.type_name) for c in columns] == list(EDGE_TYPES.items())
    assert {c.type_oid for c in columns} == {0}


def test_describe_follows_columns_through_ctes_joins_subqueries_and_views(tmp_path: Path
                                                                          ) -> None:
    path = make_db(tmp_path / "q.sqlite", """
        CREATE TABLE o (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), at DATETIME, cust INT);
        CREATE TABLE c (id INTEGER PRIMARY KEY, name VARCHAR(40));
        CREATE VIEW big_orders AS SELECT id, amount FROM o WHERE amount > 100;""", table="o")
    query = """
        WITH x AS (SELECT id AS order_id, amount, at, cust FROM o)
        SELECT x.order_id, x.amount, s.name, x.amount * 2 AS twice, count(*) OVER () AS n,
               CAST(x.at AS TEXT) AS at_text, b.amount AS big, 1 AS one, x.at
        FROM x JOIN (SELECT id, name FROM c) s ON s.id = x.cust
        LEFT JOIN big_orders b ON b.id = x.order_id
        WHERE x.order_id >= :dms_lo AND x.order_id < :dms_hi;"""
    with closing(lite.connect(path)) as conn:
        columns = lite.describe(conn, query)
    assert [(c.name, c.type_name) for c in columns] == [
        ("order_id", "bigint"), ("amount", "numeric(10,2)"), ("name", "text"),
        # expressions have no declared type
        ("twice", "text"), ("n", "text"), ("at_text", "text"),
        ("big", "numeric(10,2)"), ("one", "text"), ("at", "timestamp without time zone"),
    ]


def test_describe_leaves_nothing_behind_and_reports_sql_errors(edge_db: Path) -> None:
    with closing(lite.connect(edge_db)) as conn:
        lite.describe(conn, "SELECT id FROM edge")
        assert conn.execute("SELECT count(*) FROM sqlite_temp_master").fetchone() == (0,)
        with pytest.raises(DmsError) as err:
            lite.describe(conn, "SELECT nope FROM edge")
    assert (err.value.sqlstate, err.value.message) == ("42703", "no such column: nope")


def test_estimate_reads_sqlite_stat1_else_counts_the_driving_table(tmp_path: Path) -> None:
    path = make_db(tmp_path / "est.sqlite", """
        CREATE TABLE t (id INTEGER PRIMARY KEY, k INT);
        CREATE INDEX t_k ON t (k);
        CREATE TABLE "Mixed Case" (a);
        CREATE VIEW v AS SELECT * FROM t;""", [(i, i % 7) for i in range(1, 1001)], table="t")
    with closing(lite.connect(path)) as conn:
        assert lite.estimate(conn, "SELECT id FROM t WHERE k = 3") == 1000  # count(*)
        assert lite.estimate(conn, 'SELECT a FROM "Mixed Case"') == 0
        assert lite.estimate(conn, "SELECT * FROM v") is None  # a view: no row count to read
        assert lite.estimate(conn, "SELECT 1 AS one") is None  # no driving table
        assert lite.estimate(conn, "WITH w AS (SELECT id FROM t) SELECT id FROM w") == 1000
    rw = sqlite3.connect(path)
    rw.execute("DELETE FROM t WHERE id > 900")
    rw.execute("ANALYZE")
    # ANALYZE's figure stands until the next ANALYZE, even when rows change after it
    rw.execute("INSERT INTO t (id, k) VALUES (5000, 1)")
    rw.commit()
    rw.close()
    with closing(lite.connect(path)) as conn:
        assert lite.estimate(conn, "SELECT id FROM t") == 900
        assert lite.estimate(conn, "SELECT id FROM main.t") == 900


def _line(types: list[str], *values: object) -> str:
    columns = [SourceColumn(f"c{i}", 0, t) for i, t in enumerate(types)]
    return copy_lines([values], formatters(columns))


def test_values_become_copy_text_exactly() -> None:
    assert _line(["text", "text", "text"], None, "", "\\N") == "\\N\t\t\\\\N\n"
    assert _line(["text"], "a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re\n"
    assert _line(["text"], "üñí ☃ 😀") == "üñí ☃ 😀\n"
    assert _line(["bigint", "bigint"], MAX64, MIN64) == f"{MAX64}\t{MIN64}\n"
    assert _line(["bigint"], 3.0) == "3\n"  # a REAL without a fraction in an INTEGER column
    assert _line(["double precision"] * 6, float("inf"), float("-inf"), float("nan"), -0.0,
                 5e-324, 1e16) == "Infinity\t-Infinity\tNaN\t-0.0\t5e-324\t1e+16\n"
    assert _line(["bytea", "bytea", "bytea"], b"\x00\\\xff", "é", 12) == \
        "\\\\x005cff\t\\\\xc3a9\t\\\\x3132\n"
    assert _line(["boolean"] * 4, 0, 1, "true", " F ") == "f\tt\tt\tf\n"
    assert _line(["numeric", "numeric(12,3)", "numeric"], 1, 0.1, " 12.50 ") == \
        "1\t0.1\t12.50\n"
    assert _line(["date", "timestamp without time zone", "timestamp without time zone"],
                 "2024-01-02", "2024-01-02T03:04:05.5", "2024-01-02") == \
        "2024-01-02\t2024-01-02T03:04:05.5\t2024-01-02\n"
    # SQLite reads a time without an offset as UTC
    assert _line(["timestamp with time zone"] * 3, "2024-01-02 03:04", "2024-01-02 03:04Z",
                 "2024-01-02 03:04:05-05:30") == \
        "2024-01-02 03:04+00\t2024-01-02 03:04Z\t2024-01-02 03:04:05-05:30\n"
    # an untyped column: every storage class as text, never a failure
    assert _line(["text"] * 5, 17, 1.5, -0.0, b"\x00a", float("inf")) == \
        "17\t1.5\t-0.0\t\\\\x0061\tInfinity\n"


def test_float_text_round_trips() -> None:
    for value in (0.1, 1 / 3, 1e-300, 5e-324, 1.7976931348623157e308, -2.5, 2.0**53 + 1):
        assert float(float_text(value)) == value
    assert math.isnan(float(float_text(float("nan"))))


@pytest.mark.parametrize(("pg", "value", "sqlstate", "message", "hint"), [
    ("bigint", "abc", "22P02",
     "SQLite column \"c0\" is loaded as bigint, but a row holds the text 'abc'",
     "load it as text with CAST(\"c0\" AS TEXT) in the source query, or correct the value "
     "in the SQLite file"),
    ("bigint", 1.5, "22P02", "SQLite column \"c0\" is loaded as bigint, but a row holds the "
     "real 1.5", None),
    ("bigint", 1e20, "22003", "SQLite column \"c0\" is loaded as bigint, but a row holds the "
     "real 1e+20, beyond the range of a 64-bit integer", None),
    ("bigint", b"\x01", "22P02", "SQLite column \"c0\" is loaded as bigint, but a row holds "
     "a blob of 1 bytes", None),
    ("double precision", "x" * 50, "22P02", "SQLite column \"c0\" is loaded as double "
     "precision, but a row holds the text '" + "x" * 40 + "...'", None),
    ("numeric(10,2)", "ten", "22P02", "SQLite column \"c0\" is loaded as numeric(10,2), but a "
     "row holds the text 'ten'", None),
    ("boolean", "maybe", "22P02", "SQLite column \"c0\" is loaded as boolean, but a row holds "
     "the text 'maybe'", "store 0 and 1 (or 'true' and 'false'), or load it as text with "
     "CAST(\"c0\" AS TEXT)"),
    ("date", 1700000000, "22P02", "SQLite column \"c0\" is loaded as date, but a row holds the "
     "integer 1700000000, which is not an ISO 8601 date (YYYY-MM-DD)",
     "SQLite keeps dates as ISO 8601 text; convert the others in the source query, for "
     "example date(\"c0\", 'unixepoch') for Unix times or date(\"c0\") for Julian day numbers"),
    ("date", "02/01/2024", "22P02", "SQLite column \"c0\" is loaded as date, but a row holds "
     "the text '02/01/2024', which is not an ISO 8601 date (YYYY-MM-DD)", None),
    ("date", "2024-01-02 10:00", "22P02", "SQLite column \"c0\" is loaded as date, but a row "
     "holds the text '2024-01-02 10:00', a date with a time of day",
     "drop the time in the source query: date(\"c0\"), or declare the column DATETIME"),
    ("timestamp without time zone", "2024-01-02 10:00+02:00", "22P02",
     "SQLite column \"c0\" is loaded as timestamp without time zone, but a row holds the text "
     "'2024-01-02 10:00+02:00', a time with a UTC offset that a timestamp without time zone "
     "would silently drop",
     "convert it to UTC in the source query: datetime(\"c0\"), or declare the column "
     "TIMESTAMPTZ"),
    ("timestamp without time zone", 2460000.5, "22P02", "SQLite column \"c0\" is loaded as "
     "timestamp without time zone, but a row holds the real 2460000.5, which is not an ISO "
     "8601 date and time", None),
    ("text", "a\x00b", "22P02", "SQLite column \"c0\" is loaded as text, but a row holds the "
     "text 'a\\x00b', with a NUL character that PostgreSQL text cannot store",
     "load it as bytea: CAST(\"c0\" AS BLOB), or drop the NULs: replace(\"c0\", char(0), '')"),
])
def test_values_a_type_cannot_hold_are_refused_naming_the_column(
        pg: str, value: object, sqlstate: str, message: str, hint: str | None) -> None:
    with pytest.raises(DmsError) as err:
        _line([pg], value)
    assert (err.value.sqlstate, err.value.message) == (sqlstate, message)
    if hint is not None:
        assert err.value.hint == hint
