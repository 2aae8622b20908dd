"""COPY text from an Oracle chunk query: the server-rendered SQL per type
(exact text, parsed back), which column takes which path, and the driver
formatter on real Python values of every type python-oracledb returns."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import oracledb
import pytest
import sqlglot
from sqlglot import exp

from dms_pkg.backends.oracle_copy import (
    EXTENDED_MAX_STRING_BYTES,
    LOB_ARRAYSIZE,
    CopyPart,
    copy_layout,
    copy_text_query,
    escape_text,
    format_interval_ds,
    format_value,
    server_text,
    worst_bytes,
)
from dms_pkg.backends.oracle_sql import column_ref
from dms_pkg.backends.oracle_types import OracleColumn as C
from dms_pkg.errors import DmsError

NLS = "'NLS_NUMERIC_CHARACTERS=''.,'''"
ESC = ("REPLACE(REPLACE(REPLACE(REPLACE({v}, '\\', '\\\\'), CHR(9), '\\t'), CHR(10), '\\n'), "
       "CHR(13), '\\r')")


def rendered(column: C) -> str | None:
    text = server_text(column, column_ref(column.name))
    return None if text is None else text.sql(dialect="oracle")


V = 'dms_q."V"'


@pytest.mark.parametrize(("column", "sql"), [
    (C("V", "DB_TYPE_NUMBER", 12, 2), f"TO_CHAR({V}, 'TM9', {NLS})"),
    (C("V", "DB_TYPE_NUMBER", 0, -127), f"TO_CHAR({V}, 'TM9', {NLS})"),
    (C("V", "DB_TYPE_VARCHAR", size=10, byte_size=40), ESC.format(v=V)),
    (C("V", "DB_TYPE_CHAR", size=3, byte_size=3), ESC.format(v=V)),
    (C("V", "DB_TYPE_RAW", size=16, byte_size=16), f"'\\\\x' || RAWTOHEX({V})"),
    (C("V", "DB_TYPE_DATE"),
     f"TO_CHAR({V}, 'YYYY-MM-DD HH24:MI:SS') || "
     f"CASE WHEN EXTRACT(YEAR FROM {V}) < 0 THEN ' BC' END"),
    (C("V", "DB_TYPE_TIMESTAMP", 0, 6),
     f"TO_CHAR({V}, 'YYYY-MM-DD HH24:MI:SS.FF9') || "
     f"CASE WHEN EXTRACT(YEAR FROM {V}) < 0 THEN ' BC' END"),
    (C("V", "DB_TYPE_TIMESTAMP_TZ", 0, 6),
     f"TO_CHAR(SYS_EXTRACT_UTC({V}), 'YYYY-MM-DD HH24:MI:SS.FF9') || '+00' || "
     f"CASE WHEN EXTRACT(YEAR FROM SYS_EXTRACT_UTC({V})) < 0 THEN ' BC' END"),
    (C("V", "DB_TYPE_TIMESTAMP_LTZ", 0, 3),
     f"TO_CHAR(SYS_EXTRACT_UTC({V}), 'YYYY-MM-DD HH24:MI:SS.FF9') || '+00' || "
     f"CASE WHEN EXTRACT(YEAR FROM SYS_EXTRACT_UTC({V})) < 0 THEN ' BC' END"),
    (C("V", "DB_TYPE_INTERVAL_DS", 2, 6),
     f"TO_CHAR(EXTRACT(DAY FROM {V}), 'TM9', {NLS}) || ' days ' || "
     f"TO_CHAR(EXTRACT(HOUR FROM {V}), 'TM9', {NLS}) || ' hours ' || "
     f"TO_CHAR(EXTRACT(MINUTE FROM {V}), 'TM9', {NLS}) || ' mins ' || "
     f"TO_CHAR(ROUND(EXTRACT(SECOND FROM {V}) * 1000000), 'TM9', {NLS}) || ' microseconds'"),
    (C("V", "DB_TYPE_INTERVAL_YM", 2),
     f"TO_CHAR(EXTRACT(YEAR FROM {V}), 'TM9', {NLS}) || ' years ' || "
     f"TO_CHAR(EXTRACT(MONTH FROM {V}), 'TM9', {NLS}) || ' mons'"),
    (C("V", "DB_TYPE_ROWID"), f"ROWIDTOCHAR({V})"),
    (C("V", "DB_TYPE_BOOLEAN"), f"CASE WHEN {V} THEN 't' ELSE 'f' END"),
    # Driver path: LOBs, national character sets, binary floats, UROWID.
    (C("V", "DB_TYPE_CLOB"), None),
    (C("V", "DB_TYPE_NCLOB"), None),
    (C("V", "DB_TYPE_BLOB"), None),
    (C("V", "DB_TYPE_NVARCHAR", size=10, byte_size=20), None),
    (C("V", "DB_TYPE_NCHAR", size=2, byte_size=4), None),
    (C("V", "DB_TYPE_BINARY_FLOAT"), None),
    (C("V", "DB_TYPE_BINARY_DOUBLE"), None),
    (C("V", "DB_TYPE_UROWID"), None),
])
def test_server_rendering_of_every_type(column: C, sql: str | None) -> None:
    assert rendered(column) == sql
    if sql is not None:
        sqlglot.parse_one(f"SELECT {sql} FROM dual", read="oracle")


def test_a_row_of_server_columns_is_one_line() -> None:
    columns = [C("ID", "DB_TYPE_NUMBER", 10, 0), C("NAME", "DB_TYPE_VARCHAR", size=20,
                                                     byte_size=80)]
    sql = copy_text_query("SELECT o.id, o.name FROM orders o WHERE o.ROWID BETWEEN :dms_lo "
                          "AND :dms_hi", columns)
    assert sql == (
        "SELECT CASE WHEN dms_q.\"ID\" IS NULL THEN '\\N' ELSE "
        f"TO_CHAR(dms_q.\"ID\", 'TM9', {NLS}) END || CHR(9) || "
        "CASE WHEN dms_q.\"NAME\" IS NULL THEN '\\N' ELSE "
        + ESC.format(v='dms_q."NAME"') + " END AS dms_p1 "
        "FROM (SELECT o.id, o.name FROM orders o WHERE o.ROWID BETWEEN :dms_lo AND :dms_hi) "
        "dms_q")
    tree = sqlglot.parse_one(sql, read="oracle")
    assert [e.alias for e in tree.expressions] == ["dms_p1"]


def test_with_clause_moves_to_the_copy_query() -> None:
    layout = copy_layout("WITH r AS (SELECT id FROM t AS OF SCN :dms_scn) SELECT id FROM r",
                         [C("ID", "DB_TYPE_NUMBER", 9, 0)])
    assert layout.sql.startswith("WITH r AS (SELECT id FROM t AS OF SCN :dms_scn) SELECT CASE")
    assert layout.sql.endswith("FROM (SELECT id FROM r) dms_q")


def test_lobs_and_wide_text_take_the_driver_path_between_server_groups() -> None:
    columns = [
        C("ID", "DB_TYPE_NUMBER", 10, 0),
        C("NOTES", "DB_TYPE_CLOB"),
        C("CODE", "DB_TYPE_CHAR", size=2, byte_size=2),
        C("WIDE", "DB_TYPE_VARCHAR", size=4000, byte_size=4000),  # escaping may double it
        C("PIC", "DB_TYPE_BLOB"),
        C("AT", "DB_TYPE_DATE"),
    ]
    layout = copy_layout("SELECT * FROM t", columns)
    assert layout.parts == (CopyPart((0,), True), CopyPart((1,), False), CopyPart((2,), True),
                            CopyPart((3,), False), CopyPart((4,), False), CopyPart((5,), True))
    assert [layout.path(c.name) for c in columns] == [
        "server", "driver", "server", "driver", "driver", "server"]
    assert layout.has_lobs and layout.arraysize(10_000) == LOB_ARRAYSIZE
    tree = sqlglot.parse_one(layout.sql, read="oracle")
    assert [e.alias for e in tree.expressions] == [f"dms_p{i}" for i in range(1, 7)]
    assert tree.expressions[1].this.sql(dialect="oracle") == 'dms_q."NOTES"'
    # With MAX_STRING_SIZE = EXTENDED the wide column fits the server path.
    extended = copy_layout("SELECT * FROM t", columns,
                           max_string_bytes=EXTENDED_MAX_STRING_BYTES)
    assert extended.path("WIDE") == "server"


def test_server_columns_are_grouped_within_the_string_limit() -> None:
    texts = [C(f"T{i}", "DB_TYPE_VARCHAR", size=100, byte_size=400) for i in range(5)]
    # Each needs 800 bytes at worst, plus a tab between: 4 fit in 4000, not 5.
    assert worst_bytes(texts[0]) == 800
    layout = copy_layout("SELECT * FROM t", texts)
    assert layout.parts == (CopyPart((0, 1, 2, 3), True), CopyPart((4,), True))
    tight = copy_layout("SELECT * FROM t", texts, max_string_bytes=1601)
    assert tight.parts == (CopyPart((0, 1), True), CopyPart((2, 3), True), CopyPart((4,), True))


def test_everything_through_the_driver_when_asked() -> None:
    columns = [C("ID", "DB_TYPE_NUMBER", 10, 0), C("AT", "DB_TYPE_DATE")]
    layout = copy_layout("SELECT id, at FROM t", columns, server=False)
    assert layout.parts == (CopyPart((0,), False), CopyPart((1,), False))
    assert layout.sql == ('SELECT dms_q."ID" AS dms_p1, dms_q."AT" AS dms_p2 '
                          "FROM (SELECT id, at FROM t) dms_q")


def test_an_unmapped_type_is_refused_before_any_sql() -> None:
    with pytest.raises(DmsError) as err:
        copy_layout("SELECT * FROM t", [C("DOC", "DB_TYPE_XMLTYPE")])
    assert err.value.message.startswith("column DOC of the source query has Oracle type XMLTYPE")


UTC2 = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(("column", "value", "text"), [
    (C("N", "DB_TYPE_NUMBER", 10, 0), 42, "42"),
    (C("N", "DB_TYPE_NUMBER", 10, 0), -9223372036854775808, "-9223372036854775808"),
    (C("N", "DB_TYPE_NUMBER", 12, 2), decimal.Decimal("12.50"), "12.50"),
    (C("N", "DB_TYPE_NUMBER", 0, -127), decimal.Decimal("1E+30"),
     "1000000000000000000000000000000"),
    (C("N", "DB_TYPE_NUMBER", 0, -127), decimal.Decimal("-1.5E-7"), "-0.00000015"),
    (C("N", "DB_TYPE_NUMBER", 0, -127), 0.1, "0.1"),
    (C("F", "DB_TYPE_BINARY_DOUBLE"), 1e-300, "1e-300"),
    (C("F", "DB_TYPE_BINARY_DOUBLE"), -0.0, "-0.0"),
    (C("F", "DB_TYPE_BINARY_DOUBLE"), float("nan"), "NaN"),
    (C("F", "DB_TYPE_BINARY_DOUBLE"), float("inf"), "Infinity"),
    (C("F", "DB_TYPE_BINARY_FLOAT"), float("-inf"), "-Infinity"),
    (C("F", "DB_TYPE_BINARY_FLOAT"), 0.10000000149011612, "0.10000000149011612"),
    (C("S", "DB_TYPE_VARCHAR", size=20), "a\\b\tc\nd\re", "a\\\\b\\tc\\nd\\re"),
    (C("S", "DB_TYPE_NVARCHAR", size=20), "Grüße, 東京 🚀", "Grüße, 東京 🚀"),
    (C("S", "DB_TYPE_CHAR", size=4), "ab  ", "ab  "),
    (C("S", "DB_TYPE_CLOB"), "line 1\nline 2\\", "line 1\\nline 2\\\\"),
    (C("S", "DB_TYPE_CLOB"), "", ""),  # EMPTY_CLOB() is not NULL
    (C("B", "DB_TYPE_RAW", size=4), b"\x00\x0a\xff", "\\\\x000aff"),
    (C("B", "DB_TYPE_BLOB"), b"", "\\\\x"),
    (C("D", "DB_TYPE_DATE"), dt.datetime(2024, 2, 29, 23, 59, 58), "2024-02-29 23:59:58"),
    (C("D", "DB_TYPE_DATE"), dt.datetime(1, 1, 1), "0001-01-01 00:00:00"),
    (C("D", "DB_TYPE_TIMESTAMP", 0, 6), dt.datetime(2020, 1, 2, 3, 4, 5, 6),
     "2020-01-02 03:04:05.000006"),
    (C("D", "DB_TYPE_TIMESTAMP_TZ", 0, 6), dt.datetime(2020, 6, 1, 12, 0, 0, 500000, UTC2),
     "2020-06-01 12:00:00.500000+02:00"),
    (C("I", "DB_TYPE_INTERVAL_DS", 2, 6), dt.timedelta(days=1, hours=2, minutes=3,
                                                       seconds=4, microseconds=500000),
     "1 days 02:03:04.500000"),
    (C("I", "DB_TYPE_INTERVAL_DS", 2, 6), -dt.timedelta(days=1, hours=2, minutes=3,
                                                        seconds=4, microseconds=500000),
     "-1 days -02:03:04.500000"),
    (C("I", "DB_TYPE_INTERVAL_DS", 2, 6), dt.timedelta(seconds=-1), "-0 days -00:00:01.000000"),
    (C("I", "DB_TYPE_INTERVAL_YM", 2), oracledb.IntervalYM(-1, -2), "-1 years -2 mons"),
    (C("I", "DB_TYPE_INTERVAL_YM", 2), oracledb.IntervalYM(3, 11), "3 years 11 mons"),
    (C("R", "DB_TYPE_ROWID"), "AAAR1AAEAAAAAIAAA", "AAAR1AAEAAAAAIAAA"),
    (C("R", "DB_TYPE_UROWID"), "*BAMAAJ8CwQL+", "*BAMAAJ8CwQL+"),
    (C("T", "DB_TYPE_BOOLEAN"), True, "t"),
    (C("T", "DB_TYPE_BOOLEAN"), False, "f"),
    (C("X", "DB_TYPE_NUMBER", 10, 0), None, "\\N"),
    (C("X", "DB_TYPE_CLOB"), None, "\\N"),
])
def test_driver_formatter_on_python_values(column: C, value: Any, text: str) -> None:
    assert format_value(column, value) == text


def test_driver_refuses_what_postgresql_cannot_hold_or_would_be_a_guess() -> None:
    with pytest.raises(DmsError) as nul:
        format_value(C("NOTE", "DB_TYPE_CLOB"), "a\x00b")
    assert (nul.value.sqlstate, nul.value.message) == (
        "22021", "column NOTE holds a NUL character (CHR(0)), which PostgreSQL text cannot "
                 "store")
    with pytest.raises(DmsError) as zone:
        format_value(C("AT", "DB_TYPE_TIMESTAMP_TZ", 0, 6), dt.datetime(2020, 1, 1))
    assert zone.value.message == (
        "column AT: the driver returned a time-zone value without its zone")
    assert escape_text("plain") == "plain"
    assert format_interval_ds(dt.timedelta(0)) == "0 days 00:00:00.000000"


def test_lines_join_server_text_and_driver_values() -> None:
    columns = [C("ID", "DB_TYPE_NUMBER", 10, 0), C("NOTES", "DB_TYPE_CLOB"),
               C("AT", "DB_TYPE_DATE"), C("PIC", "DB_TYPE_BLOB")]
    layout = copy_layout("SELECT * FROM t", columns)
    assert [p.server for p in layout.parts] == [True, False, True, False]
    rows = [("1", "tab\there", "2024-01-01 00:00:00", b"\x01"),
            ("\\N", None, "\\N", None)]
    assert layout.lines(rows) == ("1\ttab\\there\t2024-01-01 00:00:00\t\\\\x01\n"
                                  "\\N\t\\N\t\\N\t\\N\n")
    assert layout.lines([]) == ""


def test_single_line_rows_pass_through() -> None:
    layout = copy_layout("SELECT id, at FROM t",
                         [C("ID", "DB_TYPE_NUMBER", 10, 0), C("AT", "DB_TYPE_DATE")])
    assert layout.single_line and not layout.has_lobs and layout.arraysize(5000) == 5000
    assert layout.lines([("1\t2024-01-01 00:00:00",), ("2\t\\N",)]) == (
        "1\t2024-01-01 00:00:00\n2\t\\N\n")


def test_copy_query_parses_back_with_its_binds() -> None:
    sql = copy_text_query(
        "SELECT o.* FROM orders AS OF SCN :dms_scn o WHERE o.ROWID BETWEEN :dms_lo AND :dms_hi",
        [C("ID", "DB_TYPE_NUMBER", 10, 0), C("NOTES", "DB_TYPE_CLOB")])
    tree = sqlglot.parse_one(sql, read="oracle")
    assert {p.name for p in tree.find_all(exp.Placeholder)} == {"dms_scn", "dms_lo", "dms_hi"}
    assert isinstance(tree.args["from_"].this, exp.Subquery)
