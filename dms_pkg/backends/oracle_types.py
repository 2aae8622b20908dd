"""Oracle result columns, their PostgreSQL types, and row estimates.

The column list of a source query comes from the driver's description of a
zero-row probe (``describe_sql``): python-oracledb reports for every column
its ``DbType`` and the precision, scale and sizes Oracle described.  Those,
not sqlglot's reading of Oracle type names (which takes ``LONG`` for an
integer and has no ``RAW``), decide the PostgreSQL type; sqlglot's
``exp.DataType`` builds the PostgreSQL name.

What Oracle describes, and the mapping (unit-tested one by one):

=============================  ==================  ===========================
Oracle                          described as        PostgreSQL
=============================  ==================  ===========================
NUMBER(p,0), p <= 4             precision p, 0      smallint
NUMBER(p,0), p <= 9             precision p, 0      integer
NUMBER(p,0), p <= 18            precision p, 0      bigint
NUMBER(p,0), p > 18             precision p, 0      numeric(p)
NUMBER(p,-s)                    precision p, -s     as NUMBER(p+s,0)
NUMBER(p,s), s > 0              precision p, s      numeric(p,s)
INTEGER = NUMBER(*,0)           precision 0, 0      numeric(38)
NUMBER, FLOAT(b), expressions   scale -127          numeric
BINARY_FLOAT / BINARY_DOUBLE                        real / double precision
VARCHAR2 / NVARCHAR2(n)         n characters        varchar(n)
CHAR / NCHAR(n)                 n characters        char(n)
CLOB / NCLOB                                        text
BLOB / RAW(n)                                       bytea
DATE (has a time of day)                            timestamp(0)
TIMESTAMP(n)                    scale n             timestamp(min(n, 6))
TIMESTAMP(n) WITH [LOCAL] TZ    scale n             timestamptz(min(n, 6))
INTERVAL DAY TO SECOND /                            interval
INTERVAL YEAR TO MONTH
ROWID / UROWID                                      text
BOOLEAN (23ai)                                      boolean
=============================  ==================  ===========================

Refused, naming the column: LONG and LONG RAW (they cannot be read through
a subquery, which every chunk query is), BFILE, JSON, XMLTYPE, VECTOR,
object and collection types, cursors.  Each refusal says which expression
to select instead.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from dms_pkg.errors import FEATURE_NOT_SUPPORTED, DmsError

T = exp.DataType.Type

# Digits of the largest value each integer type holds in full.
_INT_TYPES = ((4, T.SMALLINT), (9, T.INT), (18, T.BIGINT))
NUMBER_MAX_PRECISION = 38
UNCONSTRAINED_SCALE = -127  # what Oracle describes for NUMBER, FLOAT(b) and expressions
PG_MAX_FRACTION = 6  # PostgreSQL timestamps keep microseconds

# DbType names (``oracledb.DB_TYPE_*.name``), so this module needs no driver
# import to map a description the tests write down.
TEXT_TYPES = frozenset({"DB_TYPE_VARCHAR", "DB_TYPE_NVARCHAR"})
CHAR_TYPES = frozenset({"DB_TYPE_CHAR", "DB_TYPE_NCHAR"})
CLOB_TYPES = frozenset({"DB_TYPE_CLOB", "DB_TYPE_NCLOB"})
BINARY_TYPES = frozenset({"DB_TYPE_RAW", "DB_TYPE_BLOB"})
NATIONAL_TYPES = frozenset({"DB_TYPE_NVARCHAR", "DB_TYPE_NCHAR", "DB_TYPE_NCLOB"})
ROWID_TYPES = frozenset({"DB_TYPE_ROWID", "DB_TYPE_UROWID"})
TZ_TYPES = frozenset({"DB_TYPE_TIMESTAMP_TZ", "DB_TYPE_TIMESTAMP_LTZ"})

_REFUSED: dict[str, str] = {
    "DB_TYPE_LONG": "LONG cannot be read through a subquery; select TO_LOB(col) into a "
    "CLOB copy of the table first, or convert the column to CLOB",
    "DB_TYPE_LONG_NVARCHAR": "LONG cannot be read through a subquery; convert the column to "
    "NCLOB",
    "DB_TYPE_LONG_RAW": "LONG RAW cannot be read through a subquery; convert the column to "
    "BLOB (TO_LOB)",
    "DB_TYPE_BFILE": "a BFILE is a file outside the database; select its contents "
    "(DBMS_LOB.LOADBLOBFROMFILE into a BLOB) or its name (DBMS_LOB.FILEGETNAME)",
    "DB_TYPE_JSON": "select JSON_SERIALIZE(col RETURNING CLOB) to load it as text "
    "(and cast to jsonb in PostgreSQL)",
    "DB_TYPE_XMLTYPE": "select XMLSERIALIZE(DOCUMENT col AS CLOB) to load it as text",
    "DB_TYPE_VECTOR": "select FROM_VECTOR(col RETURNING CLOB) to load it as text",
    "DB_TYPE_OBJECT": "select the attributes you need as columns",
    "DB_TYPE_CURSOR": "a cursor is not a value; select the rows it would return",
    "DB_TYPE_UNKNOWN": "select it converted to a scalar type",
}


def _type_name(db_type: Any) -> str:
    """``DB_TYPE_NUMBER`` for ``oracledb.DB_TYPE_NUMBER``, an object type, or a name."""
    name = getattr(db_type, "name", db_type)
    if not isinstance(name, str):
        return "DB_TYPE_OBJECT"
    return name if name.startswith("DB_TYPE_") else "DB_TYPE_OBJECT"


def _param(value: int) -> exp.DataTypeParam:
    return exp.DataTypeParam(this=exp.Literal.number(value))


def _typed(kind: exp.DType, *params: int) -> exp.DataType:
    return exp.DataType(this=kind, expressions=[_param(p) for p in params] or None)


def _number(precision: int | None, scale: int | None) -> exp.DataType:
    p, s = precision or 0, scale or 0
    if s == UNCONSTRAINED_SCALE:  # NUMBER, FLOAT(b) and most expressions
        return _typed(T.DECIMAL)
    if p == 0:  # INTEGER / NUMBER(*,0): integers of up to 38 digits
        return _typed(T.DECIMAL, NUMBER_MAX_PRECISION)
    if s < 0:  # NUMBER(p,-s) holds integers of p+s digits (rounded to 10^s)
        p, s = p - s, 0
    if s == 0:
        for digits, kind in _INT_TYPES:
            if p <= digits:
                return _typed(kind)
        return _typed(T.DECIMAL, p)
    return _typed(T.DECIMAL, p, s)


def _fraction(scale: int | None) -> int:
    return min(max(scale or 0, 0), PG_MAX_FRACTION)


def pg_data_type(
    db_type: Any,
    precision: int | None = None,
    scale: int | None = None,
    size: int | None = None,
    *,
    column: str = "?",
) -> exp.DataType:
    """The PostgreSQL type of one described Oracle column (see the module table).

    ``db_type`` is an ``oracledb.DbType`` (or its name); ``size`` is the
    character length of a text column (``FetchInfo.display_size``).
    """
    name = _type_name(db_type)
    if name == "DB_TYPE_NUMBER":
        return _number(precision, scale)
    if name == "DB_TYPE_BINARY_INTEGER":
        return _typed(T.INT)
    if name == "DB_TYPE_BINARY_FLOAT":
        return _typed(T.FLOAT)
    if name == "DB_TYPE_BINARY_DOUBLE":
        return _typed(T.DOUBLE)
    if name in TEXT_TYPES:
        return _typed(T.VARCHAR, size) if size else _typed(T.TEXT)
    if name in CHAR_TYPES:
        return _typed(T.CHAR, size) if size else _typed(T.TEXT)
    if name in CLOB_TYPES or name in ROWID_TYPES:
        return _typed(T.TEXT)
    if name in BINARY_TYPES:
        return _typed(T.VARBINARY)
    if name == "DB_TYPE_DATE":
        return _typed(T.TIMESTAMP, 0)
    if name == "DB_TYPE_TIMESTAMP":
        return _typed(T.TIMESTAMP, _fraction(scale))
    if name in TZ_TYPES:
        return _typed(T.TIMESTAMPTZ, _fraction(scale))
    if name in ("DB_TYPE_INTERVAL_DS", "DB_TYPE_INTERVAL_YM"):
        return _typed(T.INTERVAL)
    if name == "DB_TYPE_BOOLEAN":
        return _typed(T.BOOLEAN)
    reason = _REFUSED.get(name, _REFUSED["DB_TYPE_OBJECT"])
    shown = name.removeprefix("DB_TYPE_").replace("_", " ")
    if hasattr(db_type, "schema"):  # an oracledb.DbObjectType: name it
        shown = f"object type {db_type.schema}.{db_type.name}"
    raise DmsError(
        f"column {column} of the source query has Oracle type {shown}, which has no "
        "PostgreSQL counterpart here",
        sqlstate=FEATURE_NOT_SUPPORTED,
        hint=reason,
    )


def map_type(
    db_type: Any,
    precision: int | None = None,
    scale: int | None = None,
    size: int | None = None,
    *,
    column: str = "?",
) -> str:
    """``pg_data_type`` written in PostgreSQL (``BIGINT``, ``DECIMAL(12, 2)``, ...)."""
    return pg_data_type(db_type, precision, scale, size, column=column).sql("postgres")


@dataclass(frozen=True)
class OracleColumn:
    """One column of a source query as python-oracledb described it."""

    name: str
    type_name: str               # oracledb DbType name: DB_TYPE_NUMBER, DB_TYPE_VARCHAR, ...
    precision: int | None = None
    scale: int | None = None
    size: int | None = None      # characters (text), bytes (RAW): FetchInfo.display_size
    byte_size: int | None = None  # most bytes one value takes: FetchInfo.internal_size
    nullable: bool = True

    @classmethod
    def from_fetch_info(cls, info: Any) -> OracleColumn:
        """From one entry of ``cursor.description`` (an ``oracledb.FetchInfo``)."""
        db_type = getattr(info, "type", None) or info.type_code
        return cls(
            name=str(info.name),
            type_name=_type_name(db_type),
            precision=info.precision,
            scale=info.scale,
            size=info.display_size,
            byte_size=info.internal_size,
            nullable=bool(info.null_ok),
        )

    def data_type(self) -> exp.DataType:
        """The PostgreSQL type (raises for the refused types, naming the column)."""
        return pg_data_type(self.type_name, self.precision, self.scale, self.size,
                            column=self.name)

    @property
    def pg_type(self) -> str:
        return self.data_type().sql("postgres")


def columns_from_description(description: Iterable[Any]) -> list[OracleColumn]:
    """``cursor.description`` as OracleColumns, each checked to have a PostgreSQL
    type and to be named once (an outer query could not tell two apart)."""
    columns = [OracleColumn.from_fetch_info(info) for info in description]
    check_columns(columns)
    return columns


def check_columns(columns: Sequence[OracleColumn]) -> None:
    """Refuse unmapped types and duplicate names (both named in the message)."""
    seen: dict[str, int] = {}
    for column in columns:
        column.data_type()
        seen[column.name] = seen.get(column.name, 0) + 1
    doubled = [name for name, count in seen.items() if count > 1]
    if doubled:
        raise DmsError(
            "the source query returns more than one column named " + ", ".join(doubled),
            sqlstate="42702",
            hint="give each selected column its own alias (SELECT a.id AS a_id, b.id AS b_id)",
        )


# -- SQL around the query -----------------------------------------------------

def _parse(query_sql: str) -> exp.Query:
    from dms_pkg.backends.oracle_sql import parse_query

    return parse_query(query_sql)


def describe_sql(query_sql: str) -> str:
    """The zero-row probe whose ``cursor.description`` lists the query's columns:
    ``SELECT * FROM (<query>) dms_q WHERE 1 = 0`` (a WITH clause moves to the
    top).  Oracle stops at the contradiction without reading a row.  Bind
    the query's own parameters (as NULL) when running it."""
    from dms_pkg.backends.oracle_sql import render, wrap

    outer = wrap(_parse(query_sql), [exp.Star()])
    outer.where(exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(0)),
                copy=False)
    return render(outer)


def describe(cursor: Any, query_sql: str, params: dict[str, Any] | None = None
             ) -> list[OracleColumn]:
    """Run the probe on an oracledb cursor and return the checked columns."""
    cursor.execute(describe_sql(query_sql), params or {})
    return columns_from_description(cursor.description)


_STATEMENT_ID = re.compile(r"^[a-z0-9_]{1,30}$")


@dataclass(frozen=True)
class EstimateSQL:
    """EXPLAIN PLAN, then its top row's cardinality, then cleaning up PLAN_TABLE."""

    statement_id: str
    explain: str
    fetch: str   # binds :dms_statement
    cleanup: str  # binds :dms_statement

    @property
    def params(self) -> dict[str, str]:
        return {"dms_statement": self.statement_id}


def estimate_sql(query_sql: str, statement_id: str | None = None) -> EstimateSQL:
    """The optimizer's row estimate of a query, without running it.

    ``EXPLAIN PLAN SET STATEMENT_ID = '<id>' FOR <query>`` writes the plan to
    PLAN_TABLE (a global temporary table every user may write), the row with
    ``id = 0`` holds the query's cardinality, and the rows are deleted
    afterwards.  The statement id is our own token (checked to be
    ``[a-z0-9_]``), the only literal written into the text: EXPLAIN PLAN
    takes no bind for it.
    """
    from dms_pkg.backends.oracle_sql import render

    sid = statement_id or f"dms_{uuid.uuid4().hex[:24]}"
    if not _STATEMENT_ID.match(sid):
        raise ValueError(f"statement id must match [a-z0-9_]{{1,30}}, got {sid!r}")
    return EstimateSQL(
        statement_id=sid,
        explain=f"EXPLAIN PLAN SET STATEMENT_ID = '{sid}' FOR {render(_parse(query_sql))}",
        fetch="SELECT cardinality FROM plan_table WHERE statement_id = :dms_statement AND id = 0",
        cleanup="DELETE FROM plan_table WHERE statement_id = :dms_statement",
    )


def table_stats_sql(*, owner: bool) -> str:
    """``num_rows, blocks, segment_blocks, last_analyzed`` of one table.

    NUM_ROWS and BLOCKS are the optimizer statistics (NULL before the first
    gather); SEGMENT_BLOCKS is the table's size now, from its segments, so
    ``estimated_rows`` can scale a stale count by the growth since.  With
    ``owner`` the DBA_ views (binds ``:dms_owner``), else the connected
    user's own.  Binds ``:dms_table`` (names as stored: upper case unless
    quoted).
    """
    prefix = "dba" if owner else "user"
    who = "t.owner = :dms_owner AND " if owner else ""
    seg_owner = " AND s.owner = t.owner" if owner else ""
    tables = "dba_tables" if owner else "user_tables"
    return (
        "SELECT t.num_rows, t.blocks, "
        f"(SELECT SUM(s.blocks) FROM {prefix}_segments s WHERE s.segment_name = t.table_name"
        f"{seg_owner} AND s.segment_type IN ('TABLE', 'TABLE PARTITION', 'TABLE SUBPARTITION'))"
        " AS segment_blocks, t.last_analyzed "
        f"FROM {tables} t WHERE {who}t.table_name = :dms_table"
    )


def estimated_rows(num_rows: int | None, blocks: int | None, segment_blocks: int | None
                   ) -> int | None:
    """Rows now, from the statistics scaled by the segment's growth since;
    None when the table was never analyzed (count it instead)."""
    if num_rows is None:
        return None
    if blocks and segment_blocks and segment_blocks > blocks:
        return math.ceil(num_rows * segment_blocks / blocks)
    return int(num_rows)
