"""Oracle column descriptions -> PostgreSQL types, the describe probe and the
row-estimate SQL (rendered and parsed back; no Oracle server runs here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import oracledb
import pytest
import sqlglot
from sqlglot import exp

from dms_pkg.backends.oracle_types import (
    OracleColumn,
    check_columns,
    columns_from_description,
    describe_sql,
    estimate_sql,
    estimated_rows,
    map_type,
    pg_data_type,
    table_stats_sql,
)
from dms_pkg.errors import DmsError


def pg(text: str) -> str:
    """A PostgreSQL type name as sqlglot writes it, for comparison."""
    return exp.DataType.build(text, dialect="postgres").sql("postgres")


@pytest.mark.parametrize(("db_type", "precision", "scale", "size", "expected"), [
    (oracledb.DB_TYPE_NUMBER, 1, 0, None, "smallint"),
    (oracledb.DB_TYPE_NUMBER, 4, 0, None, "smallint"),
    (oracledb.DB_TYPE_NUMBER, 5, 0, None, "integer"),
    (oracledb.DB_TYPE_NUMBER, 9, 0, None, "integer"),
    (oracledb.DB_TYPE_NUMBER, 10, 0, None, "bigint"),
    (oracledb.DB_TYPE_NUMBER, 18, 0, None, "bigint"),
    (oracledb.DB_TYPE_NUMBER, 19, 0, None, "numeric(19)"),
    (oracledb.DB_TYPE_NUMBER, 38, 0, None, "numeric(38)"),
    (oracledb.DB_TYPE_NUMBER, 12, 2, None, "numeric(12,2)"),
    (oracledb.DB_TYPE_NUMBER, 3, 5, None, "numeric(3,5)"),   # 0.00nnn
    (oracledb.DB_TYPE_NUMBER, 5, -2, None, "integer"),       # 7 digits, rounded to 100s
    (oracledb.DB_TYPE_NUMBER, 17, -3, None, "numeric(20)"),
    (oracledb.DB_TYPE_NUMBER, 0, -127, None, "numeric"),     # NUMBER, expressions
    (oracledb.DB_TYPE_NUMBER, 126, -127, None, "numeric"),   # FLOAT(126)
    (oracledb.DB_TYPE_NUMBER, None, None, None, "numeric(38)"),  # INTEGER = NUMBER(*,0)
    (oracledb.DB_TYPE_BINARY_INTEGER, None, None, None, "integer"),
    (oracledb.DB_TYPE_BINARY_FLOAT, None, None, None, "real"),
    (oracledb.DB_TYPE_BINARY_DOUBLE, None, None, None, "double precision"),
    (oracledb.DB_TYPE_VARCHAR, None, None, 40, "varchar(40)"),
    (oracledb.DB_TYPE_NVARCHAR, None, None, 10, "varchar(10)"),
    (oracledb.DB_TYPE_CHAR, None, None, 3, "char(3)"),
    (oracledb.DB_TYPE_NCHAR, None, None, 2, "char(2)"),
    (oracledb.DB_TYPE_CLOB, None, None, None, "text"),
    (oracledb.DB_TYPE_NCLOB, None, None, None, "text"),
    (oracledb.DB_TYPE_BLOB, None, None, None, "bytea"),
    (oracledb.DB_TYPE_RAW, None, None, 16, "bytea"),
    (oracledb.DB_TYPE_DATE, None, None, None, "timestamp(0)"),
    (oracledb.DB_TYPE_TIMESTAMP, 0, 6, None, "timestamp(6)"),
    (oracledb.DB_TYPE_TIMESTAMP, 0, 3, None, "timestamp(3)"),
    (oracledb.DB_TYPE_TIMESTAMP, 0, 9, None, "timestamp(6)"),
    (oracledb.DB_TYPE_TIMESTAMP, None, None, None, "timestamp(0)"),  # TIMESTAMP(0)
    (oracledb.DB_TYPE_TIMESTAMP_TZ, 0, 6, None, "timestamptz(6)"),
    (oracledb.DB_TYPE_TIMESTAMP_LTZ, 0, 9, None, "timestamptz(6)"),
    (oracledb.DB_TYPE_INTERVAL_DS, 2, 6, None, "interval"),
    (oracledb.DB_TYPE_INTERVAL_YM, 2, None, None, "interval"),
    (oracledb.DB_TYPE_ROWID, None, None, None, "text"),
    (oracledb.DB_TYPE_UROWID, None, None, None, "text"),
    (oracledb.DB_TYPE_BOOLEAN, None, None, None, "boolean"),
])
def test_every_oracle_type_maps_to_its_postgresql_type(
    db_type: Any, precision: int | None, scale: int | None, size: int | None, expected: str
) -> None:
    assert map_type(db_type, precision, scale, size) == pg(expected)
    # The driver's type object and its name map alike.
    assert pg_data_type(db_type.name, precision, scale, size) == pg_data_type(
        db_type, precision, scale, size)


@pytest.mark.parametrize(("db_type", "shown", "hint"), [
    (oracledb.DB_TYPE_LONG, "LONG", "LONG cannot be read through a subquery"),
    (oracledb.DB_TYPE_LONG_RAW, "LONG RAW", "LONG RAW cannot be read through a subquery"),
    (oracledb.DB_TYPE_BFILE, "BFILE", "a BFILE is a file outside the database"),
    (oracledb.DB_TYPE_JSON, "JSON", "select JSON_SERIALIZE(col RETURNING CLOB)"),
    (oracledb.DB_TYPE_XMLTYPE, "XMLTYPE", "select XMLSERIALIZE(DOCUMENT col AS CLOB)"),
    (oracledb.DB_TYPE_VECTOR, "VECTOR", "select FROM_VECTOR(col RETURNING CLOB)"),
    (oracledb.DB_TYPE_CURSOR, "CURSOR", "a cursor is not a value"),
    (oracledb.DB_TYPE_OBJECT, "OBJECT", "select the attributes you need"),
])
def test_types_without_a_counterpart_are_refused_naming_the_column(
    db_type: Any, shown: str, hint: str
) -> None:
    with pytest.raises(DmsError) as err:
        map_type(db_type, column="NOTES")
    assert err.value.message == (f"column NOTES of the source query has Oracle type {shown}, "
                                 "which has no PostgreSQL counterpart here")
    assert err.value.sqlstate == "0A000"
    assert err.value.hint is not None and err.value.hint.startswith(hint)


@dataclass
class Described:
    """The attributes of an ``oracledb.FetchInfo`` (which only the driver can
    build, from a server's reply): what cursor.description holds."""

    name: str
    type_code: Any
    display_size: int | None = None
    internal_size: int | None = None
    precision: int | None = None
    scale: int | None = None
    null_ok: bool = True
    type: Any = None


def test_columns_from_a_description() -> None:
    columns = columns_from_description([
        Described("ID", oracledb.DB_TYPE_NUMBER, 11, None, 10, 0, False),
        Described("NAME", oracledb.DB_TYPE_VARCHAR, 50, 200),
        Described("AMOUNT", oracledb.DB_TYPE_NUMBER, 14, None, 12, 2),
    ])
    assert columns == [
        OracleColumn("ID", "DB_TYPE_NUMBER", 10, 0, 11, None, False),
        OracleColumn("NAME", "DB_TYPE_VARCHAR", None, None, 50, 200, True),
        OracleColumn("AMOUNT", "DB_TYPE_NUMBER", 12, 2, 14, None, True),
    ]
    assert [c.pg_type for c in columns] == [pg("bigint"), pg("varchar(50)"),
                                            pg("numeric(12,2)")]


def test_an_unmapped_or_doubled_column_is_refused_before_anything_runs() -> None:
    with pytest.raises(DmsError) as err:
        columns_from_description([Described("DOC", oracledb.DB_TYPE_XMLTYPE)])
    assert err.value.message.startswith("column DOC of the source query has Oracle type XMLTYPE")
    with pytest.raises(DmsError) as doubled:
        check_columns([OracleColumn("ID", "DB_TYPE_NUMBER"), OracleColumn("ID", "DB_TYPE_DATE")])
    assert doubled.value.message == "the source query returns more than one column named ID"
    assert doubled.value.sqlstate == "42702"


def test_describe_probe_reads_no_row_and_keeps_binds_and_ctes() -> None:
    sql = ("WITH r AS (SELECT id, name FROM sales.orders WHERE region = :region) "
           "SELECT r.id, r.name FROM r")
    assert describe_sql(sql) == (
        "WITH r AS (SELECT id, name FROM sales.orders WHERE region = :region) "
        "SELECT * FROM (SELECT r.id, r.name FROM r) dms_q WHERE 1 = 0")
    assert describe_sql("SELECT 1 AS a FROM dual UNION ALL SELECT 2 FROM dual;") == (
        "SELECT * FROM (SELECT 1 AS a FROM dual UNION ALL SELECT 2 FROM dual) dms_q WHERE 1 = 0")


def test_describe_refuses_what_is_no_single_query() -> None:
    with pytest.raises(DmsError) as err:
        describe_sql("DELETE FROM orders")
    assert (err.value.sqlstate, err.value.message) == (
        "42601", "the Oracle source SQL must be a single query (SELECT)")
    with pytest.raises(DmsError):
        describe_sql("SELECT 1 FROM dual; SELECT 2 FROM dual")


def test_estimate_uses_explain_plan_and_cleans_up() -> None:
    est = estimate_sql("SELECT o.id FROM orders o WHERE o.note LIKE 'a%'", "dms_run7")
    assert est.explain == ("EXPLAIN PLAN SET STATEMENT_ID = 'dms_run7' FOR "
                           "SELECT o.id FROM orders o WHERE o.note LIKE 'a%'")
    assert est.fetch == ("SELECT cardinality FROM plan_table WHERE statement_id = "
                         ":dms_statement AND id = 0")
    assert est.cleanup == "DELETE FROM plan_table WHERE statement_id = :dms_statement"
    assert est.params == {"dms_statement": "dms_run7"}
    for statement in (est.fetch, est.cleanup):
        sqlglot.parse_one(statement, read="oracle")
    generated = estimate_sql("SELECT 1 FROM dual")
    assert generated.statement_id.startswith("dms_") and len(generated.statement_id) == 28
    with pytest.raises(ValueError, match="statement id must match"):
        estimate_sql("SELECT 1 FROM dual", "x'; DROP TABLE t; --")


def test_table_statistics_sql_binds_its_names() -> None:
    own, dba = table_stats_sql(owner=False), table_stats_sql(owner=True)
    assert own == (
        "SELECT t.num_rows, t.blocks, (SELECT SUM(s.blocks) FROM user_segments s WHERE "
        "s.segment_name = t.table_name AND s.segment_type IN ('TABLE', 'TABLE PARTITION', "
        "'TABLE SUBPARTITION')) AS segment_blocks, t.last_analyzed FROM user_tables t "
        "WHERE t.table_name = :dms_table")
    assert "FROM dba_tables t WHERE t.owner = :dms_owner AND t.table_name = :dms_table" in dba
    assert "AND s.owner = t.owner" in dba
    for sql in (own, dba):
        sqlglot.parse_one(sql, read="oracle")


@pytest.mark.parametrize(("stats", "rows"), [
    ((1000, 10, 10), 1000),
    ((1000, 10, 25), 2500),   # grown since the statistics were gathered
    ((1000, 10, 5), 1000),    # shrunk: keep the counted rows
    ((0, 0, 8), 0),
    ((None, None, 8), None),  # never analyzed: count instead
])
def test_estimated_rows(stats: tuple[Any, Any, Any], rows: int | None) -> None:
    assert estimated_rows(*stats) == rows
