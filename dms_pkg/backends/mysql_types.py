"""MariaDB/MySQL column types as PostgreSQL types, and each column rendered as COPY text.

A MariaDB source is read without per-row Python: the server itself renders
every row as one line of PostgreSQL COPY text (``render_select``), and a
client streams those lines into the target's ``COPY ... FROM STDIN``.  This
module decides, per result column, the PostgreSQL type of its target column
and the MariaDB expression that prints its value the way PostgreSQL's COPY
text reads it back.

Types come from the column's declaration where the column is a table's or a
view's own (``information_schema.COLUMNS.COLUMN_TYPE``: ``int(10) unsigned``,
``tinyint(1)``, ``enum(...)``; JSON from its ``json_valid`` CHECK), and from
the result's field metadata otherwise (an expression).  The declaration is
parsed by sqlglot's MySQL dialect into an ``exp.DataType`` and mapped here
(``pg_type``), since sqlglot's own MySQL -> PostgreSQL transpilation keeps
types PostgreSQL does not have (``UINT``, ``ENUM``, ``BLOB``):

=====================================  ===============================  ==========
MariaDB                                PostgreSQL                       rendering
=====================================  ===============================  ==========
tinyint(1), bool                       boolean                          't'/'f'
tinyint, smallint, tinyint unsigned    smallint
smallint unsigned, mediumint, int      integer
int unsigned, bigint                   bigint
bigint unsigned                        numeric(20,0)
decimal(p,s)                           numeric(p,s)
float                                  real                             as double
double                                 double precision
date / datetime(n) / time(n)           date / timestamp(n) / time(n)    zero dates
timestamp(n)                           timestamptz(n)                   UTC + '+00'
year                                   smallint
char(n) / varchar(n) / *text           char(n) / varchar(n) / text      escaped
enum, set                              text                             escaped
json                                   jsonb                            escaped
bit(n)                                 bit(n)                           binary digits
binary, varbinary, *blob               bytea                            \\x + hex
geometry and the spatial types         refused, named
=====================================  ===============================  ==========

FLOAT is printed through DOUBLE, whose text is the shortest that reads back
the same; MariaDB's own text of a FLOAT keeps 6 digits and would change it.
``tinyint(1)`` is MariaDB's boolean (``BOOL`` is an alias of it); a column
of it that holds other numbers loads as true, as pgloader does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.expressions.datatypes import DType

from dms_pkg.errors import FEATURE_NOT_SUPPORTED, DmsError

T = exp.DataType.Type

# How a value is printed (``render``): the keys of _RENDER.
PLAIN, TEXT, FLOAT, BOOL, BYTES, BIT, TIMESTAMP, DATE = (
    "plain", "text", "float", "bool", "bytes", "bit", "timestamp", "date")

_INTEGERS: dict[DType, str] = {
    T.TINYINT: "smallint", T.UTINYINT: "smallint", T.SMALLINT: "smallint",
    T.USMALLINT: "integer", T.MEDIUMINT: "integer", T.UMEDIUMINT: "integer",
    T.INT: "integer", T.UINT: "bigint", T.BIGINT: "bigint", T.UBIGINT: "numeric(20,0)",
}
_TEXTS = {T.TEXT, T.TINYTEXT, T.MEDIUMTEXT, T.LONGTEXT, T.ENUM, T.SET, T.NAME}
_BINARIES = {T.BLOB, T.TINYBLOB, T.MEDIUMBLOB, T.LONGBLOB, T.BINARY, T.VARBINARY}

# pymysql's FIELD_TYPE codes, for result columns that are no table's (expressions).
_FIELD_TYPES = {
    0: "decimal", 1: "tinyint", 2: "smallint", 3: "int", 4: "float", 5: "double",
    6: "text", 7: "timestamp", 8: "bigint", 9: "mediumint", 10: "date", 11: "time",
    12: "datetime", 13: "year", 14: "date", 15: "varchar", 16: "bit", 245: "json",
    246: "decimal", 247: "enum", 248: "set", 249: "tinyblob", 250: "mediumblob",
    251: "longblob", 252: "blob", 253: "varchar", 254: "char", 255: "geometry",
}
UNSIGNED_FLAG = 32
BINARY_CHARSET = 63  # the result's character set number of binary strings


@dataclass(frozen=True)
class MySQLColumn:
    """One result column: its name, its MariaDB type, its PostgreSQL type and how
    the server prints it."""

    name: str
    mysql_type: str  # as declared ('int(10) unsigned') or made from the metadata
    pg_type: str
    render: str  # PLAIN, TEXT, ...
    bits: int = 0  # bit(n): n

    @property
    def is_date(self) -> bool:
        return self.render in (DATE, TIMESTAMP)


def _size(dtype: exp.DataType, position: int = 0) -> int | None:
    params = dtype.expressions
    if len(params) <= position:
        return None
    value = params[position].this
    try:
        return int(value.this if isinstance(value, exp.Literal) else str(value))
    except (TypeError, ValueError):
        return None


def column(name: str, mysql_type: str, *, is_json: bool = False) -> MySQLColumn:
    """The column ``name`` of MariaDB type ``mysql_type`` (a COLUMN_TYPE)."""
    declared = mysql_type.strip().lower()
    if is_json or declared == "json":
        return MySQLColumn(name, "json", "jsonb", TEXT)
    try:
        dtype = exp.DataType.build(declared, dialect="mysql")
    except (ParseError, ValueError):
        raise _unsupported(name, mysql_type) from None
    kind = dtype.this
    if (kind == T.TINYINT and _size(dtype) == 1) or kind == T.BOOLEAN:
        return MySQLColumn(name, mysql_type, "boolean", BOOL)
    if kind in _INTEGERS:
        return MySQLColumn(name, mysql_type, _INTEGERS[kind], PLAIN)
    if kind in (T.DECIMAL, T.UDECIMAL):
        precision, scale = _size(dtype, 0), _size(dtype, 1)
        shown = f"numeric({precision},{scale or 0})" if precision else "numeric"
        return MySQLColumn(name, mysql_type, shown, PLAIN)
    if kind == T.FLOAT:
        return MySQLColumn(name, mysql_type, "real", FLOAT)
    if kind in (T.DOUBLE, T.UDOUBLE):
        return MySQLColumn(name, mysql_type, "double precision", PLAIN)
    if kind == T.DATE:
        return MySQLColumn(name, mysql_type, "date", DATE)
    if kind in (T.DATETIME, T.TIMESTAMP, T.DATETIME64):
        return MySQLColumn(name, mysql_type, _with_precision("timestamp", dtype), DATE)
    if kind == T.TIMESTAMPTZ:  # MariaDB's TIMESTAMP: a moment, read in UTC
        return MySQLColumn(name, mysql_type, _with_precision("timestamptz", dtype), TIMESTAMP)
    if kind == T.TIME:
        return MySQLColumn(name, mysql_type, _with_precision("time", dtype), PLAIN)
    if kind == T.YEAR:
        return MySQLColumn(name, mysql_type, "smallint", PLAIN)
    if kind in (T.CHAR, T.NCHAR, T.VARCHAR, T.NVARCHAR):
        length = _size(dtype)
        base = "char" if kind in (T.CHAR, T.NCHAR) else "varchar"
        return MySQLColumn(name, mysql_type, f"{base}({length})" if length else "text", TEXT)
    if kind in _TEXTS:
        return MySQLColumn(name, mysql_type, "text", TEXT)
    if kind in _BINARIES:
        return MySQLColumn(name, mysql_type, "bytea", BYTES)
    if kind == T.BIT:
        bits = _size(dtype) or 1
        return MySQLColumn(name, mysql_type, f"bit({bits})", BIT, bits)
    if kind == T.JSON:
        return MySQLColumn(name, mysql_type, "jsonb", TEXT)
    raise _unsupported(name, mysql_type)


def _with_precision(base: str, dtype: exp.DataType) -> str:
    digits = _size(dtype)
    return f"{base}({digits})" if digits else base


def _unsupported(name: str, mysql_type: str) -> DmsError:
    return DmsError(
        f"column {name} has the MariaDB/MySQL type {mysql_type}, which has no PostgreSQL "
        "type dms_pkg maps it to",
        sqlstate=FEATURE_NOT_SUPPORTED,
        hint=f"convert it in the source query, for example ST_AsText({name}) AS {name} for a "
        f"spatial column or CAST({name} AS CHAR) AS {name}; nothing was written")


def field_type(type_code: int, length: int, decimals: int, flags: int, charsetnr: int) -> str:
    """A MariaDB type name for a result column that is no table's column, made
    from its field metadata (pymysql's ``Field``)."""
    name = _FIELD_TYPES.get(type_code)
    if name is None:
        return f"type code {type_code}"
    unsigned = " unsigned" if flags & UNSIGNED_FLAG else ""
    if name in ("varchar", "char") and charsetnr == BINARY_CHARSET:
        return "varbinary(255)" if name == "varchar" else "binary(255)"
    if name in ("varchar", "char"):
        return "text"  # an expression's length is a guess; text holds any
    if name.endswith("blob") and charsetnr != BINARY_CHARSET:
        return "longtext"  # a long text expression (GROUP_CONCAT, ...)
    if name == "decimal":
        scale = decimals if decimals < 31 else 0
        precision = max(1, length - (1 if scale else 0) - (0 if unsigned else 1))
        return f"decimal({min(precision, 65)},{scale}){unsigned}"
    if name in ("datetime", "timestamp", "time") and 0 < decimals <= 6:
        return f"{name}({decimals})"
    if name == "tinyint" and length == 1:
        return "tinyint(1)"
    if name == "bit":
        return f"bit({max(1, length)})"
    return name + unsigned


# ------------------------------------------------------------- COPY text in SQL
#
# Literals are written as hex with a character-set introducer, so that they
# mean the same whatever the session's sql_mode (NO_BACKSLASH_ESCAPES,
# ANSI_QUOTES) says about backslashes and quotes.

def _lit(text: str) -> str:
    return "_utf8mb4 X'" + text.encode().hex().upper() + "'"


NULL_TEXT = _lit("\\N")
TAB = _lit("\t")
# Backslash first: the escapes written after it must not be escaped again.
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def quote_name(name: str) -> str:
    """A MariaDB identifier in backticks (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def value_sql(col: MySQLColumn, ref: str, *, zero_dates_null: bool) -> str:
    """The expression printing ``ref`` (a column of ``col``'s type) as COPY text;
    NULL stays NULL (the row expression prints it as ``\\N``)."""
    if col.render == TEXT:
        expr = ref
        for raw, escaped in _ESCAPES:
            expr = f"REPLACE({expr}, {_lit(raw)}, {_lit(escaped)})"
        return expr
    if col.render == FLOAT:
        return f"CAST({ref} AS DOUBLE)"
    if col.render == BOOL:
        return f"CASE WHEN {ref} <> 0 THEN {_lit('t')} WHEN {ref} = 0 THEN {_lit('f')} END"
    if col.render == BYTES:
        return f"CONCAT({_lit(chr(92) * 2 + 'x')}, HEX({ref}))"
    if col.render == BIT:
        return f"LPAD(BIN({ref} + 0), {col.bits}, '0')"
    expr = ref
    if zero_dates_null and col.is_date:
        # A zero date, or one with a zero month or day, has no PostgreSQL value.
        expr = f"IF(MONTH({ref}) = 0 OR DAYOFMONTH({ref}) = 0, NULL, {ref})"
    if col.render == TIMESTAMP:
        return f"CONCAT({expr}, {_lit('+00')})"  # printed in the session's UTC
    return expr


def render_select(columns: Sequence[MySQLColumn], query: str, *,
                  zero_dates_null: bool = False) -> str:
    """``query`` wrapped so that each row comes back as one line of COPY text."""
    values = (value_sql(c, f"dms_q.{quote_name(c.name)}", zero_dates_null=zero_dates_null)
              for c in columns)
    fields = [f"IFNULL({value}, {NULL_TEXT})" for value in values]
    return f"SELECT CONCAT_WS({TAB}, {', '.join(fields)}) FROM ({query}) AS dms_q"


def pg_types(columns: Sequence[MySQLColumn]) -> Mapping[str, str]:
    return {c.name: c.pg_type for c in columns}
